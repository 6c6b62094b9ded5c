"""bench/backends.py: channels_last inputs, own copies per backend, name checks, the time box and its reasons."""
from __future__ import annotations

import signal
import time

import pytest
import torch
from torch import nn

from cnnkit.bench.backends import TimedOut, channels_last, check_backends, failure_reason, prepare, time_box
from cnnkit.errors import CnnkitError


def test_channels_last_converts_only_4d_floating_tensors_anywhere_in_a_batch():
    x, mask, img = torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 5, dtype=torch.long), torch.zeros(3, 4, 5)
    out = channels_last(([x, img], {"m": mask}, torch.zeros(2, 3, 4, 5, dtype=torch.uint8)))
    assert out[0][0].is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(
        memory_format=torch.channels_last)
    assert out[0][1] is img and out[1]["m"] is mask and out[2].is_contiguous()  # 3-D, integer: untouched


def test_each_backend_owns_a_copy():
    model = nn.Conv2d(1, 2, 3)
    b = prepare("channels_last", model)
    assert b.model is not model and b.call is b.model
    assert b.model.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        b.model.weight.add_(1.0)
    assert not torch.equal(b.model.weight, model.weight)
    assert b.batch(torch.zeros(1, 1, 5, 5)).is_contiguous(memory_format=torch.channels_last)
    assert prepare("eager", model).batch(torch.zeros(1, 1, 5, 5)).is_contiguous()


def test_backend_names_are_checked():
    assert check_backends(["eager", " compile "]) == ["eager", "compile"]
    with pytest.raises(CnnkitError, match='Unknown bench backend "channel_last". Did you mean "channels_last"'):
        check_backends(["channel_last"])
    with pytest.raises(CnnkitError, match="No bench backend given"):
        check_backends([""])


def test_time_box_stops_a_long_block_and_clears_its_timer():
    t0 = time.perf_counter()
    with pytest.raises(TimedOut):
        with time_box(0.05):
            while time.perf_counter() - t0 < 5:
                pass
    assert time.perf_counter() - t0 < 2
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with time_box(None) as box:  # no limit
        pass
    assert box == {"expired": False}


def test_time_box_sees_a_swallowed_timeout():
    with time_box(0.02) as box:
        try:
            time.sleep(0.2)
        except TimedOut:  # a library that catches everything
            pass
    assert box["expired"]


def test_failure_reasons_are_one_line():
    assert "--compile-timeout-s" in failure_reason(TimedOut("x"), 3.0)
    wrapped = RuntimeError("backend failed")
    wrapped.__cause__ = TimedOut("x")
    assert "longer than 3 s" in failure_reason(wrapped, 3.0)
    assert failure_reason(RuntimeError("bad op\nstack..."), 3.0) == "RuntimeError: bad op"


def test_onnxruntime_backends_answer_like_eager_and_train_nothing():
    from cnnkit.bench.backends import KNOWN
    from cnnkit.tasks import get_task

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    batch = (torch.randn(6, 1, 8, 8), torch.zeros(6, dtype=torch.long))
    assert check_backends(["eager", "onnxruntime_int8"]) == ["eager", "onnxruntime_int8"]
    assert "onnxruntime" in KNOWN
    fp32 = prepare("onnxruntime", model, get_task("classify"), batch)
    int8 = prepare("onnxruntime_int8", model, get_task("classify"), batch)
    assert fp32.inference_only and int8.inference_only and not prepare("eager", model).inference_only
    with torch.no_grad():
        ref = model(batch[0])
        assert torch.allclose(fp32.call(batch[0]), ref, atol=1e-5)
        assert (int8.call(batch[0]) - ref).abs().max() < 0.25 * ref.abs().max()  # int8: close, not equal
    with pytest.raises(CnnkitError, match="needs the task and an eval batch"):
        prepare("onnxruntime", model)


def test_bench_lists_onnxruntime_beside_eager():
    import cnnkit

    result = cnnkit.bench("lenet5", data="digits", budget_s=1.0, backends="eager,onnxruntime,onnxruntime_int8",
                          threads=1)
    assert result["train_img_s"]["onnxruntime"] is None and result["train_img_s"]["eager"] > 0
    for name in ("eager", "onnxruntime", "onnxruntime_int8"):
        assert result["latency_batch1_ms"][name]["p50"] > 0 and result["throughput_batch64_img_s"][name] > 0
    assert result["unavailable"] == {}
