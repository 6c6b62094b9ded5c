"""cnnkit's SMILES CNN against the field's standard QSAR baseline on the built-in `chembl2321810` set.

Baseline: scikit-learn's RandomForestRegressor (500 trees) on RDKit Morgan fingerprints (radius 2,
2,048 bits). Both models see the same splits, built by cnnkit's own data code:
  random    test = 10 % of the molecules, drawn with split_seed = seed (a new split per seed);
  scaffold  Bemis-Murcko scaffold split, test = 20 % (the rarer scaffolds), the same for every seed.
The CNN trains on the rest minus 10 % kept for validation (its best epoch is chosen on it); the
forest trains on the rest including that 10 % (it needs no validation). Metrics on the test split:
R², RMSE, Spearman's rho. Writes JSON: top-level "random" and "scaffold", each with
cnn_r2_mean, rf_r2_mean, cnn_rmse_mean, rf_rmse_mean, cnn_spearman_mean, rf_spearman_mean, the
per-seed lists (cnn_r2, rf_r2, ...) and the CNN's seconds per seed (wall clock, and CPU time of the
process: the core is shared, so the wall clock depends on the other work on it).

    taskset -c 1 .venv/bin/python bench/qsar_baseline.py [--seeds 0,1,2] [--splits random,scaffold]
        [--set key=value ...] [--tta K]  # CNN settings (cnnkit config keys); also score with K-variant TTA
    ... --merge A.json B.json ...       # one file from per-seed runs made in parallel
    ... --rf-from RESULTS.json          # reuse the (deterministic) forest figures when trying CNN settings
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

# The CNN recipe measured for this set (README "Beyond vision"): textcnn, AdamW, 25 epochs, no SMILES
# enumeration (with it, --set augment=strong, mean test R² fell from 0.685 to 0.408 on the random splits).
CNN = {"model": "textcnn", "optimizer": "adamw", "epochs": 25, "batch_size": 32, "lr": 2e-3, "weight_decay": 0.01,
       "augment": "none", "threads": 1}
TEST = {"random": 0.1, "scaffold": 0.2}


def morgan(smiles: list[str]) -> np.ndarray:
    """N x 2048 uint8 Morgan fingerprints (radius 2), RDKit's MorganGenerator."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return np.stack([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s)).astype(np.uint8) for s in smiles])


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_squared_error, r2_score

    return {"r2": float(r2_score(y, p)), "rmse": float(mean_squared_error(y, p) ** 0.5),
            "spearman": float(spearmanr(y, p).statistic)}


def data_keys(split: str, seed: int) -> dict:
    return {"data": "chembl2321810", "split_by": split, "split_seed": seed if split == "random" else 0,
            "test_fraction": TEST[split], "val_fraction": 0.1}


def run_rf(split: str, seed: int) -> dict[str, float]:
    from sklearn.ensemble import RandomForestRegressor

    from cnnkit.config import Config
    from cnnkit.data import build_data

    cfg = Config.from_dict({})
    for k, v in data_keys(split, seed).items():
        cfg.set(k if k != "data" else "data.name", v)
    b = build_data(cfg)
    fit_texts, fit_y = b.train.texts + b.val.texts, np.concatenate([b.train.targets.numpy(), b.val.targets.numpy()])
    rf = RandomForestRegressor(n_estimators=500, random_state=seed, n_jobs=1).fit(morgan(fit_texts), fit_y)
    out = scores(b.test.targets.numpy().astype(np.float64), rf.predict(morgan(b.test.texts)))
    out["sizes"] = [len(b.train) + len(b.val), len(b.test)]
    return out


def run_cnn(split: str, seed: int, extra: list[str], out: Path, tta: int = 0) -> dict[str, float]:
    import cnnkit

    out_dir = out / f"{split}-{seed}"
    t, cpu = time.perf_counter(), time.process_time()
    given = dict(item.split("=", 1) for item in extra)
    run = cnnkit.train(quiet=True, seed=seed, out=str(out_dir), **{**CNN, **data_keys(split, seed), **given})
    m = run.test_metrics
    scores = {"r2": m["r2"], "rmse": m["rmse"], "spearman": m["spearman"], "seconds": time.perf_counter() - t,
              "cpu_seconds": time.process_time() - cpu}
    if tta:
        scores["tta_r2"] = tta_r2(out_dir, tta)
    return scores


