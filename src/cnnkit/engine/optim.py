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


class OneCycleRestarts(torch.optim.lr_scheduler.LRScheduler):
    """One-cycle schedules back to back (warm restarts, as in SGDR, Loshchilov & Hutter 2017): each cycle of
    `cycle_steps` is exactly what torch's OneCycleLR (cosine, div_factor 25, final_div_factor 1e3) would do
    over that many steps, momentum cycling included, so a first cycle reproduces a plain one-cycle run.

    torch's SequentialLR over several OneCycleLR instances would re-initialise the learning rate of the
    optimizer when each is built; one scheduler keeps `last_epoch` (the step) as its whole state, so
    resume restores it exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, cycle_steps: list[int],
                 cycle_momentum: bool):
        self.max_lr, self.cycle_steps, self.cycle_momentum = max_lr, list(cycle_steps), cycle_momentum
        super().__init__(optimizer)

    def _position(self) -> tuple[int, int]:
        step = self.last_epoch
        for n in self.cycle_steps:
            if step < n:
                return step, n
            step -= n
        return self.cycle_steps[-1] - 1, self.cycle_steps[-1]

    def get_lr(self) -> list[float]:
        step, total = self._position()
        up_end = float(one_cycle_pct(total) * total) - 1  # OneCycleLR's phase boundary
        lo_start, lo_end = self.max_lr / 25.0, self.max_lr / 25.0 / 1e3
        if step <= up_end:
            pct, lr_pair, mom_pair = step / up_end, (lo_start, self.max_lr), (0.95, 0.85)
        else:
            pct, lr_pair, mom_pair = (step - up_end) / (total - 1 - up_end), (self.max_lr, lo_end), (0.85, 0.95)
        cos = math.cos(math.pi * pct) + 1

        def anneal(pair: tuple[float, float]) -> float:
            return pair[1] + (pair[0] - pair[1]) / 2.0 * cos

        if self.cycle_momentum:
            for group in self.optimizer.param_groups:
                group["momentum"] = anneal(mom_pair)
        return [anneal(lr_pair) for _ in self.optimizer.param_groups]


def one_cycle_pct(total: int) -> float:
    # torch's OneCycleLR divides by (pct_start * total - 1), zero for a 4-step run: warm up over 2 steps there.
    return 0.25 if total != 4 else 0.5


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    cycle_momentum = cfg.optimizer == "sgd" and cfg.momentum > 0
    if cfg.restart_epochs and (cfg.schedule != "onecycle" or cfg.restart_epochs >= cfg.epochs):
        raise CnnkitError(f"train.restart_epochs={cfg.restart_epochs} needs train.schedule=onecycle and fewer "
                          f"epochs than train.epochs={cfg.epochs} (schedule {cfg.schedule}); set it to 0 for one cycle.")
    if cfg.schedule == "onecycle" and cfg.restart_epochs:
        first = cfg.restart_epochs * steps_per_epoch
        return OneCycleRestarts(optimizer, cfg.lr, [first, total - first], cycle_momentum)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=total, pct_start=one_cycle_pct(total), anneal_strategy="cos",
            cycle_momentum=cycle_momentum, div_factor=25.0, final_div_factor=1e3)
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
