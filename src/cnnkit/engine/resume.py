"""`--resume RUN`: what a resumed run may change, and how its last.pt is restored.

A resumed run continues as recorded in its last.pt. Of the keys the user set explicitly:
- keys that do not change the numbers (threads, device, workers, log_every) take effect;
- `epochs` larger than recorded extends the run. The learning-rate schedule is then rebuilt
  for the new number of epochs, exactly as a fresh run with that `--epochs` would build it,
  and continues from the step the run had reached (so a one-cycle or cosine schedule climbs
  back from its end to where the longer curve is at that step, and anneals over the rest);
- any other key whose value differs from the recorded one is refused with one sentence
  naming each flag (a silently ignored flag is worse than an error). Fewer epochs than
  recorded is refused too: a run is not shortened.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnkit.config import Config, config_fields
from cnnkit.engine.checkpoint import check_meta, load_checkpoint
from cnnkit.errors import CnnkitError

# what last.pt's "state" must hold to continue a run exactly
STATE_KEYS = ("optimizer", "scheduler", "stopper", "history", "epoch", "train_seconds", "rng")
RUNTIME_KEYS = ("train.threads", "train.device", "data.workers", "train.log_every")  # same numbers whatever they are


@dataclass
class Resume:
    """The run being continued: its folder, its last.pt, and the config it continues with."""

    dir: Path
    checkpoint: dict[str, Any]
    cfg: Config  # the recorded config, with the runtime keys and an extended `epochs` applied
    recorded_epochs: int
    stopped_early: bool  # early stopping had ended it: nothing is left to train

    @property
    def extended(self) -> bool:
        return self.cfg.train.epochs > self.recorded_epochs

    @property
    def start_epoch(self) -> int:
        """The first epoch (0-based) still to train; `cfg.train.epochs` when none is."""
        return self.cfg.train.epochs if self.stopped_early else self.checkpoint["state"]["epoch"] + 1


def given_keys(cfg: Config, keys: Iterable[str], recipe: str | Path | None = None) -> list[str]:
    """The config keys a user set, for `fit(given=...)`: `keys` as written (`lr`, `train.lr`)
    resolved against `cfg`, plus every key of the YAML `recipe` when one was given."""
    out = [cfg.resolve_key(k) for k in keys]
    if recipe:
        import yaml

        doc = yaml.safe_load(Path(recipe).read_text()) or {}
        for key, value in doc.items():
            nested = isinstance(value, dict) and key in ("data", "model", "train")
            out += [cfg.resolve_key(f"{key}.{k}") for k in value] if nested else [cfg.resolve_key(key)]
    return list(dict.fromkeys(out))


def prepare_resume(cfg: Config, given: Iterable[str] = ()) -> Resume:
    """The run named by `cfg.train.resume`, checked against the keys the user `given`.

    Raises `CnnkitError` when last.pt holds no resume state or a given key conflicts with the run.
    """
    ckpt = load_checkpoint(cfg.train.resume, prefer="last.pt")
    check_meta(ckpt)
    state = ckpt.get("state")
    if state is None:
        raise CnnkitError(f"{ckpt['path']} holds no resume state; resume from a run's last.pt.")
    lacking = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if lacking or not isinstance(state["epoch"], int) or not isinstance(state["stopper"], dict):
        raise CnnkitError(f"{ckpt['path']} holds an incomplete resume state (no \"{(lacking or ['epoch'])[0]}\"); "
                          "resume from an intact last.pt or start a new run.")
    run_dir = Path(ckpt["path"]).parent
    try:
        recorded = Config.from_dict(ckpt["meta"]["config"])
        recorded_epochs = int(recorded.train.epochs)
    except (CnnkitError, TypeError) as e:
        raise CnnkitError(f"{ckpt['path']} records a config that cannot be resumed ({e}); start a new run.") from None
    given = [k for k in dict.fromkeys(given) if k != "train.resume"]
    conflicts = [k for k in given if k not in RUNTIME_KEYS and _differs(k, cfg, recorded, run_dir)]
    if conflicts:
        raise CnnkitError(_conflict_sentence(run_dir, conflicts, cfg, recorded))
    patience = recorded.train.patience
    stopped = patience is not None and int(state["stopper"].get("bad_evals", 0)) >= patience
    if stopped and "train.epochs" in given and cfg.train.epochs > recorded.train.epochs:
        raise CnnkitError(f"{run_dir} stopped early at epoch {state['epoch'] + 1} (no improvement in {patience} "
                          f"evaluations), so --epochs {cfg.train.epochs} cannot extend it: start a new run with "
                          f"--epochs {cfg.train.epochs} and another --out.")
    resumed = recorded.copy()
    for key in given:
        resumed.set(key, cfg.get(key))  # runtime keys, equal values and a longer `epochs`
    resumed.train.out = str(run_dir)
    resumed.train.resume = str(run_dir)
    return Resume(run_dir, ckpt, resumed, recorded_epochs, stopped)


def _differs(key: str, cfg: Config, recorded: Config, run_dir: Path) -> bool:
    if key == "train.out":
        return cfg.train.out is not None and Path(cfg.train.out).resolve() != run_dir.resolve()
    if key == "train.epochs":
        return cfg.train.epochs is not None and cfg.train.epochs < recorded.train.epochs
    return cfg.get(key) != recorded.get(key)


def as_given(key: str, value: Any) -> str:
    """How a user sets `key` to `value` on the command line: `--lr 0.5`, or `--set train.momentum=0.5`."""
    name = _flag(key)
    return f"{name} {_show(value)}" if name else f"--set {key}={_show(value)}"


def _flag(key: str) -> str | None:
    from cnnkit.cli_options import flag_of

    return flag_of(key) if key in config_fields() else None


def _conflict_sentence(run_dir: Path, keys: list[str], cfg: Config, recorded: Config) -> str:
    given = _join([as_given(k, cfg.get(k)) for k in keys])
    was = ", ".join(f"{(_flag(k) or '--' + k)[2:]} {_show(recorded.get(k))}" for k in keys)
    them = "them" if len(keys) > 1 else "it"
    shorter = "; --epochs can only extend a run" if "train.epochs" in keys else ""
    return (f"--resume continues {run_dir} as recorded; {given} differ{'' if len(keys) > 1 else 's'} from it "
            f"(recorded {was}{shorter}): drop {them}, or start a new run with {them} and another --out.")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _show(value: Any) -> str:
    if value is None:  # an unset key reads "off" (patience None: no early stopping), never Python's None
        return "off"
    if isinstance(value, bool):  # as typed after --set (YAML), not Python's True / False
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def restore_schedule(scheduler, resume: Resume) -> str | None:
    """Load the scheduler's saved state; for an extended run, keep the schedule just built for
    the new length and move it to the step the run had reached. Returns the line that says so."""
    saved = resume.checkpoint["state"]["scheduler"]
    if not resume.extended:
        scheduler.load_state_dict(saved)
        return None
    step = int(saved["last_epoch"])  # optimisation steps taken so far
    before = saved["_last_lr"][0]
    with warnings.catch_warnings():  # torch warns on a scheduler step before any optimizer step
        warnings.simplefilter("ignore", UserWarning)
        scheduler.last_epoch = step - 1
        scheduler.step()
    cfg = resume.cfg.train
    return (f"extending {resume.dir} from {resume.recorded_epochs} to {cfg.epochs} epochs: the {cfg.schedule} "
            f"schedule is rebuilt for {cfg.epochs} epochs and continues at step {step} "
            f"(lr {before:.3g} -> {scheduler.get_last_lr()[0]:.3g})")
