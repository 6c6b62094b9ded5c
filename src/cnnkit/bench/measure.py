"""Timing loops under a time budget, percentiles, this machine's float32 matmul rate, peak memory, the machine.

Every loop here is bounded: untimed warm-up calls, then timed calls until the loop's share of
the budget is spent (and at least `min_calls`, so a percentile has something to stand on). On
CUDA each call ends with a synchronize, so a time is the work's and not the kernel launch's.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], seconds: float, device: torch.device, min_calls: int = 3,
               warmup: int = 1) -> list[float]:
    """Seconds per call of `fn` (a list, one per timed call): `warmup` untimed calls, then calls until
    `seconds` have passed and at least `min_calls` were timed."""
    for _ in range(warmup):
        fn()
        sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def percentiles(seconds: list[float]) -> dict[str, float]:
    """{"p50", "p99"} of call times in milliseconds (numpy's linear interpolation, so p50 <= p99)."""
    p50, p99 = np.percentile(np.asarray(seconds, dtype=np.float64) * 1000.0, [50, 99])
    return {"p50": round(float(p50), 4), "p99": round(float(p99), 4)}


def matmul_gflops(device: torch.device, seconds: float, n: int | None = None) -> float:
    """This machine's float32 matrix-multiply rate in GFLOP/s (2 n^3 FLOPs per n x n product), measured
    with torch.mm at the current thread count: n = 1024 on a CPU (large enough to run at the BLAS
    kernel's speed, small enough for ~50 calls a second), 4096 on a GPU.

    The best call is taken, not the median: the reference is what the machine can do, and other
    load only ever makes a call slower.
    """
    n = n or (4096 if device.type == "cuda" else 1024)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)
    times = time_calls(lambda: torch.mm(a, b, out=out), seconds, device, min_calls=3, warmup=2)
    return round(2 * n ** 3 / min(times) / 1e9, 3)


def peak_rss_mb() -> float | None:
    """The process's peak resident memory so far in MiB (data, models and every measurement before it),
    from `resource.getrusage`; None where the `resource` module does not exist (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)  # bytes on macOS, KiB on Linux


def peak_cuda_mb(device: torch.device) -> float | None:
    """torch.cuda.max_memory_allocated in MiB since the last `reset_peak_memory_stats`; None off CUDA."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)


def machine(device: torch.device | None = None) -> dict[str, Any]:
    """What the numbers were measured on: platform, processor, cores, load, torch/Python, device."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in load] if load else None,
            "torch": torch.__version__, "python": platform.python_version(),
            "device": str(device) if device is not None else "cpu"}
    if device is not None and device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info
