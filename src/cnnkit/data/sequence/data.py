"""Text and SMILES data: the `SequenceSplit`, the readers of users' files, and the one bundle builder.

Readers (registered in `data.registry.FORMATS` by `cnnkit.data.formats.sequence`):
- a CSV with an input column and a target column (`text,label`, `smiles,value`, ...): the names given
  with `data.columns=INPUT,TARGET` or detected from the common names below;
- a folder with `train.csv` (and `val.csv` / `valid.csv`, `test.csv`), each split used as given;
- a `.smi` file: `SMILES [name [value]]` per line (whitespace-separated, as RDKit writes them).

A target column of numbers that are not all integers is regression (`seq_regress`); names or
integers are classes (`seq_classify`). `sequence_bundle` carves missing splits (random, stratified
for classes, or by Bemis-Murcko scaffold with `data.split_by=scaffold`), builds the vocabulary on
the training split only and records what the task needs in `info.extra["sequence"]`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.errors import CnnkitError
from cnnkit.data.sequence.tokenize import build_vocab, tokenize
from cnnkit.data.splits import SPLIT_NAMES

INPUT_NAMES = ("smiles", "canonical_smiles", "text", "sentence", "sequence", "string")
TARGET_NAMES = ("value", "label", "target", "y", "activity", "act", "class", "pic50")
MAX_LENGTH = 256  # tokens kept per string when data.max_length is unset (and the data has longer ones)


@dataclass
class SequenceSplit:
    """Strings and their targets: `targets` int64 class indices (N) or float32 values (N)."""

    texts: list[str]
    targets: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: np.ndarray) -> SequenceSplit:
        idx = [int(i) for i in idx]
        return SequenceSplit([self.texts[i] for i in idx], self.targets[idx], [self.names[i] for i in idx])


@dataclass
class Table:
    """Rows read from one file: inputs, raw target strings, row names ("file:line")."""

    texts: list[str]
    targets: list[str]
    names: list[str]
    input_column: str = "text"


def _pick(header: list[str], given: str | None, names: tuple[str, ...], path: Path, what: str) -> str:
    lower = {h.strip().lower(): h for h in header}
    if given:
        if given.strip().lower() not in lower:
            raise CnnkitError(f'{path} has no column "{given}" (columns: {", ".join(header)}); fix data.columns.')
        return lower[given.strip().lower()]
    for n in names:
        if n in lower:
            return lower[n]
    raise CnnkitError(f"{path} has no {what} column among {', '.join(header)}: name them with "
                      f"--set data.columns=INPUT,TARGET (e.g. smiles,value).")


def read_csv(path: Path, columns: str | None, need_target: bool = True) -> Table:
    """The input and target columns of a CSV (`columns`: "INPUT,TARGET" or None to detect them)."""
    given = [c for c in (columns or "").split(",") if c.strip()] + [None, None]
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CnnkitError(f"Cannot read {path} as a UTF-8 CSV ({e}); save it as UTF-8 with a header row.") from None
    if not rows:
        raise CnnkitError(f"{path} is empty: give a header row (e.g. smiles,value) and one row per example.")
    header = rows[0]
    x = _pick(header, given[0], INPUT_NAMES, path, "input (smiles/text)")
    others = [h for h in header if h != x]
    if given[1] is None and len(others) == 1 and not any(o.strip().lower() in TARGET_NAMES for o in others):
        y = others[0] if need_target else None
    else:
        y = _pick(header, given[1], TARGET_NAMES, path, "target (value/label)") if need_target or given[1] else None
        if not need_target and y is None:
            y = next((h for h in header if h.strip().lower() in TARGET_NAMES), None)
    xi, yi = header.index(x), (header.index(y) if y is not None else None)
    table = Table([], [], [], x.strip().lower())
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(xi, yi or 0):
            raise CnnkitError(f"{path} line {line} has {len(row)} fields but the header has {len(header)}; fix the row.")
        table.texts.append(row[xi].strip())
        table.targets.append(row[yi].strip() if yi is not None else "")
        table.names.append(f"{path.name}:{line}")
    return table


def read_smi(path: Path) -> Table:
    """A .smi file: `SMILES [name [value]]` per line; a first line `smiles ...` is a header."""
    table = Table([], [], [], "smiles")
    for line, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        parts = text.split()
        if not parts or (line == 1 and parts[0].lower() == "smiles"):
            continue
        table.texts.append(parts[0])
        table.targets.append(parts[2] if len(parts) > 2 else "")
        table.names.append(parts[1] if len(parts) > 1 else f"{Path(path).name}:{line}")
    return table


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def is_regression(targets: list[str]) -> bool:
    """A column of numbers, not all of them integers (an integer column holds class labels)."""
    values = [t for t in targets if t != ""]
    return bool(values) and all(_is_number(t) for t in values) and not all(float(t).is_integer() for t in values)


def looks_like_smiles(texts: list[str]) -> bool:
    """No spaces and only SMILES characters in (nearly) every string, and (with RDKit) nearly all of them
    parse as molecules (without RDKit: some have branches, bonds or brackets): the smiles tokenizer's default."""
    sample = [t for t in texts[:200] if t]
    ok = sum(1 for t in sample if " " not in t and all(c.isalnum() or c in "()[]=#@+-\\/%.:*$~" for c in t))
    if not sample or ok < 0.95 * len(sample):
        return False
    try:
        from cnnkit.data.sequence.chem import parse

        return sum(parse(t) is not None for t in sample) >= 0.95 * len(sample)
    except CnnkitError:  # no RDKit
        return any(c in "()=[]" for t in sample for c in t)


