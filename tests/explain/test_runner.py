"""explain/runner.py: the loop image x target x method, then the learned filters; the records --evaluate reuses."""
import torch

from cnnkit.explain.api import explain
from cnnkit.explain.runner import run
from cnnkit.explain.subject import from_model

from .conftest import random_image, tiny_classifier


def test_order_is_image_then_target_then_method_then_filters():
    model = tiny_classifier()
    images = torch.stack([random_image(1, 16, 16, 0), random_image(1, 16, 16, 1)])
    out = explain(model, images, "gradcam,saliency,filters", target="0,2")
    cams = [(e.name, e.target["index"], e.method) for e in out if e.method != "filters"]
    assert cams == [(n, t, m) for n in ("0", "1") for t in (0, 2) for m in ("gradcam", "saliency")]
    assert [e.layer for e in out if e.method == "filters"] == ["conv1", "conv2"]


def test_run_keeps_records_per_image_and_target_with_a_reference_saliency():
    model = tiny_classifier()
    imgs = [("a", random_image(1, 16, 16, 0)), ("b", random_image(1, 20, 12, 1))]
    subject = from_model(model, imgs[0][1])
    out, records = run(subject, imgs, ["saliency", "gradcam"], "0,2", None,
                       {"task": "classify", "baseline": "zero"}, keep_records=True)  # "task" builds subjects only
    assert [(e.name, e.target["index"], e.method) for e in out] == \
        [(n, t, m) for n in ("a", "b") for t in (0, 2) for m in ("saliency", "gradcam")]
    assert [tuple(e.map.shape) for e in out[::4]] == [(16, 16), (20, 12)]  # maps at each image's own size
    assert [(r["name"], r["target"]["index"]) for r in records] == [("a", 0), ("a", 2), ("b", 0), ("b", 2)]
    first = records[0]
    assert first["layers"] == {"saliency": None, "gradcam": out[1].layer} and out[1].layer
    assert torch.count_nonzero(first["baseline"]) == 0  # baseline "zero": zeros in model-input space
    x = subject.to_input(imgs[0][1]).requires_grad_(True)
    model(x)[0, 0].backward()  # saliency reference: |d logit_0 / d x|, max over channels
    torch.testing.assert_close(first["raws"]["saliency"], x.grad.abs().amax(1)[0])
    assert run(subject, imgs[:1], ["saliency"], None, None, {})[1] == []  # no records unless asked
