"""Resolve a run once: a `Config` or a checkpoint -> task, resolved config, data, model, device.

Every command starts here. `train`, `info` and the bench scripts resolve a `Config`:
data -> task (given, else the data's) -> the task's defaults for that data -> a layer-list
file read into plain model kwargs -> `task.setup` -> a freshly built model, seeded first so
the same seed gives the same weights. `eval`, `predict`, `explain`, `export` and `serve`
resolve a checkpoint: its own meta says the task, config, classes and input spec, so no
data is read, and the model is built and given the checkpoint's weights in eval mode.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.engine.checkpoint import RETRAIN, check_meta, load_checkpoint, load_weights
from cnnkit.devices import cpu_has_bf16, pick_device
from cnnkit.engine.setup import configure_threads, seed_everything
from cnnkit.errors import CnnkitError
from cnnkit.tasks import TASKS, get_task
from cnnkit.tasks.base import Task


@dataclass
class ResolvedRun:
    """What a command needs before it does its own job."""

    cfg: Config  # every None resolved to the task's default for the data
    task: Task  # set up with `cfg` and `info`
    info: DatasetInfo  # classes, channels, image size (from the data, or from the checkpoint's meta)
    model: nn.Module  # on `device`; in eval mode with the checkpoint's weights when resolved from one
    device: torch.device
    bundle: DataBundle | None = None  # the three splits; None when resolved from a checkpoint
    checkpoint: dict[str, Any] | None = None  # the loaded checkpoint ("model", "meta", "state", "path")
    picked: dict[str, Any] | None = None  # the keys the task's defaults filled in (not given by the user)


def resolve_run(source: Config | dict[str, Any] | str | Path, device: str | None = None,
                local_rank: int = 0) -> ResolvedRun:
    """A `Config` (training side), a loaded checkpoint dict, or a run directory / `.pt` path
    (its best.pt) -> `ResolvedRun`. `device` defaults to the config's `train.device`;
    `local_rank` picks the GPU under torchrun. A `Config` is resolved in place (and kept).

    Raises `CnnkitError` for unreadable data or checkpoints, unknown tasks, models or devices.
    """
    if isinstance(source, Config):
        return _from_config(source, device, local_rank)
    ckpt = source if isinstance(source, dict) else load_checkpoint(source)
    return _from_checkpoint(ckpt, device, local_rank)


def _from_config(cfg: Config, device: str | None, local_rank: int) -> ResolvedRun:
    from cnnkit.data import build_data
    from cnnkit.models import resolve_spec

    configure_threads(cfg.train.threads)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    dev = pick_device(device or cfg.train.device, local_rank)
    bundle = build_data(cfg, target=TASKS.get(cfg.task).target if cfg.task else None)
    task = get_task(cfg.task or bundle.info.task)
    cfg.task = task.name
    defaults = task.defaults(cfg, bundle.info)
    if defaults.get("train.amp"):  # a task's wish for mixed precision, granted where it was measured to pay
        defaults["train.amp"] = dev.type == "cpu" and cpu_has_bf16()  # (CUDA: not measured per task yet)
    picked = {k: v for k, v in defaults.items() if cfg.get(k) is None}
    cfg.fill_defaults(defaults)
    cfg.fill_defaults({"train.amp": False})  # config.yaml records what ran, so a resumed run keeps it
    if cfg.model.name:  # a layer-list file becomes ("spec", {"layers": [...]}), storable in a checkpoint
        cfg.model.name, spec_kwargs = resolve_spec(cfg.model.name)
        cfg.model.kwargs = {**spec_kwargs, **cfg.model.kwargs}
    task.setup(cfg, bundle.info)
    model = build_checked(task, cfg, bundle.info).to(dev)
    return ResolvedRun(cfg, task, bundle.info, model, dev, bundle=bundle, picked=picked)


# the most parameters a model may have before it is allocated (registered models and layer lists alike)
MAX_PARAMS = int(os.environ.get("CNNKIT_MAX_PARAMS", 500_000_000))


def build_checked(task: Task, cfg: Config, info: DatasetInfo) -> nn.Module:
    """`task.build_model`, after a dry build on the meta device (no memory, no RNG draws) showed the model
    has at most MAX_PARAMS parameters: `--image-size 8192` on LeNet-5 would otherwise allocate 32 GB."""
    try:
        with torch.device("meta"):
            probe = task.build_model(cfg, info)
        n = sum(p.numel() for p in probe.parameters())
    except CnnkitError:
        raise
    except Exception:  # a builder that needs real tensors: it is built for real below, unchecked
        n = 0
    if n > MAX_PARAMS:
        raise CnnkitError(f"Model {cfg.model.name} at image size {info.image_size} with {info.channels} channel(s) "
                          f"and {info.num_classes} classes would have {n:,} parameters, above the cap of "
                          f"{MAX_PARAMS:,}; use a smaller data.image_size or raise CNNKIT_MAX_PARAMS.")
    return task.build_model(cfg, info)


def _from_checkpoint(ckpt: dict[str, Any], device: str | None, local_rank: int) -> ResolvedRun:
    check_meta(ckpt)
    meta, path = ckpt["meta"], ckpt.get("path", "(in memory)")
    try:
        cfg = Config.from_dict(meta["config"])
    except CnnkitError as e:
        raise CnnkitError(f"Checkpoint {path} records a config cnnkit refuses ({e}); {RETRAIN}.") from None
    info = DatasetInfo(task=meta["task"], classes=list(meta["classes"]), channels=int(meta["channels"]),
                       image_size=meta["image_size"], name=str(meta.get("data_name", "")))
    info.extra.update({k: meta["preprocess"][k] for k in ("mean", "std", "sequence") if k in meta["preprocess"]})
    task = get_task(meta["task"])
    configure_threads(cfg.train.threads)
    dev = pick_device(device or cfg.train.device, local_rank)
    try:
        task.setup(cfg, info)
        model = build_checked(task, cfg, info)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:  # a meta that no builder accepts
        raise CnnkitError(f"Checkpoint {path} describes a model that cannot be built "
                          f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}); {RETRAIN}.") from None
    load_weights(model, ckpt["model"], path)
    model.to(dev).eval()
    return ResolvedRun(cfg, task, info, model, dev, checkpoint=ckpt)
