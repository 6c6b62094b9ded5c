"""Sequence classification through the public API: a text,label CSV trains, predicts strings (top class
and scores), evaluates with accuracy/macro-F1, and a confusion matrix is drawn."""
import re

import cnnkit


def test_text_csv_train_predict_eval(tmp_path):
    rows = [f"the quick brown fox {i},en" for i in range(40)] + [f"der schnelle braune fuchs {i},de" for i in range(40)]
    data = tmp_path / "lang.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    run = cnnkit.train(data=str(data), epochs=8, batch_size=8, lr=0.01, out=str(tmp_path / "run"), quiet=True, threads=1,
                       optimizer="adamw",
                       kwargs={"channels": 8, "embed_dim": 8})
    assert run.test_metrics["accuracy"] == 1.0 and run.test_metrics["macro_f1"] == 1.0
    assert (tmp_path / "run" / "plots" / "confusion_matrix.png").exists()
    records = cnnkit.load(tmp_path / "run").predict(["the brown fox", "der braune fuchs", "zzz"])
    assert [r["label"] for r in records[:2]] == ["en", "de"]
    assert abs(sum(t["score"] for t in records[2]["top"]) - 1) < 1e-5  # unseen characters: <unk>, still a prediction
    metrics = cnnkit.evaluate(tmp_path / "run", data=str(data), split="val")
    assert metrics["accuracy"] == 1.0 and metrics["images"] == 8


def test_cli_speaks_of_sequences_not_images(tmp_path, capsys):
    from cnnkit.cli import main

    rows = [f"the quick brown fox {i},en" for i in range(30)] + [f"der schnelle braune fuchs {i},de" for i in range(30)]
    data = tmp_path / "lang.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "training sequences" in err and "seq/s" in err and "img/s" not in err
    assert main(["predict", str(out), "der braune fuchs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "<input 1>" in line)
    assert re.search(r"der braune fuchs -> (en|de) \(\d\.\d{3}\)", row)  # the string, its label and score
    assert main(["predict", str(out), ""]) == 2
    err = capsys.readouterr().err
    assert "give non-empty strings or .txt/.smi/.csv files of them" in err and "image" not in err
