"""The `Task` interface: everything the engine needs to know about a job, and nothing more.

`Trainer` and `evaluate` call only these methods (DESIGN rule 1), so a new task is one
file in `tasks/` registered in `TASKS`. A batch is whatever the task's loader yields;
the engine moves it with `to_device`, asks for `loss` in train mode and `predict` in
eval mode, and feeds predictions to the task's metric.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo


class Loader(Protocol):
    """An epoch-aware iterable: the order of epoch e is a function of (seed, e) only,
    which is what makes `--resume` replay the exact same batches."""

    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Metric(Protocol):
    def update(self, preds: Any, batch: Any) -> None: ...
    def compute(self) -> dict[str, Any]: ...  # floats for the headline numbers; lists/dicts for details


class Task:
    name: str = ""
    monitor: tuple[str, str] = ("loss", "min")  # (val metric, "max"|"min") for best.pt and early stopping
    headline: tuple[str, ...] = ()  # metric names shown in the progress bar and summary

    cfg: Config | None = None
    info: DatasetInfo | None = None

    # -- configuration ----------------------------------------------------------------
    def setup(self, cfg: Config, info: DatasetInfo) -> None:
        """Called once the config is resolved (defaults filled), before any loader or model is
        built; also when a checkpoint is loaded. Keeps `self.cfg` / `self.info` for later steps."""
        self.cfg, self.info = cfg, info

    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        """Values for config keys left as None, chosen for this data (dotted keys)."""
        return {}

    # -- data -------------------------------------------------------------------------
    def loader(self, split: Any, cfg: Config, info: DatasetInfo, train: bool) -> Loader:
        raise NotImplementedError

    def to_device(self, batch: Any, device: torch.device) -> Any:
        raise NotImplementedError

    def batch_size_of(self, batch: Any) -> int:
        raise NotImplementedError

    # -- model ------------------------------------------------------------------------
    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        raise NotImplementedError

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        """Plain values that turn a decoded image into model input at eval time
        (stored in the checkpoint; used by predict, explain, serve and export)."""
        raise NotImplementedError

    # -- steps ------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss (a scalar) and its named parts for logging."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Any) -> Any:
        """Eval-mode predictions for a batch, in the form `new_metric().update` takes."""
        raise NotImplementedError

    def new_metric(self, info: DatasetInfo) -> Metric:
        raise NotImplementedError

    # -- outputs ----------------------------------------------------------------------
    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        """Task-specific pictures written after training (confusion matrix, sample grids)."""
        return []

    def predict_files(self, model: nn.Module, meta: dict[str, Any], paths: Iterable[str],
                      save_dir: Path | None, **options: Any) -> list[dict[str, Any]]:
        """`cnnkit predict`: one JSON-able record per input file (and drawings in save_dir)."""
        raise NotImplementedError
