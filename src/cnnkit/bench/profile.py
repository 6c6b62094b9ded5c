"""Where a training step's time goes (`cnnkit bench --profile`): data, forward, backward, optimiser.

A few `TrainStep`s run under `torch.profiler.profile`; the time of each section is read from
its `record_function` label (`step.SECTIONS`), so it holds everything done inside it — the
loader's augmentation under "data", the loss under "forward", autograd under "backward",
clipping, the optimiser and EMA under "optimizer". "other" is the rest of the step's wall
time (the profiler's own bookkeeping, mostly). The operators that took the most time of their
own (CPU time; GPU kernel time on CUDA) are listed too. The profiler adds overhead, so these
are shares of a step, not its speed: the speed is `train_img_s`.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from torch.profiler import ProfilerActivity, profile

from cnnkit.bench.step import SECTIONS, TrainStep

TOP_OPS = 8


def profile_training(step: TrainStep, stream: Iterator[Any], steps: int = 5) -> dict[str, Any]:
    """{"steps", "step_ms", "sections": {name: {"ms", "share"}}, "top_ops": [{"op", "ms", "calls"}], "note"}
    for `steps` profiled training steps after one unprofiled one; ms are per step."""
    cuda = step.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    step.profiling = True
    try:
        step(stream)
        t0 = time.perf_counter()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                step(stream)
        wall_ms = (time.perf_counter() - t0) * 1000 / steps
    finally:
        step.profiling = False
    events = prof.key_averages()
    by_label = {e.key: e for e in events}
    sections = {name: by_label[label].cpu_time_total / 1000 / steps if label in by_label else 0.0
                for name, label in SECTIONS.items()}
    sections["other"] = max(0.0, wall_ms - sum(sections.values()))
    total = max(1e-9, sum(sections.values()))

    def own_ms(e) -> float:  # self time: on a GPU the kernels' (device) time, on a CPU the host's
        if cuda:
            return getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) / 1000 / steps
        return e.self_cpu_time_total / 1000 / steps

    ops = sorted((e for e in events if e.key not in SECTIONS.values()), key=own_ms, reverse=True)[:TOP_OPS]
    return {
        "steps": steps,
        "step_ms": round(wall_ms, 3),
        "sections": {k: {"ms": round(v, 3), "share": round(v / total, 4)} for k, v in sections.items()},
        "top_ops": [{"op": e.key, "ms": round(own_ms(e), 3), "calls": round(e.count / steps, 2)} for e in ops],
        "note": ("torch.profiler over the eager backend; section times include the profiler's overhead, "
                 f"top_ops are {'GPU kernel' if cuda else 'CPU'} self time per step"),
    }
