"""cnnkit: build, train, evaluate, explain, export and serve CNNs — classification, detection, segmentation.

The Python API mirrors the CLI::

    import cnnkit
    run = cnnkit.train(data="digits", model="lenet5")        # -> Run (dir, test_metrics, summary)
    metrics = cnnkit.evaluate(run.dir)                        # test split of the run's data
    preds = cnnkit.load(run.dir).predict(["img.png"])         # -> list of dicts
    maps = cnnkit.explain(run.dir, ["img.png"], method="gradcam")
    cost = cnnkit.bench(run.dir, budget_s=10)                 # images/s, latency, FLOPs, MFU per backend
    model = cnnkit.build_model("resnet20", num_classes=10, in_channels=3, image_size=32)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# Load the `explain` and `bench` subpackages before the functions of the same names are defined below: importing
# a submodule binds it as an attribute of its parent the first time only, so the function wins for good.
import cnnkit.bench as _bench_package  # noqa: E402,F401
import cnnkit.explain as _explain_package  # noqa: E402,F401


def train(config: str | Path | None = None, quiet: bool = False, **overrides: Any):
    """Train and return a `Run`. Keyword arguments are config keys (`data="digits"`, `epochs=5`,
    `train__lr=0.1` or `lr=0.1`); `config` is an optional YAML recipe applied first.

    With `resume=RUN_DIR` the run continues as recorded: `epochs` larger than recorded extends
    it; threads, device, workers and log_every may change; any other key (or recipe key) that
    differs from the run raises `CnnkitError` naming it (see `cnnkit.engine.resume`).
    """
    from cnnkit.config import Config
    from cnnkit.engine.resume import given_keys
    from cnnkit.engine.trainer import fit

    cfg = Config.load(config) if config else Config()
    aliases = {"data": "data.name", "model": "model.name"}
    keys = [aliases.get(key, key.replace("__", ".")) for key in overrides]
    for key, value in zip(keys, overrides.values()):
        cfg.set(key, value)
    return fit(cfg, quiet=quiet, given=given_keys(cfg, keys, recipe=config))


def evaluate(source: str | Path, data: str | None = None, split: str = "test") -> dict[str, Any]:
    from cnnkit.engine.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(source, data=data, split=split)


def load(source: str | Path, device: str = "auto"):
    """A run directory or checkpoint -> `Predictor` (`.predict(images)`, `.model`, `.classes`)."""
    from cnnkit.engine.predictor import load as _load

    return _load(source, device=device)


def predict(source: str | Path, inputs, **options: Any) -> list[dict[str, Any]]:
    return load(source).predict(inputs, **options)


def explain(source, images, method: str = "gradcam", target=None, layer=None, **options: Any):
    from cnnkit.explain.api import explain as _explain

    return _explain(source, images, method=method, target=target, layer=layer, **options)


def bench(source, data: str | None = None, **options: Any) -> dict[str, Any]:
    """Training images/s, latency, throughput, memory, FLOPs and MFU of a run, checkpoint or model name,
    per backend (eager, channels_last, compile); see `cnnkit.bench.api.bench` for the options and keys."""
    from cnnkit.bench.api import bench as _bench

    return _bench(source, data, **options)


def build_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32, **kwargs: Any):
    from cnnkit.models import build_model as _build

    return _build(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    from cnnkit.models import list_models as _list

    return _list(pattern, task=task)


__all__ = ["train", "evaluate", "load", "predict", "explain", "bench", "build_model", "list_models", "__version__"]
