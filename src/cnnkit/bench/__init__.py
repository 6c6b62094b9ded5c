"""Speed and cost measurement used by `cnnkit bench`: images/s, latency, memory, FLOPs, MFU.

Importing this package costs nothing: the package root imports it early (so that the function
`cnnkit.bench` is not shadowed by it), and `bench` loads torch only when first used. Modules:
`measure` (timing loops, percentiles, the machine's float32 matmul rate, memory, the machine),
`backends` (eager / channels_last / torch.compile, compilation time-boxed), `step` (one
training step as the trainer takes it, and its FLOPs), `profile` (where a step's time goes,
from torch.profiler), `api` (the `bench` function), `show` (the text table).
"""
from __future__ import annotations

from typing import Any

__all__ = ["bench"]


def __getattr__(name: str) -> Any:  # PEP 562: the public name, imported on first use
    if name == "bench":
        from cnnkit.bench.api import bench

        return bench
    raise AttributeError(f"module 'cnnkit.bench' has no attribute {name!r}")
