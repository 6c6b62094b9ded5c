"""Classification health report: bad files, empty classes, imbalance and cross-split duplicates."""
from __future__ import annotations

from cnnkit.data.commands import inspect

from ..conftest import cfg_for, class_tree, png


def test_inspect_reports_bad_empty_imbalanced_and_duplicate(tmp_path):
    root = tmp_path / "d"
    class_tree(root / "train", classes=("big",), per_class=22)
    class_tree(root / "train", classes=("small",), per_class=2)
    png(root / "test" / "big" / "dup.png", value=0)  # same pixels as train/big/0.png
    (root / "train" / "none").mkdir()
    (root / "train" / "big" / "z.png").write_bytes(b"")
    rep = inspect(str(root), cfg_for(root, max_bad=0))  # inspect never stops at max_bad
    kinds = rep.by_kind()
    # "unusable": the sentence training stops with (the empty class folder), as build_data says it
    assert kinds == {"zero-byte": 1, "empty-class": 1, "imbalance": 1, "duplicate": 1, "unusable": 1}
    assert rep.counts["images"] == 25 and rep.counts["per_class"] == {"big": 23, "none": 0, "small": 2}
    assert rep.counts["channels"] == 1 and rep.counts["sizes"] == {"8x8": 25}
    dup = next(i for i in rep.issues if i["kind"] == "duplicate")
    assert "0.png" in dup["file"] + dup["problem"] and "dup.png" in dup["file"] + dup["problem"]
