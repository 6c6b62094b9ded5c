"""Canvas generator and the digits-detect built-in: determinism, consistency of boxes/masks/semantic map."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnkit.config import Config
from cnnkit.data import BUILTINS, TensorSplit, build_data
from cnnkit.data.builtin import canvas
from cnnkit.data.builtin.canvas import (
    DIGIT_BLOCKS,
    digit_canvases,
    digit_sources,
    make_canvases,
)
from cnnkit.data.detection import DetectionSplit
from cnnkit.errors import CnnkitError


@pytest.fixture(scope="module")
def digits():
    return digit_canvases("val", size=64, seed=3, n=40)


def test_same_seed_same_canvases_and_different_seed_differs():
    a = digit_canvases("test", size=48, seed=1, n=6)
    b = digit_canvases("test", size=48, seed=1, n=6)
    c = digit_canvases("test", size=48, seed=2, n=6)
    assert torch.equal(a.images, b.images) and all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not torch.equal(a.images, c.images)


def test_shapes_types_and_counts(digits):
    n = len(digits)
    assert digits.images.shape == (n, 1, 64, 64) and digits.images.dtype == torch.uint8
    assert digits.semantic.shape == (n, 64, 64) and digits.semantic.dtype == torch.uint8
    for boxes, labels, masks in zip(digits.boxes, digits.labels, digits.masks):
        k = len(labels)
        assert 1 <= k <= 6
        assert boxes.shape == (k, 4) and boxes.dtype == torch.float32
        assert labels.dtype == torch.int64 and ((labels >= 0) & (labels <= 9)).all()
        assert masks.shape == (k, 64, 64) and masks.dtype == torch.uint8 and masks.max() <= 1


def test_boxes_are_tight_around_masks_and_sizes_follow_the_scale(digits):
    for boxes, masks in zip(digits.boxes, digits.masks):
        for box, mask in zip(boxes, masks):
            ys, xs = mask.nonzero(as_tuple=True)
            assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert (box[2:] - box[:2]).max() <= 8 * 4  # 8 px digits scaled at most 4x


def test_semantic_mask_is_class_plus_one_and_later_instances_win(digits):
    for sem, labels, masks in zip(digits.semantic, digits.labels, digits.masks):
        expected = torch.zeros_like(sem)
        for lab, m in zip(labels, masks):
            expected[m.bool()] = lab + 1
        assert torch.equal(sem, expected)
        assert torch.equal(sem > 0, masks.any(0))


def test_overlap_is_limited(digits):
    for boxes in digits.boxes:
        for i in range(len(boxes)):
            for j in range(i):
                a, b = boxes[i], boxes[j]
                inter = ((torch.minimum(a[2:], b[2:]) - torch.maximum(a[:2], b[:2])).clamp(min=0)).prod()
                smaller = min((a[2:] - a[:2]).prod(), (b[2:] - b[:2]).prod())
                assert inter / smaller <= 0.2 + 1e-6


def test_pixels_come_from_the_objects(digits):
    """Every lit pixel belongs to some object's patch; the background stays black."""
    for img, masks in zip(digits.images, digits.masks):
        assert img[0][masks.sum(0) == 0].float().mean() < 255 * 0.25


def test_any_classification_source_works():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(100, 256, (20, 3, 28, 28), generator=g, dtype=torch.uint8)
    src = TensorSplit(images=images, labels=torch.arange(20) % 4)
    out = make_canvases(5, 80, seed=0, source_images=src, scale=(0.5, 1.0), max_digits=3)
    assert out.images.shape == (5, 3, 80, 80)
    assert all(((lab >= 0) & (lab < 4)).all() for lab in out.labels)
    assert all(((b[:, 2:] - b[:, :2]) <= 28).all() for b in out.boxes)
    with pytest.raises(CnnkitError):
        make_canvases(2, 80, 0, images.float(), torch.zeros(20))


def test_fill_holes_makes_solid_objects_solid():
    """A ring: as strokes its middle is background; as a solid object (clothing) it is the object."""
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    r = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2).sqrt()
    ring = ((r > 4) & (r < 7)).to(torch.uint8).mul(255)[None, None]
    kw = dict(n=1, size=32, seed=0, source_images=ring, source_labels=[0], scale=(1.0, 1.0), max_digits=1)
    hollow, solid = make_canvases(**kw), make_canvases(**kw, fill_holes=True)
    assert torch.equal(hollow.images, solid.images) and torch.equal(hollow.boxes[0], solid.boxes[0])
    x0, y0 = int(hollow.boxes[0][0, 0]), int(hollow.boxes[0][0, 1])
    centre = (y0 + 7, x0 + 7)  # the ring's middle (the box is tight around it)
    assert hollow.masks[0][0][centre] == 0 and hollow.semantic[0][centre] == 0
    assert solid.masks[0][0][centre] == 1 and solid.semantic[0][centre] == 1
    assert int(solid.masks[0].sum()) > int(hollow.masks[0].sum())


def test_digit_sources_are_disjoint_blocks():
    sizes = {s: len(digit_sources(s)[0]) for s in DIGIT_BLOCKS}
    assert sum(sizes.values()) == 1797
    train = digit_sources("train")[0]
    assert train.shape[1:] == (1, 8, 8) and train.dtype == torch.uint8 and train.max() == 255


def test_builtin_digits_detect(monkeypatch):
    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 12, "val": 4, "test": 4})
    cfg = Config()
    cfg.data.name, cfg.data.canvas_size = "digits-detect", 64
    bundle = build_data(cfg)
    assert BUILTINS.meta("digits-detect")["task"] == "detect"
    info = bundle.info
    assert info.task == "detect" and info.classes == [str(i) for i in range(10)] and info.channels == 1
    assert info.image_size == 64 and info.hflip_ok is False
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [12, 4, 4]
    assert isinstance(bundle.train, DetectionSplit) and bundle.train.images.shape[-1] == 64
    assert bundle.train.instance_masks(0).shape[0] == len(bundle.train.labels[0])
    cfg.data.canvas_size = 16
    with pytest.raises(CnnkitError, match="canvas_size"):
        build_data(cfg)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Fashion-MNIST not installed")
def test_fashion_canvases_take_items_from_the_matching_fashion_split(monkeypatch):
    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 10, "val": 4, "test": 4})
    det = build_data(Config.from_dict({"data": {"name": "fashion-detect"}}))
    seg = build_data(Config.from_dict({"data": {"name": "fashion-seg"}}))
    assert det.info.classes[0] == "T-shirt/top" and seg.info.classes == ["background", *det.info.classes]
    assert [len(det.train), len(det.val), len(det.test)] == [10, 4, 4]
    sides = torch.cat([det.train.target(i)["boxes"] for i in range(10)])
    sides = torch.cat([sides[:, 2] - sides[:, 0], sides[:, 3] - sides[:, 1]])
    assert sides.max() <= 56 and sides.max() > 28  # 28x28 items drawn at 1-2x (boxes are tight)
    # The segmentation set is the same canvases: its class mask carries each box's label inside it.
    assert torch.equal(seg.test.images, det.test.images)
    t = det.test.target(0)
    x1, y1, x2, y2 = t["boxes"][0].int().tolist()
    assert int(t["labels"][0]) + 1 in seg.test.masks[0][y1:y2, x1:x2].unique().tolist()
    with pytest.raises(CnnkitError, match="canvas_size"):
        build_data(Config.from_dict({"data": {"name": "fashion-detect", "canvas_size": 48}}))
