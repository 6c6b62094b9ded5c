"""Attribution methods: one function per `--method`, each `(score, x, layer, baseline, options)
-> (raw map H x W at the model input's size, extra numbers)`.

`score` is a target module from `targets.py` (input batch -> N x 1), `x` one input
(1 x C x H x W). Captum does the work wherever it has the method (LayerGradCam,
Saliency, NoiseTunnel, GuidedBackprop, GuidedGradCam, IntegratedGradients, Occlusion,
LayerActivation); Grad-CAM++ is not in Captum, so it is written here with a forward
hook. Raw maps keep their sign (integrated gradients, occlusion) so that faithfulness
curves can rank pixels by evidence for the target; gradient images are reduced over
channels the usual way (max |grad| over channels, Simonyan et al. 2014).

Memory stays bounded on large inputs: integrated gradients, SmoothGrad and occlusion
evaluate their many perturbed copies in chunks sized from the input (`chunk_size`).
Captum is imported inside the functions: it takes seconds to import and `cnnkit --help`
should not pay for it.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.explain.layers import to_input_size

ATTRIBUTIONS = ("gradcam", "gradcam++", "saliency", "smoothgrad", "guided-backprop", "guided-gradcam", "ig",
                "occlusion")
PICTURES = ("featuremaps", "filters")  # pictures of the network itself, not attributions
METHODS = ATTRIBUTIONS + PICTURES
LAYER_METHODS = ("gradcam", "gradcam++", "guided-gradcam", "featuremaps")
GRADIENT_FREE = ("occlusion", "featuremaps")
SIGNED = ("ig", "occlusion")  # methods whose raw map has meaningful negative values
ALIASES = {"grad-cam": "gradcam", "gradcampp": "gradcam++", "gradcam-pp": "gradcam++", "grad-cam++": "gradcam++",
           "vanilla": "saliency", "gradient": "saliency", "guided": "guided-backprop", "guidedbackprop":
           "guided-backprop", "guided-grad-cam": "guided-gradcam", "integrated-gradients": "ig",
           "integratedgradients": "ig", "feature-maps": "featuremaps", "features": "featuremaps",
           "filter": "filters"}


def parse_methods(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """'gradcam,ig' or a list -> canonical names, in order, without repeats."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name not in METHODS:
            raise CnnkitError(f'Unknown explanation method "{item}".{did_you_mean(name, METHODS)} '
                              f"Use one of {', '.join(METHODS)} (comma-separated for several).")
        if name not in out:
            out.append(name)
    if not out:
        raise CnnkitError(f"--method is empty: use one of {', '.join(METHODS)}.")
    return out


def chunk_size(x: torch.Tensor, budget: int = 1 << 20) -> int:
    """Perturbed copies per forward pass: about `budget` input values at a time (a 224x224
    RGB image gets 6, an MNIST-sized one a thousand), which keeps activations bounded."""
    return max(1, budget // max(1, x[0].numel()))


def _channel_max_abs(attr: torch.Tensor) -> torch.Tensor:
    return attr[0].abs().amax(0)


def _layer_map(cam: torch.Tensor, x: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    return to_input_size(cam[0, 0].detach(), tuple(x.shape[-2:]), options.get("fraction", (1.0, 1.0)),
                         options.get("geometry"))


def gradcam(score, x, layer, baseline, options):
    from captum.attr import LayerGradCam

    cam = LayerGradCam(score, layer).attribute(x, target=0, relu_attributions=True)
    return _layer_map(cam, x, options), {}


def gradcam_pp(score, x, layer, baseline, options):
    """Grad-CAM++ (Chattopadhay et al. 2018). Not in Captum 0.9, hence the hook.

    With the class score passed through exp(), the second and third derivatives the paper
    needs are powers of the first (the paper's eq. 19), so one backward pass suffices.
    """
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out))
    try:
        x = x.detach().requires_grad_(True)  # keeps a graph even when the weights are frozen
        s = score(x)[:, 0].sum()
    finally:
        handle.remove()
    if not acts or not isinstance(acts[-1], torch.Tensor) or acts[-1].dim() != 4:
        raise CnnkitError("Grad-CAM++ needs a layer with a N x C x H x W output: name one with --layer.")
    a = acts[-1]
    (g,) = torch.autograd.grad(s, a)
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    weights = (alpha * g.clamp(min=0)).sum((2, 3), keepdim=True)
    cam = (weights * a).sum(1, keepdim=True).clamp(min=0)
    return _layer_map(cam.detach(), x, options), {}


def saliency(score, x, layer, baseline, options):
    from captum.attr import Saliency

    return _channel_max_abs(Saliency(score).attribute(x, target=0, abs=True)), {}


