"""Targets: class by name or index, a detector's box by index or by IoU (differentiable), a
segmentation class summed over its predicted region."""
import pytest
import torch
from torchvision.ops import box_iou

from cnnkit.errors import CnnkitError
from cnnkit.explain.api import explain
from cnnkit.explain.targets import infer_output, make_target, parse_class, split_targets

from .conftest import random_image, tiny_classifier, tiny_detector, tiny_segmenter


def test_parse_class_by_name_then_index():
    classes = ["cat", "dog", "7"]
    assert parse_class("dog", classes) == 1
    assert parse_class("7", classes) == 2  # a class named "7" wins over index 7
    assert parse_class(0, classes) == 0
    with pytest.raises(CnnkitError, match='Did you mean "dog"'):
        parse_class("dgo", classes)
    with pytest.raises(CnnkitError, match="out of range"):
        parse_class("5", classes)


def test_class_target_defaults_to_the_prediction():
    model = tiny_classifier()
    x = torch.rand(1, 1, 16, 16)
    score, info = make_target("logits", model, x, None, ["a", "b", "c"])
    assert info["index"] == int(model(x).argmax()) and info["predicted"]
    torch.testing.assert_close(score(x), model(x)[:, info["index"]:info["index"] + 1])
    torch.testing.assert_close(score.prob(x), model(x).softmax(1)[:, info["index"]])


def test_box_target_by_index_and_by_iou():
    det = tiny_detector()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        pred = det(list(x))[0]
    score, info = make_target("boxes", det, x, "2", [])
    assert info["index"] == 2 and info["score"] == pytest.approx(float(pred["scores"][2]))
    assert float(score(x)[0, 0].detach()) == pytest.approx(float(pred["scores"][2]))

    box = pred["boxes"][1] + torch.tensor([1.0, -1.0, 1.0, 1.0])
    _, info = make_target("boxes", det, x, ",".join(f"{v:.2f}" for v in box.tolist()), [])
    best = int(box_iou(box[None], pred["boxes"])[0].argmax())
    assert info["index"] == best and info["iou_with_given"] > 0.5


def test_box_score_is_differentiable_wrt_the_input():
    det = tiny_detector()
    x = torch.rand(1, 3, 48, 64)
    score, _ = make_target("boxes", det, x, None, [])
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(score(xg).sum(), xg)
    assert float(g.abs().sum()) > 0


def test_bad_box_targets():
    det = tiny_detector()
    x = torch.rand(1, 3, 48, 64)
    with pytest.raises(CnnkitError, match="out of range"):
        make_target("boxes", det, x, "99", [])
    with pytest.raises(CnnkitError, match="x1,y1,x2,y2"):
        make_target("boxes", det, x, "1,2,3", [])
    with pytest.raises(CnnkitError, match="No predicted box overlaps"):
        make_target("boxes", det, x, "500,500,600,600", [])


def test_segmentation_target_sums_class_logits_over_its_region():
    seg = torch.nn.Conv2d(3, 3, 1).eval()  # logits = the input's channels: every class gets pixels
    with torch.no_grad():
        seg.weight.copy_(torch.eye(3)[:, :, None, None])
        seg.bias.zero_()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = seg(x)[0]
    pred = out.argmax(0)
    counts = torch.bincount(pred.flatten(), minlength=3)
    counts[0] = -1  # background does not count for the default
    score, info = make_target("pixel_logits", seg, x, None, ["background", "a", "b"])
    k = int(counts.argmax())
    assert info["index"] == k and info["kind"] == "segment-class" and info["pixels"] == int(counts[k]) > 0
    with torch.no_grad():
        assert float(score(x)[0, 0]) == pytest.approx(float((out[k] * (pred == k)).sum()), rel=1e-5)
    _, info = make_target("pixel_logits", seg, x, "b", ["background", "a", "b"])
    assert info["index"] == 2


def test_explanations_for_a_box_and_a_segment_class_have_the_image_size():
    (e,) = explain(tiny_detector(), random_image(3, 48, 64), "gradcam", target="0")
    assert e.map.shape == (48, 64) and e.target["kind"] == "box" and float(e.map.max()) == 1.0
    (e,) = explain(tiny_segmenter(), random_image(3, 20, 24), "gradcam", target="1")
    assert e.map.shape == (20, 24) and e.target["index"] == 1 and float(e.map.std()) > 0
    (e,) = explain(tiny_segmenter(), random_image(3, 20, 24), "ig", steps=8)
    assert e.map.shape == (20, 24)


def test_output_kind_is_read_from_the_model_output():
    assert infer_output(tiny_classifier(), torch.rand(1, 1, 8, 8)) == "logits"
    assert infer_output(tiny_segmenter(), torch.rand(1, 3, 8, 8)) == "pixel_logits"
    assert infer_output(tiny_detector(), torch.rand(1, 3, 32, 32)) == "boxes"


def test_split_targets():
    assert split_targets(None, "logits") == [None]
    assert split_targets("cat,dog", "logits") == ["cat", "dog"]
    assert split_targets("1,2,3,4;0", "boxes") == ["1,2,3,4", "0"]


def test_degenerate_boxes_still_match_themselves():
    from cnnkit.explain.targets import overlap

    boxes = torch.tensor([[36.0, 14.4, 36.0, 18.3], [0.0, 0.0, 10.0, 10.0]])  # the first has no area
    torch.testing.assert_close(overlap(boxes[0], boxes), torch.tensor([1.0, 0.0]))


class _NoGradDetector(torch.nn.Module):
    """Decodes its boxes under no_grad, as cnnkit's tinydet does."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, images):
        out = []
        for img in images:
            heat = self.conv(img[None])[0, 0]
            with torch.no_grad():
                out.append({"boxes": torch.tensor([[2.0, 2.0, 9.0, 9.0]]), "labels": torch.tensor([0]),
                            "scores": heat.amax().sigmoid()[None]})
        return out


def test_a_detector_without_gradients_gets_occlusion_and_a_clear_error_otherwise():
    det = _NoGradDetector().eval()
    img = random_image(3, 12, 12)
    (e,) = explain(det, img, "occlusion", window=4, stride=4, task="detect")
    assert e.map.shape == (12, 12)
    with pytest.raises(CnnkitError, match="use --method occlusion"):
        explain(det, img, "saliency", task="detect")


def test_tinydet_boxes_get_gradient_explanations():
    """cnnkit's own detector keeps its box scores differentiable, so saliency and Grad-CAM work on it."""
    from cnnkit.models import build_model

    torch.manual_seed(0)
    det = build_model("tinydet", num_classes=3, in_channels=3, image_size=48, score_thresh=0.0).eval()
    x = torch.rand(1, 3, 48, 48)
    score, info = make_target("boxes", det, x, "0", [])
    assert score.differentiable
    assert float(score(x)[0, 0].detach()) == pytest.approx(info["score"], rel=1e-5)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(score(xg).sum(), xg)
    assert float(g.abs().sum()) > 0
    img = random_image(3, 48, 48)
    for method in ("saliency", "gradcam"):
        (e,) = explain(det, img, method, task="detect")
        assert e.map.shape == (48, 48) and torch.isfinite(torch.as_tensor(e.map)).all()
