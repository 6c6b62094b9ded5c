"""The ways `cnnkit bench` runs one model side by side: eager, channels_last, torch.compile, and
onnxruntime fp32 / static int8 (inference only).

Each backend gets its own deep copy of the model, so training steps on one backend never
change the weights (or BatchNorm statistics) another one starts from, nor the caller's model.

- `eager`: the model as built.
- `channels_last`: weights in NHWC memory order, and every 4-D floating input converted to it;
  CPU (oneDNN) and GPU (cuDNN) convolutions pick their NHWC kernels from that.
- `compile`: `torch.compile` of the model (TorchInductor). Compiling happens on the first calls,
  which the caller runs inside `time_box`: on a small CPU machine it can take minutes.
- `onnxruntime`, `onnxruntime_int8` (asked by name, not in the default set): the model's export graph
  (`cnnkit.export`, traced with a free batch axis) in an onnxruntime CPU session; int8 is static QDQ
  calibrated on the eval batch given to `prepare`. They only run inference (`inference_only`): no
  training numbers. A tinydet keeps its PyTorch transform, decode and NMS around the session.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean

BACKENDS = ("eager", "channels_last", "compile")  # the default set
INFERENCE_BACKENDS = ("onnxruntime", "onnxruntime_int8")
KNOWN = BACKENDS + INFERENCE_BACKENDS


@dataclass
class Backend:
    name: str
    model: nn.Module  # holds the weights the optimiser steps (this backend's own copy)
    call: nn.Module  # what is called: `model`, its compiled wrapper, or an onnxruntime session's twin
    inference_only: bool = False  # onnxruntime: nothing to train

    def batch(self, batch: Any) -> Any:
        """`batch` as this backend feeds it: 4-D floating tensors in channels_last order for that backend."""
        return channels_last(batch) if self.name == "channels_last" else batch


def channels_last(batch: Any) -> Any:
    """Every 4-D floating tensor in `batch` (tensors, lists, tuples, dicts) in channels_last order."""
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 4 and batch.is_floating_point():
            return batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)) and type(batch) in (list, tuple):
        return type(batch)(channels_last(b) for b in batch)
    if isinstance(batch, dict):
        return {k: channels_last(v) for k, v in batch.items()}
    return batch


def check_backends(names: list[str] | tuple[str, ...]) -> list[str]:
    """The asked backend names, checked; raises `CnnkitError` naming an unknown one."""
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if name not in KNOWN:
            raise CnnkitError(f'Unknown bench backend "{name}".{did_you_mean(name, KNOWN)} '
                              f"Use any of {', '.join(KNOWN)} (comma-separated).")
    if not names:
        raise CnnkitError(f"No bench backend given: use any of {', '.join(KNOWN)} (comma-separated).")
    return names


def prepare(name: str, model: nn.Module, task: Any = None, batch: Any = None) -> Backend:
    """A `Backend` holding a deep copy of `model` (compiled lazily for "compile": nothing is compiled yet).
    The onnxruntime backends need the `task` (what the model answers with) and an eval `batch` (as
    `task.to_device` leaves it): its images trace the graph and calibrate int8."""
    if name in INFERENCE_BACKENDS:
        return onnx_backend(name, model, task, batch)
    own = copy.deepcopy(model)
    if name == "channels_last":
        own = own.to(memory_format=torch.channels_last)
    if name == "compile":
        # Inductor's C++ toolchain probe warns "No CUDA runtime is found" on every CPU-only machine:
        # a fact about the machine, not about the bench, so it is not shown.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    call = torch.compile(own) if name == "compile" else own
    return Backend(name, own, call)


def onnx_backend(name: str, model: nn.Module, task: Any, batch: Any) -> Backend:
    """`model` exported (export/graph.py's part of it) and run by onnxruntime on the CPU; see the module doc."""
    from cnnkit.engine.exported import open_session, runtime_model
    from cnnkit.export.graph import graph_of
    from cnnkit.export.onnx import trace
    from cnnkit.export.quantize import quantize_graph

    if task is None or batch is None:
        raise CnnkitError(f"The {name} backend needs the task and an eval batch to export the model with.")
    own = copy.deepcopy(model).cpu().eval()
    label = type(model).__name__
    module, graph, outputs = graph_of(own, task.output, label)
    images = batch[0]
    with torch.no_grad():
        if graph == "tinydet-head":
            x = own.transform([i.cpu() for i in images])[0].tensors
        else:  # a box task's batch is a list of images (one size in an eval batch)
            x = torch.stack(list(images)).float().cpu() if isinstance(images, (list, tuple)) else images.float().cpu()
    data = trace(module, x[:1].contiguous(), graph, outputs, label, dynamic_batch=True)
    if name == "onnxruntime_int8":
        data = quantize_graph(data, [x[i:i + 1].contiguous() for i in range(len(x))])
    call = runtime_model(graph, open_session(data), copy.deepcopy(own))
    return Backend(name, own, call, inference_only=True)


class TimedOut(Exception):
    """Raised by `time_box` when its time is up."""


@contextlib.contextmanager
def time_box(seconds: float | None) -> Iterator[dict[str, bool]]:
    """Raise `TimedOut` in the block once `seconds` have passed, and again every second after, in case
    the library running then (torch.compile catches many errors to fall back) swallows the first.
    Yields a dict whose "expired" is True once the time was up, so a swallowed timeout is still seen.

    Uses SIGALRM, so it limits only on the main thread of a POSIX process; elsewhere, or with
    `seconds` None, the block runs without a limit.
    """
    state = {"expired": False}
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield state
        return

    def expire(_signum, _frame):
        state["expired"] = True
        raise TimedOut(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 1.0)
    try:
        yield state
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def failure_reason(err: BaseException, seconds: float) -> str:
    """One line saying why a backend gave no numbers (`seconds`: its time box)."""
    if isinstance(err, TimedOut) or isinstance(err.__cause__ or err.__context__, TimedOut):
        return (f"compiling, warming up and timing took longer than {seconds:g} s (--compile-timeout-s plus "
                "the backend's share of --budget-s); raise --compile-timeout-s to measure it")
    first = (str(err).strip().splitlines() or [""])[0][:240]
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def reset_compiler() -> None:
    """Forget compiled code and guards (after a failed or finished compile backend)."""
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
