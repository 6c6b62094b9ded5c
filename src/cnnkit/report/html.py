"""`report.html`: one self-contained page per run — summary numbers, curves and plots inlined."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path


def write_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    rows = []
    for split in ("test", "val"):
        for k, v in (summary.get(split) or {}).items():
            value = "n/a" if v is None else f"{v:.4f}"  # an undefined metric is no number
            rows.append(f"<tr><td>{split}</td><td>{html.escape(k)}</td><td>{value}</td></tr>")
    facts = {k: summary.get(k) for k in ("task", "data", "model", "best_epoch", "epochs_run", "train_seconds",
                                         "train_images_per_second", "split_sizes", "bad_files")}
    imgs = []
    for png in sorted((run_dir / "plots").glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        imgs.append(f'<figure><img src="data:image/png;base64,{data}" alt="{png.stem}">'
                    f"<figcaption>{html.escape(png.stem)}</figcaption></figure>")
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").exists() else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>cnnkit run {html.escape(run_dir.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
figure{{display:inline-block;margin:8px;vertical-align:top}}img{{max-width:520px}}pre{{background:#f6f6f6;padding:1em}}</style>
</head><body><h1>cnnkit run: {html.escape(run_dir.name)}</h1>
<pre>{html.escape(json.dumps(facts, indent=2))}</pre>
<h2>Metrics</h2><table><tr><th>split</th><th>metric</th><th>value</th></tr>{''.join(rows)}</table>
<h2>Plots</h2>{''.join(imgs)}
<h2>Config</h2><pre>{html.escape(config)}</pre></body></html>"""
    out = run_dir / "report.html"
    out.write_text(page)
    return out
