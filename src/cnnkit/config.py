"""The one configuration path: `Config` dataclasses are the defaults.

CLI flags, YAML recipes and Python keyword arguments all become the same `Config`
(DESIGN rule 3). Keys are `section.key` (`train.lr`); a bare key (`lr`) is accepted
when exactly one section has it. Unknown keys fail with a "did you mean".

A value of `None` means "the task's default for this data" — the task fills it in
(`Task.defaults`) and the resolved config is what gets written to the run directory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cnnkit.errors import CnnkitError, did_you_mean


@dataclass
class DataConfig:
    name: str = "digits"  # (str) built-in name or a path; its format is detected
    root: str | None = None  # (str) where to look for files of a built-in set (fashion-mnist)
    image_size: int | None = None  # (int) side the images are resized to; task default when None
    val_fraction: float = 0.1  # (float) share of train carved out for validation when the data has no val split
    test_fraction: float = 0.2  # (float) share held out for test when the data has no test split
    split_seed: int = 0  # (int) seed of the fixed train/val/test split
    augment: str | None = None  # (none|light|strong) training augmentation preset
    mixup: float = 0.0  # (float) MixUp alpha; 0 turns it off
    cutmix: float = 0.0  # (float) CutMix alpha; 0 turns it off
    max_bad: float = 0.01  # (float) bad files tolerated: a fraction (<1) or a count (>=1) before the run stops
    workers: int = 0  # (int) DataLoader workers for the streaming path
    in_memory: str = "auto"  # (auto|yes|no) hold the whole set as one uint8 tensor
    canvas_size: int = 96  # (int) side of the generated digits-detect / digits-seg canvases
    class_weights: str | None = None  # (none|auto) loss weights from class frequencies


@dataclass
class ModelConfig:
    name: str | None = None  # (str) registered model name or a path to a layer-list YAML/JSON; task default when None
    dropout: float | None = None  # (float) dropout before the classifier; model default when None
    attention: str | None = None  # (none|se|cbam) attention inside residual/conv blocks
    kwargs: dict = field(default_factory=dict)  # (dict) extra keyword arguments for the model builder


@dataclass
class TrainConfig:
    epochs: int | None = None  # (int) passes over the training data; task default when None
    batch_size: int | None = None  # (int) images per step; task default when None
    lr: float | None = None  # (float) peak learning rate; task default when None
    optimizer: str = "sgd"  # (sgd|adamw) SGD with momentum, or AdamW
    momentum: float = 0.9  # (float) SGD momentum
    nesterov: bool = True  # (bool) Nesterov momentum for SGD
    weight_decay: float | None = None  # (float) L2 penalty on weights (never on norms/biases); task default when None
    schedule: str = "onecycle"  # (cosine|onecycle|step|constant) learning-rate schedule
    warmup_epochs: float = 0.0  # (float) linear warmup length for cosine/step
    step_size: int = 10  # (int) epochs between decays of the step schedule
    step_gamma: float = 0.1  # (float) decay factor of the step schedule
    label_smoothing: float | None = None  # (float) label smoothing of the classification loss; task default when None
    grad_clip: float | None = None  # (float) clip the gradient norm to this; off when None
    ema: bool = False  # (bool) keep an exponential moving average of the weights and evaluate it
    ema_decay: float = 0.999  # (float) EMA decay per step
    patience: int | None = None  # (int) stop after this many epochs without val improvement; off when None
    seed: int = 0  # (int) seed of weights, data order and augmentation
    deterministic: bool = False  # (bool) PyTorch deterministic algorithms (slower, bit-exact on GPU too)
    device: str = "auto"  # (auto|cpu|cuda|mps) where to train
    amp: bool = False  # (bool) mixed precision on CUDA
    threads: int | None = None  # (int) CPU threads for torch; all cores but one when None (see engine/setup.py)
    out: str | None = None  # (str) run directory; runs/<data>-<model>[-N] when None
    resume: str | None = None  # (str) run directory or checkpoint to continue exactly
    eval_every: int = 1  # (int) validate every N epochs (always on the last)
    log_every: int = 10  # (int) steps between progress-bar metric refreshes


@dataclass
class Config:
    task: str | None = None  # (classify|detect|segment) follows from the data when None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----- conversions -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Config":
        cfg = cls()
        cfg.update(_flatten(d or {}))
        return cfg

    def copy(self) -> "Config":
        return Config.from_dict(self.to_dict())

    # ----- key access --------------------------------------------------------------
    def keys(self) -> list[str]:
        out = ["task"]
        for sec in _SECTIONS:
            out += [f"{sec}.{f.name}" for f in fields(getattr(self, sec))]
        return out

    def resolve_key(self, key: str) -> str:
        """`lr` -> `train.lr`; `train.lr` stays; unknown -> CnnkitError with a suggestion."""
        key = key.strip().replace("-", "_")
        all_keys = self.keys()
        if key in all_keys:
            return key
        if key.startswith("model.kwargs."):
            return key
        matches = [k for k in all_keys if k.split(".")[-1] == key]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise CnnkitError(f'Config key "{key}" is ambiguous: write one of {", ".join(matches)}.')
        bare = [k.split(".")[-1] for k in all_keys]
        hint = did_you_mean(key, all_keys + bare)
        raise CnnkitError(f'Unknown config key "{key}".{hint} Run `cnnkit train --help` for the list.')

    def get(self, key: str) -> Any:
        key = self.resolve_key(key)
        if key == "task":
            return self.task
        sec, name = key.split(".", 1)
        if sec == "model" and name.startswith("kwargs."):
            return self.model.kwargs.get(name.split(".", 1)[1])
        return getattr(getattr(self, sec), name)

    def set(self, key: str, value: Any) -> None:
        key = self.resolve_key(key)
        if key == "task":
            self.task = None if value is None else str(value)
            return
        sec, name = key.split(".", 1)
        if sec == "model" and name.startswith("kwargs."):
            self.model.kwargs[name.split(".", 1)[1]] = _parse_scalar(value) if isinstance(value, str) else value
            return
        section = getattr(self, sec)
        ftype = {f.name: f.type for f in fields(section)}[name]
        setattr(section, name, _coerce(key, value, ftype))

    def update(self, flat: dict[str, Any]) -> "Config":
        for k, v in flat.items():
            self.set(k, v)
        return self

    def apply_overrides(self, items: list[str]) -> "Config":
        """`["train.lr=0.1", "epochs=5"]` from `--set`."""
        for item in items:
            if "=" not in item:
                raise CnnkitError(f'--set expects key=value, got "{item}".')
            k, v = item.split("=", 1)
            self.set(k, _parse_scalar(v))
        return self

    def fill_defaults(self, defaults: dict[str, Any]) -> "Config":
        """Set each key whose current value is None (the task's/model's defaults)."""
        for k, v in defaults.items():
            if self.get(k) is None:
                self.set(k, v)
        return self

    # ----- files -------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.exists():
            raise CnnkitError(f"Config file {path} does not exist.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise CnnkitError(f"Config file {path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise CnnkitError(f"Config file {path} must hold a mapping of keys to values.")
        try:
            return cls.from_dict(data)
        except CnnkitError as e:
            raise CnnkitError(f"In {path}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_SECTIONS = ("data", "model", "train")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k in _SECTIONS and not prefix:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _parse_scalar(text: str) -> Any:
    """`--set` values are YAML scalars: 0.1, true, null, [32, M], {a: 1}."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _coerce(key: str, value: Any, ftype: Any) -> Any:
    t = str(ftype)
    if value is None:
        if "None" in t:
            return None
        raise CnnkitError(f'Config key "{key}" cannot be empty.')
    try:
        if t.startswith("bool"):
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise ValueError
            return bool(value)
        if t.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if t.startswith("float"):
            return float(value)
        if t.startswith("str"):
            return str(value)
        if t.startswith("dict"):
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (TypeError, ValueError):
        kind = t.split(" ")[0].split("|")[0]
        raise CnnkitError(f'Config key "{key}" expects {kind}, got {value!r}.') from None
    return value
