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


def _lrs_and_momenta(cfg, steps_per_epoch):
    opt = build_optimizer(nn.Linear(2, 2), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    return out


def test_restart_is_two_one_cycles_back_to_back():
    """train.restart_epochs=3 of 12: steps 0..20 are torch's OneCycleLR over 3 epochs, the rest a fresh
    OneCycleLR over 9 (lr and momentum), the reference being torch's own scheduler."""
    import torch

    def reference(epochs):
        opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9, nesterov=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * 7, pct_start=0.25,
                                                    anneal_strategy="cos", div_factor=25.0, final_div_factor=1e3)
        out = []
        for _ in range(epochs * 7):
            out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
            opt.step()
            sched.step()
        return out

    got = _lrs_and_momenta(TrainConfig(lr=0.1, epochs=12, restart_epochs=3, weight_decay=0.0), 7)
    ref = reference(3) + reference(9)
    assert len(got) == len(ref) == 84
    assert max(abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(got, ref)) < 1e-12
    assert got[21][0] == pytest.approx(0.1 / 25)  # the restart: back to the cycle's starting lr


@pytest.mark.parametrize("schedule,restart", [("cosine", 2), ("onecycle", 4)])
def test_restart_needs_onecycle_and_fewer_epochs(schedule, restart):
    cfg = TrainConfig(lr=0.1, epochs=4, schedule=schedule, restart_epochs=restart, weight_decay=0.0)
    with pytest.raises(CnnkitError, match="train.restart_epochs"):
        build_scheduler(build_optimizer(nn.Linear(2, 2), cfg), cfg, 5)
