"""Per-layer summary of a model: output shape, parameters and FLOPs of each leaf layer (`cnnkit info`).

Shapes come from forward hooks; FLOPs from `torch.utils.flop_counter.FlopCounterMode`, which
counts a multiply-add as 2 FLOPs (a conv costs 2 * Cin * Cout * k * k * Hout * Wout, its bias
and the activations, pools and additions are not counted). One forward pass on zeros, in eval
mode and without gradients; the model's train/eval mode is restored afterwards.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.errors import CnnkitError

FLOPS_NOTE = "FLOPs as counted by torch.utils.flop_counter: a multiply-add = 2 FLOPs; elementwise ops are free"


def _shape(out: Any) -> list[int] | None:
    if isinstance(out, torch.Tensor):
        return list(out.shape)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return list(out[0].shape)  # several outputs: show the first
    return None


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, plus containers that hold parameters of their own."""
    return [(name, m) for name, m in model.named_modules()
            if name and (not list(m.children()) or any(True for _ in m.parameters(recurse=False)))]


def layer_table(model: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 32)) -> dict[str, Any]:
    """Rows {"name", "type", "output_shape", "params", "flops"} for each leaf layer, in call order,
    plus totals "params", "trainable_params", "flops" (whole model) and "input_shape"/"output_shape".

    Layers that the forward pass never calls keep `output_shape` None; a layer called several
    times shows its last output shape and the sum of its FLOPs.
    """
    if len(input_shape) not in (2, 4) or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise CnnkitError(f"input_shape must be four positive integers (N, C, H, W), or two (N, L) for token "
                          f"ids, got {tuple(input_shape)}.")
    param = next(model.parameters(), None)
    x = torch.zeros(*input_shape, device=param.device if param is not None else "cpu",
                    dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32)
    leaves = _leaves(model)
    shapes: dict[str, list[int] | None] = {}
    order: list[str] = []

    def hook(name: str):
        def record(_module: nn.Module, _inputs: Any, out: Any) -> None:
            if name not in shapes:
                order.append(name)
            shapes[name] = _shape(out)
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0][:200]
        raise CnnkitError(f"The model cannot run on an input of shape {tuple(input_shape)} ({reason}); "
                          "check the channels and image size.") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    counts = counter.get_flop_counts()
    root = type(model).__name__  # FlopCounterMode names modules "<RootClass>.<dotted path>"
    by_name = dict(leaves)
    names = order + [name for name, _ in leaves if name not in shapes]
    rows = [{
        "name": name,
        "type": type(by_name[name]).__name__,
        "output_shape": shapes.get(name),
        "params": sum(p.numel() for p in by_name[name].parameters(recurse=False)),
        "flops": int(sum(counts.get(f"{root}.{name}", {}).values())),
    } for name in names]
    return {
        "input_shape": list(input_shape),
        "output_shape": _shape(out),
        "rows": rows,
        "params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "flops": int(counter.get_total_flops()),
        "flops_note": FLOPS_NOTE,
    }


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


def render_table(table: dict[str, Any], title: str | None = None) -> Table:
    """A rich Table of `layer_table`'s rows with a totals footer (print it with rich's Console)."""
    shape = "x".join(map(str, table["input_shape"]))
    out = Table(title=title or f"input {shape}", show_footer=True, header_style="bold")
    out.add_column("Layer", footer="Total")
    out.add_column("Type")
    out.add_column("Output shape", footer="x".join(map(str, table.get("output_shape") or [])))
    out.add_column("Params", justify="right", footer=f"{table['params']:,}")
    out.add_column("FLOPs", justify="right", footer=f"{table['flops']:,}")
    for row in table["rows"]:
        shape = "x".join(map(str, row["output_shape"])) if row["output_shape"] else "(not called)"
        out.add_row(row["name"], row["type"], shape, f"{row['params']:,}" if row["params"] else "",
                    f"{row['flops']:,}" if row["flops"] else "")
    out.caption = (f"{_human(table['params'])} parameters ({table['trainable_params']:,} trainable), "
                   f"{_human(table['flops'])}FLOPs per forward pass. {table.get('flops_note', FLOPS_NOTE)}.")
    return out
