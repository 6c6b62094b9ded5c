"""cnnkit's character CNN against scikit-learn's character n-gram TF-IDF + logistic regression on the
built-in `fortunes-langid` set (language identification of Debian's fortune quotations, 9 languages).

Both use cnnkit's fixed split of the set (by a hash of each text; no duplicate crosses splits). The
CNN trains on train, chooses its best epoch on val; the baseline (TfidfVectorizer(analyzer="char_wb",
ngram_range=(1, 4), sublinear_tf=True, min_df=2) + LogisticRegression(C=10, max_iter=2000)) fits on
train + val. Test accuracy and macro-F1 for both; writes bench/results/text_baseline.json.

    taskset -c 1 .venv/bin/python bench/text_baseline.py [--set key=value ...]   # CNN config overrides
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

CNN = {"data": "fortunes-langid", "model": "textcnn", "optimizer": "adamw", "epochs": 2, "batch_size": 64,
       "lr": 2e-3, "weight_decay": 0.01, "max_length": 96, "threads": 1}


def baseline() -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    from cnnkit.config import Config
    from cnnkit.data import build_data

    cfg = Config()
    cfg.data.name = "fortunes-langid"
    b = build_data(cfg)
    t = time.perf_counter()
    pipe = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=2),
                         LogisticRegression(C=10, max_iter=2000))
    pipe.fit(b.train.texts + b.val.texts, b.train.targets.tolist() + b.val.targets.tolist())
    pred = pipe.predict(b.test.texts)
    y = b.test.targets.tolist()
    return {"accuracy": float(accuracy_score(y, pred)), "macro_f1": float(f1_score(y, pred, average="macro")),
            "seconds": time.perf_counter() - t, "sizes": [len(b.train), len(b.val), len(b.test)],
            "classes": b.info.classes}


def main() -> None:
    import cnnkit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", nargs="*", default=[], help="CNN config overrides key=value")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "text_baseline.json"))
    args = ap.parse_args()
    base = baseline()
    print(f"TF-IDF + LR: accuracy {base['accuracy']:.4f}, macro-F1 {base['macro_f1']:.4f} ({base['seconds']:.0f} s)",
          flush=True)
    recipe = {**CNN, **dict(item.split("=", 1) for item in args.set)}
    with tempfile.TemporaryDirectory() as tmp:
        t, cpu = time.perf_counter(), time.process_time()
        run = cnnkit.train(quiet=True, out=str(Path(tmp) / "run"), **recipe)
        seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    m = run.test_metrics
    cnn = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "seconds": round(seconds, 1),
           "cpu_seconds": round(cpu_seconds, 1)}
    print(f"CNN ({recipe['model']}): accuracy {cnn['accuracy']:.4f}, macro-F1 {cnn['macro_f1']:.4f} "
          f"({seconds:.0f} s, {cpu_seconds:.0f} s CPU)")
    result = {"cnn": cnn, "tfidf_logreg": base, "cnn_recipe": recipe,
              "accuracy_gap_points": round(100 * (cnn["accuracy"] - base["accuracy"]), 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("cnn", "accuracy_gap_points")}))


if __name__ == "__main__":
    main()
