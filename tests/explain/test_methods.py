"""Attribution methods against references: autograd, a float64 numpy Grad-CAM++, a hand loop
for occlusion, and the completeness axiom for integrated gradients."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError
from cnnkit.explain.api import explain
from cnnkit.explain.methods import ATTRIBUTIONS, attribute, parse_methods
from cnnkit.explain.targets import ClassScore

from .conftest import random_image, tiny_classifier


def _setup(seed=0):
    model = tiny_classifier(seed=seed)
    x = random_image(1, 16, 16, seed).float()[None] / 255
    return model, x, ClassScore(model, 1)


def test_parse_methods_aliases_and_errors():
    assert parse_methods("gradcam, Grad-CAM++,ig,gradcam") == ["gradcam", "gradcam++", "ig"]
    assert parse_methods(["integrated-gradients", "guided"]) == ["ig", "guided-backprop"]
    with pytest.raises(CnnkitError, match='Did you mean "gradcam"'):
        parse_methods("gradcan")
    with pytest.raises(CnnkitError):
        parse_methods(",")


@pytest.mark.parametrize("method", ATTRIBUTIONS + ("featuremaps",))
def test_every_method_maps_at_the_image_size(method):
    model = tiny_classifier()
    img = random_image(1, 20, 24)  # not square: catches a transposed map
    (e,) = explain(model, img, method, steps=16, window=4, stride=2, nt_samples=4)
    assert e.map.shape == (20, 24) and e.raw.shape == (20, 24)
    assert torch.isfinite(e.raw).all() and float(e.raw.std()) > 0, f"{method} gave a constant map"
    assert float(e.map.min()) >= 0.0
    if float(e.raw.max()) > 0:  # signed methods (ig, occlusion) may find no evidence for a random model
        assert float(e.map.max()) == pytest.approx(1.0) and float(e.map.std()) > 0
    else:
        assert float(e.map.max()) == 0.0


def test_saliency_is_max_abs_gradient_over_channels():
    model = tiny_classifier(channels=3)
    x = random_image(3, 12, 12).float()[None] / 255
    raw, _ = attribute("saliency", ClassScore(model, 2), x, None, torch.zeros_like(x))
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xg)[0, 2], xg)
    torch.testing.assert_close(raw, g[0].abs().amax(0))


def test_gradcam_matches_autograd_reference():
    model, x, score = _setup()
    raw, _ = attribute("gradcam", score, x, model.conv2, torch.zeros_like(x))
    acts = []
    h = model.conv2.register_forward_hook(lambda m, i, o: acts.append(o))
    out = model(x.clone().requires_grad_(True))[0, 1]
    h.remove()
    (g,) = torch.autograd.grad(out, acts[0])
    cam = F.relu((g.mean((2, 3), keepdim=True) * acts[0]).sum(1, keepdim=True))
    ref = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(raw, ref.detach(), rtol=1e-4, atol=1e-7)


def test_gradcam_pp_matches_float64_reference():
    model, x, score = _setup(1)
    raw, _ = attribute("gradcam++", score, x, model.conv2, torch.zeros_like(x))
    acts = []
    h = model.conv2.register_forward_hook(lambda m, i, o: acts.append(o))
    out = model(x.clone().requires_grad_(True))[0, 1]
    h.remove()
    (g,) = torch.autograd.grad(out, acts[0])
    a, g = acts[0][0].detach().double().numpy(), g[0].double().numpy()
    cam = np.zeros(a.shape[1:])
    for k in range(a.shape[0]):  # the paper's eq. 19 channel by channel
        num = g[k] ** 2
        den = 2 * g[k] ** 2 + a[k].sum() * g[k] ** 3
        alpha = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
        cam += (alpha * np.maximum(g[k], 0)).sum() * a[k]
    cam = np.maximum(cam, 0)
    ref = F.interpolate(torch.tensor(cam)[None, None], size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(raw.double(), ref, rtol=1e-4, atol=1e-8)


def test_integrated_gradients_completeness_gap_below_one_percent():
    model, x, score = _setup(2)
    baseline = torch.zeros_like(x)
    raw, extra = attribute("ig", score, x, None, baseline, {"steps": 200})
    with torch.no_grad():
        diff = float(model(x)[0, 1] - model(baseline)[0, 1])
    assert extra["score_difference"] == pytest.approx(diff, rel=1e-5)
    assert abs(float(raw.double().sum()) - diff) / abs(diff) < 0.01
    assert extra["completeness_gap"] < 0.01


def test_integrated_gradients_chunking_does_not_change_the_result():
    model, x, score = _setup(3)
    a, _ = attribute("ig", score, x, None, torch.zeros_like(x), {"steps": 24, "internal_batch_size": 5})
    b, _ = attribute("ig", score, x, None, torch.zeros_like(x), {"steps": 24, "internal_batch_size": 24})
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_occlusion_matches_a_hand_loop():
    model, x, score = _setup(4)
    raw, extra = attribute("occlusion", score, x, None, torch.zeros_like(x),
                           {"window": 4, "stride": 4, "perturbations_per_eval": 3})
    assert extra == {"window": 4, "stride": 4}
    ref = torch.zeros(16, 16)
    with torch.no_grad():
        full = model(x)[0, 1]
        for i in range(0, 16, 4):
            for j in range(0, 16, 4):
                xo = x.clone()
                xo[..., i:i + 4, j:j + 4] = 0
                ref[i:i + 4, j:j + 4] = full - model(xo)[0, 1]
    torch.testing.assert_close(raw, ref, rtol=1e-4, atol=1e-6)


def test_layer_methods_need_a_layer():
    model, x, score = _setup()
    with pytest.raises(CnnkitError, match="--layer"):
        attribute("gradcam", score, x, None, torch.zeros_like(x))
