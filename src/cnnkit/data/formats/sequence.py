"""On-disk text and SMILES data (readers in `cnnkit.data.sequence.data`): registered in `FORMATS`.

text-csv      a .csv without a `path` column (that one is the image CSV): an input column (smiles,
              text, ...) and a target column (value, label, ...), or the two named by data.columns;
text-folder   a folder with train.csv (val.csv, test.csv): each split used as given;
smi           a .smi file, `SMILES name value` per line (whitespace-separated).
"""
from __future__ import annotations

import csv
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.registry import register_format
from cnnkit.data.sequence.data import read_csv, read_folder, read_smi, sequence_bundle
from cnnkit.data.splits import SPLIT_NAMES


def _csv_header(path: Path) -> set[str] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return {h.strip().lower() for h in next(csv.reader(f), [])}
    except (UnicodeDecodeError, csv.Error):
        return None


def _is_text_csv(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    header = _csv_header(path)
    return header is not None and len(header) >= 2 and "path" not in header


def _is_text_folder(path: Path) -> bool:
    return path.is_dir() and any(f.stem.lower() == "train" and _is_text_csv(f) for f in path.glob("*.csv")) and all(
        f.stem.lower() in SPLIT_NAMES for f in path.glob("*.csv"))


def _is_smi(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".smi"


@register_format("text-csv", task="seq_classify", detect=_is_text_csv, priority=20)
def load_text_csv(path: Path, cfg: Config) -> DataBundle:
    return sequence_bundle({"train": read_csv(path, cfg.data.columns)}, cfg, str(path))


@register_format("text-folder", task="seq_classify", detect=_is_text_folder, priority=5)
def load_text_folder(path: Path, cfg: Config) -> DataBundle:
    return sequence_bundle(read_folder(path, cfg.data.columns), cfg, str(path))


@register_format("smi", task="seq_regress", detect=_is_smi, priority=20)
def load_smi(path: Path, cfg: Config) -> DataBundle:
    return sequence_bundle({"train": read_smi(path)}, cfg, str(path), smiles=True)
