"""One training step as `engine/trainer.py` takes it, for timing and profiling, and its FLOPs per image.

`TrainStep` mirrors one iteration of `Training._train_steps`: the next batch from the task's
own training loader (augmentation included) moved by `task.to_device`, `task.loss` under
autocast (train.amp: float16 on CUDA, bfloat16 on a CPU with native bf16), backward through the GradScaler, gradient clipping, the
optimiser step and the EMA update. The learning-rate schedule is left out: it costs nothing
per step. Its four sections are labelled with `torch.profiler.record_function` (SECTIONS), so
`profile.py` can say where a step's time goes; outside a profiler a label costs about a
microsecond.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.profiler import record_function
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.bench.backends import Backend
from cnnkit.bench.measure import sync
from cnnkit.config import Config
from cnnkit.data.loader import endless  # noqa: F401  (re-exported: bench.api and the tests take it from here)
from cnnkit.engine.optim import build_optimizer
from cnnkit.engine.trainer import grad_scaler, use_amp
from cnnkit.tasks.base import Task

# record_function labels of a step's parts, distinct from any operator name
SECTIONS = {"data": "cnnkit.data", "forward": "cnnkit.forward", "backward": "cnnkit.backward",
            "optimizer": "cnnkit.optimizer"}


class TrainStep:
    """`step(stream)` takes one batch from `stream` and trains `backend` on it; returns the images in it.

    With `profiling` True each section ends with a device synchronize, so on a GPU a section's
    time is its kernels' and not only their launch.
    """

    def __init__(self, task: Task, cfg: Config, backend: Backend, device: torch.device):
        self.task, self.backend, self.device = task, backend, device
        self.optimizer = build_optimizer(backend.model, cfg.train)
        self.amp = use_amp(cfg, device)
        self.scaler = grad_scaler(self.amp, device)
        self.clip = cfg.train.grad_clip
        self.ema = None
        if cfg.train.ema:
            self.ema = torch.optim.swa_utils.AveragedModel(
                backend.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.train.ema_decay),
                use_buffers=True)
        self.profiling = False
        backend.model.train()

    def __call__(self, stream: Iterator[Any]) -> int:
        task, backend = self.task, self.backend
        with record_function(SECTIONS["data"]):
            batch = backend.batch(task.to_device(next(stream), self.device))
            self._section_end()
        with record_function(SECTIONS["forward"]):
            with torch.autocast(self.device.type, enabled=self.amp):
                loss, _ = task.loss(backend.call, batch)
            float(loss.detach())  # the trainer reads the loss every step (log and finite check)
        with record_function(SECTIONS["backward"]):
            self.scaler.scale(loss).backward()
            self._section_end()
        with record_function(SECTIONS["optimizer"]):
            if self.clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(backend.model.parameters(), self.clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update_parameters(backend.model)
            self._section_end()
        return task.batch_size_of(batch)

    def _section_end(self) -> None:
        if self.profiling:
            sync(self.device)


def train_flops_per_image(task: Task, model: torch.nn.Module, batch: Any) -> float:
    """FLOPs of one training step's forward and backward pass per image of `batch` (already on the
    model's device), counted by torch.utils.flop_counter (a multiply-add = 2 FLOPs; elementwise
    ops, the loss and the optimiser are not counted). Runs on `model` in train mode and leaves
    gradients on it; pass a copy to keep a model untouched."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss, _ = task.loss(model, batch)
        loss.backward()
    return counter.get_total_flops() / max(1, task.batch_size_of(batch))
