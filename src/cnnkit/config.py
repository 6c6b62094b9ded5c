"""The one configuration path: `Config` dataclasses are the defaults and the one description of each key.

CLI flags, YAML recipes and Python keyword arguments all become the same `Config`
(DESIGN rule 3). Keys are `section.key` (`train.lr`); a bare key (`lr`) is accepted
when exactly one section has it. Each field is declared with `option(...)`, which carries
its help, value choices, numeric bounds and CLI flag; `cnnkit train`'s flags and --help
(`cli_options.py`), YAML and `--set` validation all read that one declaration. Every
value is checked when it is set: unknown keys, wrong types, choices and bounds fail there
with one sentence (and a "did you mean").

A value of `None` means "the task's default for this data" — the task fills it in
(`Task.defaults`) and the resolved config is what gets written to the run directory.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cnnkit.errors import CnnkitError, did_you_mean


def option(default: Any = None, help: str = "", *, choices: tuple[str, ...] = (),
           bounds: str | None = None, flag: str | bool = False, metavar: str | None = None,
           factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field described once.

    choices: allowed strings (an upper-case `N` in a choice stands for digits: `cuda:N`). bounds: an interval such as
    "[1, inf)", "(0, inf)" or "[0, 1)". flag: the `cnnkit train` flag (`True` = `--field-name`,
    a string names it, `False` = reachable through `--set` only).
    """
    meta = {"help": help, "choices": choices, "bounds": bounds, "flag": flag, "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = option("digits", "built-in name (digits, fashion-mnist, digits-detect, digits-seg, fashion-detect, "
                       "fashion-seg) or a path; its format is detected", flag="--data")
    root: str | None = option(None, "folder holding the files of a built-in set (fashion-mnist)", flag=True)
    image_size: int | None = option(None, "side the images are resized to; the task's default when unset",
                                    bounds="[1, 8192]", flag=True)
    val_fraction: float = option(0.1, "share of train carved out for validation when the data has no val split",
                                 bounds="[0, 1)")
    test_fraction: float = option(0.2, "share held out for test when the data has no test split", bounds="[0, 1)")
    split_seed: int = option(0, "seed of the fixed train/val/test split", bounds="[0, 4294967295]")
    augment: str | None = option(None, "training augmentation preset; the task's default when unset",
                                 choices=("none", "flip", "light", "strong"), flag=True)
    augment_start_epoch: int = option(1, "first epoch (1-based) that sees augmented images; the epochs before it "
                                      "train on the images as they are (classification)", bounds="[1, 100000]")
    mixup: float = option(0.0, "MixUp alpha; 0 turns it off", bounds="[0, inf)")
    cutmix: float = option(0.0, "CutMix alpha; 0 turns it off", bounds="[0, inf)")
    random_erasing: float = option(0.0, "probability of random erasing per training image (Zhong et al. 2017; "
                                   "transforms.v2.RandomErasing, erased to 0) after the preset; 0 turns it off "
                                   "(classification)", bounds="[0, 1]")
    max_bad: float = option(0.01, "bad files tolerated before the run stops: a fraction (<1) or a count (>=1)",
                            bounds="[0, inf)", flag=True)
    workers: int = option(0, "DataLoader workers (streaming datasets)", bounds="[0, 256]", flag=True)
    in_memory: str = option("auto", "hold the whole set as one uint8 tensor", choices=("auto", "yes", "no"))
    canvas_size: int = option(96, "side of the generated *-detect / *-seg canvases", bounds="[1, 1024]", flag=True)
    class_weights: str | None = option(None, "weight the loss by inverse class frequency (auto); off when unset",
                                       choices=("none", "auto"), flag=True)
    mask_255: str = option("auto", "how the foreground value of binary masks (0/255, 0/128, ..) is read: auto = "
                           "class 1 when the masks hold only 0 and that value, else as stored; class = class 1; "
                           "ignore = as stored (255 = ignore, VOC's void)",
                           choices=("auto", "class", "ignore"))
    allow_outside_root: bool = option(False, "open files that annotation files name outside the dataset folder "
                                      "(../ or absolute paths in COCO, VOC, YOLO, CSV); refused when false")
    # Text and SMILES data (cnnkit/data/sequence/)
    columns: str | None = option(None, "INPUT,TARGET column names of a text/SMILES CSV (e.g. smiles,value); "
                                 "detected from common names when unset")
    tokenizer: str | None = option(None, "tokens of text/SMILES data: char, or smiles (Cl, Br, [nH] whole); "
                                   "smiles for SMILES data when unset", choices=("char", "smiles"))
    max_length: int | None = option(None, "tokens kept per string; the training set's longest (at most 256) "
                                    "when unset", bounds="[1, inf)")
    split_by: str = option("random", "how missing val/test splits are carved: random, or scaffold (Bemis-Murcko, "
                           "molecules)", choices=("random", "scaffold"))
    tta: int = option(0, "SMILES test-time augmentation: mean prediction over this many randomised SMILES "
                      "besides the given one (0: off)", bounds="[0, inf)")


@dataclass
class ModelConfig:
    name: str | None = option(None, "registered name (see `cnnkit models`) or a layer-list YAML/JSON; the task's "
                              "default when unset", flag="--model")
    dropout: float | None = option(None, "dropout before the classifier; the model's default when unset",
                                   bounds="[0, 1)", flag=True)
    attention: str | None = option(None, "attention blocks in models that support them; none when unset",
                                   choices=("none", "se", "cbam"), flag=True)
    flip_tta: bool = option(False, "test-time augmentation: evaluation and prediction average the logits of each "
                            "image and its mirror image (classification; the data must allow flips)")
    kwargs: dict = option(help="extra keyword arguments for the model builder",
                          factory=dict)


@dataclass
class TrainConfig:
    epochs: int | None = option(None, "passes over the training data; the task's default when unset",
                                bounds="[1, 100000]", flag=True)
    batch_size: int | None = option(None, "images per step; the task's default when unset", bounds="[1, 65536]",
                                    flag=True)
    lr: float | None = option(None, "peak learning rate; the task's default when unset", bounds="(0, inf)",
                              flag=True)
    optimizer: str = option("sgd", "SGD with momentum, or AdamW", choices=("sgd", "adamw"), flag=True)
    momentum: float = option(0.9, "SGD momentum", bounds="[0, 1)")
    nesterov: bool = option(True, "Nesterov momentum for SGD")
    weight_decay: float | None = option(None, "L2 penalty on weights (never on norms/biases); the task's default "
                                        "when unset", bounds="[0, inf)", flag=True)
    schedule: str = option("onecycle", "learning-rate schedule", choices=("cosine", "onecycle", "step", "constant"),
                           flag=True)
    restart_epochs: int = option(0, "onecycle only: a first cycle of N epochs, then a second one-cycle over the "
                                 "remaining epochs (a warm restart, as in SGDR); 0 = one cycle", bounds="[0, 100000]")
    warmup_epochs: float = option(0.0, "linear warmup length for cosine/step", bounds="[0, 100000]", flag=True)
    step_size: int = option(10, "epochs between decays of the step schedule", bounds="[1, 100000]")
    step_gamma: float = option(0.1, "decay factor of the step schedule", bounds="(0, 1]")
    label_smoothing: float | None = option(None, "label smoothing of the classification loss; the task's default "
                                           "when unset", bounds="[0, 1)", flag=True)
    grad_clip: float | None = option(None, "clip the gradient norm to this; off when unset", bounds="(0, inf)",
                                     flag=True)
    ema: bool = option(False, "evaluate an exponential moving average of the weights", flag=True)
    ema_decay: float = option(0.999, "EMA decay per step", bounds="[0, 1)")
    patience: int | None = option(None, "early stopping after this many evaluations without val improvement "
                                  "(best weights are always kept); off when unset", bounds="[1, 100000]", flag=True)
    seed: int = option(0, "seed of weights, data order and augmentation", bounds="[0, 4294967295]", flag=True)
    deterministic: bool = option(False, "PyTorch deterministic algorithms (slower, bit-exact on GPU too)", flag=True)
    device: str = option("auto", "where to train", choices=("auto", "cpu", "cuda", "mps", "cuda:N"), flag=True)
    amp: bool | None = option(None, "mixed precision: float16 + GradScaler on CUDA, bfloat16 autocast on a CPU "
                              "with native bf16 (AVX512-BF16 or AMX); float32 elsewhere, with a note; the task's "
                              "default when unset (on for tinydet where the CPU has native bf16, off otherwise)")
    channels_last: bool | None = option(None, "train with NHWC (channels_last) weights and activations (1.2-1.3x "
                                        "the images/s of smallcnn on one CPU thread; measure yours with `cnnkit "
                                        "bench`); the task's default when unset", flag=True)
    threads: int | None = option(None, "CPU threads for torch; all cores but one when unset (see engine/setup.py)",
                                 bounds="[1, 1024]", flag=True)
    out: str | None = option(None, "run directory; runs/<data>-<model>[-N] when unset", flag=True)
    resume: str | None = option(None, "run directory or checkpoint to continue exactly from its last.pt", flag=True,
                                metavar="RUN_DIR")
    eval_every: int = option(1, "validate every N epochs (always on the last)", bounds="[1, 100000]")
    log_every: int = option(10, "steps between progress-bar metric refreshes", bounds="[1, 1000000]")


@dataclass
class Config:
    task: str | None = option(None, "what to learn: classify, detect, segment, instance or another registered "
                              "task; follows from the data when unset", flag=True)
    # No choices here: tasks are an open registry (a test or a plugin may add one) and the task modules
    # import this module, so the name is checked where the run is resolved (engine/run.py, TASKS.get with
    # "did you mean"), before any data is read — like model names.
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
        return list(config_fields())

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
        """Set one key; its type, choices and bounds are checked here (CnnkitError naming key and value)."""
        key = self.resolve_key(key)
        if key.startswith("model.kwargs."):
            self.model.kwargs[key.split(".", 2)[2]] = _parse_scalar(value) if isinstance(value, str) else value
            return
        value = check_value(key, value)
        if key == "task":
            self.task = value
            return
        sec, name = key.split(".", 1)
        setattr(getattr(self, sec), name, value)

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
        """The Config of a YAML recipe; CnnkitError naming the file for anything it cannot take
        (see `config_file.read_recipe` for the caps)."""
        from cnnkit.config_file import read_recipe

        data = read_recipe(Path(path))
        try:
            return cls.from_dict(data)
        except CnnkitError as e:
            raise CnnkitError(f"In {path}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}

@functools.cache
def config_fields() -> dict[str, dataclasses.Field]:
    """Every key (`task`, `data.name`, ..., `train.log_every`) -> its dataclass field, in declaration order.

    `field.type` is the annotation as text ("int | None"); `field.metadata` holds what `option` was given.
    """
    out = {f.name: f for f in fields(Config) if f.name not in _SECTIONS}
    for sec, cls in _SECTIONS.items():
        out.update({f"{sec}.{f.name}": f for f in fields(cls)})
    return out


def flag_of(key: str, f: dataclasses.Field | None = None, any_key: bool = False) -> str | None:
    """The `cnnkit train` flag of a full key (`train.batch_size` -> `--batch-size`); None for `--set`-only
    keys unless `any_key` (the flag another command would give the key)."""
    flag = (f or config_fields()[key]).metadata.get("flag") or any_key
    if not flag:
        return None
    return flag if isinstance(flag, str) else "--" + key.split(".")[-1].replace("_", "-")


def value_kind(f: dataclasses.Field) -> str:
    """The field's type without `| None`: one of int, float, bool, str, dict."""
    return str(f.type).split(" ")[0].split("|")[0]


def field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def check_value(key: str, value: Any) -> Any:
    """`value` converted to the type of `key` (a full key such as "data.augment"), its choices and bounds
    checked; raises CnnkitError with one sentence naming the key and the value."""
    f = config_fields()[key]
    choices = f.metadata.get("choices") or ()
    if isinstance(value, bool) and {"yes", "no"} <= set(choices):
        value = "yes" if value else "no"  # YAML reads a bare yes/no as a bool
    if isinstance(value, str) and value.strip().lower() in ("none", "null") and value not in choices \
            and "None" in str(f.type):
        value = None  # `--help` shows an unset key as None; YAML spells it null
    value = _coerce(key, value, f.type)
    if value is None:
        return None
    if choices:
        _check_choice(key, value, choices)
    if f.metadata.get("bounds"):
        check_bounds(key, value, f.metadata["bounds"])
    return value


# Words people use for a choice that spelling distance would get wrong ("gpu" is closest to "cpu").
_SYNONYMS = {"train.device": {"gpu": "cuda (an NVIDIA GPU)", "nvidia": "cuda (an NVIDIA GPU)",
                              "metal": "mps (an Apple GPU)", "apple": "mps (an Apple GPU)"}}


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    for choice in choices:
        if value == choice or choice.endswith(":N") and re.fullmatch(re.escape(choice[:-1]) + r"\d+", value):
            return
    synonym = _SYNONYMS.get(key, {}).get(str(value).strip().lower())
    hint = f" Use {synonym}." if synonym else did_you_mean(value, choices)
    raise CnnkitError(f'Config key "{key}" must be one of {", ".join(choices)}; got "{value}".{hint}')


_INTERVAL = re.compile(r"([\[(])\s*(-?[\d.]+)\s*,\s*([\d.]+|inf)\s*([\])])")


def check_bounds(key: str, value: float, bounds: str) -> None:
    """CnnkitError naming `key` unless `value` lies in `bounds` ("[1, 100000]", "(0, inf)")."""
    opening, low, high, closing = _INTERVAL.fullmatch(bounds).groups()
    lo, hi = float(low), float(high)
    above = value >= lo if opening == "[" else value > lo
    below = value <= hi if closing == "]" else value < hi
    if above and below:
        return
    if hi <= 1:  # a fraction: the interval says it best
        rule = f"in {bounds}"
    elif not above:
        rule = f"at least {low}" if opening == "[" else f"greater than {low}"
    else:  # a cap against runaway time or memory (shown in --help)
        rule = f"at most {high}" if closing == "]" else f"below {high}"
    raise CnnkitError(f'Config key "{key}" must be {rule}; got {value}.')


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k in _SECTIONS and not prefix:
            if v is not None and not isinstance(v, dict):  # `data: rf` would otherwise read as an unknown key
                raise CnnkitError(_section_sentence(k, v))
            out.update(_flatten(v or {}, key + "."))
        else:
            out[key] = v
    return out


def _section_sentence(section: str, value: Any) -> str:
    if section == "train":
        return (f'"train" must be a mapping of its keys, not a value (got {value!r}): write its keys under it, '
                "e.g. `train: {epochs: 5, lr: 0.1}`.")
    if not isinstance(value, str):  # `model: 5`: echoing the value would suggest another invalid recipe
        value = {"data": "digits", "model": "lenet5"}.get(section, "NAME")
    return (f'"{section}" is a section, not a value: write `{section}: {{name: {value}}}` '
            f"(or `{section}:` and `  name: {value}` on the next line).")


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
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return bool(value)
            raise ValueError  # amp: 2 or a list is a typo, not a yes
        if isinstance(value, bool):  # YAML reads a bare true/yes as a bool: `random_erasing=true` is not 1.0
            raise ValueError
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
