"""stratified_split / carve_missing / carve_splits determinism and stratification; check_bad_files thresholds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile
from cnnkit.data.splits import carve_missing, carve_splits, check_bad_files, stratified_split
from cnnkit.errors import CnnkitError

LABELS = np.repeat(np.arange(4), [100, 40, 3, 2])


def test_split_is_a_partition_and_deterministic():
    tr, va, te = stratified_split(LABELS, 0.1, 0.2, seed=0)
    both = np.concatenate([tr, va, te])
    assert sorted(both.tolist()) == list(range(len(LABELS)))
    again = stratified_split(LABELS, 0.1, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    other = stratified_split(LABELS, 0.1, 0.2, seed=1)
    assert not np.array_equal(va, other[1])
    assert all(np.all(np.diff(p) > 0) for p in (tr, va, te))  # sorted


def test_split_is_stratified_with_a_floor_of_one():
    tr, va, te = stratified_split(LABELS, 0.1, 0.2, seed=3)
    count = lambda idx, c: int((LABELS[idx] == c).sum())  # noqa: E731
    assert (count(tr, 0), count(va, 0), count(te, 0)) == (70, 10, 20)
    assert (count(tr, 1), count(va, 1), count(te, 1)) == (28, 4, 8)
    assert (count(tr, 2), count(va, 2), count(te, 2)) == (1, 1, 1)  # >= 3 items: one in every split
    assert count(tr, 3) >= 1 and count(tr, 3) + count(va, 3) + count(te, 3) == 2


def test_zero_fractions_leave_splits_empty():
    tr, va, te = stratified_split(LABELS, 0.0, 0.25, seed=0)
    assert len(va) == 0 and len(te) > 0 and len(tr) + len(te) == len(LABELS)


@pytest.mark.parametrize("val,test", [(-0.1, 0.2), (0.5, 0.5), (1.0, 0.0)])
def test_bad_fractions_are_config_errors(val, test):
    with pytest.raises(CnnkitError, match="fraction"):
        stratified_split(LABELS, val, test, seed=0)


def test_carve_missing_only_carves_what_is_missing():
    cfg = Config()
    cfg.data.val_fraction, cfg.data.test_fraction = 0.25, 0.5
    tr, va, te = carve_missing(LABELS, cfg, have_val=False, have_test=True)
    assert len(te) == 0 and len(va) > 0
    tr, va, te = carve_missing(LABELS, cfg, have_val=True, have_test=True)
    assert len(tr) == len(LABELS)


def test_carve_by_size_is_the_seeded_permutation():
    cfg = Config()
    cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.split_seed = 0.1, 0.2, 7
    tr, va, te = carve_missing(50, cfg, have_val=False, have_test=False)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(7)).tolist()
    assert va.tolist() == order[:5] and te.tolist() == order[5:15] and tr.tolist() == sorted(order[15:])
    tr, va, te = carve_missing(50, cfg, have_val=True, have_test=False)  # test takes the first draws
    assert len(va) == 0 and te.tolist() == order[:10] and tr.tolist() == sorted(order[10:])
    with pytest.raises(CnnkitError, match="fraction"):
        cfg.data.val_fraction = 0.9
        carve_missing(50, cfg, have_val=False, have_test=False)


def test_carve_splits_keeps_given_subsets_and_carves_the_rest():
    cfg = Config()
    cfg.data.val_fraction, cfg.data.test_fraction = 0.2, 0.2
    pool, given_val = list(range(100, 120)), ["v"]

    def take(split, idx):
        return [split[i] for i in idx]

    tr, va, te = carve_splits(pool, {"val": given_val}, cfg, take)
    assert va is given_val and len(te) == 4 and sorted(tr + te) == pool
    assert carve_splits(pool, {"val": given_val, "test": ["t"]}, cfg, take) == (pool, given_val, ["t"])


def bad(n):
    return [BadFile(f"img{i}.png", "truncated: image file is truncated") for i in range(n)]


def test_check_bad_files_fraction_and_count():
    check_bad_files(bad(1), total=100, max_bad=0.01, source="data/")  # 1 <= 1% of 100
    check_bad_files(bad(5), total=10, max_bad=5, source="data/")  # absolute count
    with pytest.raises(CnnkitError) as err:
        check_bad_files(bad(5), total=100, max_bad=0.01, source="data/")
    msg = str(err.value)
    assert "5 of 100 files in data/" in msg and "img0.png (truncated" in msg and "and 2 more" in msg
    assert "--set data.max_bad=5" in msg
    with pytest.raises(CnnkitError, match="data.max_bad"):
        check_bad_files(bad(3), total=10, max_bad=2, source="x")
    with pytest.raises(CnnkitError, match=">= 0"):
        check_bad_files([], total=10, max_bad=-1, source="x")
