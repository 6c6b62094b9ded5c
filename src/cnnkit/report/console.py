"""Terminal output of the CLI: rich tables for metrics, predictions, models, layer info, data health."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
NA = "n/a"  # how an undefined (None) metric reads in tables and log lines


def fmt(value: float | None, spec: str = ".4f") -> str:
    """`value` formatted with `spec`, or "n/a" when it is undefined (None)."""
    return NA if value is None else format(value, spec)


def metrics_table(metrics: dict[str, Any]) -> None:
    """The scalar metrics, then per-class values; an undefined metric (None) reads "n/a", followed
    by one line saying why (the metrics' `note`)."""
    t = Table(title=f"{metrics.get('data', '')} / {metrics.get('split', '')} ({metrics.get('images', '?')} images)")
    t.add_column("metric")
    t.add_column("value", justify="right")
    undefined = False
    for k, v in metrics.items():
        if isinstance(v, float) or v is None:
            t.add_row(k, fmt(v))
            undefined |= v is None
    console.print(t)
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict) and per_class:
        pc = Table(title="per class")
        first = next(iter(per_class.values()))
        pc.add_column("class")
        for col in (first if isinstance(first, dict) else {"value": 0}):
            pc.add_column(col, justify="right")
        for name, vals in per_class.items():
            vals = vals if isinstance(vals, dict) else {"value": vals}
            pc.add_row(str(name), *[fmt(None if v is None else float(v)) for v in vals.values()])
            undefined |= None in vals.values()
        console.print(pc)
    if undefined:
        console.print(f"n/a: {metrics.get('note') or 'undefined on this split (nothing to score it on)'}",
                      highlight=False, soft_wrap=True)


def shown(text: Any) -> str:
    """`text` for one table cell: never read as rich markup, and a control character in it (a newline in a
    file name) written as its escape (\\n), so one input stays one row."""
    return escape("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text)))


def predictions(records: list[dict[str, Any]], save_dir: str | None,
                describe: Callable[[dict[str, Any]], str]) -> None:
    """One row per input: its file and `describe(record)` (the task's line: `Task.describe`), or its
    error in red. Names and labels are printed as given, never read as rich markup."""
    t = Table(title="predictions")
    t.add_column("file")
    t.add_column("prediction")
    for r in records:
        if "error" in r:
            t.add_row(shown(r["file"]), f"[red]{shown(r['error'])}[/]")
        else:
            t.add_row(shown(r["file"]), shown(describe(r)))
    console.print(t)
    if save_dir:
        console.print(f"drawings written to {save_dir}")


def model_list(rows: list[dict[str, Any]]) -> None:
    t = Table(title="registered models")
    t.add_column("name")
    t.add_column("tasks")
    t.add_column("description")
    for r in rows:
        t.add_row(r["name"], ",".join(r["tasks"]), r["doc"])
    console.print(t)


def model_info(table: list[dict[str, Any]], channels: int, size: int, num_classes: int, data: str,
               as_json: bool) -> None:
    """`cnnkit info`: the per-layer table (`cnnkit.models.layer_table`) of a model built for `data`."""
    from cnnkit.models import render_table

    if as_json:
        from cnnkit.json_output import dumps

        print(dumps(table, indent=2))  # standard JSON (non-finite numbers as null), as every --json printer
        return
    console.print(render_table(table))
    console.print(f"input 1x{channels}x{size}x{size}, {num_classes} classes ({data})")


def health(report) -> None:
    d = report.to_dict()
    t = Table(title=f"data health: {d['source']}")
    t.add_column("count")
    t.add_column("value")
    notes = d["counts"].get("notes") or {}
    for k, v in d["counts"].items():
        if k != "notes":
            t.add_row(k, escape(json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v)))
    console.print(t)
    for text in notes.values():  # sentences, not counts: one line each under the table
        console.print(escape(text if text.startswith("warning:") else f"note: {text}"),
                      style="yellow" if text.startswith("warning:") else "cyan", soft_wrap=True)
    if not d["issues"]:
        console.print("[green]no problems found[/]")
        return
    it = Table(title=f"{len(d['issues'])} problem(s): " + ", ".join(f"{k} {v}" for k, v in d["issue_counts"].items()))
    it.add_column("kind")
    it.add_column("file")
    it.add_column("problem")
    for issue in d["issues"][:200]:
        it.add_row(issue["kind"], shown(issue["file"]), shown(issue["problem"]))  # "[null, 3]" is no markup
    console.print(it)
