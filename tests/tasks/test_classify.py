"""Classification task: metrics equal sklearn's; eval/predict through the public API and CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, top_k_accuracy_score

import cnnkit
from cnnkit.cli import main
from cnnkit.tasks.classify import ClassificationMetric


def test_metrics_match_sklearn_reference():
    g = torch.Generator().manual_seed(0)
    classes = [f"c{i}" for i in range(7)]
    metric = ClassificationMetric(classes)
    all_logits, all_y = [], []
    for _ in range(4):
        logits = torch.randn(50, 7, generator=g)
        y = torch.randint(0, 7, (50,), generator=g)
        logits[y < 3, 0] += 2  # make it better than chance, unevenly
        metric.update(logits, (None, y))
        all_logits.append(logits)
        all_y.append(y)
    logits, y = torch.cat(all_logits).numpy(), torch.cat(all_y).numpy()
    pred = logits.argmax(1)
    m = metric.compute()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-6)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-6)
    assert m["top5"] == pytest.approx(top_k_accuracy_score(y, logits, k=5, labels=range(7)), abs=1e-6)
    assert np.array_equal(np.array(m["confusion_matrix"]), confusion_matrix(y, pred, labels=range(7)))
    ref_f1 = f1_score(y, pred, average=None, labels=range(7), zero_division=0)
    assert [m["per_class"][c]["f1"] for c in classes] == pytest.approx(ref_f1.tolist(), abs=1e-6)


@pytest.mark.parametrize("k", [2, 5, 6])
def test_top5_only_with_more_than_five_classes(k):
    g = torch.Generator().manual_seed(0)
    metric = ClassificationMetric([f"c{i}" for i in range(k)])
    assert ("top5" in metric.compute()) == (k > 5)  # no images yet: n/a, but the same keys
    metric.update(torch.randn(20, k, generator=g), (None, torch.randint(0, k, (20,), generator=g)))
    assert ("top5" in metric.compute()) == (k > 5)


def test_three_classes_report_no_top5_anywhere(tmp_path, capsys):
    """With <= 5 classes top-5 accuracy is 1.0 by definition: the train log, metrics.csv, summary,
    report, eval table and --json leave it out, and the run's plots are still drawn."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path / "three"
    for label in (0, 1, 2):
        (root / str(label)).mkdir(parents=True)
        for i, img in enumerate(d.images[d.target == label][:30]):
            Image.fromarray((img * 255 / 16).astype(np.uint8)).save(root / str(label) / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "--data", str(root), "--model", "lenet5", "--epochs", "1", "--threads", "1",
                 "--out", str(out)]) == 0
    done = [line for line in capsys.readouterr().err.splitlines() if line.startswith("done test:")]
    assert len(done) == 1 and "accuracy" in done[0] and "top5" not in done[0]
    assert "accuracy" in (out / "metrics.csv").read_text() and "top5" not in (out / "metrics.csv").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert "accuracy" in summary["test"] and "top5" not in summary["test"] and "top5" not in summary["val"]
    assert "top5" not in (out / "report.html").read_text() and (out / "plots" / "metrics.png").exists()
    assert main(["eval", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert "accuracy" in metrics and "top5" not in metrics
    assert main(["eval", str(out)]) == 0
    table = capsys.readouterr().out
    assert "accuracy" in table and "top5" not in table


def _digit_pngs(tmp_path, n=6):
    from sklearn.datasets import load_digits

    d = load_digits()
    paths = []
    for i in range(n):
        arr = (d.images[-(i + 1)] * 255 / 16).round().astype(np.uint8)
        p = tmp_path / f"digit_{i}_{d.target[-(i + 1)]}.png"
        Image.fromarray(arr).convert("RGB").save(p)  # RGB on purpose: converted to the model's 1 channel
        paths.append(p)
    return paths


def test_run_directory_is_complete(digits_run):
    d = digits_run.dir
    for name in ("config.yaml", "metrics.csv", "best.pt", "last.pt", "summary.json", "report.html",
                 "plots/loss.png", "plots/metrics.png", "plots/confusion_matrix.png"):
        assert (d / name).exists(), name
    assert len((d / "metrics.csv").read_text().strip().splitlines()) == 1 + 4
    assert list((d / "tensorboard").glob("events.*"))
    summary = json.loads((d / "summary.json").read_text())
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0 and summary["environment"]["torch"]


def test_eval_json_reports_the_named_metrics(digits_run, capsys):
    assert main(["eval", str(digits_run.dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "top5", "macro_f1", "per_class", "confusion_matrix"):
        assert key in metrics
    assert metrics["images"] == sum(map(sum, metrics["confusion_matrix"]))
    assert metrics["accuracy"] == pytest.approx(digits_run.test_metrics["accuracy"])


def test_predict_files_folder_and_glob(digits_run, tmp_path, capsys):
    paths = _digit_pngs(tmp_path)
    assert main(["predict", str(digits_run.dir), str(tmp_path), "--json", "--top-k", "3"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(paths)
    for r in records:
        assert len(r["top"]) == 3 and r["top"][0]["label"] == r["label"]
        assert abs(sum(t["score"] for t in r["top"])) <= 1.0 + 1e-6
    assert main(["predict", str(digits_run.dir), str(tmp_path / "digit_*.png"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(paths)


def test_python_api_predict_on_tensors_matches_files(digits_run, tmp_path):
    paths = _digit_pngs(tmp_path, 3)
    predictor = cnnkit.load(digits_run.dir)
    from_files = predictor.predict([str(p) for p in paths])
    tensors = [torch.from_numpy(np.array(Image.open(p).convert("L")))[None] for p in paths]
    from_tensors = predictor.predict(tensors)
    assert [r["label"] for r in from_files] == [r["label"] for r in from_tensors]
    assert [r["score"] for r in from_files] == pytest.approx([r["score"] for r in from_tensors], abs=1e-5)


def test_predict_reports_unreadable_files(digits_run, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rec = cnnkit.load(digits_run.dir).predict([str(bad)])
    assert rec[0]["file"] == str(bad) and "error" in rec[0]


@pytest.mark.parametrize("side,n_train,model", [(28, 54_000, "smallcnn"), (32, 5_000, "smallcnn"),
                                                (8, 1_259, "lenet5"), (28, 4_999, "lenet5"), (64, 50_000, "lenet5")])
def test_default_model_follows_data_size_and_resolution(side, n_train, model):
    from cnnkit.tasks.classify import default_model

    assert default_model(side, n_train) == model


def test_smallcnn_defaults_scale_epochs_with_the_training_set():
    from cnnkit.config import Config
    from cnnkit.data.base import DatasetInfo
    from cnnkit.tasks.classify import SMALLCNN_IMAGES, ClassifyTask

    def picked(n_train, **train):
        cfg = Config()
        for k, v in train.items():
            cfg.set(f"train.{k}", v)
        info = DatasetInfo(task="classify", classes=list("0123456789"), channels=1, image_size=28, name="x")
        info.extra["n_train"] = n_train
        return ClassifyTask().defaults(cfg, info)

    assert picked(54_000)["model.name"] == "smallcnn" and picked(54_000)["train.epochs"] == 3
    assert picked(10_000)["train.epochs"] == round(SMALLCNN_IMAGES / 10_000)
    assert picked(1_259)["train.epochs"] == picked(42)["train.epochs"] == 40  # capped, not 129 or 3,857
    assert picked(54_000, epochs=7)["train.epochs"] == 7
    assert picked(54_000)["data.image_size"] == 28 and picked(54_000)["train.channels_last"] is True


def test_predict_table_lists_the_top_k_classes_asked_for(digits_run, tmp_path, capsys):
    """`--top-k 3` lists three "class (score)" pairs per row, best first, the same as the JSON records;
    without it the table shows the top class alone."""
    _digit_pngs(tmp_path, 2)
    assert main(["predict", str(digits_run.dir), str(tmp_path), "--json", "--top-k", "3"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert main(["predict", str(digits_run.dir), str(tmp_path), "--top-k", "3"]) == 0
    table = capsys.readouterr().out
    for r in records:
        assert ", ".join(f"{t['label']} ({t['score']:.3f})" for t in r["top"]) in table
    assert main(["predict", str(digits_run.dir), str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for r in records:
        assert f"{r['label']} ({r['score']:.3f})" in table and f"{r['top'][1]['label']} ({r['top'][1]['score']:.3f})" not in table
