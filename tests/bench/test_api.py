"""`cnnkit bench` / `cnnkit.bench`: the keys and their types for a model of each task, FLOPs against a hand
count, the derived numbers against their definition, a checkpoint source, a backend that cannot finish
reported instead of fatal, and the errors. Tiny budgets: no timing is asserted (benchmarks are not tests)."""
from __future__ import annotations

import json

import pytest

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CnnkitError

KEYS = ("train_img_s", "latency_batch1_ms", "throughput_batch64_img_s", "peak_rss_mb", "params", "flops",
        "achieved_gflops", "matmul_gflops", "mfu", "threads", "machine")
# LeNet-5 at 32x32, a multiply-add = 2 FLOPs: conv1 2*1*6*25*28*28, conv2 2*6*16*25*10*10, fc 400-120-84-10
LENET5_CONV1 = 2 * 1 * 6 * 25 * 28 * 28
LENET5_FLOPS = LENET5_CONV1 + 2 * 6 * 16 * 25 * 10 * 10 + 2 * (400 * 120 + 120 * 84 + 84 * 10)


def check_result(r: dict, backends: tuple[str, ...]) -> None:
    """Every key there, every asked backend measured (positive, p50 <= p99) or null with a reason."""
    assert set(KEYS) <= set(r)
    for key in ("train_img_s", "latency_batch1_ms", "throughput_batch64_img_s", "achieved_gflops", "mfu"):
        assert list(r[key]) == list(backends), key
    for b in backends:
        if r["train_img_s"][b] is None:
            assert r["unavailable"][b], b
            assert all(r[k][b] is None for k in ("latency_batch1_ms", "throughput_batch64_img_s", "mfu"))
            continue
        lat = r["latency_batch1_ms"][b]
        assert 0 < lat["p50"] <= lat["p99"]
        assert r["train_img_s"][b] > 0 and r["throughput_batch64_img_s"][b] > 0 and r["mfu"][b] > 0
    assert r["params"] > 0 and r["flops"] > 0 and r["matmul_gflops"] > 0 and r["peak_rss_mb"] > 0
    assert isinstance(r["threads"], int) and r["threads"] >= 1
    assert r["machine"]["cpu_count"] >= 1 and r["machine"]["torch"]


def test_cli_json_for_lenet5_on_digits(capsys):
    # compile gets 10 ms: it cannot finish, so it must come back null with its reason, not stop the bench
    code = main(["bench", "lenet5", "--data", "digits", "--json", "--budget-s", "3", "--threads", "1",
                 "--compile-timeout-s", "0.01"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    check_result(r, ("eager", "channels_last", "compile"))
    assert r["flops"] == LENET5_FLOPS and r["params"] == 61_706
    assert r["train_img_s"]["compile"] is None and "compile-timeout-s" in r["unavailable"]["compile"]
    assert r["threads"] == 1 and r["amp"] is False


def test_api_numbers_follow_their_definitions():
    r = cnnkit.bench("lenet5", data="digits", budget_s=1.5, backends="eager", threads=1, profile=True)
    check_result(r, ("eager",))
    # forward + backward: every layer twice more, except conv1's input gradient (the data needs none)
    assert r["train_flops_per_image"] == 3 * LENET5_FLOPS - LENET5_CONV1
    achieved = r["train_flops_per_image"] * r["train_img_s"]["eager"] / 1e9
    assert r["achieved_gflops"]["eager"] == pytest.approx(achieved, rel=1e-3, abs=1e-3)
    assert r["mfu"]["eager"] == pytest.approx(r["achieved_gflops"]["eager"] / r["matmul_gflops"], rel=1e-2)
    assert (r["task"], r["data"], r["input_shape"]) == ("classify", "digits", [1, 1, 32, 32])
    sections = r["profile"]["sections"]
    assert list(sections) == ["data", "forward", "backward", "optimizer", "other"]
    assert sum(s["share"] for s in sections.values()) == pytest.approx(1.0, abs=1e-3)
    assert sections["forward"]["ms"] > 0 and sections["backward"]["ms"] > 0


def test_checkpoint_source_uses_its_data_and_weights(digits_run):
    r = cnnkit.bench(digits_run.dir, budget_s=1, backends=["eager"], threads=1)
    check_result(r, ("eager",))
    assert (r["model"], r["data"], r["task"]) == ("lenet5", "digits", "classify")
    assert r["params"] == sum(p.numel() for p in digits_run.load().model.parameters())


@pytest.mark.parametrize("model,data,task", [("tinydet", "bench-tiny-detect", "detect"),
                                             ("unet", "bench-tiny-seg", "segment")])
def test_detector_and_segmenter(model, data, task):
    r = cnnkit.bench(model, data=data, budget_s=1, backends="eager,channels_last", threads=1)
    check_result(r, ("eager", "channels_last"))
    assert r["task"] == task and r["input_shape"] == [1, 1, 48, 48]
    assert r["batch_sizes"]["throughput"] == 24  # the largest split (train) is smaller than 64


def test_errors_are_one_sentence(capsys):
    with pytest.raises(CnnkitError, match='Unknown bench backend "eagr". Did you mean "eager"'):
        cnnkit.bench("lenet5", backends="eagr")
    with pytest.raises(CnnkitError, match="budget_s must be a positive"):
        cnnkit.bench("lenet5", budget_s=0)
    assert main(["bench", "no-such-model", "--data", "digits", "--budget-s", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnkit: error:") and "no-such-model" in err and len(err.strip().splitlines()) == 1
