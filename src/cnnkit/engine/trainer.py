"""`fit(cfg)`: the one training loop, for every task (it never branches on the task — rule 1).

Per epoch: set the loader's epoch (order is a function of seed and epoch), step through
batches (loss from the Task, backward, clip, optimiser and scheduler step, EMA), validate,
log a row, write `last.pt` (with the full resume state) and `best.pt` on improvement.
After the loop: reload the best weights, evaluate on the test split, draw plots and write
`summary.json` and `report.html`. `--resume RUN_DIR` restores model, optimiser,
scheduler, EMA, RNG and loop counters from `last.pt` and continues bit-exactly on CPU
(what a resumed run may change, and how `--epochs` extends it: engine/resume.py).
The data, task, defaults and model come from `engine/run.py`, as for every command.
"""
from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cnnkit.config import Config, check_value
from cnnkit.data.base import DatasetInfo
from cnnkit.engine import distributed
from cnnkit.engine.callbacks import EarlyStopping, EpochProgress, MetricsLog
from cnnkit.engine.checkpoint import load_checkpoint, load_weights, rng_state, save_checkpoint, set_rng_state
from cnnkit.engine.evaluate import evaluate, fmt, headline_text, scalars
from cnnkit.engine.optim import build_optimizer, build_scheduler
from cnnkit.engine.resume import Resume, prepare_resume, restore_schedule
from cnnkit.engine.run import ResolvedRun, resolve_run
from cnnkit.devices import amp_is_native
from cnnkit.engine.setup import make_run_dir
from cnnkit.errors import CnnkitError


@dataclass
class Run:
    """What `cnnkit.train` returns: where the run lives and what it measured."""

    dir: Path
    test_metrics: dict[str, Any]
    val_metrics: dict[str, Any]
    summary: dict[str, Any]

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    def load(self):
        from cnnkit.engine.predictor import load

        return load(self.best)


def checkpoint_meta(task, cfg: Config, info: DatasetInfo, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"task": task.name, "model": {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs)},
            "classes": list(info.classes), "channels": info.channels, "image_size": info.image_size,
            "preprocess": task.preprocessing(cfg, info), "config": cfg.to_dict(), "epoch": epoch,
            "metrics": scalars(metrics), "data_name": info.name}


def fit(cfg: Config, console: Console | None = None, quiet: bool = False, given: Iterable[str] = ()) -> Run:
    """Train as `cfg` says and return the `Run`. `given` names the config keys the user set
    explicitly; with `train.resume` they are checked against the recorded run (engine/resume.py).

    Raises `CnnkitError` for bad data, config or resume flags, and for a loss that is not finite.
    """
    for key in cfg.keys():  # a Config edited attribute by attribute skipped Config.set's checks
        check_value(key, cfg.get(key))
    dist = distributed.setup()
    console = console or Console(stderr=True)
    resume = prepare_resume(cfg, given) if cfg.train.resume else None
    run = resolve_run(resume.cfg if resume else cfg, local_rank=dist.local_rank)
    fresh = resume is None and not (run.cfg.train.out and Path(run.cfg.train.out).exists())
    run_dir = resume.dir if resume else _make_run_dir(run.cfg, dist.is_main)
    run_dir = distributed.broadcast_object(run_dir, dist)  # runs/<name>-N is numbered by rank 0 alone
    run.cfg.train.out = str(run_dir)
    try:
        return _train(run, run_dir, dist, console, quiet, resume)
    except BaseException as err:
        if fresh and dist.is_main and not any((run_dir / n).exists() for n in ("best.pt", "last.pt")):
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed run leaves no half-made directory behind
        if isinstance(err, RuntimeError) and distributed.is_lost_worker(err, dist):
            # Destroy the broken process group now: left to interpreter exit, its gloo threads were still
            # joinable and the process aborted after the sentence ("terminate called without an active
            # exception", exit -6 instead of 2; seen in CI, test_a_lost_worker_is_one_sentence_on_rank0).
            distributed.teardown(dist, quiet=True)
            raise distributed.lost_worker_error(err, dist) from None
        raise


def _make_run_dir(cfg: Config, create: bool) -> Path:
    try:
        return make_run_dir(cfg, create)
    except OSError as e:
        raise CnnkitError(f"Cannot create the run directory {cfg.train.out or 'under runs/'} "
                          f"({e.strerror or type(e).__name__}); give an --out in a writable folder.") from None


def _train(run: ResolvedRun, run_dir: Path, dist: distributed.DistInfo, console: Console, quiet: bool,
           resume: Resume | None) -> Run:
    if dist.is_main:
        run.cfg.save(run_dir / "config.yaml")
        if run.picked and not quiet and not resume:
            console.print(picked_text(run), soft_wrap=True, highlight=False)
        _report_bad_files(run.info, run_dir, console, quiet)
    training = Training(run, run_dir, dist, console, quiet, resume)
    for epoch in range(training.start_epoch, run.cfg.train.epochs):
        if training.run_epoch(epoch):
            break
    return training.finish()