def tta_r2(run_dir: Path, k: int) -> float:
    """Test R² of a run's best.pt with test-time augmentation: the mean over the SMILES and k randomised ones."""
    from cnnkit.data import build_data
    from cnnkit.engine.evaluate import evaluate
    from cnnkit.engine.predictor import load

    p = load(run_dir, device="cpu")
    cfg = p.cfg.copy()
    cfg.data.tta = k
    test = build_data(cfg).test
    return float(evaluate(p.model, p.task.loader(test, cfg, p.info, train=False), p.task, p.device)["r2"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--splits", default="random,scaffold")
    ap.add_argument("--set", nargs="*", default=[], help="CNN config overrides key=value")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "qsar_baseline.json"))
    ap.add_argument("--merge", nargs="*", help="combine the per-seed lists of these result files into --out")
    ap.add_argument("--tta", type=int, default=0, help="also score each CNN with test-time augmentation (K variants)")
    ap.add_argument("--rf-from", help="take the forest's figures from this earlier result file (same seeds and splits)")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, Path(args.out))
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict = {"cnn_recipe": {**CNN, "set": args.set}, "rf": "RandomForestRegressor(500) on Morgan r=2 2048 bits",
                    "machine": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        for split in args.splits.split(","):
            per: dict[str, list] = {f"{m}_{k}": [] for m in ("cnn", "rf") for k in ("r2", "rmse", "spearman")}
            per["cnn_seconds"], per["cnn_cpu_seconds"] = [], []
            for seed in seeds:
                rf = run_rf(split, seed) if not args.rf_from else rf_from(args.rf_from, split, seed)
                cnn = run_cnn(split, seed, args.set, Path(tmp), args.tta)
                if args.tta:
                    per.setdefault("cnn_tta_r2", []).append(cnn["tta_r2"])
                for k in ("r2", "rmse", "spearman"):
                    per[f"rf_{k}"].append(rf[k])
                    per[f"cnn_{k}"].append(cnn[k])
                per["cnn_seconds"].append(round(cnn["seconds"], 1))
                per["cnn_cpu_seconds"].append(round(cnn["cpu_seconds"], 1))
                print(f"{split} seed {seed}: CNN r2 {cnn['r2']:.3f} rmse {cnn['rmse']:.3f} rho {cnn['spearman']:.3f} "
                      f"({cnn['seconds']:.0f} s, {cnn['cpu_seconds']:.0f} s CPU) | RF r2 {rf['r2']:.3f} rmse {rf['rmse']:.3f} "
                      f"rho {rf['spearman']:.3f}  (train+val/test {rf['sizes'][0]}/{rf['sizes'][1]})", flush=True)
            per["seeds"] = seeds
            result[split] = {**{f"{k}_mean": statistics.mean(v) for k, v in per.items() if "seconds" not in k and k != "seeds"},
                             **per, "sizes": rf["sizes"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({s: {k: round(v, 4) for k, v in result[s].items() if k.endswith("_mean")}
                      for s in args.splits.split(",")}, indent=2))


def rf_from(path: str, split: str, seed: int) -> dict:
    """The forest's figures for (split, seed) in an earlier result file (the forest is deterministic per seed)."""
    part = json.loads(Path(path).read_text())[split]
    i = part.get("seeds", list(range(len(part["rf_r2"])))).index(seed)  # files merged in seed order 0, 1, 2
    return {"r2": part["rf_r2"][i], "rmse": part["rf_rmse"][i], "spearman": part["rf_spearman"][i], "sizes": part["sizes"]}


def merge(files: list[str], out: Path) -> None:
    """One result file from runs of single seeds / splits (run in parallel): lists joined, means recomputed."""
    result: dict = {}
    for f in files:
        part = json.loads(Path(f).read_text())
        for key, value in part.items():
            if key not in ("random", "scaffold"):
                result.setdefault(key, value)
                continue
            into = result.setdefault(key, {"sizes": value["sizes"]})
            for k, v in value.items():
                if isinstance(v, list) and k != "sizes":
                    into.setdefault(k, []).extend(v)
    for split in ("random", "scaffold"):
        if split in result:
            lists = {k: v for k, v in result[split].items() if isinstance(v, list) and k != "sizes"}
            result[split].update({f"{k}_mean": statistics.mean(v) for k, v in lists.items()
                                  if "seconds" not in k and k != "seeds"})
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({s: {k: round(v, 4) for k, v in result[s].items() if k.endswith("_mean")}
                      for s in ("random", "scaffold") if s in result}, indent=2))


if __name__ == "__main__":
    main()
