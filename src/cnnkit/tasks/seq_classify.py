"""Sequence classification: one class per string (text language, molecule class), cross-entropy on the
logits of a 1-D CNN over its tokens; accuracy, macro-F1 and the confusion matrix as for images
(`tasks.classify.ClassificationMetric`, torchmetrics)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.tasks import TASKS
from cnnkit.tasks.classify import ClassificationMetric, label_text
from cnnkit.tasks.sequence import SequenceTask


@TASKS.register("seq_classify")
class SeqClassifyTask(SequenceTask):
    name = "seq_classify"
    monitor = ("accuracy", "max")
    headline = ("accuracy", "macro_f1")

    def num_outputs(self, info: DatasetInfo) -> int:
        return info.num_classes

    def loss(self, model: nn.Module, batch):
        smoothing = (self.cfg.train.label_smoothing or 0.0) if self.cfg is not None else 0.0
        return F.cross_entropy(model(batch[0]), batch[1], label_smoothing=smoothing), {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch) -> torch.Tensor:
        """N x K logits (with TTA: their mean over the variants)."""
        return self.forward_tta(model, batch)

    def new_metric(self, info: DatasetInfo) -> ClassificationMetric:
        return ClassificationMetric(info.classes)

    def answer(self, record: dict[str, Any], top_k: int = 1, **options: Any) -> str:
        return label_text(record, top_k)

    def record(self, logits: torch.Tensor, image: Any, meta: dict[str, Any], index: int, top_k: int = 5,
               **options: Any) -> dict[str, Any]:
        classes = meta["classes"]
        p, idx = logits.float().softmax(0).topk(min(top_k, len(classes)))
        return {"label": classes[int(idx[0])], "score": float(p[0]),
                "top": [{"label": classes[int(i)], "score": float(s)} for s, i in zip(p, idx)]}

    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        """The test split's confusion matrix."""
        from cnnkit.report.plots import plot_confusion

        if "confusion_matrix" not in test_metrics:
            return []
        return [plot_confusion(test_metrics["confusion_matrix"], bundle.info.classes,
                               run_dir / "plots" / "confusion_matrix.png")]
