"""`cnnkit train --find-lr`: the learning-rate range test, for every task.

Owns the test itself (the exponential LR ramp over the run's own training loader, optimiser and
Task loss; the smoothed loss; the divergence stop), the suggestion rules, and the result files
(lr_find.png, lr_find.json, lr_find.csv). It trains nothing that lasts: the model's weights are put
back in memory afterwards and no checkpoint, config or log is written.

Method: L. N. Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017,
arXiv:1506.01186), sec. 3.3: train briefly while the LR rises (linearly there, watching accuracy)
and read off where the curve starts to improve and where it stops. The exponential ramp over the
training loss, its bias-corrected moving average (beta 0.98) and the stop at 4x the smallest
smoothed loss are fastai's `lr_find` (and torch-lr-finder's `step_mode="exp"`). The suggestion is
the LR where the smoothed loss falls fastest per unit of log(LR) before its minimum ("steepest
descent": fastai 2's `lr_steep`, torch-lr-finder's `plot(suggest_lr=True)`); fastai 2's `lr_min`
(the minimum's LR / 10) is reported beside it.
Why steepest: measured with 100 steps, 1e-6 -> 10, against the learning rates the tasks use by
default (tuned by training, tasks/*.py) -- digits LeNet-5 (SGD, batch 32): steepest 0.17, min/10
0.02, default 0.05; digits-detect tinydet (batch 8): 0.013, 0.0024, 0.02; digits-seg U-Net (batch
16): 0.034, 1.0 (the raw loss is flat from 0.03 to 3 and the lagging average keeps falling to 10),
0.05. Steepest is within 1.5x on two tasks and 3.4x high on the third; min/10 is off by 2.5x to 20x.
Neither is an oracle: trained 10 one-cycle epochs on digits, --lr 0.17 reached test accuracy 0.894,
0.02 0.961 and 0.05 0.983. With the default one-cycle schedule `--lr` is the peak LR, which is
where fastai also puts these values.

Why not torch-lr-finder (PyPI, 0.2.2): its step is `inputs, labels = next(loader)` then
`criterion(model(inputs), labels)`, and it accepts only a torch `DataLoader` or its own iterator
class. A detection model takes `model(images, targets)` in train mode and returns a dict of
losses that `DetectTask.loss` sums, a structure that a `criterion(outputs, labels)` cannot express
without wrapping the model, the loader and the criterion all three; it also does not stop on a
NaN loss (`nan > 5 * best` is False, so the test runs on to its end), clips no gradients and
brings tqdm and packaging in. Here the loss comes from `Task.loss` and the optimiser step from
`engine/trainer.optimizer_step`, exactly as training takes them.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from cnnkit.config import Config
from cnnkit.data.loader import endless
from cnnkit.engine.setup import make_run_dir
from cnnkit.errors import CnnkitError

BETA = 0.98  # smoothing of the loss (fastai's lr_find); bias-corrected, so the first steps are not pulled to 0
DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
MAX_STEPS = 100_000  # the LR grid is built up front (lr_schedule); a mistyped 2e9 must not allocate 15 GiB
RULES = {"steepest": "steepest descent of the smoothed loss",
         "start": "the first LR tried: the smoothed loss never fell (lower --find-lr-start)",
         "few": "the first LR tried: the smoothed loss fell for only one step (more --find-lr-steps)"}


@dataclass
class LRFind:
    """What `cnnkit.find_lr` returns. `lrs`, `losses` (raw, per batch) and `smoothed` are one point per
    step taken; `suggested_lr` is one of `lrs`, chosen by `rule` (a sentence, see `RULES`);
    `min_loss_lr` is the LR of the smallest smoothed loss (fastai's `lr_min` is a tenth of it)."""

    dir: Path
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float
    rule: str
    min_loss_lr: float
    start_lr: float
    end_lr: float
    steps: int  # planned; len(lrs) is the number taken
    stopped: str | None  # why the test ended before `steps`, or None
    setup: dict[str, Any] = field(default_factory=dict)  # task, data, model, optimiser, batch size, ...

    @property
    def png(self) -> Path:
        return self.dir / "lr_find.png"


def lr_schedule(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """The LR of each step: `steps` values from `start_lr` to `end_lr`, evenly spaced in log scale."""
    return np.geomspace(start_lr, end_lr, steps)


def range_test(run, start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 100,
               progress: Any = None) -> tuple[list[float], list[float], list[float], str | None]:
    """Run the LR range test on a `ResolvedRun` (engine/run.py) and put its model's weights back.

    Per step i: the next batch of the task's training loader (cycled over epochs when it is shorter
    than `steps`), the loss from `task.loss`, backward, clipping and the step of the configured
    optimiser at lr_schedule(...)[i]. Each step is a training step of the run: its loader (augmentation,
    MixUp/CutMix), its loss (label smoothing, class weights), its threads (set by `resolve_run`), and
    `train.channels_last` and `train.amp` applied as `Trainer` applies them. Returns (lrs, raw losses,
    smoothed losses, why it stopped early or None); the loss at lrs[i] is the one measured before the
    step taken with lrs[i]. The model comes back with its weights and memory format as they were.
    """
    from cnnkit.engine.optim import build_optimizer
    from cnnkit.engine.trainer import grad_scaler, optimizer_step, set_memory_format, use_amp

    cfg, task, model, device = run.cfg, run.task, run.model, run.device
    loader = task.loader(run.bundle.train, cfg, run.info, train=True)
    if len(loader) == 0:
        raise CnnkitError(f"The training split of {run.info.name} is smaller than one batch "
                          f"({len(run.bundle.train)} < train.batch_size={cfg.train.batch_size}).")
    saved = copy.deepcopy(model.state_dict())
    nhwc = set_memory_format(model, cfg)  # before the optimiser takes the parameters, as in training
    optimizer = build_optimizer(model, cfg.train)
    amp = use_amp(cfg, device)
    scaler = grad_scaler(amp, device)
    lrs, losses, smoothed, stopped, avg = [], [], [], None, 0.0
    was_training = model.training
    model.train()
    try:
        for i, (lr, batch) in enumerate(zip(lr_schedule(start_lr, end_lr, steps), endless(loader))):
            for group in optimizer.param_groups:
                group["lr"] = float(lr)
            batch = task.to_device(batch, device)
            with torch.autocast(device.type, enabled=amp):
                loss, _ = task.loss(model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                stopped = f"the loss became {value} at lr {lr:.3g} (step {i + 1})"
                break
            avg = BETA * avg + (1 - BETA) * value
            lrs.append(float(lr))
            losses.append(value)
            smoothed.append(avg / (1 - BETA ** (i + 1)))
            if smoothed[-1] > DIVERGE * min(smoothed):
                stopped = f"the smoothed loss passed {DIVERGE:g}x its minimum at lr {lr:.3g} (step {i + 1})"
                break
            optimizer_step(loss, optimizer, scaler, model, cfg.train.grad_clip)
            if progress is not None:
                progress(i + 1, smoothed[-1])
    finally:
        model.load_state_dict(saved)
        if nhwc:
            model.to(memory_format=torch.contiguous_format)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return lrs, losses, smoothed, stopped


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, str]:
    """(suggested LR, the rule's sentence): the LR where the smoothed loss falls fastest per unit of
    log(LR), among the points up to its minimum (np.gradient: second order inside, one-sided at the
    ends); the first LR when fewer than 3 points lead to the minimum. Raises `CnnkitError` without points."""
    if not lrs:
        raise CnnkitError("The LR range test measured no finite loss: lower --find-lr-start or check the data.")
    lowest = int(np.argmin(smoothed))
    if lowest < 2:
        return lrs[0], RULES["start" if lowest == 0 else "few"]
    slope = np.gradient(np.asarray(smoothed[:lowest + 1]), np.log(lrs[:lowest + 1]))
    return lrs[int(np.argmin(slope))], RULES["steepest"]


def find_lr(cfg: Config, start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 100, quiet: bool = False,
            console: Console | None = None) -> LRFind:
    """Resolve `cfg` as `cnnkit train` does, run `range_test`, write lr_find.png/.json/.csv into
    `train.out` (default runs/<data>-<model>-lr-find[-N]) and print the suggestion. Raises
    `CnnkitError` for a bad range or steps, `--resume`, or anything resolving the run raises."""
    from cnnkit.engine.run import resolve_run
    from cnnkit.engine.trainer import use_amp

    if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (start_lr, end_lr)):
        raise CnnkitError(f"--find-lr-start and --find-lr-end must be finite numbers, got {start_lr!r} and {end_lr!r}.")
    if not 0 < start_lr < end_lr:
        raise CnnkitError(f"--find-lr-start {start_lr:g} must be above 0 and below --find-lr-end {end_lr:g}.")
    if not isinstance(steps, numbers.Integral):
        raise CnnkitError(f"--find-lr-steps {steps!r} must be a whole number of steps (100 is usual).")
    if steps < 2:
        raise CnnkitError(f"--find-lr-steps {steps} is too few: the test needs at least 2 steps (100 is usual).")
    if steps > MAX_STEPS:
        raise CnnkitError(f"--find-lr-steps {steps} is more than the {MAX_STEPS:,} allowed (100 is usual).")
    if cfg.train.resume:
        raise CnnkitError("--find-lr tests a freshly built model and cannot take --resume: drop one of them.")
    console = console or Console(stderr=True)
    run = resolve_run(cfg)
    c = run.cfg
    with _Progress(console, steps, enabled=not quiet) as progress:
        lrs, losses, smoothed, stopped = range_test(run, start_lr, end_lr, steps, progress)
    lr, rule = suggest(lrs, smoothed)
    lowest = lrs[int(np.argmin(smoothed))]
    setup = {"task": c.task, "data": run.info.name, "model": c.model.name, "optimizer": c.train.optimizer,
             "batch_size": c.train.batch_size, "weight_decay": c.train.weight_decay, "seed": c.train.seed,
             "device": str(run.device), "channels_last": bool(c.train.channels_last),
             "amp": use_amp(c, run.device)}
    out = make_run_dir(c, create=False, suffix="-lr-find")
    result = LRFind(out, lrs, losses, smoothed, lr, rule, lowest, start_lr, end_lr, steps, stopped, setup)
    write_result(result)
    if not quiet:
        _print(result, console)
    return result


def write_result(result: LRFind) -> list[Path]:
    """lr_find.json (everything), lr_find.csv (step, lr, loss, smoothed_loss) and lr_find.png."""
    result.dir.mkdir(parents=True, exist_ok=True)
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
    (result.dir / "lr_find.json").write_text(json.dumps(record, indent=2))
    with (result.dir / "lr_find.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "lr", "loss", "smoothed_loss"])
        w.writerows((i + 1, *row) for i, row in enumerate(zip(result.lrs, result.losses, result.smoothed)))
    return [result.dir / "lr_find.json", result.dir / "lr_find.csv", plot(result)]


def plot(result: LRFind) -> Path:
    """Raw and smoothed loss against LR (log axis), the suggestion and the minimum marked."""
    from cnnkit.report.plots import plt, save_figure

    r, s = result, result.setup
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(r.lrs, r.losses, color="0.75", lw=1, label="loss (per batch)")
    ax.plot(r.lrs, r.smoothed, lw=2, label=f"smoothed loss (EMA {BETA:g}, bias-corrected)")
    lowest = int(np.argmin(r.smoothed))
    ax.plot(r.lrs[lowest], r.smoothed[lowest], "kv", label=f"smallest smoothed loss, at {r.min_loss_lr:.2g}")
    ax.plot(r.suggested_lr, r.smoothed[r.lrs.index(r.suggested_lr)], "ro", ms=8,
            label=f"suggested {r.suggested_lr:.2g}: {r.rule}")
    ax.set_xscale("log")
    top = max(r.smoothed[:lowest + 1]) + 0.25 * (max(r.smoothed[:lowest + 1]) - r.smoothed[lowest]) + 1e-6
    ax.set_ylim(min(r.losses) - 0.05 * (top - min(r.losses)), top)
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title=f"LR range test: {s['model']} on {s['data']} ({s['optimizer']}, batch {s['batch_size']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return save_figure(fig, r.png)


def _print(r: LRFind, console: Console) -> None:
    s = r.setup
    ended = ("ran to the end" if not r.stopped else  # a stop on the last step is no early stop
             f"stopped early: {r.stopped}" if len(r.lrs) < r.steps else f"ran to the end; {r.stopped}")
    form = "".join(f", {k}" for k in ("channels_last", "amp") if s.get(k))
    console.print(f"LR range test: {s['model']} on {s['data']} ({s['task']}), {s['optimizer']}{form}, "
                  f"batch {s['batch_size']}, lr {r.start_lr:g} -> {r.end_lr:g} over {len(r.lrs)}/{r.steps} steps; "
                  f"{ended}",
                  highlight=False, soft_wrap=True)
    console.print(f"smallest smoothed loss {min(r.smoothed):.4g} at lr {r.min_loss_lr:.2g} "
                  f"(a tenth of it, fastai's lr_min: {r.min_loss_lr / 10:.2g})", highlight=False, soft_wrap=True)
    console.print(f"[bold]suggested --lr {r.suggested_lr:.2g}[/] (rule: {r.rule})", highlight=False, soft_wrap=True)
    console.print(f"wrote {r.png} (loss vs lr), lr_find.json and lr_find.csv beside it; no model was saved",
                  highlight=False, soft_wrap=True)


class _Progress:
    """A transient rich bar on a terminal (step, smoothed loss); nothing in a log or with quiet."""

    def __init__(self, console: Console, steps: int, enabled: bool):
        self.bar = None
        if enabled and console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("lr range test"), BarColumn(bar_width=16), MofNCompleteColumn(),
                                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=console,
                                transient=True)
            self.task = self.bar.add_task("lr", total=steps, stats="")

    def __enter__(self):
        if self.bar is None:
            return None
        self.bar.start()
        return self

    def __call__(self, step: int, smoothed: float) -> None:
        self.bar.update(self.task, completed=step, stats=f"smoothed loss {smoothed:.4g}")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
