"""Adding a task is one file: a task defined here — regress a digit's value (0-9) as a float on
`digits` — is registered in TASKS and trained, evaluated and used to predict through the public
API, with no change anywhere else. Its metric (MAE, RMSE) is checked against numpy."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import cnnkit
from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.tasks import TASKS
from cnnkit.tasks.base import Task, image_side

NAME = "digit-value"


class ValueMetric:
    def __init__(self):
        self.abs_sum = self.sq_sum = 0.0
        self.n = 0

    def update(self, preds: torch.Tensor, batch) -> None:
        err = preds.double().cpu() - batch[1].double().cpu()
        self.abs_sum += float(err.abs().sum())
        self.sq_sum += float((err ** 2).sum())
        self.n += len(err)

    def compute(self) -> dict[str, Any]:
        n = max(self.n, 1)
        return {"mae": self.abs_sum / n, "rmse": (self.sq_sum / n) ** 0.5, "loss": self.sq_sum / n, "images": self.n}


class DigitValueTask(Task):
    """The digit's class index read as a number: one output, MSE loss."""

    name = NAME
    output, target = "value", "label"  # a float per image; the data's class labels are the targets
    monitor = ("mae", "min")
    headline = ("mae", "rmse")

    def defaults(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        return {"model.name": "lenet5", "data.image_size": 32, "data.augment": "none", "train.epochs": 4,
                "train.batch_size": 32, "train.lr": 0.01 if cfg.train.optimizer == "sgd" else 5e-3,
                "train.weight_decay": 5e-4 if cfg.train.optimizer == "sgd" else 0.05}

    def preprocessing(self, cfg: Config, info: DatasetInfo) -> dict[str, Any]:
        c = info.channels
        return {"size": image_side(cfg.data.image_size), "channels": c,
                "mean": list(info.extra.get("mean", [0.5] * c)), "std": list(info.extra.get("std", [0.5] * c))}

    def loader(self, split, cfg: Config, info: DatasetInfo, train: bool):
        from cnnkit.data.loader import classification_loader

        return classification_loader(split, self.preprocessing(cfg, info), cfg.train.batch_size, train,
                                     cfg.train.seed, info.channels, "none", False, info.num_classes)

    def to_device(self, batch, device: torch.device):
        x, y = batch
        return x.to(device), y.to(device).float()

    def build_model(self, cfg: Config, info: DatasetInfo) -> nn.Module:
        from cnnkit.models import build_model

        return build_model(cfg.model.name, num_classes=1, in_channels=info.channels,
                           image_size=image_side(cfg.data.image_size)[0])

    def loss(self, model: nn.Module, batch):
        return F.mse_loss(model(batch[0])[:, 0], batch[1]), {}

    @torch.no_grad()
    def predict(self, model: nn.Module, batch) -> torch.Tensor:
        return model(batch[0])[:, 0]

    def new_metric(self, info: DatasetInfo) -> ValueMetric:
        return ValueMetric()

    def predict_one(self, model: nn.Module, x: torch.Tensor, image: torch.Tensor, **options) -> float:
        return float(model(x)[0, 0])

    def record(self, value: float, image: torch.Tensor, meta: dict[str, Any], index: int, **options) -> dict:
        return {"value": value}


TASKS.register(NAME)(DigitValueTask)


@pytest.fixture(scope="module")
def value_run(tmp_path_factory):
    return cnnkit.train(data="digits", task=NAME, train__optimizer="adamw", seed=0, quiet=True,
                        out=str(tmp_path_factory.mktemp("runs") / "value"))


def test_trains_and_its_metric_matches_numpy(value_run):
    assert value_run.summary["task"] == NAME
    test = value_run.test_metrics
    # Recompute on the test split from the checkpoint with numpy alone.
    from cnnkit.data import build_data

    predictor = cnnkit.load(value_run.dir, device="cpu")
    split = build_data(predictor.cfg).test
    with torch.no_grad():
        preds = predictor.model(predictor.preprocess(list(split.images))).double()[:, 0].numpy()
    err = preds - np.asarray(split.labels, dtype=np.float64)
    assert test["images"] == len(err)
    assert test["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-6)
    assert test["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-6)
    assert test["mae"] < 2.0  # it learns: predicting the mean value (4.5) for every image gives ~2.5 (1.19 seen)


def test_evaluate_reproduces_the_test_metrics(value_run):
    again = cnnkit.evaluate(value_run.dir)
    assert again["mae"] == pytest.approx(value_run.test_metrics["mae"], rel=1e-6)
    assert again["rmse"] == pytest.approx(value_run.test_metrics["rmse"], rel=1e-6)


def test_predict_files_and_tensors(value_run, tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    paths = []
    for i in (0, 7):
        paths.append(tmp_path / f"d{i}.png")
        Image.fromarray((d.images[i] * 255 / 16).round().astype("uint8")).save(paths[-1])
    predictor = cnnkit.load(value_run.dir, device="cpu")
    records = predictor.predict([str(p) for p in paths], save_dir=tmp_path / "out")
    assert [r["file"] for r in records] == [str(p) for p in paths]
    for r, p in zip(records, paths):
        img = torch.from_numpy(np.array(Image.open(p)))[None]
        with torch.no_grad():
            expect = float(predictor.model(predictor.preprocess([img]))[0, 0])
        assert r["value"] == pytest.approx(expect, abs=1e-6)
    assert not list((tmp_path / "out").glob("*.png"))  # the task draws nothing: nothing is written
