"""`cnnkit bench` without --json: the backends side by side in one table, then the profile when asked."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def _num(value: float | None, spec: str = ",.1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} "


def bench_table(result: dict[str, Any]) -> None:
    """Print one row per backend, the model's size and cost, the machine's reference rate and the profile."""
    b = result["batch_sizes"]
    amp = "" if not result.get("amp") else (", training in float16 autocast" if result["device"].startswith("cuda")
                                            else ", training in bfloat16 autocast")
    t = Table(title=f"{result['model']} on {result['data']} ({result['task']}, {result['device']}, "
                    f"{result['threads']} thread(s){amp})", header_style="bold",
              caption=f"training at batch {b['train']}; latency at batch 1; throughput at batch {b['throughput']}; "
                      "GFLOP/s and MFU of training")
    for col in ("backend", "train img/s", "latency p50/p99 ms", "throughput img/s", "GFLOP/s", "MFU"):
        t.add_column(col, justify="left" if col == "backend" else "right")
    for name, train in result["train_img_s"].items():
        lat = result["latency_batch1_ms"][name]
        t.add_row(name, _num(train), "n/a" if lat is None else f"{lat['p50']:.2f} / {lat['p99']:.2f}",
                  _num(result["throughput_batch64_img_s"][name]), _num(result["achieved_gflops"][name], ".2f"),
                  _num(None if result["mfu"][name] is None else result["mfu"][name] * 100, ".1f") +
                  ("%" if result["mfu"][name] is not None else ""))
    console.print(t)
    shape = "x".join(map(str, result["input_shape"]))
    console.print(f"{result['params']:,} parameters; {_human(result['flops'])}FLOPs per forward pass "
                  f"(input {shape}); {_human(result['train_flops_per_image'])}FLOPs per training image "
                  f"(forward + backward). Reference: float32 matmul {result['matmul_gflops']:.1f} GFLOP/s "
                  f"measured here; MFU = achieved / that.", highlight=False)
    if any(v is not None and v > 1 for v in result["mfu"].values()):
        console.print("MFU above 100 %: the model's kernels (oneDNN convolutions, or bfloat16 under train.amp) ran "
                      "faster than torch.mm's float32 matmul runs here; the reference is that matmul, not the "
                      "machine's peak.", style="yellow", highlight=False)
    cuda = "" if result.get("peak_cuda_mb") is None else f", CUDA peak {result['peak_cuda_mb']:,.0f} MiB"
    console.print(f"peak RSS {_num(result['peak_rss_mb'], ',.0f')} MiB{cuda}; timing loops shared "
                  f"{result['budget_s']:g} s ({result['seconds']:.0f} s in all).", highlight=False)
    for name, reason in result.get("unavailable", {}).items():
        console.print(f"[yellow]{name}[/]: n/a - {reason}", highlight=False)
    if result.get("profile"):
        profile_table(result["profile"])


def profile_table(profile: dict[str, Any]) -> None:
    t = Table(title=f"where a training step's time goes ({profile['steps']} profiled steps, "
                    f"{profile['step_ms']:.1f} ms each)", header_style="bold")
    t.add_column("section")
    t.add_column("ms / step", justify="right")
    t.add_column("share", justify="right")
    for name, part in profile["sections"].items():
        t.add_row(name, f"{part['ms']:.2f}", f"{part['share']:.0%}")
    console.print(t)
    ops = Table(title="operators by own time", header_style="bold")
    ops.add_column("operator")
    ops.add_column("ms / step", justify="right")
    ops.add_column("calls / step", justify="right")
    for op in profile["top_ops"]:
        ops.add_row(op["op"], f"{op['ms']:.2f}", f"{op['calls']:g}")
    console.print(ops)
    console.print(profile["note"], highlight=False)
