"""The LR range test (`cnnkit train --find-lr`, `cnnkit.find_lr`): on every task, the LRs rise as
np.geomspace from start to end, the smoothed loss is the bias-corrected EMA of the measured losses,
a diverging loss stops it early, the suggestion is a tested LR named by its rule, only the three
result files are written and the model's weights come back unchanged."""
import json
import re

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.cli import main
from cnnkit.config import Config
from cnnkit.engine.lr_find import BETA, DIVERGE, RULES, range_test, suggest
from cnnkit.engine.run import resolve_run
from cnnkit.errors import CnnkitError

RESULT_FILES = {"lr_find.png", "lr_find.json", "lr_find.csv"}


def _reference_smoothing(losses: list[float]) -> np.ndarray:
    """Bias-corrected exponential moving average, written out as in Kingma & Ba's Adam (sec. 3)."""
    out, avg = [], 0.0
    for t, x in enumerate(losses, start=1):
        avg = BETA * avg + (1 - BETA) * x
        out.append(avg / (1 - BETA ** t))
    return np.array(out)


def _check_points(record: dict, start: float, end: float, steps: int) -> None:
    lrs = np.array(record["lrs"])
    assert 2 <= len(lrs) <= steps
    np.testing.assert_allclose(lrs, np.geomspace(start, end, steps)[:len(lrs)], rtol=1e-12)
    np.testing.assert_allclose(record["smoothed"], _reference_smoothing(record["losses"]), rtol=1e-9)
    assert start <= record["suggested_lr"] <= lrs[-1] and record["suggested_lr"] in record["lrs"]
    assert record["rule"] in RULES.values()


