"""Sequence regression: its metrics equal scikit-learn's / scipy's; standardised targets; Huber loss."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from cnnkit.tasks.seq_regress import RegressionMetric


def test_regression_metrics_match_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(6, 1, 200)
    p = y + rng.normal(0, 0.5, 200)
    p[:20] = np.round(p[:20], 0)  # ties for Spearman's average ranks
    metric = RegressionMetric()
    for i in range(0, 200, 64):  # several batches, as evaluate feeds it
        metric.update(torch.tensor(p[i:i + 64], dtype=torch.float32),
                      (None, torch.tensor(y[i:i + 64], dtype=torch.float32)))
    out = metric.compute()
    y32, p32 = y.astype(np.float32).astype(np.float64), p.astype(np.float32).astype(np.float64)
    assert out["r2"] == pytest.approx(r2_score(y32, p32), abs=1e-6)
    assert out["rmse"] == pytest.approx(mean_squared_error(y32, p32) ** 0.5, abs=1e-6)
    assert out["mae"] == pytest.approx(mean_absolute_error(y32, p32), abs=1e-6)
    assert out["spearman"] == pytest.approx(spearmanr(y32, p32).statistic, abs=1e-6)


def test_fewer_than_two_values_are_undefined():
    metric = RegressionMetric()
    metric.update(torch.tensor([1.0]), (None, torch.tensor([2.0])))
    assert all(np.isnan(v) for v in metric.compute().values())
