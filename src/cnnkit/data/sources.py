"""Where a `--data` value becomes a `DataBundle`: built-in names and on-disk formats.

Built-ins register a loader under a name (`BUILTINS`); on-disk formats register a
`detect(path)` test and a loader (`FORMATS`), tried in priority order. Both tables live in
`data/registry.py`; the modules that fill them are imported by `cnnkit.data`.

Every bundle that `build_data` hands out has passed the label-coverage check
(`data/health/coverage.py`): a train split with no example of any class stops here with one
sentence, before any command trains, evaluates or converts; a class seen in val/test but
never in train, or without train examples, is a warning printed once on stderr with the
readers' notes (binary 0/255 masks read as class 1, ...).
"""
from __future__ import annotations

from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.registry import BUILTINS, FORMATS, Format
from cnnkit.errors import CnnkitError, did_you_mean


def detect_format(path: Path) -> Format:
    for fmt in sorted(FORMATS.values(), key=lambda f: -f.priority):
        try:
            if fmt.detect(path):
                return fmt
        except OSError:
            continue
    _refuse_non_utf8(path)
    known = ", ".join(sorted(FORMATS))
    raise CnnkitError(
        f"Could not tell the format of {path}: expected one of {known}. "
        "See `cnnkit data --help` for the layouts cnnkit reads."
    )


def _refuse_non_utf8(path: Path) -> None:
    """The real reason a text file (csv, json, yaml, txt) matched no format, when it is that it is not UTF-8."""
    if not (path.is_file() and path.suffix.lower() in (".csv", ".json", ".yaml", ".yml", ".txt", ".smi")):
        return
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not a multi-byte character cut by the 64 KB read
            raise CnnkitError(f"{path} is not UTF-8 text (byte {head[e.start]:#04x} at offset {e.start} cannot be "
                              "decoded), so its format cannot be read: save it as UTF-8.") from None


def build_data(cfg: Config, target: str | None = None, *, check: bool = True) -> DataBundle:
    """Load `cfg.data.name` (a built-in name or a path) into train/val/test splits. `target` is what
    the task reading them needs (`Task.target`): with "boxes", a segmentation set that carries
    instance masks (digits-seg) serves its objects, boxes and masks; otherwise the data is as read.
    With `check` (the default) the label coverage is checked and the notes printed (module
    docstring); `cnnkit data inspect` passes False and reports them instead. Raises CnnkitError
    for unreadable or unknown data and for a train split no model can learn from."""
    bundle = _load(cfg)
    if target == "boxes":
        from cnnkit.data.segmentation import detection_view

        bundle = detection_view(bundle)
    _add_statistics(bundle)
    if check:
        from cnnkit.data.health.coverage import check_coverage, print_notes

        check_coverage(bundle)
        print_notes(bundle)
    return bundle


def build_named(name: str, cfg: Config, *, check: bool = True) -> DataBundle:
    """`build_data` of `name` (built-in or path) with the rest of `cfg`, which is left unchanged."""
    cfg = cfg.copy()
    cfg.data.name = name
    return build_data(cfg, check=check)


def _add_statistics(bundle: DataBundle) -> None:
    """Facts tasks choose defaults and normalisation from: train size, per-channel mean/std."""
    from cnnkit.data.base import TensorSplit

    extra = bundle.info.extra
    extra.setdefault("n_train", len(bundle.train))
    if isinstance(bundle.train, TensorSplit) and "mean" not in extra and len(bundle.train):
        x = bundle.train.images[:20_000].float().div_(255)
        extra["mean"] = [round(float(v), 4) for v in x.mean(dim=(0, 2, 3))]
        extra["std"] = [round(max(float(v), 1e-3), 4) for v in x.std(dim=(0, 2, 3))]


def _load(cfg: Config) -> DataBundle:
    name = cfg.data.name
    if name in BUILTINS:
        return BUILTINS.get(name)(cfg)
    path = Path(name).expanduser()
    if not path.exists():
        looks_like_path = any(c in name for c in "/\\.") or name.startswith("~")
        if looks_like_path:
            raise CnnkitError(f"Data path {path} does not exist.")
        raise CnnkitError(
            f'Unknown dataset "{name}": it is neither a built-in set nor an existing path.'
            f"{did_you_mean(name, BUILTINS)} Built-in: {', '.join(BUILTINS)}."
        )
    return detect_format(path).load(path, cfg)
