"""Time to test accuracy on Fashion-MNIST: the pytorch/examples MNIST script against cnnkit's speed-run recipe.

The baseline is pytorch/examples' mnist/main.py pointed at Fashion-MNIST and otherwise unchanged:
torchvision's `FashionMNIST` dataset (reading the IDX files offline, from the folder cnnkit's
`fashion-mnist` uses), per-sample `ToTensor` + `Normalize((0.1307,), (0.3081,))` (MNIST's constants,
as the script has them), `DataLoader` batch 64 (test 1000) without shuffling on a CPU (the script
passes shuffle=True only with its CUDA options, which are kept for a GPU), the two-conv `Net` with
dropout and log-softmax, NLL loss, Adadelta lr 1.0, `StepLR(step_size=1, gamma=0.7)` per epoch,
seed 1. Its per-batch progress prints are left out.

cnnkit trains `configs/fashion-mnist-speedrun.yaml` (or `--config`) through the trainer's own epoch
step (`engine.trainer.Training.run_epoch`): validation on its val split, carved from train, as in
every run; nothing is chosen on the test set.

After every epoch both models are evaluated on the official 10,000-image test set, outside the clock:
`elapsed_s` is the cumulative training time (the epochs' batches, data loading included; not the
test evaluation, nor cnnkit's validation and checkpoint writing), `wall_s` everything since the
start of training. A time-to-accuracy is the `elapsed_s` of the first epoch whose test accuracy
reaches it (null if none does).

--mode parallel (default, the issue's setting): both start together, each in its own process pinned
to its own `--threads` core(s); they share memory bandwidth and caches, as a fair race on one box.
--mode sequential: one after the other (baseline first), each with `--threads` threads, unpinned.

    python bench/vs_pytorch_example.py                       # 4 baseline epochs, the recipe's own epochs
    python bench/vs_pytorch_example.py --mode sequential --threads 2
    python bench/vs_pytorch_example.py --limit 512 --epochs 1 --out /tmp/smoke.json   # smoke run only

`--epochs N` runs both for N epochs (cnnkit's schedule is laid over N). Without it the baseline runs
4: its schedule does not depend on the epoch count, so a 4th epoch only adds a point, and it keeps a
91.3 % reached a little late from reading as "never". `--limit N` keeps the first N images of every
split (train, cnnkit's val, test): a smoke run, its accuracies mean nothing.
On a CUDA machine both run there (the baseline with its own CUDA options; cnnkit with the recipe's
`train.amp`): `scripts/gpu_speedrun.sh` runs it with `configs/fashion-mnist-gpu.yaml`, and the JSON's
`cnnkit_time_to_940_s` / `_950_s` are the GPU check's time-to-94 % and 95 %.
Results: bench/results/vs_pytorch_example.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).parent / "results" / "vs_pytorch_example.json"
RECIPE = REPO / "configs" / "fashion-mnist-speedrun.yaml"
BASELINE_EPOCHS = 4
TARGETS = {"913": 0.913, "930": 0.930, "940": 0.940, "950": 0.950}  # 94 / 95 %: the GPU check
TORCHVISION_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                     "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


# ---- the baseline: pytorch/examples mnist/main.py, unchanged but for the dataset -----------------
def baseline(args: argparse.Namespace, data_dir: Path) -> list[dict]:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR
    from torchvision import datasets, transforms

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            x = torch.flatten(self.dropout1(x), 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    torch.set_num_threads(args.threads)
    use_cuda = torch.cuda.is_available()
    torch.manual_seed(1)
    device = torch.device("cuda" if use_cuda else "cpu")
    train_kwargs, test_kwargs = {"batch_size": 64}, {"batch_size": 1000}
    if use_cuda:
        cuda_kwargs = {"num_workers": 1, "pin_memory": True, "shuffle": True}
        train_kwargs.update(cuda_kwargs)
        test_kwargs.update(cuda_kwargs)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    root = _torchvision_root(data_dir)
    dataset1 = _head(datasets.FashionMNIST(str(root), train=True, download=False, transform=transform), args.limit)
    dataset2 = _head(datasets.FashionMNIST(str(root), train=False, transform=transform), args.limit)
    shutil.rmtree(root)  # the datasets hold their images in memory once built
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)
    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)

    def test() -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                data, target = data.to(device), target.to(device)
                correct += model(data).argmax(dim=1).eq(target).sum().item()
        return correct / len(test_loader.dataset)

    clock, epochs = Clock(use_cuda), []
    for epoch in range(1, (args.epochs or BASELINE_EPOCHS) + 1):
        with clock:
            model.train()
            for data, target in train_loader:
                data, target = data.to(device), target.to(device)
                optimizer.zero_grad()
                loss = F.nll_loss(model(data), target)
                loss.backward()
                optimizer.step()
        epochs.append(clock.point(epoch, test()))
        scheduler.step()
    return epochs


def _head(dataset, limit: int | None):
    import torch

    return dataset if not limit else torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))


def _torchvision_root(data_dir: Path) -> Path:
    """A temporary ROOT/FashionMNIST/raw holding the IDX files under torchvision's names, uncompressed."""
    from cnnkit.data.formats.idx import find_idx_pairs

    root = Path(tempfile.mkdtemp(prefix="fashion_tv_"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, files in find_idx_pairs(data_dir).items():
        for src, name in zip(files, TORCHVISION_NAMES.get(split, ())):
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as f, open(raw / name, "wb") as out:
                shutil.copyfileobj(f, out)
    return root


# ---- cnnkit: the recipe, one trainer epoch at a time --------------------------------------------
def cnnkit_recipe(args: argparse.Namespace, data_dir: Path) -> tuple[list[dict], dict]:
    from rich.console import Console

    from cnnkit.config import Config
    from cnnkit.data.base import TensorSplit
    from cnnkit.engine.distributed import DistInfo
    from cnnkit.engine.evaluate import evaluate
    from cnnkit.engine.run import resolve_run
    from cnnkit.engine.trainer import Training

    cfg = Config.load(args.config)
    cfg.data.root, cfg.train.threads = str(data_dir), args.threads
    if args.epochs:
        cfg.train.epochs = args.epochs
        if cfg.train.restart_epochs >= args.epochs:  # a run too short for the recipe's restart: one cycle
            cfg.train.restart_epochs = 0
    run_dir = Path(tempfile.mkdtemp(prefix="speedrun_"))
    try:
        cfg.train.out = str(run_dir)
        run = resolve_run(cfg)
        if args.limit:
            for name in ("train", "val", "test"):
                s, n = run.bundle.split(name), args.limit
                setattr(run.bundle, name, TensorSplit(s.images[:n], s.labels[:n], s.names[:n] if s.names else None))
        training = Training(run, run_dir, DistInfo(), Console(stderr=True), quiet=True)
        test_loader = run.task.loader(run.bundle.test, run.cfg, run.info, train=False)
        clock, epochs = Clock(run.device.type == "cuda"), []
        for epoch in range(training.start_epoch, run.cfg.train.epochs):
            with clock:
                stop = training.run_epoch(epoch)
            clock.train_s = training.train_seconds  # the trainer's own clock: its batches, not validation
            test = evaluate(training.eval_model, test_loader, run.task, run.device)
            epochs.append(clock.point(epoch + 1, test["accuracy"]))
            if stop:
                break
        training.log.close()
    finally:  # the run directory is scratch: checkpoints of a benchmark are not kept
        shutil.rmtree(run_dir, ignore_errors=True)
    return epochs, run.cfg.to_dict()


class Clock:
    """Cumulative training seconds (`with clock:` around training only) and wall seconds since the first epoch."""

    def __init__(self, cuda: bool):
        self.cuda, self.train_s, self.start = cuda, 0.0, None

    def __enter__(self):
        self.start = self.start or time.perf_counter()
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        self.train_s += time.perf_counter() - self.t0

    def point(self, epoch: int, accuracy: float) -> dict:
        return {"epoch": epoch, "elapsed_s": round(self.train_s, 2),
                "wall_s": round(time.perf_counter() - self.start, 2), "test_accuracy": round(float(accuracy), 4)}


# ---- driver ---------------------------------------------------------------------------------------
def find_data(root: str | None) -> Path:
    """The folder with Fashion-MNIST's IDX files, looked for where cnnkit's `fashion-mnist` looks."""
    from cnnkit.data.builtin.classification import CACHE_DIR, DEBIAN_FASHION
    from cnnkit.data.formats.idx import find_idx_pairs

    places = ([Path(root).expanduser()] if root else []) + [DEBIAN_FASHION, CACHE_DIR / "FashionMNIST"]
    for folder in places:
        if folder.is_dir() and {"train", "test"} <= set(find_idx_pairs(folder)):
            return folder
    sys.exit("vs_pytorch_example: Fashion-MNIST not found: `apt-get install dataset-fashion-mnist` or pass "
             "--root DIR with its IDX files.")


def time_to(epochs: list[dict], accuracy: float) -> float | None:
    return next((e["elapsed_s"] for e in epochs if e["test_accuracy"] >= accuracy), None)


def run_child(args: argparse.Namespace) -> None:
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    data_dir = Path(args.data_dir)
    if args.child == "baseline":
        part = {"epochs": baseline(args, data_dir)}
    else:
        epochs, cfg = cnnkit_recipe(args, data_dir)
        part = {"epochs": epochs, "config": cfg}
    Path(args.part).write_text(json.dumps(part))


def start_children(args: argparse.Namespace, data_dir: Path, tmp: Path) -> dict[str, dict]:
    """Run both pipelines in child processes (together, or one after the other) and read their parts."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
    if args.mode == "parallel" and len(cores) < 2 * args.threads:
        sys.exit(f"vs_pytorch_example: --mode parallel needs {2 * args.threads} cores for --threads {args.threads} "
                 f"each, this machine offers {len(cores)}: lower --threads or use --mode sequential.")
    parts, procs = {}, []
    for i, who in enumerate(("baseline", "cnnkit")):
        cmd = [sys.executable, __file__, "--child", who, "--data-dir", str(data_dir), "--part", str(tmp / who),
               "--threads", str(args.threads), "--config", str(args.config)]
        for flag, value in (("--epochs", args.epochs), ("--limit", args.limit)):
            cmd += [flag, str(value)] if value else []
        if args.mode == "parallel":
            cmd += ["--cores", ",".join(map(str, cores[i * args.threads:(i + 1) * args.threads]))]
        procs.append((who, subprocess.Popen(cmd)))
        if args.mode == "sequential":
            procs[-1][1].wait()
    for who, proc in procs:
        if proc.wait() != 0:
            sys.exit(f"vs_pytorch_example: the {who} run failed (exit code {proc.returncode}); see its error above.")
        parts[who] = json.loads((tmp / who).read_text())
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="see the module docstring for details")
    ap.add_argument("--epochs", type=int, help=f"epochs of both (default: baseline {BASELINE_EPOCHS}, cnnkit the "
                                               "recipe's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run (default: 1)")
    ap.add_argument("--mode", choices=("parallel", "sequential"), default="parallel",
                    help="together, one core set each (default), or one after the other")
    ap.add_argument("--limit", type=int, help="keep the first N images of each split (a smoke run)")
    ap.add_argument("--config", type=Path, default=RECIPE, help="cnnkit's recipe (default: %(default)s)")
    ap.add_argument("--root", help="folder with Fashion-MNIST's IDX files (default: where cnnkit looks)")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON result (default: %(default)s)")
    for hidden in ("--child", "--data-dir", "--part", "--cores"):  # a child process's own arguments
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return run_child(args)
    from cnnkit.bench.measure import machine

    data_dir, started, host = find_data(args.root), time.strftime("%Y-%m-%d %H:%M:%S"), machine()
    with tempfile.TemporaryDirectory(prefix="vs_pytorch_") as tmp:
        parts = start_children(args, data_dir, Path(tmp))
    base, ours = parts["baseline"]["epochs"], parts["cnnkit"]["epochs"]
    b913, c913 = time_to(base, TARGETS["913"]), time_to(ours, TARGETS["913"])
    report = {
        "benchmark": "time to Fashion-MNIST test accuracy: pytorch/examples MNIST script vs cnnkit's speed-run recipe",
        "started": started, "mode": args.mode, "threads": args.threads, "machine": host, "limit": args.limit,
        "recipe": str(args.config), "data": str(data_dir),
        "baseline_time_to_913_s": b913, "cnnkit_time_to_913_s": c913,
        **{f"cnnkit_time_to_{k}_s": time_to(ours, TARGETS[k]) for k in ("930", "940", "950")},
        "ratio_913": round(c913 / b913, 4) if b913 and c913 is not None else None,
        "baseline_epochs": base, "cnnkit_epochs": ours, "cnnkit_config": parts["cnnkit"]["config"],
        "timing": "elapsed_s: cumulative training seconds; test evaluation (and cnnkit's validation) outside it",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "cnnkit_config"}, indent=2))


if __name__ == "__main__":
    main()
