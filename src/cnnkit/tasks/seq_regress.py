"""Sequence regression: one number per string (a molecule's pIC50 from its SMILES), MSE or Huber loss.

The model predicts the target standardised with the training split's mean and std (stored in the
checkpoint), which keeps the loss scale and the learning rate independent of the units; predictions
and metrics are in the data's own units. Metrics: RMSE, MAE, R² and Spearman's rho (torchmetrics,
in float64; tests check them against scikit-learn and scipy). `--set model.kwargs.loss=huber`
picks the Huber loss (delta 1 standard deviation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional import (mean_absolute_error, mean_squared_error, r2_score,
                                     spearman_corrcoef)

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.errors import CnnkitError
from cnnkit.tasks import TASKS
from cnnkit.tasks.sequence import SequenceTask

LOSSES = ("mse", "huber")


class RegressionMetric:
    """RMSE, MAE, R², Spearman's rho and the MSE loss over all predictions (N,) and targets (N,)."""

    def __init__(self):
        self.preds: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, preds: torch.Tensor, batch) -> None:
        self.preds.append(preds.detach().double().cpu().flatten())
        self.targets.append(batch[1].detach().double().cpu().flatten())

    def compute(self) -> dict[str, Any]:
        p = torch.cat(self.preds) if self.preds else torch.zeros(0, dtype=torch.float64)
        t = torch.cat(self.targets) if self.targets else torch.zeros(0, dtype=torch.float64)
        if len(p) < 2:
            nan = float("nan")
            return {"r2": nan, "rmse": nan, "mae": nan, "spearman": nan, "loss": nan}
        mse = float(mean_squared_error(p, t))
        return {"r2": float(r2_score(p, t)), "rmse": mse ** 0.5, "mae": float(mean_absolute_error(p, t)),
                "spearman": float(spearman_corrcoef(p, t)), "loss": mse}


@TASKS.register("seq_regress")
class SeqRegressTask(SequenceTask):
    name = "seq_regress"
    monitor = ("r2", "max")
    headline = ("r2", "rmse", "spearman")

    def num_outputs(self, info: DatasetInfo) -> int:
        return 1

    def model_kwargs(self, cfg: Config) -> dict[str, Any]:
        return {k: v for k, v in cfg.model.kwargs.items() if k != "loss"}

    def _scale(self) -> tuple[float, float]:
        seq = self.sequence(self.info)
        return float(seq["target_mean"]), float(seq["target_std"])

    def loss(self, model: nn.Module, batch):
        mean, std = self._scale()
        pred, target = model(batch[0]).float().squeeze(1), (batch[1].float() - mean) / std
        kind = str(self.cfg.model.kwargs.get("loss", "mse")) if self.cfg is not None else "mse"
        if kind not in LOSSES:
            raise CnnkitError(f'model.kwargs.loss "{kind}" is not a regression loss: use one of {", ".join(LOSSES)}.')
        loss = F.mse_loss(pred, target) if kind == "mse" else F.huber_loss(pred, target, delta=1.0)
        return loss, {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch) -> torch.Tensor:
        """N predicted values in the data's units (with TTA: the mean over the variants)."""
        mean, std = self._scale()
        return self.forward_tta(model, batch).squeeze(1) * std + mean

    def new_metric(self, info: DatasetInfo) -> RegressionMetric:
        return RegressionMetric()

    def answer(self, record: dict[str, Any], **options: Any) -> str:
        return f"{record['value']:.4g}"

    def record(self, out: torch.Tensor, image: Any, meta: dict[str, Any], index: int, **options: Any) -> dict[str, Any]:
        seq = meta["preprocess"]["sequence"]
        return {"value": float(out.flatten()[0]) * float(seq["target_std"]) + float(seq["target_mean"])}

    def plots(self, run_dir: Path, model: nn.Module, bundle: DataBundle, device: torch.device,
              test_metrics: dict[str, Any]) -> list[Path]:
        """Predicted against measured values on the test split (plots/test_scatter.png)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not len(bundle.test):
            return []
        model.eval()
        preds = [self.predict(model, self.to_device(b, device)).cpu() for b in self.loader(
            bundle.test, self.cfg, bundle.info, train=False)]
        p, y = torch.cat(preds).numpy(), bundle.test.targets.numpy()
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(y, p, s=8, alpha=0.6)
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
        r2 = test_metrics.get("r2")
        ax.set_title(f"test split ({len(y)}): R² {r2:.3f}" if r2 is not None else "test split")
        path = run_dir / "plots" / "test_scatter.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return [path]
