"""`cnnkit.bench(source, ...)`: what a model costs to train and to run on this machine, per backend.

The source resolves through `engine/run.py` like every command: a run directory or checkpoint
(its recorded config rebuilds the data and the model, and its weights are loaded, so a
detector's post-processing sees trained scores), a model name with `data` (as `cnnkit info
MODEL --data D`; random weights), or a `Config`. Then, sharing `budget_s` seconds between
the timing loops:

- `matmul_gflops`: this machine's float32 torch.mm rate at the same thread count (10 % of the
  budget, at most 1 s; `measure.matmul_gflops`).
- per backend (eager, channels_last, compile; an equal share of the rest each): training
  images/s of `TrainStep` on the task's own training loader, data path included (half the
  share); latency at batch 1 (p50/p99 ms of `task.predict`, a quarter) and throughput at
  batch 64 (images/s, a quarter), with the inputs already on the device, so they time the
  model and its post-processing, not image decoding.
- `flops`: forward FLOPs of one image as `cnnkit info` counts them (`models/info.py`);
  `achieved_gflops`: training FLOPs per image (forward + backward, counted once) times the
  training images/s; `mfu`: achieved / matmul (a small conv net is usually far below 1; above 1 where oneDNN's
  convolutions or bfloat16 beat torch.mm's float32 rate, as on an AMD EPYC whose MKL sgemm ran at
  215 GFLOP/s against 494 for a 3x3 conv on 2 threads).

Warm-up calls are untimed. The compile backend runs time-boxed (`compile_timeout_s` plus its
share): a backend that fails or runs out of time is null in every mapping and gives its reason
under "unavailable"; the bench carries on without it. `profile=True` adds `profile.py`'s
breakdown of a training step (a few profiled steps beyond the budget).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnkit.bench.backends import BACKENDS, TimedOut, check_backends, failure_reason, prepare, reset_compiler, time_box
from cnnkit.bench.measure import machine, matmul_gflops, peak_cuda_mb, peak_rss_mb, percentiles, time_calls
from cnnkit.bench.profile import profile_training
from cnnkit.bench.step import TrainStep, endless, train_flops_per_image
from cnnkit.config import Config
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.engine.run import ResolvedRun, resolve_run
from cnnkit.engine.trainer import use_amp
from cnnkit.errors import CnnkitError
from cnnkit.models.info import layer_table
from cnnkit.tasks.base import image_side

DEFAULT_BUDGET_S = 20.0
DEFAULT_COMPILE_TIMEOUT_S = 120.0
THROUGHPUT_BATCH = 64
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def bench(source: str | Path | Config, data: str | None = None, *, budget_s: float = DEFAULT_BUDGET_S,
          profile: bool = False, backends: str | Iterable[str] = BACKENDS,
          compile_timeout_s: float = DEFAULT_COMPILE_TIMEOUT_S, device: str = "auto",
          settings: Sequence[str] = (), **overrides: Any) -> dict[str, Any]:
    """Measure `source` (a run directory, checkpoint, model name or `Config`) and return a JSON-able dict.

    Keys: `train_img_s`, `throughput_batch64_img_s`, `achieved_gflops`, `mfu` (backend -> number or
    None), `latency_batch1_ms` (backend -> {"p50", "p99"} in ms, or None), `peak_rss_mb`,
    `peak_cuda_mb` (None off CUDA), `params`, `flops` (forward FLOPs per image, a multiply-add = 2),
    `train_flops_per_image`, `matmul_gflops`, `threads`, `amp` (whether training ran under
    autocast: `use_amp`), `machine`, `unavailable` (backend -> reason),
    plus `model`, `task`, `data`, `device`, `input_shape`, `batch_sizes`, `budget_s`, `seconds`,
    and `profile` when asked. `data` replaces the checkpoint's data (default for a model name:
    digits); `overrides` are config keys as in `cnnkit.train` (`threads=1`, `canvas_size=48`),
    `settings` the same as "key=value" strings (`--set`).

    Raises `CnnkitError` for a bad source, data, key, backend name or budget.
    """
    if not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise CnnkitError(f"budget_s must be a positive number of seconds, got {budget_s!r}.")
    names = check_backends(backends.split(",") if isinstance(backends, str) else list(backends))
    started = time.perf_counter()
    run = resolve_source(source, data, device, settings, overrides)
    dev, task = run.device, run.task
    host = machine(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    matmul_s = min(1.0, 0.1 * budget_s)
    matmul = matmul_gflops(dev, matmul_s)
    inputs = Inputs.of(run)
    side = image_side(run.cfg.data.image_size or run.info.image_size)
    input_shape = [1, run.info.channels, *side]
    flops = layer_table(run.model, input_shape)["flops"]
    train_flops = train_flops_per_image(task, copy.deepcopy(run.model), inputs.first_train)
    share = (budget_s - matmul_s) / len(names)
    measured, unavailable = {}, {}
    for name in names:
        try:
            measured[name] = measure_backend(name, run, inputs, share, compile_timeout_s)
        except Exception as err:  # noqa: BLE001 - a backend that cannot run is reported, not fatal
            if name == "eager":
                raise
            unavailable[name] = failure_reason(err, compile_timeout_s + share)
        finally:
            if name == "compile":
                reset_compiler()
    result = _result(run, names, measured, unavailable, flops, train_flops, matmul, input_shape, inputs)
    result["machine"] = host
    if profile:
        step = TrainStep(task, run.cfg, prepare("eager", run.model), dev)
        result["profile"] = profile_training(step, inputs.stream)
    result.update(budget_s=budget_s, seconds=round(time.perf_counter() - started, 2),
                  peak_rss_mb=peak_rss_mb(), peak_cuda_mb=peak_cuda_mb(dev))
    return result


def resolve_source(source: str | Path | Config, data: str | None, device: str, settings: Sequence[str] = (),
                   overrides: dict[str, Any] | None = None) -> ResolvedRun:
    """A `ResolvedRun` with its data (all three splits) for a `Config`, a checkpoint / run directory
    (its config, its weights) or a model name (the `cnnkit info` way: `data`, default digits)."""
    ckpt = None
    if isinstance(source, Config):
        cfg = source.copy()
    elif Path(source).is_dir() or Path(source).suffix.lower() in CHECKPOINT_SUFFIXES:
        ckpt = load_checkpoint(source)
        cfg = Config.from_dict(ckpt["meta"]["config"])
    else:
        cfg = Config()
        cfg.model.name = str(source)
    if data is not None:
        cfg.data.name = str(data)
    for key, value in (overrides or {}).items():
        cfg.set(key.replace("__", "."), value)
    cfg.apply_overrides(list(settings))
    run = resolve_run(cfg, device=device)
    if ckpt is not None:
        try:
            run.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CnnkitError(f"The weights of {ckpt['path']} do not fit the model built for data "
                              f"{cfg.data.name} ({str(err).splitlines()[0][:160]}); bench it on its own data "
                              "(leave out --data) or on data with the same classes and channels.") from None
    return run


@dataclass
class Inputs:
    """What every backend is timed on: training batches, and eval batches of 1 and of up to 64 on the device."""

    stream: Iterator[Any]  # endless training batches from the task's loader (augmented, not yet moved)
    first_train: Any  # one training batch on the device (for counting FLOPs)
    one: Any
    many: Any
    many_n: int
    train_batch: int

    @classmethod
    def of(cls, run: ResolvedRun) -> Inputs:
        task, cfg, bundle = run.task, run.cfg, run.bundle
        loader = task.loader(bundle.train, cfg, run.info, train=True)
        if len(loader) == 0:
            raise CnnkitError(f"The training split of {run.info.name} is smaller than one batch "
                              f"({len(bundle.train)} < train.batch_size={cfg.train.batch_size}); pass a smaller "
                              "--batch-size.")
        stream = endless(loader)
        first = task.to_device(next(stream), run.device)
        # the eval batches come from the largest split, so that one of 64 is whole where the data allows
        split = max((bundle.test, bundle.val, bundle.train), key=len)
        one, many = (_eval_batch(run, split, size) for size in (1, THROUGHPUT_BATCH))
        return cls(stream, first, one, many, task.batch_size_of(many), cfg.train.batch_size)


def _eval_batch(run: ResolvedRun, split: Any, size: int) -> Any:
    cfg = run.cfg.copy()
    cfg.train.batch_size = size
    loader = run.task.loader(split, cfg, run.info, train=False)
    loader.set_epoch(0)
    return run.task.to_device(next(iter(loader)), run.device)


def measure_backend(name: str, run: ResolvedRun, inputs: Inputs, share: float,
                    compile_timeout_s: float) -> dict[str, Any]:
    """{"train_img_s", "latency", "throughput", "train_steps"} for one backend within `share` seconds
    of timed loops (the compile backend: all of it within compile_timeout_s + share)."""
    task, dev = run.task, run.device
    limit = compile_timeout_s + share if name == "compile" else None
    box = {"expired": False}
    try:
        with time_box(limit) as box:
            backend = prepare(name, run.model, task, inputs.many)
            step = TrainStep(task, run.cfg, backend, dev)
            one, many = backend.batch(inputs.one), backend.batch(inputs.many)
            for _ in range(0 if backend.inference_only else 2):  # compile: the first call compiles, the second
                step(inputs.stream)                                 # shows whether it recompiles
            backend.model.eval()
            for batch in (one, one, many, many):
                task.predict(backend.call, batch)
            backend.model.train()
            images: list[int] = []
            train_s = [] if backend.inference_only else time_calls(lambda: images.append(step(inputs.stream)),
                                                                   share / 2, dev, 2, warmup=0)
            backend.model.eval()
            latency_s = time_calls(lambda: task.predict(backend.call, one), share / 4, dev, 5, warmup=0)
            many_s = time_calls(lambda: task.predict(backend.call, many), share / 4, dev, 2, warmup=0)
    except Exception as err:
        if box["expired"]:  # whatever the library made of the timeout, the time was up
            raise TimedOut(f"took longer than {limit:g} s") from err
        raise
    if box["expired"]:  # the timeout fired but something caught it: the numbers are not to be trusted
        raise TimedOut(f"took longer than {limit:g} s")
    train_img_s = round(sum(images) / sum(train_s), 2) if train_s else None  # None: inference-only backend
    return {"train_img_s": train_img_s, "latency": percentiles(latency_s),
            "throughput": round(inputs.many_n * len(many_s) / sum(many_s), 2), "train_steps": len(train_s)}


def _result(run: ResolvedRun, names: list[str], measured: dict[str, dict], unavailable: dict[str, str],
            flops: int, train_flops: float, matmul: float, input_shape: list[int], inputs: Inputs) -> dict[str, Any]:
    def per(key: str) -> dict[str, Any]:
        return {n: measured[n][key] if n in measured else None for n in names}

    train = per("train_img_s")
    achieved = {n: None if v is None else round(train_flops * v / 1e9, 3) for n, v in train.items()}
    return {
        "model": run.cfg.model.name, "task": run.task.name, "data": run.info.name, "device": str(run.device),
        "input_shape": input_shape,
        "batch_sizes": {"train": inputs.train_batch, "latency": 1, "throughput": inputs.many_n},
        "train_img_s": train,
        "latency_batch1_ms": per("latency"),
        "throughput_batch64_img_s": per("throughput"),
        "params": sum(p.numel() for p in run.model.parameters()),
        "flops": int(flops),
        "train_flops_per_image": int(train_flops),
        "achieved_gflops": achieved,
        "matmul_gflops": matmul,
        "mfu": {n: None if v is None else round(v / matmul, 4) for n, v in achieved.items()},
        "threads": torch.get_num_threads(),
        "amp": use_amp(run.cfg, run.device),
        "unavailable": unavailable,
    }