def sequence_bundle(tables: dict[str, Table], cfg: Config, name: str, smiles: bool | None = None) -> DataBundle:
    """The bundle of tables by split ("train" required; missing val/test carved out of train, see the
    module docstring). Raises CnnkitError for an empty train split or a target column with blanks."""
    train = tables["train"]
    if not train.texts:
        raise CnnkitError(f"{name} has no training rows: give one string and its target per row.")
    everything = [t for tab in tables.values() for t in tab.targets]
    if any(t == "" for t in everything):
        where = next(n for tab in tables.values() for n, t in zip(tab.names, tab.targets) if t == "")
        raise CnnkitError(f"{where} has no target value; every training/evaluation row needs one.")
    regression = is_regression(everything)
    classes = [] if regression else sorted({t for t in train.targets}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    index = {c: i for i, c in enumerate(classes)}

    def split_of(tab: Table) -> SequenceSplit:
        if regression:
            y = torch.tensor([float(t) for t in tab.targets], dtype=torch.float32)
        else:
            unknown = next((t for t in tab.targets if t not in index), None)
            if unknown is not None:
                raise CnnkitError(f'{name}: label "{unknown}" is not among the training labels {classes[:8]}; '
                                  "add examples of it to the training split.")
            y = torch.tensor([index[t] for t in tab.targets], dtype=torch.int64)
        return SequenceSplit(list(tab.texts), y, list(tab.names))

    splits = {k: split_of(v) for k, v in tables.items()}
    splits = _carve(splits, cfg, regression)
    smiles = looks_like_smiles(splits["train"].texts) if smiles is None else smiles
    kind = cfg.data.tokenizer or ("smiles" if smiles else "char")
    lengths = [len(tokenize(t, kind)) for t in splits["train"].texts]
    seq = {"tokenizer": kind, "vocab": build_vocab(splits["train"].texts, kind), "smiles": bool(smiles),
           "max_length": int(cfg.data.max_length or min(MAX_LENGTH, max(lengths))),
           "input_column": train.input_column}
    if regression:
        y = splits["train"].targets
        seq.update(target_mean=float(y.mean()), target_std=float(y.std().clamp(min=1e-6)))
    info = DatasetInfo(task="seq_regress" if regression else "seq_classify", classes=classes, channels=1,
                       image_size=seq["max_length"], name=name, hflip_ok=False,
                       extra={"sequence": seq, "n_train": len(splits["train"])})
    return DataBundle(splits["train"], splits["val"], splits["test"], info)


def _carve(splits: dict[str, SequenceSplit], cfg: Config, regression: bool) -> dict[str, SequenceSplit]:
    """The missing val/test splits carved out of train: at random (stratified for classes, as images)
    or, with data.split_by=scaffold, by Bemis-Murcko scaffold (`chem.scaffold_split`)."""
    from cnnkit.data.splits import carve_missing

    train = splits["train"]
    have_val, have_test = "val" in splits, "test" in splits
    if have_val and have_test:
        return splits
    if cfg.data.split_by == "scaffold":
        from cnnkit.data.sequence.chem import scaffold_split

        idx = scaffold_split(train.texts, 0.0 if have_val else cfg.data.val_fraction,
                             0.0 if have_test else cfg.data.test_fraction)
    else:
        pool = len(train) if regression else train.targets.numpy()
        idx = carve_missing(pool, cfg, have_val, have_test)
    out = {"train": train.take(idx[0])}
    out["val"] = splits["val"] if have_val else train.take(idx[1])
    out["test"] = splits["test"] if have_test else train.take(idx[2])
    return out


def read_folder(root: Path, columns: str | None) -> dict[str, Table]:
    """train.csv / val.csv / test.csv (also valid.csv, validation.csv) of a folder, by split."""
    tables: dict[str, Table] = {}
    for f in sorted(root.glob("*.csv")):
        split = SPLIT_NAMES.get(f.stem.lower())
        if split is not None:
            if split in tables:
                raise CnnkitError(f"{root} has two files for the {split} split; keep one.")
            tables[split] = read_csv(f, columns)
    if "train" not in tables:
        raise CnnkitError(f"{root} has no train.csv: add one (e.g. columns smiles,value or text,label).")
    return tables
