"""data/sources.py: what a `--data` value becomes — built-in names, paths, format detection, added statistics."""
from __future__ import annotations

import pytest

import cnnkit.data  # noqa: F401  registers the built-ins and the formats
from cnnkit.config import Config
from cnnkit.data.base import TensorSplit
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.registry import BUILTINS, FORMATS
from cnnkit.data.sources import build_data, build_named, detect_format
from cnnkit.errors import CnnkitError

from .conftest import cfg_for, class_tree


def test_unknown_name_is_one_sentence_with_a_suggestion():
    with pytest.raises(CnnkitError) as e:
        build_data(cfg_for("digitz"))
    assert str(e.value) == ('Unknown dataset "digitz": it is neither a built-in set nor an existing path. '
                            f'Did you mean "digits"? Built-in: {", ".join(BUILTINS)}.')


def test_missing_path_and_unknown_layout_name_the_path(tmp_path):
    with pytest.raises(CnnkitError, match=r"^Data path no/such/folder does not exist\.$"):
        build_data(cfg_for("./no/such/folder"))
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(CnnkitError) as e:
        detect_format(tmp_path)
    assert str(e.value).startswith(f"Could not tell the format of {tmp_path}: expected one of "
                                   f"{', '.join(sorted(FORMATS))}.")


def test_build_named_keeps_the_config_and_adds_train_statistics(tmp_path):
    root = class_tree(tmp_path / "set")
    cfg = Config()
    cfg.data.name = "digits"
    bundle = build_named(str(root), cfg)
    assert cfg.data.name == "digits"  # the caller's config is left as it was
    train, extra = bundle.train, bundle.info.extra
    assert isinstance(train, TensorSplit) and extra["n_train"] == len(train) == 21
    x = train.images.double() / 255  # float64 reference for the per-channel statistics
    assert extra["mean"] == [round(float(x.mean()), 4)]
    assert extra["std"] == [round(max(float(x.std()), 1e-3), 4)]


def test_box_target_serves_a_segmentation_set_as_its_objects():
    boxes = build_data(Config.from_dict({"data": {"name": "digits-seg"}}), target="boxes")
    assert boxes.info.task == "detect" and boxes.info.classes == [str(d) for d in range(10)]  # no "background"
    assert isinstance(boxes.train, DetectionSplit) and boxes.train.masks is not None
    target = boxes.train.target(0, masks=True)
    assert len(target["boxes"]) == len(target["labels"]) == len(target["masks"]) > 0
    for (x1, y1, x2, y2), m in zip(target["boxes"].tolist(), target["masks"].bool()):
        ys, xs = m.nonzero(as_tuple=True)  # each object's mask lies inside its box
        assert x1 - 1 <= xs.min() and xs.max() + 1 <= x2 + 1 and y1 - 1 <= ys.min() and ys.max() + 1 <= y2 + 1
