"""bench/show.py: the side-by-side table, n/a and the reason for a backend without numbers, the profile."""
from __future__ import annotations

from cnnkit.bench.show import bench_table

RESULT = {
    "model": "lenet5", "data": "digits", "task": "classify", "device": "cpu", "threads": 1,
    "batch_sizes": {"train": 32, "latency": 1, "throughput": 64}, "input_shape": [1, 1, 32, 32],
    "train_img_s": {"eager": 2000.0, "compile": None},
    "latency_batch1_ms": {"eager": {"p50": 0.71, "p99": 0.82}, "compile": None},
    "throughput_batch64_img_s": {"eager": 9900.0, "compile": None},
    "achieved_gflops": {"eager": 4.5, "compile": None}, "mfu": {"eager": 0.15, "compile": None},
    "params": 61706, "flops": 833040, "train_flops_per_image": 2263920, "matmul_gflops": 30.0,
    "peak_rss_mb": 900.0, "peak_cuda_mb": None, "budget_s": 3.0, "seconds": 4.0,
    "unavailable": {"compile": "compiling took longer than 1 s"},
    "profile": {"steps": 5, "step_ms": 40.0, "note": "torch.profiler",
                "sections": {"data": {"ms": 4.0, "share": 0.1}, "forward": {"ms": 36.0, "share": 0.9}},
                "top_ops": [{"op": "aten::mkldnn_convolution", "ms": 5.0, "calls": 2}]},
}


def test_table_shows_every_backend_and_why_one_is_missing(capsys):
    bench_table(RESULT)
    out = capsys.readouterr().out
    assert "0.71 / 0.82" in out and "15.0%" in out and "61,706 parameters" in out
    assert "compile: n/a - compiling took longer than 1 s" in out
    assert "aten::mkldnn_convolution" in out and "90%" in out


def test_an_mfu_above_one_is_explained_not_hidden(capsys):
    bench_table({**RESULT, "mfu": {"eager": 1.48, "compile": None}})
    out = " ".join(capsys.readouterr().out.split())
    assert "148.0%" in out and "MFU above 100 %: the model's kernels" in out
    bench_table(RESULT)
    assert "MFU above 100 %" not in capsys.readouterr().out


def test_the_title_says_when_training_ran_under_autocast(capsys):
    bench_table({**RESULT, "amp": True})
    assert "training in bfloat16 autocast" in " ".join(capsys.readouterr().out.split())
    bench_table(RESULT)
    assert "autocast" not in capsys.readouterr().out
