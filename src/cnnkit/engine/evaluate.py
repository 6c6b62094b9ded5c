"""`evaluate`: run a model over a loader and return its task's metrics (used by fit, eval, bench)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.tasks.base import Task


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: Task, device: torch.device) -> dict[str, Any]:
    was_training = model.training
    model.eval()
    metric = task.new_metric(task.info)
    for batch in loader:
        batch = task.to_device(batch, device)
        metric.update(task.predict(model, batch), batch)
    model.train(was_training)
    return metric.compute()


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of a metrics dict (drops per-class tables and matrices)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


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
    bundle = build_data(cfg)
    predictor.check_compatible(bundle.info)
    task = predictor.task
    loader = task.loader(bundle.split(split), cfg, predictor.info, train=False)
    metrics = evaluate(predictor.model, loader, task, predictor.device)
    metrics["split"] = split
    metrics["data"] = cfg.data.name
    metrics["images"] = len(bundle.split(split))
    return metrics