def test_cli_writes_the_curve_and_names_the_rule(tmp_path, capsys):
    out = tmp_path / "lrf"
    code = main(["train", "--data", "digits", "--model", "lenet5", "--threads", "1", "--find-lr",
                 "--find-lr-steps", "25", "--find-lr-start", "1e-5", "--find-lr-end", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    assert {p.name for p in out.iterdir()} == RESULT_FILES  # no checkpoint, config or log
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "lr_find.json").read_text())
    _check_points(record, 1e-5, 1.0, 25)
    assert f"suggested --lr {record['suggested_lr']:.2g} (rule: {record['rule']})" in err
    assert str(out / "lr_find.png") in err
    rows = (out / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "step,lr,loss,smoothed_loss" and len(rows) == len(record["lrs"]) + 1


@pytest.mark.parametrize("data", ["digits-detect", "digits-seg"])
def test_every_task_takes_its_loss_from_the_task(tmp_path, capsys, data):
    out = tmp_path / data
    code = main(["train", "--data", data, "--threads", "1", "--batch-size", "4", "--find-lr", "--find-lr-steps", "5",
                 "--out", str(out), "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["dir"] == str(out) and shown["steps"] == 5
    record = json.loads((out / "lr_find.json").read_text())
    _check_points(record, 1e-6, 10.0, 5)
    assert record["setup"]["task"] == {"digits-detect": "detect", "digits-seg": "segment"}[data]
    assert {p.name for p in out.iterdir()} == RESULT_FILES


def test_a_diverging_loss_stops_the_test_early(tmp_path):
    result = cnnkit.find_lr(data="digits", model="lenet5", threads=1, start_lr=1e-2, end_lr=1e8, steps=40,
                            out=str(tmp_path / "diverge"), quiet=True)
    assert result.stopped is not None and len(result.lrs) < 40
    s = result.smoothed
    assert all(s[i] <= DIVERGE * min(s[:i + 1]) for i in range(len(s) - 1))  # nothing stopped it sooner
    assert s[-1] > DIVERGE * min(s) or "loss became" in result.stopped


def test_the_weights_come_back_unchanged_and_nothing_is_saved(tmp_path):
    cfg = Config()
    for key, value in (("data.name", "digits"), ("model.name", "lenet5"), ("train.threads", 1)):
        cfg.set(key, value)
    run = resolve_run(cfg)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    lrs, losses, _, _ = range_test(run, 1e-3, 10.0, 12)
    assert len(lrs) >= 2 and losses[0] != losses[-1]  # it did train in between
    after = run.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert run.model.training and all(p.grad is None for p in run.model.parameters())


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_steps_run_in_the_training_memory_format(channels_last):
    """train.channels_last (the smallcnn and segmentation default) sets the weights' and activations'
    memory order of every step, as in training, and the model comes back in its own order."""
    cfg = Config()
    for key, value in (("data.name", "digits"), ("model.name", "lenet5"), ("train.threads", 1),
                       ("train.channels_last", channels_last)):
        cfg.set(key, value)
    run = resolve_run(cfg)
    # the second conv: with one input channel the two orders are the same strides
    conv = next(m for m in run.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    seen = []
    conv.register_forward_hook(lambda m, args, out: seen.append(
        (m.weight.is_contiguous(memory_format=torch.channels_last),
         out.is_contiguous(memory_format=torch.channels_last))))
    range_test(run, 1e-3, 1.0, 3)
    assert len(seen) == 3 and set(seen) == {(channels_last, channels_last)}
    assert all(p.is_contiguous() for p in run.model.parameters())


def test_the_result_names_memory_format_and_precision(tmp_path):
    result = cnnkit.find_lr(data="digits", model="lenet5", threads=1, steps=3, out=str(tmp_path / "f"), quiet=True,
                            channels_last=True)
    setup = json.loads((tmp_path / "f" / "lr_find.json").read_text())["setup"]
    assert setup["channels_last"] is True and setup["amp"] is False and result.setup == setup


def test_an_existing_run_directory_keeps_its_files(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "best.pt").write_bytes(b"weights")
    cnnkit.find_lr(data="digits", model="lenet5", threads=1, steps=5, out=str(run_dir), quiet=True)
    assert (run_dir / "best.pt").read_bytes() == b"weights"
    assert {p.name for p in run_dir.iterdir()} == RESULT_FILES | {"best.pt"}


def test_the_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = list(np.geomspace(1e-6, 10, 71))  # 10 points per decade
    x = np.log10(lrs)
    # falls fastest at 1e-2, smallest at 1, rises after: the suggestion is the grid point 1e-2
    smoothed = list(2 - np.tanh(2 * (x + 2)) + np.where(x > 0, 5 * x, 0))
    lr, rule = suggest(lrs, smoothed)
    assert lr == pytest.approx(1e-2) and rule == RULES["steepest"]
    assert suggest(lrs[:5], [1.0, 1.1, 1.2, 1.3, 1.4]) == (lrs[0], RULES["start"])  # it never fell
    assert suggest(lrs[:3], [1.0, 0.9, 1.2]) == (lrs[0], RULES["few"])  # it fell once: too few points to judge


@pytest.mark.parametrize("args, message", [
    (["--find-lr-start", "1", "--find-lr-end", "0.1"], "--find-lr-start 1 must be above 0 and below --find-lr-end 0.1"),
    (["--find-lr-steps", "1"], "--find-lr-steps 1 is too few"),
    (["--find-lr-steps", "2000000000"], "--find-lr-steps 2000000000 is more than the 100,000 allowed"),
    (["--find-lr-end", "inf"], "--find-lr-start and --find-lr-end must be finite numbers, got 1e-06 and inf"),
    (["--find-lr-start", "nan"], "must be finite numbers, got nan and 10.0"),
    (["--resume", "runs/x"], "cannot take --resume"),
])
def test_bad_settings_are_one_sentence(capsys, args, message):
    assert main(["train", "--data", "digits", "--find-lr", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_help_teaches_the_test(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--find-lr " in out and "--find-lr-steps N" in out and "steepest descent of the smoothed loss" in out


@pytest.mark.parametrize("kwargs, message", [({"steps": 2.5}, "--find-lr-steps 2.5 must be a whole number"),
                                             ({"start_lr": "abc"}, "must be finite numbers, got 'abc' and 10.0")])
def test_bad_python_arguments_are_one_sentence(kwargs, message):
    with pytest.raises(CnnkitError, match=re.escape(message)):
        cnnkit.find_lr(data="digits", quiet=True, **kwargs)
