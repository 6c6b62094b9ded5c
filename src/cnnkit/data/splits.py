"""Fixed train/val/test splits and the bad-file policy shared by every data source.

`carve_missing` is the one split-carving function every reader uses: it fills in only the
splits a source did not provide, as a pure function of (pool, fractions, `split_seed`), so the
same data gives the same split on every machine and every resume. `check_bad_files` is the
one place that decides when skipped files are too many for a run to go on (DESIGN rule 9:
skipped and reported, never silently).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile
from cnnkit.errors import CnnkitError

T = TypeVar("T")

# A folder or file named like a split (any case) holds that split: the names export tools write
# (Roboflow "valid", Keras/HF "validation"), read the same by every reader.
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def stratified_split(labels: Sequence[int] | np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted index arrays (train, val, test), drawn per class with `np.random.default_rng(seed)`.

    Each class contributes round(n * fraction) items to val and test; a class with at least 3
    items puts at least one in every split whose fraction is > 0, and train always keeps one.
    """
    _check_fractions(val_fraction, test_fraction)
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for cls in np.unique(labels):  # sorted, so the draws happen in a fixed order
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n = len(idx)
        n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
        if n >= 3:
            n_val = max(n_val, 1) if val_fraction > 0 else 0
            n_test = max(n_test, 1) if test_fraction > 0 else 0
        while n_val + n_test > n - 1:  # train keeps at least one; shrink the larger held-out part
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val:n_val + n_test])
        parts[0].append(idx[n_val + n_test:])
    train, val, test = (np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts)
    return train, val, test


def carve_missing(pool: Sequence[int] | np.ndarray | int, cfg: Config, have_val: bool,
                  have_test: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a train pool into (train, val, test) int64 index arrays, carving only the splits the
    source lacks (`cfg.data.val_fraction` / `test_fraction`, `split_seed`); a given split gets [].

    pool: the pool's labels (classification) -> drawn per class, see `stratified_split`; or its
    size (boxes, masks: an image has no single label) -> one `torch.randperm` seeded with
    `split_seed`: val takes the first round(n * val_fraction) of it, test the next
    round(n * test_fraction) (both in permutation order), train the rest, sorted.
    """
    val_fraction = 0.0 if have_val else cfg.data.val_fraction
    test_fraction = 0.0 if have_test else cfg.data.test_fraction
    if not isinstance(pool, int):
        return stratified_split(pool, val_fraction, test_fraction, cfg.data.split_seed)
    _check_fractions(val_fraction, test_fraction)
    order = torch.randperm(pool, generator=torch.Generator().manual_seed(int(cfg.data.split_seed))).numpy()
    n_val, n_test = round(pool * val_fraction), round(pool * test_fraction)
    return np.sort(order[n_val + n_test:]), order[:n_val], order[n_val:n_val + n_test]


def carve_splits(train: T, given: dict[str, T], cfg: Config, take: Callable[[T, np.ndarray], T]) -> tuple[T, T, T]:
    """(train, val, test) of a split type without one label per item (boxes, masks): the val/test in
    `given` are kept, the missing ones carved out of `train` by size (`carve_missing`); `take(split,
    idx)` picks items. Nothing is carved (train stays as it is) when both are given."""
    if "val" in given and "test" in given:
        return train, given["val"], given["test"]
    idx = carve_missing(len(train), cfg, "val" in given, "test" in given)
    val, test = (given[s] if s in given else take(train, i) for s, i in zip(("val", "test"), idx[1:]))
    return take(train, idx[0]), val, test


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for key, frac in (("data.val_fraction", val_fraction), ("data.test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise CnnkitError(f"{key} must be in [0, 1), got {frac}: set it with `--set {key}=0.1`.")
    if val_fraction + test_fraction >= 1.0:
        raise CnnkitError(
            f"data.val_fraction + data.test_fraction must be below 1 (got {val_fraction} + {test_fraction}) "
            "so that training data remains."
        )


def bad_file_limit(total: int, max_bad: float) -> float:
    """How many bad files are tolerated: `max_bad` < 1 is a fraction of `total`, >= 1 a count."""
    if max_bad < 0:
        raise CnnkitError(f"data.max_bad must be >= 0, got {max_bad}: use a fraction like 0.01 or a count like 5.")
    return max_bad * total if max_bad < 1 else max_bad


def check_bad_files(bad: list[BadFile], total: int, max_bad: float, source: str) -> None:
    """Stop with one sentence when more files are bad than `data.max_bad` allows; else return."""
    limit = bad_file_limit(total, max_bad)
    if len(bad) <= limit:
        return
    shown = "; ".join(f"{b.path} ({b.reason})" for b in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    allowed = f"{max_bad:g} of them" if max_bad < 1 else f"{int(max_bad)}"
    raise CnnkitError(
        f"{len(bad)} of {total} files in {source} could not be used, more than data.max_bad allows "
        f"({allowed}): {shown}{more}; fix or remove them, or accept them with `--set data.max_bad={len(bad)}`."
    )
