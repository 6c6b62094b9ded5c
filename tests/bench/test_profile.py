"""bench/profile.py: the four sections of a real training step (LeNet-5 on digits), their shares, the top operators."""
from __future__ import annotations

import pytest

from cnnkit.bench.backends import prepare
from cnnkit.bench.profile import profile_training
from cnnkit.bench.step import TrainStep, endless
from cnnkit.config import Config
from cnnkit.engine.run import resolve_run


def test_profile_of_a_training_step():
    cfg = Config()
    cfg.data.name, cfg.model.name, cfg.train.threads = "digits", "lenet5", 1
    run = resolve_run(cfg, device="cpu")
    stream = endless(run.task.loader(run.bundle.train, run.cfg, run.info, train=True))
    step = TrainStep(run.task, run.cfg, prepare("eager", run.model), run.device)
    p = profile_training(step, stream, steps=2)
    assert p["steps"] == 2 and p["step_ms"] > 0
    assert list(p["sections"]) == ["data", "forward", "backward", "optimizer", "other"]
    assert all(s["ms"] > 0 for name, s in p["sections"].items() if name != "other")
    assert sum(s["share"] for s in p["sections"].values()) == pytest.approx(1.0, abs=1e-3)
    ops = [o["op"] for o in p["top_ops"]]
    assert "aten::convolution_backward" in ops and not any(o.startswith("cnnkit.") for o in ops)
    assert not step.profiling  # switched back off
