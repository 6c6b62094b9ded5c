"""What happens at the end of an epoch besides training: early stopping, the CSV and
TensorBoard logs, and the rich progress bar. Kept out of `trainer.py` so the loop reads
as a loop."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class EarlyStopping:
    """Lightning's signature: stop after `patience` evaluations without an improvement of at
    least `min_delta` in `monitor`. Best weights are kept by the trainer regardless (best.pt),
    so stopping never loses them (unlike Keras' restore_best_weights, which only applies when
    patience fires).

    An undefined value (None or NaN: e.g. mAP on a split without ground truth) is no value: it
    is never compared, never the best and does not count towards `patience`. Until some
    evaluation has a value, each one is reported as the new best (`update` returns True, `best`
    stays None) so that best.pt holds the latest weights rather than none; the first defined
    value then replaces it."""

    def __init__(self, monitor: str, mode: str = "max", patience: int | None = None, min_delta: float = 0.0):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_evals = 0

    @staticmethod
    def defined(value: float | None) -> bool:
        return value is not None and not (isinstance(value, float) and math.isnan(value))

    def improved(self, value: float | None) -> bool:
        if not self.defined(value):
            return False
        if self.best is None:
            return True
        return value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta

    def update(self, value: float | None, epoch: int) -> bool:
        """Record an evaluation; returns True when its weights are the new best (see the class note)."""
        if not self.defined(value):
            if self.best is None:  # nothing defined yet: the latest weights stand in
                self.best_epoch = epoch
                return True
            return False
        if self.improved(value):
            self.best, self.best_epoch, self.bad_evals = float(value), epoch, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_evals": self.bad_evals}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_evals = s["best"], s["best_epoch"], s["bad_evals"]


class MetricsLog:
    """metrics.csv (one row per epoch; columns grow as new keys appear) and TensorBoard events.

    An undefined value (None or NaN) is an empty cell and no TensorBoard point: never -1 or "nan"."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.path = run_dir / "metrics.csv"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard is a dependency; keep training if it is broken
                self._tb = None

    def log(self, row: dict[str, Any]) -> None:
        row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        self.rows.append(row)
        if not self.enabled:
            return
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.path)
        if self._tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k.replace("_", "/", 1) if k.startswith(("train_", "val_")) else k,
                                        v, row["epoch"])
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class EpochProgress:
    """A rich progress bar per epoch showing loss, images/s and ETA (silent off rank 0 or with --json)."""

    def __init__(self, enabled: bool, console: Console | None = None, unit: str = "img/s"):
        self.enabled, self.unit = enabled, unit  # unit: "seq/s" for text and SMILES
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None

    def start(self, epoch: int, epochs: int, steps: int) -> None:
        self.t0, self.seen = time.perf_counter(), 0
        self.label = f"epoch {epoch + 1}/{epochs}"
        if not self.enabled or not self.console.is_terminal:
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"), BarColumn(bar_width=16), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, stats="")

    def step(self, n_images: int, stats: dict[str, float] | None) -> None:
        self.seen += n_images
        if self._progress is None:
            return
        fields = {}
        if stats is not None:
            rate = self.seen / max(1e-9, time.perf_counter() - self.t0)
            fields["stats"] = " ".join(f"{k} {v:.4g}" for k, v in stats.items()) + f" {rate:.0f} {self.unit}"
        self._progress.update(self._task, advance=1, **fields)

    def finish(self, summary: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, stats=summary)
            self._progress.stop()
            self._progress = None
        elif self.enabled:  # a log file or pipe: one plain line per epoch instead of a bar
            seconds = time.perf_counter() - self.t0
            rate = self.seen / max(seconds, 1e-9)
            self.console.print(f"{self.label}  {summary}  {seconds:.1f}s  {rate:.0f} {self.unit}",
                               highlight=False, soft_wrap=True)
