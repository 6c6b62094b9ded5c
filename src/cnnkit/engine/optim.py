"""Optimisers and learning-rate schedules, built from `TrainConfig`.

Weight decay applies to weights only: biases and normalisation parameters (every
parameter with fewer than 2 dimensions) are exempt, as in nanoGPT and timm. Schedules
step once per optimisation step, so a resumed run continues mid-curve exactly.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.errors import CnnkitError, did_you_mean

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay or 0.0)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise CnnkitError(f'Unknown optimizer "{cfg.optimizer}".{did_you_mean(cfg.optimizer, OPTIMIZERS)} '
                      f"Use one of {', '.join(OPTIMIZERS)}.")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "onecycle":
        # torch's OneCycleLR divides by (pct_start * total - 1), zero for a 4-step run: warm up over 2 steps there.
        pct_start = 0.25 if total != 4 else 0.5
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=pct_start, anneal_strategy="cos",
            cycle_momentum=cfg.optimizer == "sgd" and cfg.momentum > 0, div_factor=25.0, final_div_factor=1e3)
    if cfg.schedule not in SCHEDULES:
        raise CnnkitError(f'Unknown schedule "{cfg.schedule}".{did_you_mean(cfg.schedule, SCHEDULES)} '
                          f"Use one of {', '.join(SCHEDULES)}.")
    schedule, step_size, gamma = cfg.schedule, max(1, cfg.step_size) * steps_per_epoch, cfg.step_gamma

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if schedule == "step":
            return gamma ** (step // step_size)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
