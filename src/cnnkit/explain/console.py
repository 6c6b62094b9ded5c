"""Rich tables for `cnnkit explain` without `--json`: the maps, the faithfulness checks,
the worst predictions, and where the PNGs went."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def _target(t: dict[str, Any]) -> str:
    if not t:
        return "-"
    if t.get("kind") == "box":
        return f"box {t['index']} {t.get('name') or ''} {t['score']:.2f}".replace("  ", " ")
    if t.get("kind") == "class":
        return f"{t['name']} p={t['prob']:.2f}"
    return f"{t.get('name')} {t.get('pixels', 0)}px"


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    rows = [e for e in summary.get("explanations", []) if e["method"] != "filters"]
    if rows:
        table = Table(title=f"explanations ({summary['task']})")
        for col in ("image", "method", "target", "peak y,x", "min", "max", "mean", "IG gap"):
            table.add_column(col, justify="left" if col in ("image", "method", "target") else "right")
        for e in rows:
            gap = e.get("completeness_gap")
            peak = ",".join(map(str, e["peak"])) if "peak" in e else "-"
            table.add_row(Path(str(e["image"])).name, e["method"], _target(e["target"]), peak, _fmt(e.get("min")),
                          _fmt(e.get("max")), _fmt(e.get("mean")), f"{gap:.2%}" if isinstance(gap, float) else "-")
        notes = []
        layers = dict.fromkeys(f"{e['method']}: {e['layer']}" for e in rows if e.get("layer"))
        if layers:
            notes.append("layers  " + "; ".join(layers))
        if any((e.get("completeness_gap") or 0) > 0.05 for e in rows):
            notes.append("IG gap = |sum(attributions) - (f(x) - f(baseline))| / |f(x) - f(baseline)|: "
                         "raise --steps when it is large (it is also large when f(x) - f(baseline) is tiny)")
        table.caption = "\n".join(notes) or None
        console.print(table)
    faith = summary.get("faithfulness", {})
    if faith.get("methods"):
        table = Table(title="faithfulness: deletion AUC (lower is better), insertion AUC (higher), "
                            "randomisation rank correlation (low is good)")
        for col in ("method", "deletion", "random", "wins", "insertion", "random ", "wins ", "rand. rho", "verdict"):
            table.add_column(col, justify="left" if col in ("method", "verdict") else "right")
        for name, r in faith["methods"].items():
            rnd = r.get("randomisation", {})
            verdict = "-" if not rnd else ("ok" if rnd["explains_model"] else "[red]not explaining the model[/red]")
            table.add_row(name, _fmt(r["deletion_auc"]), _fmt(r["deletion_auc_random"]),
                          f"{r['deletion_better_than_random']:.0%}", _fmt(r["insertion_auc"]),
                          _fmt(r["insertion_auc_random"]), f"{r['insertion_better_than_random']:.0%}",
                          _fmt(rnd.get("spearman")), verdict)
        table.caption = ("wins: share of images where the method beats a random pixel order; "
                         f"flagged when rho >= {faith.get('randomisation_threshold', 0.5)}")
        console.print(table)
    elif faith.get("note"):
        console.print(f"faithfulness: {faith['note']}")
    worst = summary.get("worst")
    if worst:
        table = Table(title=f"most confidently wrong ({worst['wrong']} wrong of {worst['test_images']} test images)")
        for col in ("image", "true", "predicted", "confidence"):
            table.add_column(col)
        for w in worst["images"]:
            table.add_row(str(w["image"]), w["true"], w["predicted"], f"{w['confidence']:.3f}")
        console.print(table)
        if worst["confused_pairs"]:
            pairs = ", ".join(f"{p['true']}->{p['predicted']} ({p['count']})" for p in worst["confused_pairs"])
            console.print(f"most confused (true->predicted): {pairs}")
    console.print(f"pictures written to {summary['save_dir']}")
