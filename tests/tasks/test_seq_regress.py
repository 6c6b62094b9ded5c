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


def test_cli_predict_table_shows_each_string_and_its_value(tmp_path, capsys, monkeypatch):
    """`cnnkit predict` prints "string -> value" per input where it printed a raw dict; --json stays the record."""
    import json

    import cnnkit
    from cnnkit.cli import main
    from cnnkit.report import console as show

    data = tmp_path / "reg.csv"
    rows = [f"{'a' * (i % 7 + 1)}b{i},{(i % 7) * 0.5 + 1}" for i in range(60)]
    data.write_text("text,value\n" + "\n".join(rows) + "\n")
    run = cnnkit.train(data=str(data), epochs=1, batch_size=8, out=str(tmp_path / "run"), quiet=True, threads=1,
                       kwargs={"channels": 8, "embed_dim": 8})
    assert run.summary["task"] == "seq_regress"
    monkeypatch.setattr(show.console, "width", 200)
    long = "a" * 60
    assert main(["predict", str(run.dir), "aaab", long, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [set(r) for r in records] == [{"file", "input", "value"}] * 2
    assert main(["predict", str(run.dir), "aaab", long]) == 0
    rows = [line.split("│")[1:3] for line in capsys.readouterr().out.splitlines() if "<input" in line]
    assert [(f.strip(), p.strip()) for f, p in rows] == [
        ("<input 1>", f"aaab -> {records[0]['value']:.4g}"),
        ("<input 2>", f"{'a' * 39}… -> {records[1]['value']:.4g}")]
