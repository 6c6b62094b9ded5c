"""cnnkit: build, train, evaluate, explain, export and serve CNNs — classification, detection, segmentation.

The Python API mirrors the CLI::

    import cnnkit
    run = cnnkit.train(data="digits", model="lenet5")        # -> Run (dir, test_metrics, summary)
    lr = cnnkit.find_lr(data="digits", model="lenet5").suggested_lr  # LR range test; trains nothing
    metrics = cnnkit.evaluate(run.dir)                        # test split of the run's data
    preds = cnnkit.load(run.dir).predict(["img.png", pil_image, tensor_chw])  # -> list of dicts
    maps = cnnkit.explain(run.dir, ["img.png"], method="gradcam")
    cost = cnnkit.bench(run.dir, budget_s=10)                 # images/s, latency, FLOPs, MFU per backend
    onnx = cnnkit.export(run.dir, check=True)["file"]         # self-describing .onnx; load/evaluate take it too
    model = cnnkit.build_model("resnet20", num_classes=10, in_channels=3, image_size=32)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# Load the `explain`, `bench` and `export` subpackages before the functions of the same names are defined below:
# importing a submodule binds it as an attribute of its parent the first time only, so the function wins for good.
import cnnkit.bench as _bench_package  # noqa: E402,F401
import cnnkit.explain as _explain_package  # noqa: E402,F401
import cnnkit.export as _export_package  # noqa: E402,F401


def train(config: str | Path | None = None, quiet: bool = False, **overrides: Any):
    """Train and return a `Run` (`.dir` the run folder, `.test_metrics`, `.summary`). Keyword arguments
    are config keys (`data="digits"`, `epochs=5`, `train__lr=0.1` or `lr=0.1`); `config` is an optional
    YAML recipe applied first. A bad key or value raises `CnnkitError` naming it.

    With `resume=RUN_DIR` the run continues as recorded: `epochs` larger than recorded extends
    it; threads, device, workers and log_every may change; any other key (or recipe key) that
    differs from the run raises `CnnkitError` naming it (see `cnnkit.engine.resume`).
    """
    from cnnkit.engine.resume import given_keys
    from cnnkit.engine.trainer import fit

    cfg, keys = _config(config, overrides)
    return fit(cfg, quiet=quiet, given=given_keys(cfg, keys, recipe=config))


def find_lr(config: str | Path | None = None, quiet: bool = False, start_lr: float = 1e-6, end_lr: float = 10.0,
            steps: int = 100, **overrides: Any):
    """The LR range test (`cnnkit train --find-lr`): resolve the run as `train` would (same keyword
    arguments and `config`), take `steps` optimiser steps on its training data while the learning
    rate rises exponentially from `start_lr` to `end_lr`, stopping once the smoothed loss passes 4x
    its minimum or is not finite. Nothing is trained for later: the weights are not kept.

    Returns an `LRFind`: `.suggested_lr` (the steepest descent of the smoothed loss; `.rule` names
    it), `.lrs`, `.losses`, `.smoothed` (one per step taken), `.min_loss_lr`, `.stopped` (why it
    ended early, or None) and `.dir`, holding lr_find.png, lr_find.json and lr_find.csv (`out=`,
    default runs/<data>-<model>-lr-find). Raises `CnnkitError` for a bad key, value or range.
    """
    from cnnkit.engine.lr_find import find_lr as _find_lr

    cfg, _ = _config(config, overrides)
    return _find_lr(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps, quiet=quiet)


def _config(config: str | Path | None, overrides: dict[str, Any]):
    """The recipe, then the keyword arguments as config keys -> (Config, the dotted keys given)."""
    from cnnkit.config import Config

    cfg = Config.load(config) if config else Config()
    aliases = {"data": "data.name", "model": "model.name"}
    keys = [aliases.get(key, key.replace("__", ".")) for key in overrides]
    for key, value in zip(keys, overrides.values()):
        cfg.set(key, value)
    return cfg, keys


def evaluate(source: str | Path, data: str | None = None, split: str = "test") -> dict[str, Any]:
    """Evaluate a run directory (its best.pt) or a checkpoint file on a split of its data, as `cnnkit eval`.

    data: another dataset name or path with the same class list (default: the run's own data);
    split: "train", "val" or "test". Returns a dict of the task's metrics (classification:
    accuracy and loss among others; detection: mAP; segmentation: mIoU; fractions in 0..1)
    plus "split", "data" and "images" (the number of images scored).
    Raises `CnnkitError` for a missing checkpoint, unknown data or a class list that differs.
    """
    from cnnkit.engine.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(source, data=data, split=split)


def load(source: str | Path, device: str = "auto"):
    """Returns the `Predictor` of a run directory (its best.pt) or checkpoint file: `.predict(images)`
    (see `predict` for the inputs), `.model` (eval mode, on `device`: "auto", "cpu", "cuda", "mps"),
    `.classes`. Raises `CnnkitError` when the checkpoint does not exist or cannot be read."""
    from cnnkit.engine.predictor import load as _load

    return _load(source, device=device)


def predict(source: str | Path, inputs, **options: Any) -> list[dict[str, Any]]:
    """Predict with a run directory or checkpoint: `load(source).predict(inputs, **options)`.

    inputs: one item or a list of: file paths, folders (their images, sorted) and globs; PIL
    images; numpy arrays H x W or H x W x C (C 1, 3 or 4, channels last as Pillow/numpy have
    them); torch tensors C x H x W or a batch N x C x H x W (channels first as torch has them).
    Pixels are uint8 0..255 or floats in [0, 1]; images are converted to the model's channels.
    options: save_dir (drawings and result files) and the task's own (top_k, conf, ...).
    Returns one dict per image, in input order: {"file": path or "<image i>", ...the task's
    record (classification: "label", "score" in 0..1, "top")}; an unreadable file gets
    {"file", "error"}. Raises `CnnkitError` for an input of another type or shape, naming it.
    """
    return load(source).predict(inputs, **options)


def explain(source, images, method: str = "gradcam", target=None, layer=None, **options: Any):
    """Explain a model's answers on `images`; returns a list of `Explanation` (one per image x
    target x method, image-major; `.map` H x W in [0, 1] at the image's size, `.image` uint8
    C x H x W, `.save(png)`).

    source: a run directory, a checkpoint or a bare `nn.Module`. images: the same inputs as
    `predict` (paths, folders, globs, PIL images, numpy H x W [x C], torch C x H x W or
    N x C x H x W, uint8 or floats in [0, 1]). method: gradcam, gradcam++, saliency, smoothgrad,
    guided-backprop, guided-gradcam, ig, occlusion, featuremaps, filters (one name or a comma
    list). target: class name/index, box index or "x1,y1,x2,y2", segmentation class (default:
    the prediction). layer: module name (default: the last spatial conv layer). options: see
    `cnnkit.explain.api.explain`. Raises `CnnkitError` for an unknown method, option, layer or
    target, a missing or unreadable file, or an image of another type or shape.
    """
    from cnnkit.explain.api import explain as _explain

    return _explain(source, images, method=method, target=target, layer=layer, **options)


def bench(source, data: str | None = None, **options: Any) -> dict[str, Any]:
    """Returns the training images/s, latency, throughput, memory, FLOPs and MFU of a run, checkpoint or
    model name, per backend (eager, channels_last, compile); see `cnnkit.bench.api.bench` for the options and keys."""
    from cnnkit.bench.api import bench as _bench

    return _bench(source, data, **options)


def export(source: str | Path, format: str = "onnx", **options: Any) -> dict[str, Any]:
    """Export a run directory or checkpoint as `cnnkit export`: format "onnx" (metadata_props say task,
    classes, input size/channels, mean/std and resize rule) or "safetensors". options: out, opset,
    dynamic_batch, check (onnxruntime vs PyTorch parity on held-out images), int8 (static QDQ,
    calibrated on the training split; metric/size/latency before and after), force. Returns a dict
    ("file", "bytes", "check", "int8", ...); see `cnnkit.export.api.export`. The files it writes load
    with `cnnkit.load`, `cnnkit.evaluate` and `cnnkit.predict`. Raises `CnnkitError` for an operator
    without ONNX conversion (named), a failed check, or an int8 drop over 1 point without force."""
    from cnnkit.export.api import export as _export

    return _export(source, format, **options)


def build_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32, **kwargs: Any):
    """Build an untrained model: returns an `nn.Module` for N x in_channels x H x W float images.

    name: a registered name (`list_models()`) or a YAML/JSON layer-list file; image_size: the
    training side in pixels (int) or (height, width). Classifiers return N x num_classes logits;
    detection and segmentation models keep torchvision's contracts. kwargs: dropout, attention
    ("se"/"cbam") and model-specific options. Raises `CnnkitError` for an unknown name (with a
    suggestion) or options the model does not take (see `cnnkit.models.build_model`).
    """
    from cnnkit.models import build_model as _build

    return _build(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Returns the sorted list of registered model names matching a shell-style `pattern`
    ("resnet*"), only those for `task` ("classify", "detect", "segment", ...) when given."""
    from cnnkit.models import list_models as _list

    return _list(pattern, task=task)


__all__ = ["train", "find_lr", "evaluate", "load", "predict", "explain", "bench", "export", "build_model",
           "list_models", "__version__"]
