"""Detection heads on digits-detect: test mAP after equal CPU-time training budgets.

Each model trains from random init with the detect task's defaults for it (batch size, lr,
light box-aware augmentation, SGD + one-cycle), for as many steps as fit in `--budget-s`
CPU seconds: the one-cycle schedule follows the CPU time spent (its curve is read at
spent / budget before every step) and training stops when the budget is used, so every
model gets the same CPU time and a complete schedule whatever its step cost.
CPU time is `time.process_time()` (all threads of the process), so the numbers hold on a
shared machine; wall time is recorded too. Then the test split is evaluated with
pycocotools (cnnkit's `detect` metric). The headline is mAP@[.5:.95] per CPU-minute.

    python bench/detection_heads.py                         # all models, one after another
    python bench/detection_heads.py --jobs 6                # one process per model, each on its own core
    python bench/detection_heads.py --models tinydet,fcos:resnet18 --budget-s 120

`--models` entries are `name[:backbone][@lr][@key=value...]` with train.* keys such as
`@batch_size=16@optimizer=adamw` (torchvision heads default to "tiny",
cnnkit's small backbone, so the comparison is of heads over the same trunk; add
`fcos:resnet18` etc. for the heads' default backbone). Results: bench/results/detection_heads.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

DEFAULT_MODELS = "tinydet,fcos:tiny,retinanet:tiny,fasterrcnn:tiny,ssdlite:tiny,fcos:resnet18"
OUT = Path(__file__).parent / "results" / "detection_heads.json"


def run_one(spec: str, budget_s: float, threads: int, seed: int) -> dict:
    import torch

    from cnnkit.config import Config
    from cnnkit.engine.evaluate import evaluate, scalars
    from cnnkit.engine.optim import build_optimizer, build_scheduler
    from cnnkit.engine.run import resolve_run

    spec, *settings = spec.split("@")
    name, _, backbone = spec.partition(":")
    cfg = Config()
    for item in settings:  # "@0.04" is the lr; "@key=value" a train.* key or a model kwarg (model.kwargs.key)
        key, _, value = item.rpartition("=")
        cfg.set(key if key.startswith("model.") else f"train.{key or 'lr'}", value)
    cfg.data.name, cfg.task, cfg.model.name, cfg.train.seed = "digits-detect", "detect", name, seed
    cfg.train.threads = threads
    if backbone or name != "tinydet":
        cfg.model.kwargs["backbone"] = backbone or "tiny"
    run = resolve_run(cfg, device="cpu")  # seeded with `seed` before the data and the model are built
    task, bundle, model, device = run.task, run.bundle, run.model, run.device
    loader = task.loader(bundle.train, cfg, bundle.info, train=True)

    def batches():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    # The schedule runs on CPU time, not on a step count: at every step the one-cycle curve is read
    # at (CPU seconds spent / budget), and training stops when the budget is spent. So every model
    # gets exactly the same CPU time and a complete warm-up/anneal, whatever its step cost (a step
    # count fixed from a probe missed by up to 10 %, enough to flip a close comparison).
    virtual = 10_000
    cfg.train.epochs = 1
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, virtual)
    stream = batches()
    model.train()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    recent: list[float] = []
    diverged, steps = None, 0
    # The schedule is set from the spent budget before each step, so torch's "scheduler before
    # optimizer" warning is expected here.
    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
    while (spent := time.process_time() - cpu0) < budget_s:
        scheduler.last_epoch = min(virtual - 1, int(spent / budget_s * virtual)) - 1
        scheduler.step()  # sets lr (and momentum) for this fraction of the budget
        loss, _ = task.loss(model, task.to_device(next(stream), device))
        if not torch.isfinite(loss):
            diverged = steps
            break
        recent = (recent + [float(loss.detach())])[-20:]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    cpu1 = time.process_time()
    metrics = scalars(evaluate(model, task.loader(bundle.test, cfg, bundle.info, train=False), task, device))
    return {
        "model": name, "backbone": backbone or "tiny",
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "batch_size": cfg.train.batch_size, "optimizer": cfg.train.optimizer, "lr": cfg.train.lr,
        "threads": threads,
        "step_cpu_s": round(train_cpu / max(1, steps), 3), "steps": steps,
        "epochs": round(steps * cfg.train.batch_size / len(bundle.train), 2),
        "train_cpu_s": round(train_cpu, 1), "train_wall_s": round(train_wall, 1),
        "test_eval_cpu_s": round(time.process_time() - cpu1, 1),
        "final_train_loss": round(sum(recent) / max(1, len(recent)), 4), "diverged_at_step": diverged,
        # None where pycocotools leaves a metric undefined (no ground truth), as everywhere in cnnkit
        **{k: None if metrics[k] is None else round(metrics[k], 4) for k in ("map", "map_50", "map_75", "mar_100")},
        "map_per_cpu_minute": None if metrics["map"] is None else round(metrics["map"] / (train_cpu / 60), 4),
    }


def machine() -> dict:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "load_average_at_start": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--budget-s", type=float, default=180.0, help="training CPU seconds per model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="models trained at once, one process (and core) each")
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)  # core of a --jobs child
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    specs = [s.strip() for s in re.split(r",(?![^\[]*\])", args.models) if s.strip()]  # commas inside [] stay
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    if args.jobs > 1 and len(specs) > 1:
        results = _parallel(specs, args)
    else:
        results = []
        for spec in specs:
            results.append(run_one(spec, args.budget_s, args.threads, args.seed))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"benchmark": "detection heads on digits-detect, equal CPU-time budgets", "started": started,
              "budget_cpu_s": args.budget_s, "machine": machine(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def _parallel(specs: list[str], args) -> list[dict]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
    tmp = Path(tempfile.mkdtemp(prefix="detection_heads_"))
    pending, results = list(enumerate(specs)), {}
    running: list[tuple[subprocess.Popen, int, Path, int]] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            i, spec = pending.pop(0)
            core = cores[len(running) % len(cores)]
            used = {c for *_, c in running}
            core = next((c for c in cores if c not in used), core)
            out = tmp / f"part_{i}.json"
            cmd = [sys.executable, __file__, "--models", spec, "--budget-s", str(args.budget_s), "--threads",
                   str(args.threads), "--seed", str(args.seed), "--cpu", str(core), "--out", str(out)]
            running.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL), i, out, core))
        time.sleep(1.0)
        for item in list(running):
            proc, i, out, _ = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode == 0:
                    results[i] = json.loads(out.read_text())["results"][0]
                    print(json.dumps(results[i]), file=sys.stderr, flush=True)
                else:
                    results[i] = {"model": specs[i], "error": f"exit code {proc.returncode}"}
    return [results[i] for i in sorted(results)]


if __name__ == "__main__":
    main()
