"""Trainer behaviour: NaN stops with a sentence and keeps the last good epoch; early stopping keeps
the best weights; EMA and layer-list models train; the config is resolved into the run dir."""
import csv
import json

import pytest
import torch
import yaml

import cnnkit
from cnnkit.cli import main


def test_nan_loss_stops_naming_epoch_and_step(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data", "digits", "--model", "lenet5", "--epochs", "3", "--out", str(out),
                 "--lr", "1e30", "--schedule", "constant", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert "The loss became" in err and "epoch 1, step" in err and "Traceback" not in err


def test_nan_after_a_good_epoch_keeps_it(tmp_path, monkeypatch):
    from cnnkit.tasks.classify import ClassifyTask

    calls = {"n": 0}
    original = ClassifyTask.loss

    def flaky_loss(self, model, batch):
        calls["n"] += 1
        loss, parts = original(self, model, batch)
        return (loss * float("nan"), parts) if calls["n"] > 45 else (loss, parts)  # epoch 2 (39 steps/epoch)

    monkeypatch.setattr(ClassifyTask, "loss", flaky_loss)
    with pytest.raises(cnnkit.errors.CnnkitError, match="epoch 2, step 7"):
        cnnkit.train(data="digits", model="lenet5", epochs=3, out=str(tmp_path / "r"), quiet=True)
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert last["meta"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    run = cnnkit.train(data="digits", model="lenet5", epochs=12, patience=2, lr=0.3, schedule="constant",
                       out=str(tmp_path / "es"), quiet=True)
    rows = list(csv.DictReader(open(run.dir / "metrics.csv")))
    accs = [float(r["val_accuracy"]) for r in rows]
    best_epoch = max(range(len(accs)), key=lambda i: (accs[i], -i)) + 1
    best = torch.load(run.dir / "best.pt", weights_only=True)
    assert best["meta"]["epoch"] == best_epoch == run.summary["best_epoch"]
    assert len(rows) < 12 or best_epoch >= 10  # stopped early unless it kept improving
    assert best["meta"]["metrics"]["accuracy"] == pytest.approx(max(accs))


def test_ema_and_layer_list_model_train_and_reload(tmp_path):
    spec = {"layers": [{"type": "conv", "out": 8, "bn": True, "act": "relu"}, {"type": "pool", "k": 2},
                       "flatten", {"type": "linear"}]}
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(spec))
    run = cnnkit.train(data="digits", model=str(path), epochs=2, ema=True, ema_decay=0.9,
                       out=str(tmp_path / "spec"), quiet=True)
    cfg = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert cfg["model"]["name"] == "spec" and cfg["model"]["kwargs"]["layers"]
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["lr"] is not None  # defaults resolved and written
    path.unlink()  # the checkpoint alone must be enough
    preds = cnnkit.load(run.dir).predict([torch.zeros(1, 8, 8, dtype=torch.uint8)])
    assert preds[0]["label"] in [str(i) for i in range(10)]


def test_info_prints_per_layer_table(capsys):
    assert main(["info", "lenet5", "--data", "digits", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["params"] == 61706
    assert any(r["type"] == "Conv2d" for r in table["rows"])


def test_channels_last_trains_the_same_model(tmp_path):
    """NHWC weights change only the memory layout: the same seed gives the same run (float tolerance)."""
    runs = [cnnkit.train(data="digits", model="smallcnn", epochs=1, channels_last=cl, threads=1,
                         out=str(tmp_path / f"cl{int(cl)}"), quiet=True) for cl in (False, True)]
    nchw, nhwc = (torch.load(r.best, weights_only=True)["model"] for r in runs)
    assert nhwc["features.stage1.conv.0.weight"].is_contiguous(memory_format=torch.channels_last)
    for k, v in nchw.items():
        if v.is_floating_point():
            assert torch.allclose(v, nhwc[k], atol=1e-4), k
    assert runs[1].test_metrics["accuracy"] == pytest.approx(runs[0].test_metrics["accuracy"], abs=0.01)
    reloaded = cnnkit.load(runs[1].dir).predict([torch.zeros(1, 8, 8, dtype=torch.uint8)])
    assert reloaded[0]["label"] in [str(i) for i in range(10)]


def test_train_says_which_defaults_it_picked(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "r"), "--threads", "1"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "defaults for digits (1,259 training images, 8x8 px): model lenet5, image size 32," in err
    assert "label_smoothing 0.1" in err and "weight_decay 0.0005" in err  # every picked key with its value
    assert "epochs" not in err.split("defaults for digits")[1].split(";")[0]  # --epochs was given, not picked


def test_the_picked_line_says_why_mixed_precision_is_on_or_off():
    """train.amp is the one default that depends on the machine, not the data: the line says so."""
    from types import SimpleNamespace

    from cnnkit.data.base import DatasetInfo
    from cnnkit.engine.trainer import picked_text

    def line(amp, device="cpu"):
        run = SimpleNamespace(info=DatasetInfo("detect", ["a"], 1, 96, name="d"), bundle=SimpleNamespace(train=[0] * 3),
                              task=SimpleNamespace(target="boxes"), device=torch.device(device),
                              picked={"train.epochs": 13, "train.amp": amp})
        return picked_text(run)

    assert line(True) == ("defaults for d (3 training images): epochs 13, amp on (bfloat16: this CPU computes it "
                          "natively); any flag overrides them")
    assert "amp off (this CPU has no native bfloat16)" in line(False)
    assert "amp off;" in line(False, "meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the note is for a run without CUDA")
def test_amp_on_a_cpu_without_bf16_says_it_trains_in_float32(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cnnkit.devices.cpu_has_bf16", lambda: False)
    out = tmp_path / "r"
    assert main(["train", "--data", "digits", "--model", "lenet5", "--epochs", "1", "--out", str(out), "--threads",
                 "1", "--set", "train.amp=true"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert ("note: train.amp (mixed precision) runs on CUDA and on CPUs with native bfloat16 (AVX512-BF16 or "
            "AMX); this run on cpu trains in float32.") in err
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["amp"] is True  # kept as asked


def test_amp_on_a_cpu_with_bf16_trains_under_bfloat16_autocast(tmp_path, monkeypatch):
    """train.amp on a CPU with native bf16: the forward pass runs in bfloat16 (no GradScaler), so the
    weights differ from the float32 run's by bf16 rounding, and the model learns as well."""
    from cnnkit.tasks.classify import ClassifyTask

    monkeypatch.setattr("cnnkit.devices.cpu_has_bf16", lambda: True)  # bf16 is emulated where it is not
    seen = []
    original = ClassifyTask.loss

    def loss(self, model, batch):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return original(self, model, batch)

    monkeypatch.setattr(ClassifyTask, "loss", loss)
    runs = [cnnkit.train(data="digits", model="lenet5", epochs=2, threads=1, out=str(tmp_path / f"amp{int(a)}"),
                         quiet=True, train__amp=a) for a in (False, True)]
    n32 = len(seen) // 2
    assert not any(seen[:n32]) and seen[n32:] and all(seen[n32:])
    fp32, bf16 = (torch.load(r.best, weights_only=True)["model"] for r in runs)
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32 if fp32[k].is_floating_point())
    assert runs[1].test_metrics["accuracy"] > 0.8
    assert runs[1].test_metrics["accuracy"] == pytest.approx(runs[0].test_metrics["accuracy"], abs=0.05)