def smoothgrad(score, x, layer, baseline, options):
    from captum.attr import NoiseTunnel, Saliency

    samples = int(options.get("nt_samples", 25))
    # noise level as a share of the input's range: Smilkov et al. found 10-20% works best
    sigma = float(options.get("noise", 0.15)) * float(x.detach().max() - x.detach().min())
    attr = NoiseTunnel(Saliency(score)).attribute(
        x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=min(samples, chunk_size(x)),
        stdevs=sigma, target=0, abs=True)
    return _channel_max_abs(attr), {"nt_samples": samples, "noise_std": sigma}


def guided_backprop(score, x, layer, baseline, options):
    from captum.attr import GuidedBackprop

    return _channel_max_abs(GuidedBackprop(score).attribute(x, target=0)), {}


def guided_gradcam(score, x, layer, baseline, options):
    """Guided backprop x Grad-CAM, as Captum's GuidedGradCam computes it, but with our placement
    of the CAM on the input (`_layer_map`); GuidedGradCam upsamples it plainly."""
    from captum.attr import GuidedBackprop

    cam, _ = gradcam(score, x, layer, baseline, options)
    guided = GuidedBackprop(score).attribute(x, target=0)
    return _channel_max_abs(guided * cam.to(guided)[None, None]), {}


def integrated_gradients(score, x, layer, baseline, options):
    """IG with its completeness gap |sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)|."""
    from captum.attr import IntegratedGradients

    steps = int(options.get("steps", 50))
    batch = int(options.get("internal_batch_size") or chunk_size(x))
    # Captum's Gauss-Legendre rule. On a ReLU/max-pool net the path gradient is piecewise constant,
    # so no rule converges smoothly: on LeNet-5/digits at 200 steps the gap was median 0.2%, above
    # 1% on 12% of 60 test images (riemann_trapezoid 0.5% / 15%, riemann_middle 0.2% / 13%).
    attr = IntegratedGradients(score).attribute(x, baselines=baseline, target=0, n_steps=steps,
                                                method=options.get("ig_method", "gausslegendre"),
                                                internal_batch_size=min(batch, steps)).detach()
    with torch.no_grad():
        diff = float(score(x)[0, 0] - score(baseline)[0, 0])
    total = float(attr.double().sum())
    gap = abs(total - diff) / abs(diff) if abs(diff) > 1e-12 else None
    return attr[0].sum(0).detach(), {"steps": steps, "completeness_gap": gap, "attribution_sum": total,
                                      "score_difference": diff}


def occlusion(score, x, layer, baseline, options):
    from captum.attr import Occlusion

    c, h, w = x.shape[1:]
    win = max(1, min(int(options.get("window", 8)), h, w))
    stride = max(1, min(int(options.get("stride", 4)), win))
    per_eval = int(options.get("perturbations_per_eval") or chunk_size(x, 1 << 22))
    attr = Occlusion(score).attribute(x, sliding_window_shapes=(c, win, win), strides=(c, stride, stride),
                                      baselines=baseline, target=0, perturbations_per_eval=per_eval)
    return attr[0].mean(0).detach(), {"window": win, "stride": stride}


def featuremaps(score, x, layer, baseline, options):
    from captum.attr import LayerActivation

    act = LayerActivation(score, layer).attribute(x)
    if not isinstance(act, torch.Tensor) or act.dim() != 4:
        raise CnnkitError("Feature maps need a layer with a N x C x H x W output: name a conv layer with --layer.")
    act = act.detach()
    return _layer_map(act.mean(1, keepdim=True), x, options), {"features": act[0]}


RUNNERS = {"gradcam": gradcam, "gradcam++": gradcam_pp, "saliency": saliency, "smoothgrad": smoothgrad,
           "guided-backprop": guided_backprop, "guided-gradcam": guided_gradcam, "ig": integrated_gradients,
           "occlusion": occlusion, "featuremaps": featuremaps}


def attribute(method: str, score: nn.Module, x: torch.Tensor, layer: nn.Module | None, baseline: torch.Tensor,
              options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Raw H x W map (at x's size, float, on CPU) and the method's extra numbers."""
    options = options or {}
    if method in LAYER_METHODS and layer is None:
        raise CnnkitError(f"{method} needs a layer: name one with --layer.")
    if method not in GRADIENT_FREE and not getattr(score, "differentiable", True):
        raise CnnkitError(f"{method} needs gradients, but this detector computes its box scores without them "
                          "(its post-processing runs under torch.no_grad): use --method occlusion.")
    x = x.detach().clone().requires_grad_(True)  # Captum warns (once per call) when it has to do this itself
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        raw, extra = RUNNERS[method](score, x, layer, baseline, options)
    return raw.detach().float().cpu(), extra
