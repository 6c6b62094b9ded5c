"""Faithfulness of cnnkit's explanations on LeNet-5 trained on the built-in digits (issue 5's check).

Trains LeNet-5 on `digits` with the default recipe (or reuses --run), explains the first 100
test images with each method, and runs `cnnkit explain --evaluate`'s two checks:
deletion/insertion AUC against a random pixel order, and the cascading model-randomisation
check (Spearman rank correlation of trained vs re-initialised maps). Writes
bench/results/explain_faithfulness.json.

Pass criteria checked here (printed and stored under "checks"):
  - Grad-CAM's deletion AUC beats the random order on >= 90% of the 100 images;
  - the randomisation rank correlation is < 0.5 for Grad-CAM and integrated gradients.

    .venv/bin/python bench/explain_faithfulness.py [--run RUN_DIR] [--images 100] [--methods gradcam,ig]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

ALL = "gradcam,gradcam++,saliency,smoothgrad,guided-backprop,guided-gradcam,ig,occlusion"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="an existing digits LeNet-5 run directory (default: train one)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--methods", default=ALL)
    ap.add_argument("--steps", type=int, default=50, help="integrated-gradients steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "explain_faithfulness.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import cnnkit
    from cnnkit.config import Config
    from cnnkit.data import build_data
    from cnnkit.explain.api import run
    from cnnkit.explain.faithfulness import evaluate
    from cnnkit.explain.methods import parse_methods
    from cnnkit.explain.subject import from_path

    t0 = time.perf_counter()
    run_dir, scratch = args.run, None
    if run_dir is None:
        scratch = tempfile.mkdtemp(prefix="cnnkit-bench-")
        run_dir = str(Path(scratch) / "digits-lenet5")
        cnnkit.train(data="digits", model="lenet5", out=run_dir, quiet=True, threads=args.threads)
    train_s = time.perf_counter() - t0
    subject = from_path(run_dir)
    test = build_data(Config.from_dict(subject.meta["config"])).test
    n = min(args.images, len(test))
    imgs = [(f"test[{i}]", test.images[i]) for i in range(n)]
    methods = parse_methods(args.methods)
    options = {"steps": args.steps, "window": 8, "stride": 4}

    t1 = time.perf_counter()
    _, records = run(subject, imgs, methods, None, None, options, keep_records=True)
    explain_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    results = evaluate(subject.model, subject.run(records[0]["x"]), records, methods, options)
    evaluate_s = time.perf_counter() - t2

    for r in results.values():  # keep the JSON readable: curves are in the PNG of `cnnkit explain --evaluate`
        for key in [k for k in r if k.endswith("_curve") or k.endswith("_curve_random")]:
            r.pop(key)
    checks = {
        "gradcam_deletion_beats_random_fraction": results["gradcam"]["deletion_better_than_random"]
        if "gradcam" in results else None,
        "gradcam_randomisation_spearman": results.get("gradcam", {}).get("randomisation", {}).get("spearman"),
        "ig_randomisation_spearman": results.get("ig", {}).get("randomisation", {}).get("spearman"),
    }
    checks["pass"] = bool(
        (checks["gradcam_deletion_beats_random_fraction"] or 0) >= 0.9
        and (checks["gradcam_randomisation_spearman"] if checks["gradcam_randomisation_spearman"] is not None
             else 1) < 0.5
        and (checks["ig_randomisation_spearman"] if checks["ig_randomisation_spearman"] is not None else 1) < 0.5)
    report = {
        "benchmark": "explain_faithfulness", "data": "digits", "model": "lenet5",
        "run": run_dir if scratch is None else "trained for this benchmark (default recipe), then deleted",
        "recipe": {k: subject.meta["config"]["train"].get(k) for k in
                   ("epochs", "batch_size", "lr", "optimizer", "schedule", "label_smoothing", "seed")},
        "test_accuracy": subject.meta.get("metrics", {}).get("accuracy"), "images": n, "options": options,
        "layer": {m: records[0]["layers"].get(m) for m in methods},
        "protocol": "deletion to zero model input (dataset mean colour), insertion from a blurred input, "
                    "32 steps over the 32x32 model-input pixels, softmax probability of the predicted class; "
                    "random order = one random pixel permutation per image; randomisation = cascading "
                    "re-initialisation from the output layer down, verdict at the fully re-initialised model",
        "methods": results, "checks": checks,
        "seconds": {"train": round(train_s, 1), "explain": round(explain_s, 1), "evaluate": round(evaluate_s, 1)},
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "threads": args.threads, "machine": platform.machine()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, r in results.items():
        rnd = r.get("randomisation", {})
        print(f"{name:16s} deletion {r['deletion_auc']:.3f} vs random {r['deletion_auc_random']:.3f} "
              f"(beats random on {r['deletion_better_than_random']:.0%}), insertion {r['insertion_auc']:.3f} vs "
              f"{r['insertion_auc_random']:.3f} ({r['insertion_better_than_random']:.0%}), randomisation rho "
              f"{rnd.get('spearman', float('nan')):.3f} (|map| {rnd.get('spearman_abs', float('nan')):.3f})")
    print(json.dumps(checks))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
