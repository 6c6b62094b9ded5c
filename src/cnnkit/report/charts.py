"""Bar charts of per-class results: AP per class (detection) and IoU per class (segmentation).

matplotlib figures saved by `cnnkit.report.plots`' figure helper; each function returns the PNG path.
"""
from __future__ import annotations

from pathlib import Path

from cnnkit.report.plots import save_figure  # first: it selects matplotlib's Agg backend

import matplotlib.pyplot as plt  # noqa: E402

from cnnkit.report.fonts import class_labels, fonts_for  # noqa: E402


def ap_bars(per_class: dict[str, float | None], mean_ap: float | None, path: Path) -> Path:
    """Vertical bars of test AP@[.5:.95] per class (an undefined AP — no ground truth — is an
    empty slot marked n/a, never a 0 bar), mAP as a dashed line. Class names are drawn with a
    font that has their glyphs (`report.fonts`)."""
    names = list(per_class)
    with fonts_for(names):
        fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(names) + 1.5), 3.2))
        ax.bar(range(len(names)), [v or 0.0 for v in per_class.values()], color="tab:blue")
        for i, v in enumerate(per_class.values()):
            if v is None:
                ax.text(i, 0.02, "n/a", ha="center", fontsize=8, color="0.4")
        if mean_ap is not None:
            ax.axhline(mean_ap, color="tab:red", linestyle="--", label=f"mAP {mean_ap:.3f}")
            ax.legend(loc="lower right")
        ax.set_xticks(range(len(names)), class_labels(names), rotation=90 if len(names) > 12 else 0)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AP@[.5:.95]")
        ax.set_title("Per-class AP (test)")
        fig.tight_layout()
        return save_figure(fig, path)


def iou_bars(per_class_iou: dict[str, float | None], path: Path, miou: float | None = None) -> Path:
    """Horizontal bars of test IoU per class (absent classes shown as empty rows), mIoU as a line."""
    names = list(per_class_iou)
    with fonts_for(names):
        values = [v if v is not None else 0.0 for v in per_class_iou.values()]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
        ax.barh(range(len(names)), values, color="tab:blue")
        ax.set_yticks(range(len(names)), class_labels(names))
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        if miou is not None and miou == miou:
            ax.axvline(miou, color="tab:red", linestyle="--", label=f"mIoU {miou:.3f}")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlabel("IoU")
        ax.set_title("Per-class IoU (test)")
        for i, v in enumerate(per_class_iou.values()):
            ax.text(0.01 if v is None else min(v, 0.9) + 0.01, i, "absent" if v is None else f"{v:.3f}",
                    va="center", fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)
