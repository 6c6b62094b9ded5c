"""bench/measure.py: percentiles against numpy's definition, bounded timing loops, the matmul rate, memory, machine."""
from __future__ import annotations

import torch

from cnnkit.bench.measure import machine, matmul_gflops, peak_cuda_mb, peak_rss_mb, percentiles, time_calls

CPU = torch.device("cpu")


def test_percentiles_in_milliseconds():
    # 1..100 ms: the linear-interpolated median is 50.5 ms, the 99th percentile 99 + 0.01 = 99.01 ms
    assert percentiles([i / 1000 for i in range(1, 101)]) == {"p50": 50.5, "p99": 99.01}
    assert percentiles([0.002]) == {"p50": 2.0, "p99": 2.0}


def test_time_calls_counts_warmup_apart_and_keeps_a_minimum():
    calls = []
    times = time_calls(lambda: calls.append(1), seconds=0.0, device=CPU, min_calls=4, warmup=2)
    assert len(times) == 4 and len(calls) == 6 and all(t >= 0 for t in times)


def test_time_calls_stops_when_its_time_is_spent():
    times = time_calls(lambda: None, seconds=0.05, device=CPU, min_calls=1, warmup=0)
    assert len(times) > 1  # ran for the time, not just the minimum


def test_matmul_rate_memory_and_machine():
    assert matmul_gflops(CPU, seconds=0.05, n=128) > 0
    assert peak_rss_mb() > 10  # the interpreter and torch alone hold more than 10 MiB
    assert peak_cuda_mb(CPU) is None
    m = machine(CPU)
    assert m["cpu_count"] >= 1 and m["device"] == "cpu" and m["torch"] == torch.__version__