def picked_text(run: ResolvedRun) -> str:
    """One line saying which settings the task chose for this data, and from what (size, resolution)."""
    info, n = run.info, len(run.bundle.train)
    h, w = (info.image_size, info.image_size) if isinstance(info.image_size, int) else info.image_size
    # box data is read at many sizes; its info holds the model's input side, not the data's
    size = f", {h}x{w} px" if run.task.target not in ("boxes", "sequence") else ""
    what = "training sequences" if run.task.target == "sequence" else "training images"
    names = {"model.name": "model", "data.image_size": "image size", "train.epochs": "epochs",
             "train.batch_size": "batch", "train.lr": "lr", "data.augment": "augment"}
    ordered = [k for k in names if k in run.picked] + sorted(k for k in run.picked if k not in names)
    shown = ", ".join(f"{names.get(k, k.split('.')[-1])} {_value(run.picked[k])}{_why(k, run)}" for k in ordered)
    return f"defaults for {info.name or 'the data'} ({n:,} {what}{size}): {shown}; any flag overrides them"


def _why(key: str, run: ResolvedRun) -> str:
    """The reason behind a default that depends on this machine rather than on the data."""
    if key == "train.amp" and run.device.type == "cpu":
        return " (bfloat16: this CPU computes it natively)" if run.picked[key] else " (this CPU has no native bfloat16)"
    return ""


def _value(v: Any) -> str:
    return "on" if v is True else "off" if v is False else str(v)


