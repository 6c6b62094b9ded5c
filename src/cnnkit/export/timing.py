"""Batch-1 latency of an onnxruntime session or a PyTorch callable: untimed warm-up, then the median
of `runs` timed calls (ms). Used by `cnnkit export --int8` and `bench/export_latency.py`."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_ms(fn: Callable[[], Any], runs: int = 200, warmup: int = 20) -> float:
    """Median wall time of `fn()` in milliseconds over `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000.0, 4)


def session_call(session, x) -> Callable[[], Any]:
    """A no-argument call running `session` on x (a torch tensor), input prepared once."""
    arr = x.detach().float().cpu().contiguous().numpy()
    feed = {session.get_inputs()[0].name: arr}
    return lambda: session.run(None, feed)


def interleaved_medians(fns: dict[str, Callable[[], Any]], runs: int = 200, warmup: int = 20) -> dict[str, float]:
    """Median ms per call of each function, timed in rounds (one call of each per round), so that load
    from other jobs on a shared machine falls on all of them alike rather than on whichever ran then."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1000.0, 4) for k, v in times.items()}
