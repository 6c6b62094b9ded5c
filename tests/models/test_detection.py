"""Every registered detector keeps torchvision's contract; tinydet's loss and decoding behave."""
from __future__ import annotations

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.models import MODELS
from cnnkit.models.detection import TinyDet  # importing it registers the detectors

DETECTORS = MODELS.list(task="detect")


def _batch(channels=3, size=64):
    g = torch.Generator().manual_seed(0)
    images = [torch.rand((channels, size, size), generator=g), torch.rand((channels, size - 16, size), generator=g)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 24.0, 30.0], [30.0, 30.0, 50.0, 60.0]]),
                "labels": torch.tensor([0, 2])},
               {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}]  # background image
    return images, targets


def test_the_expected_detectors_are_registered():
    assert {"tinydet", "fcos", "retinanet", "fasterrcnn", "ssdlite"} <= set(DETECTORS)


@pytest.mark.parametrize("name,backbone", [(n, "tiny") for n in DETECTORS] + [("fcos", None)])
def test_train_returns_losses_and_eval_returns_detections(name, backbone):
    torch.manual_seed(0)
    kw = {"backbone": backbone} if backbone else {}  # cnnkit's small "tiny" keeps the test fast; None = default
    model = MODELS.get(name)(num_classes=3, in_channels=1, image_size=64, **kw)
    images, targets = _batch(channels=1)
    model.train()
    losses = model(images, targets)
    assert isinstance(losses, dict) and losses
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    model.set_thresholds(score=0.0, iou=0.5)
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o, img in zip(out, images):
        assert set(o) >= {"boxes", "labels", "scores"}
        assert o["boxes"].shape[1:] == (4,) and len(o["boxes"]) == len(o["labels"]) == len(o["scores"])
        assert len(o["boxes"]) <= 100
        if len(o["labels"]):  # 0-based labels, boxes inside the input image
            assert o["labels"].min() >= 0 and o["labels"].max() < 3
            assert o["boxes"][:, 2].max() <= img.shape[2] + 1e-3 and o["boxes"][:, 3].max() <= img.shape[1] + 1e-3
    with pytest.raises(CnnkitError):
        model.train()
        model(images)


def test_unknown_backbone_is_one_sentence():
    with pytest.raises(CnnkitError, match="backbone"):
        MODELS.get("fcos")(num_classes=3, backbone="resnet1800")


def _points(size=64, stride=4):
    n = size // stride
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], 1).float() * stride + stride / 2


def test_tinydet_loss_vanishes_for_a_perfect_prediction():
    model = TinyDet(num_classes=3, in_channels=1, image_size=64)
    points = _points()
    gt = torch.tensor([[10.0, 8.0, 30.0, 36.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([1])}]
    p = len(points)
    boxes = gt.expand(1, p, 4).clone()
    # the positives: points inside the box and within 1 stride (the default centre_radius, 4 px) of its centre
    cx, cy = 20.0, 22.0
    pos = ((points[:, 0] - cx).abs() < 4) & ((points[:, 1] - cy).abs() < 4)
    assert 1 <= int(pos.sum()) <= 4
    cls = torch.full((1, p, 3), -30.0)
    cls[0, pos, 1] = 30.0
    iou = torch.full((1, p), 30.0)
    losses = model.compute_loss(cls, boxes, iou, points, targets)
    assert losses["box"].item() == pytest.approx(0.0, abs=1e-5)
    assert losses["cls"].item() == pytest.approx(0.0, abs=1e-5)
    assert losses["iou"].item() == pytest.approx(0.0, abs=1e-5)
    cls[0, pos, 1], cls[0, pos, 2] = -30.0, 30.0  # the wrong class at every positive
    assert model.compute_loss(cls, boxes, iou, points, targets)["cls"] > 1.0


def test_tinydet_maps_boxes_back_to_the_input_size():
    torch.manual_seed(0)
    model = TinyDet(num_classes=2, in_channels=3, image_size=64).eval()
    model.set_thresholds(score=0.0)
    with torch.no_grad():
        _, big = model([torch.rand(3, 64, 64), torch.rand(3, 128, 96)])
    assert len(big["boxes"]) and big["boxes"][:, 2].max() > 64  # 96 wide input, model saw 48
    assert big["boxes"][:, 2].max() <= 96 + 1e-3 and big["boxes"][:, 3].max() <= 128 + 1e-3
    model.set_thresholds(score=1.01)
    with torch.no_grad():
        assert len(model([torch.rand(3, 64, 64)])[0]["boxes"]) == 0
