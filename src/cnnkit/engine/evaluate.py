"""`evaluate`: run a model over a loader and return its task's metrics (used by fit, eval, bench),
and the one rule for showing them: an undefined metric is None ("n/a" in text), never a number.

Metrics return None where a number has no meaning (no ground truth to score); `evaluate` also
turns any NaN a metric returns into None, so JSON holds `null`, metrics.csv an empty cell, plots
a gap, and nothing compares or averages it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnkit.report.console import fmt

if TYPE_CHECKING:
    from cnnkit.tasks.base import Task


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: Task, device: torch.device) -> dict[str, Any]:
    """The task's metrics over `loader` (floats; None where undefined; dicts/lists for details)."""
    was_training = model.training
    model.eval()
    metric = task.new_metric(task.info)
    for batch in loader:
        batch = task.to_device(batch, device)
        metric.update(task.predict(model, batch), batch)
    model.train(was_training)
    return undefined_as_none(metric.compute())


def undefined_as_none(value: Any) -> Any:
    """`value` with every NaN float (in nested dicts/lists too) replaced by None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: undefined_as_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [undefined_as_none(v) for v in value]
    return value


def scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of a metrics dict (drops per-class tables, matrices and notes); an
    undefined one stays None (NaN too), so it is written as null / an empty cell, not dropped."""
    out: dict[str, float | None] = {}
    for k, v in metrics.items():
        if v is None:
            out[k] = None
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = None if math.isnan(v) else float(v)
    return out


def headline_text(metrics: dict[str, Any], keys: Iterable[str], spec: str = ".4f") -> str:
    """'map 0.8123, map_50 0.9701' for the `keys` present (in the metrics' order), plus `fp_per_image`
    where given; when one of them is n/a, the metrics' `note` follows in brackets to say why."""
    keys = set(keys) | {"fp_per_image"}
    shown = {k: v for k, v in scalars(metrics).items() if k in keys}
    text = ", ".join(f"{k} {fmt(v, spec)}" for k, v in shown.items())
    if any(v is None for v in shown.values()) and metrics.get("note"):
        text += f" ({metrics['note']})"
    return text


def evaluate_checkpoint(source: str | Path, data: str | None = None, split: str = "test",
                        device: str = "auto", batch_size: int | None = None) -> dict[str, Any]:
    """`cnnkit eval`: a checkpoint on (by default) its own dataset's test split."""
    from cnnkit.data import build_data
    from cnnkit.engine.predictor import load

    predictor = load(source, device=device)
    cfg = predictor.cfg.copy()
    if data is not None:
        cfg.data.name = data
    if batch_size is not None:
        cfg.train.batch_size = batch_size
    bundle = build_data(cfg, target=predictor.task.target)
    predictor.check_compatible(bundle.info)
    task = predictor.task
    loader = task.loader(bundle.split(split), cfg, predictor.info, train=False)
    metrics = evaluate(predictor.model, loader, task, predictor.device)
    metrics["split"] = split
    metrics["data"] = cfg.data.name
    metrics["images"] = len(bundle.split(split))
    return metrics
