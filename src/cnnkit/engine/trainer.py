"""`fit(cfg)`: the one training loop, for every task (it never branches on the task — rule 1).

Per epoch: set the loader's epoch (order is a function of seed and epoch), step through
batches (loss from the Task, backward, clip, optimiser and scheduler step, EMA), validate,
log a row, write `last.pt` (with the full resume state) and `best.pt` on improvement.
After the loop: reload the best weights, evaluate on the test split, draw plots and write
`summary.json` and `report.html`. `--resume RUN_DIR` restores model, optimiser,
scheduler, EMA, RNG and loop counters from `last.pt` and continues bit-exactly on CPU.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.base import DatasetInfo
from cnnkit.engine import distributed
from cnnkit.engine.callbacks import EarlyStopping, EpochProgress, MetricsLog
from cnnkit.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnkit.engine.evaluate import evaluate, fmt, headline_text, scalars
from cnnkit.engine.optim import build_optimizer, build_scheduler
from cnnkit.engine.setup import configure_threads, make_run_dir, pick_device, seed_everything
from cnnkit.errors import CnnkitError
from cnnkit.tasks import get_task


@dataclass
class Run:
    """What `cnnkit.train` returns: where the run lives and what it measured."""

    dir: Path
    test_metrics: dict[str, Any]
    val_metrics: dict[str, Any]
    summary: dict[str, Any]

    @property
    def best(self) -> Path:
        return self.dir / "best.pt"

    def load(self):
        from cnnkit.engine.predictor import load

        return load(self.best)


def checkpoint_meta(task, cfg: Config, info: DatasetInfo, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"task": task.name, "model": {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs)},
            "classes": list(info.classes), "channels": info.channels, "image_size": info.image_size,
            "preprocess": task.preprocessing(cfg, info), "config": cfg.to_dict(), "epoch": epoch,
            "metrics": scalars(metrics), "data_name": info.name}


def fit(cfg: Config, console: Console | None = None, quiet: bool = False) -> Run:
    dist = distributed.setup()
    console = console or Console(stderr=True)
    main = dist.is_main
    resume_ckpt = None
    if cfg.train.resume:
        resume_ckpt = load_checkpoint(cfg.train.resume, prefer="last.pt")
        if resume_ckpt.get("state") is None:
            raise CnnkitError(f"{resume_ckpt['path']} holds no resume state; resume from a run's last.pt.")
        cfg = Config.from_dict(resume_ckpt["meta"]["config"])
        cfg.train.resume = str(Path(resume_ckpt["path"]).parent)
    configure_threads(cfg.train.threads)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = pick_device(cfg.train.device, dist.local_rank)

    bundle = build_data(cfg)
    info = bundle.info
    task = get_task(cfg.task or info.task)
    cfg.task = task.name
    cfg.fill_defaults(task.defaults(cfg, info))
    if cfg.model.name and Path(cfg.model.name).suffix in (".yaml", ".yml", ".json"):
        from cnnkit.models import resolve_spec

        cfg.model.name, spec_kwargs = resolve_spec(cfg.model.name)
        cfg.model.kwargs = {**spec_kwargs, **cfg.model.kwargs}
    task.setup(cfg, info)

    run_dir = Path(cfg.train.resume) if resume_ckpt else make_run_dir(cfg, main)
    run_dir = distributed.broadcast_object(run_dir, dist)  # runs/<name>-N is numbered by rank 0 alone
    cfg.train.out = str(run_dir)
    if main:
        cfg.save(run_dir / "config.yaml")
        _report_bad_files(info, run_dir, console, quiet)

    model = task.build_model(cfg, info).to(device)
    train_loader = task.loader(bundle.train, cfg, info, train=True)
    val_loader = task.loader(bundle.val, cfg, info, train=False)
    steps = len(train_loader)
    if steps == 0:
        raise CnnkitError(f"The training split of {info.name} is smaller than one batch "
                          f"({len(bundle.train)} < train.batch_size={cfg.train.batch_size}).")
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, steps)
    ema = None
    if cfg.train.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True)
    monitor, mode = task.monitor
    stopper = EarlyStopping(monitor, mode, cfg.train.patience)
    log = MetricsLog(run_dir, enabled=main)
    start_epoch, train_seconds = 0, 0.0
    if resume_ckpt:
        st = resume_ckpt["state"]
        model.load_state_dict(resume_ckpt["model"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        if ema is not None and st.get("ema") is not None:
            ema.load_state_dict(st["ema"])
        stopper.load_state_dict(st["stopper"])
        log.rows = list(st["history"])
        start_epoch, train_seconds = st["epoch"] + 1, st["train_seconds"]
        set_rng_state(st["rng"])
        if not quiet and main:
            console.print(f"[bold]resuming[/] {run_dir} at epoch {start_epoch + 1}/{cfg.train.epochs}"
                          if start_epoch < cfg.train.epochs else f"{run_dir} had already finished; re-testing best.pt")
    train_model = model
    if dist.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp and device.type == "cuda")
    progress = EpochProgress(enabled=main and not quiet, console=console)
    eval_model = ema.module if ema is not None else model
    val_metrics: dict[str, Any] = {}

    for epoch in range(start_epoch, cfg.train.epochs):
        t0 = time.perf_counter()
        train_loader.set_epoch(epoch)
        train_model.train()
        progress.start(epoch, cfg.train.epochs, steps)
        loss_sum, parts_sum, n_seen = 0.0, {}, 0
        for step, batch in enumerate(train_loader):
            batch = task.to_device(batch, device)
            with torch.autocast(device.type, enabled=cfg.train.amp and device.type == "cuda"):
                loss, parts = task.loss(train_model, batch)
            if not torch.isfinite(loss):
                raise CnnkitError(
                    f"The loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}: training stopped; "
                    f"{run_dir / 'last.pt'} keeps the last good epoch. Try a lower --lr or --set grad_clip=1.0.")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.train.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            n = task.batch_size_of(batch)
            loss_sum += float(loss.detach()) * n
            n_seen += n
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * n
            show = step % cfg.train.log_every == 0 or step == steps - 1
            progress.step(n, {"loss": loss_sum / n_seen, "lr": scheduler.get_last_lr()[0]} if show else None)
        train_seconds += time.perf_counter() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": scheduler.get_last_lr()[0],
                               "train_loss": loss_sum / max(1, n_seen)}
        row.update({f"train_{k}": v / max(1, n_seen) for k, v in parts_sum.items()})
        last_epoch = epoch == cfg.train.epochs - 1
        evaluated = (epoch + 1) % cfg.train.eval_every == 0 or last_epoch
        if evaluated and main:
            val_metrics = evaluate(eval_model, val_loader, task, device)
            row.update({f"val_{k}": v for k, v in scalars(val_metrics).items()})
        row["epoch_seconds"] = round(time.perf_counter() - t0, 3)
        is_best = evaluated and main and stopper.update(val_metrics.get(monitor), epoch)
        progress.finish(" ".join(f"{k} {fmt(v, '.4g')}" for k, v in row.items()
                                 if k == "train_loss" or k.startswith("val_") and k[4:] in (*task.headline, "loss")))
        if main:
            log.log(row)
            meta = checkpoint_meta(task, cfg, info, epoch + 1, val_metrics)
            if is_best:
                save_checkpoint(run_dir / "best.pt", eval_model.state_dict(), meta)
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "ema": ema.state_dict() if ema is not None else None, "stopper": stopper.state_dict(),
                     "history": log.rows, "epoch": epoch, "train_seconds": train_seconds, "rng": rng_state()}
            save_checkpoint(run_dir / "last.pt", model.state_dict(), meta, state)
        if distributed.broadcast_flag(stopper.should_stop, dist, device):
            if not quiet and main:
                console.print(f"early stop: no {monitor} improvement for {cfg.train.patience} evaluations; "
                              f"best was epoch {stopper.best_epoch + 1} ({monitor} {stopper.best:.4g})")
            break
    log.close()
    streamed_bad = [b for b in getattr(train_loader, "bad_files", []) if b not in info.bad_files]
    if streamed_bad and main:  # files that only failed when a worker decoded them
        info.bad_files.extend(streamed_bad)
        _report_bad_files(info, run_dir, console, quiet)
    distributed.barrier(dist)
    if not main:  # rank 0 tests, plots and writes the summary; the others are done
        distributed.teardown(dist)
        return Run(run_dir, {}, {}, {})
    result = _finish(task, cfg, bundle, run_dir, device, eval_model, log.rows, train_seconds, stopper, main,
                     console, quiet)
    distributed.teardown(dist)
    return result


def _finish(task, cfg, bundle, run_dir, device, model, history, train_seconds, stopper, main, console, quiet) -> Run:
    best = load_checkpoint(run_dir / "best.pt")
    model.load_state_dict(best["model"])
    test_loader = task.loader(bundle.test, cfg, bundle.info, train=False)
    t0 = time.perf_counter()
    test_metrics = evaluate(model, test_loader, task, device) if len(bundle.test) else {}
    eval_seconds = time.perf_counter() - t0
    val_metrics = best["meta"]["metrics"]
    n_train_images = len(history) * len(bundle.train)
    summary = {
        "run_dir": str(run_dir), "task": task.name, "data": bundle.info.name, "model": cfg.model.name,
        "test": scalars(test_metrics), "val": val_metrics, "best_epoch": stopper.best_epoch + 1,
        "epochs_run": len(history), "train_seconds": round(train_seconds, 2),
        "train_images_per_second": round(n_train_images / max(1e-9, train_seconds), 1),
        "test_seconds": round(eval_seconds, 2), "split_sizes": {s: len(bundle.split(s)) for s in ("train", "val", "test")},
        "bad_files": len(bundle.info.bad_files),
        "environment": {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                        "world_size": int(os.environ.get("WORLD_SIZE", 1)),
                        "cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
    }
    if main:
        import json

        from cnnkit.report.html import write_report
        from cnnkit.report.plots import plot_history

        plot_history(history, run_dir / "plots", task.headline)
        task.plots(run_dir, model, bundle, device, test_metrics)
        (run_dir / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2, default=float))
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        write_report(run_dir)
        if not quiet:
            shown = headline_text(test_metrics, (*task.headline, "top5", "map_50", "dice"))
            console.print(f"[bold green]done[/] test: {shown}  ({train_seconds:.0f}s training)")
            console.print(f"run directory: {run_dir}  (plots/, report.html, best.pt, metrics.csv)")
    return Run(run_dir, test_metrics, val_metrics, summary)


def _report_bad_files(info: DatasetInfo, run_dir: Path, console: Console, quiet: bool) -> None:
    if not info.bad_files:
        return
    import json

    (run_dir / "bad_files.json").write_text(json.dumps([b.__dict__ for b in info.bad_files], indent=2))
    if not quiet:
        console.print(f"[yellow]skipped {len(info.bad_files)} unreadable file(s)[/]; listed in "
                      f"{run_dir / 'bad_files.json'} (first: {info.bad_files[0].path}: {info.bad_files[0].reason})")
