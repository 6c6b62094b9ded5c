"""Optimiser groups and schedules."""
import pytest
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.engine.optim import build_optimizer, build_scheduler
from cnnkit.errors import CnnkitError


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    opt = build_optimizer(model, TrainConfig(lr=0.1, weight_decay=1e-3))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step", "constant"])
def test_schedules_warm_up_and_end_lower(schedule):
    model = nn.Linear(2, 2)
    cfg = TrainConfig(lr=0.1, epochs=4, schedule=schedule, warmup_epochs=1, step_size=2, weight_decay=0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert max(lrs) <= 0.1 + 1e-9
    if schedule != "constant":
        assert lrs[-1] < 0.05
    assert lrs[0] < max(lrs) or schedule in ("constant", "step") and lrs[0] <= max(lrs)


def test_unknown_optimizer_is_a_sentence():
    with pytest.raises(CnnkitError, match='Unknown optimizer "adamm".*Did you mean "adamw"'):
        build_optimizer(nn.Linear(2, 2), TrainConfig(lr=0.1, optimizer="adamm"))


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 8])
def test_onecycle_runs_for_any_number_of_steps(total):
    # torch's OneCycleLR divides by zero at exactly 4 total steps with pct_start 0.25 (a tiny run).
    opt = build_optimizer(nn.Linear(2, 2), TrainConfig(lr=0.1, weight_decay=0.0))
    sched = build_scheduler(opt, TrainConfig(lr=0.1, epochs=1, schedule="onecycle"), steps_per_epoch=total)
    for _ in range(total):
        opt.step()
        sched.step()
    assert 0 < sched.get_last_lr()[0] <= 0.1