class Training:
    """One run's moving parts between epochs (loaders, optimiser, schedule, EMA, early stopping,
    log) and the three steps of `fit`: restore, run an epoch, finish."""

    def __init__(self, run: ResolvedRun, run_dir: Path, dist: distributed.DistInfo, console: Console,
                 quiet: bool, resume: Resume | None = None):
        self.run, self.run_dir, self.dist, self.console, self.quiet = run, run_dir, dist, console, quiet
        self.cfg, self.task, self.model, self.device = run.cfg, run.task, run.model, run.device
        self.main = dist.is_main
        cfg, task, bundle = run.cfg, run.task, run.bundle
        set_memory_format(self.model, cfg)  # before the optimiser and EMA copy take the parameters
        self.train_loader = task.loader(bundle.train, cfg, run.info, train=True)
        self.val_loader = task.loader(bundle.val, cfg, run.info, train=False)
        self.steps = len(self.train_loader)
        if self.steps == 0:
            raise CnnkitError(f"The training split of {run.info.name} is smaller than one batch "
                              f"({len(bundle.train)} < train.batch_size={cfg.train.batch_size}).")
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.scheduler = build_scheduler(self.optimizer, cfg.train, self.steps)
        self.ema = None
        if cfg.train.ema:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.train.ema_decay),
                use_buffers=True)
        self.monitor = task.monitor[0]
        self.stopper = EarlyStopping(self.monitor, task.monitor[1], cfg.train.patience)
        self.log = MetricsLog(run_dir, enabled=self.main)
        self.start_epoch, self.train_seconds = 0, 0.0
        if resume:
            self._restore(resume)
        self.train_model = self.model
        if dist.enabled:
            # A model with parameters its loss never reaches (tinydet: torchvision's FPN also smooths the coarse
            # levels it does not read) says so; DDP then looks for them each step instead of waiting forever.
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[dist.local_rank] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(self.model, "has_unused_parameters", False))
        self.amp = use_amp(cfg, self.device)  # read every step: decided once
        self.scaler = grad_scaler(self.amp, self.device)
        if cfg.train.amp and not self.amp and self.main and not quiet:  # config.yaml keeps what was asked
            console.print(f"note: train.amp (mixed precision) runs on CUDA and on CPUs with native bfloat16 "
                          f"(AVX512-BF16 or AMX); this run on {self.device.type} trains in float32.",
                          style="yellow", soft_wrap=True, highlight=False)
        self.progress = EpochProgress(enabled=self.main and not quiet, console=console,
                                      unit="seq/s" if run.task.target == "sequence" else "img/s")
        self.eval_model = self.ema.module if self.ema is not None else self.model
        self.val_metrics: dict[str, Any] = {}

    def _restore(self, resume: Resume) -> None:
        """Weights, optimiser, schedule, EMA, early stopping, history, RNG and counters from last.pt."""
        st, path = resume.checkpoint["state"], resume.checkpoint["path"]
        load_weights(self.model, resume.checkpoint["model"], path)
        try:
            self.optimizer.load_state_dict(st["optimizer"])
            extended = restore_schedule(self.scheduler, resume)
            if self.ema is not None and st.get("ema") is not None:
                self.ema.load_state_dict(st["ema"])
            self.stopper.load_state_dict(st["stopper"])
            self.log.rows = list(st["history"])
            self.start_epoch, self.train_seconds = resume.start_epoch, float(st["train_seconds"])
            set_rng_state(st["rng"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:  # a damaged resume state
            raise CnnkitError(f"{path} holds a resume state that does not fit its run ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:120] if str(e) else ''}); resume from an intact "
                              "last.pt or start a new run.") from None
        if self.quiet or not self.main:
            return
        epochs = self.cfg.train.epochs
        if extended:
            self.console.print(extended, soft_wrap=True, highlight=False)
        if self.start_epoch < epochs:
            self.console.print(f"[bold]resuming[/] {self.run_dir} at epoch {self.start_epoch + 1}/{epochs}")
        else:
            early = f" (stopped early at epoch {st['epoch'] + 1})" if resume.stopped_early else ""
            self.console.print(f"{self.run_dir} had already finished{early}; re-testing best.pt")

    def run_epoch(self, epoch: int) -> bool:
        """Train one epoch, validate, log and checkpoint; True when early stopping says stop."""
        t0 = time.perf_counter()
        row = self._train_steps(epoch)
        self.train_seconds += time.perf_counter() - t0
        cfg, task, main = self.cfg.train, self.task, self.main
        evaluated = (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1
        if evaluated and main:
            self.val_metrics = evaluate(self.eval_model, self.val_loader, task, self.device)
            row.update({f"val_{k}": v for k, v in scalars(self.val_metrics).items()})
        row["epoch_seconds"] = round(time.perf_counter() - t0, 3)
        is_best = evaluated and main and self.stopper.update(self.val_metrics.get(self.monitor), epoch)
        self.progress.finish(" ".join(f"{k} {fmt(v, '.4g')}" for k, v in row.items() if k == "train_loss" or
                                      k.startswith("val_") and k[4:] in (*task.headline, "loss")))
        if main:
            self.log.log(row)
            meta = checkpoint_meta(task, self.cfg, self.run.info, epoch + 1, self.val_metrics)
            if is_best:
                save_checkpoint(self.run_dir / "best.pt", self.eval_model.state_dict(), meta)
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "ema": self.ema.state_dict() if self.ema is not None else None,
                     "stopper": self.stopper.state_dict(), "history": self.log.rows, "epoch": epoch,
                     "train_seconds": self.train_seconds, "rng": rng_state()}
            save_checkpoint(self.run_dir / "last.pt", self.model.state_dict(), meta, state)
        stop = distributed.broadcast_flag(self.stopper.should_stop, self.dist, self.device)
        if stop and not self.quiet and main:
            self.console.print(f"early stop: no {self.monitor} improvement for {cfg.patience} evaluations; "
                               f"best was epoch {self.stopper.best_epoch + 1} ({self.monitor} {self.stopper.best:.4g})")
        return stop

    def _train_steps(self, epoch: int) -> dict[str, Any]:
        """One pass over the training split; returns the epoch's row (lr, mean loss and its parts)."""
        cfg, task, device, steps = self.cfg.train, self.task, self.device, self.steps
        self.train_loader.set_epoch(epoch)
        self.train_model.train()
        self.progress.start(epoch, cfg.epochs, steps)
        loss_sum, parts_sum, n_seen = 0.0, {}, 0
        for step, batch in enumerate(self.train_loader):
            batch = task.to_device(batch, device)
            with torch.autocast(device.type, enabled=self.amp):
                loss, parts = task.loss(self.train_model, batch)
            if not torch.isfinite(loss):
                raise CnnkitError(
                    f"The loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}: training stopped; "
                    f"{self.run_dir / 'last.pt'} keeps the last good epoch. Try a lower --lr or --set grad_clip=1.0.")
            optimizer_step(loss, self.optimizer, self.scaler, self.model, cfg.grad_clip)
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            n = task.batch_size_of(batch)
            loss_sum += float(loss.detach()) * n
            n_seen += n
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * n
            show = step % cfg.log_every == 0 or step == steps - 1
            self.progress.step(n, {"loss": loss_sum / n_seen, "lr": self.scheduler.get_last_lr()[0]} if show else None)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": self.scheduler.get_last_lr()[0],
                               "train_loss": loss_sum / max(1, n_seen)}
        row.update({f"train_{k}": v / max(1, n_seen) for k, v in parts_sum.items()})
        return row

    def finish(self) -> Run:
        """Close the log, report late bad files; rank 0 tests best.pt, plots and writes the summary."""
        self.log.close()
        info, main = self.run.info, self.main
        streamed_bad = [b for b in getattr(self.train_loader, "bad_files", []) if b not in info.bad_files]
        if streamed_bad and main:  # files that only failed when a worker decoded them
            info.bad_files.extend(streamed_bad)
            _report_bad_files(info, self.run_dir, self.console, self.quiet)
        distributed.barrier(self.dist)
        result = self._test_and_report() if main else Run(self.run_dir, {}, {}, {})
        distributed.teardown(self.dist)
        return result

    def _test_and_report(self) -> Run:
        from cnnkit.json_output import dumps
        from cnnkit.report.html import write_report
        from cnnkit.report.plots import plot_history

        task, cfg, bundle, run_dir, device, model = (self.task, self.cfg, self.run.bundle, self.run_dir,
                                                     self.device, self.eval_model)
        history, train_seconds = self.log.rows, self.train_seconds
        if not (run_dir / "best.pt").exists():
            raise CnnkitError(f"{run_dir} has no best.pt: no epoch measured a finite validation {task.monitor[0]} "
                              f"(an empty val split or a metric that was NaN); {run_dir / 'last.pt'} keeps the "
                              "weights. Give data with a validation split.")
        best = load_checkpoint(run_dir / "best.pt")
        model.load_state_dict(best["model"])
        test_loader = task.loader(bundle.test, cfg, bundle.info, train=False)
        t0 = time.perf_counter()
        test_metrics = evaluate(model, test_loader, task, device) if len(bundle.test) else {}
        eval_seconds = time.perf_counter() - t0
        val_metrics = best["meta"]["metrics"]
        n_train_images = len(history) * len(bundle.train)
        summary = {
            "run_dir": str(run_dir), "task": task.name, "data": bundle.info.name, "model": cfg.model.name,
            "test": scalars(test_metrics), "val": val_metrics, "best_epoch": self.stopper.best_epoch + 1,
            "epochs_run": len(history), "train_seconds": round(train_seconds, 2),
            "train_images_per_second": round(n_train_images / max(1e-9, train_seconds), 1),
            "test_seconds": round(eval_seconds, 2),
            "split_sizes": {s: len(bundle.split(s)) for s in ("train", "val", "test")},
            "bad_files": len(bundle.info.bad_files),
            "environment": {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                            "world_size": int(os.environ.get("WORLD_SIZE", 1)),
                            "cpu_count": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()},
        }
        plot_history(history, run_dir / "plots", task.headline)
        task.plots(run_dir, model, bundle, device, test_metrics)
        (run_dir / "test_metrics.json").write_text(dumps(test_metrics, indent=2))  # standard JSON: NaN -> null
        (run_dir / "summary.json").write_text(dumps(summary, indent=2))
        write_report(run_dir)
        if not self.quiet:
            shown = headline_text(test_metrics, (*task.headline, "top5", "map_50", "dice"))
            self.console.print(f"[bold green]done[/] test: {shown}  ({train_seconds:.0f}s training)")
            self.console.print(f"run directory: {run_dir}  (plots/, report.html, best.pt, metrics.csv)")
        return Run(run_dir, test_metrics, val_metrics, summary)


def set_memory_format(model: torch.nn.Module, cfg: Config) -> bool:
    """Put the weights in NHWC (channels_last) when `train.channels_last` says so (conv activations
    follow their weights' format); True when it did. Shared by training and the LR range test, so
    the test's steps run at the speed and with the numerics of the run it advises."""
    if not cfg.train.channels_last:
        return False
    model.to(memory_format=torch.channels_last)
    return True


def use_amp(cfg: Config, device: torch.device) -> bool:
    """Mixed precision for `train.amp`: autocast to float16 with a GradScaler on CUDA, autocast to
    bfloat16 (no scaler: bf16 keeps float32's exponent range) on a CPU with native bf16
    (`cpu_has_bf16`); False elsewhere. Shared by training, the LR range test and `cnnkit bench`."""
    return bool(cfg.train.amp) and amp_is_native(device)


def grad_scaler(amp: bool, device: torch.device) -> torch.amp.GradScaler:
    """The loss scaler for `use_amp`'s answer: on for float16 on CUDA, off otherwise (bfloat16 on a CPU
    needs none). Shared by training, the LR range test and `cnnkit bench`."""
    return torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   model: torch.nn.Module, grad_clip: float | None) -> None:
    """One step after the loss: clear gradients, backward through the GradScaler, clip the gradient
    norm to `grad_clip` (when set), optimiser step. Shared by training and the LR range test."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()


def _report_bad_files(info: DatasetInfo, run_dir: Path, console: Console, quiet: bool) -> None:
    if not info.bad_files:
        return
    import json

    (run_dir / "bad_files.json").write_text(json.dumps([b.__dict__ for b in info.bad_files], indent=2))
    if not quiet:
        console.print(f"[yellow]skipped {len(info.bad_files)} unreadable file(s)[/]; listed in "
                      f"{run_dir / 'bad_files.json'} (first: {info.bad_files[0].path}: {info.bad_files[0].reason})")


