"""Label coverage before training, for every task: stops, warnings, inspect faults, built-ins pass."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit.data  # noqa: F401  registers readers and inspectors
from cnnkit.cli import main
from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo, TensorSplit
from cnnkit.data.commands import inspect
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.health.coverage import check_coverage, class_counts, coverage_faults
from cnnkit.data.segmentation import SegSplit, detection_view
from cnnkit.data.sources import build_data
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for, png


def labels_bundle(train, val, test, classes=("cat", "dog", "owl")) -> DataBundle:
    def split(labels):
        return TensorSplit(torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8), torch.tensor(labels))

    return DataBundle(split(train), split(val), split(test), DatasetInfo("classify", list(classes), 1, 4, name="mem"))


def boxes_bundle(train_labels, val_labels, crowd=False) -> DataBundle:
    def split(per_image):
        labels = [torch.tensor(lab, dtype=torch.int64) for lab in per_image]
        return DetectionSplit(torch.zeros(len(per_image), 3, 8, 8, dtype=torch.uint8),
                              [torch.tensor([[0.0, 0.0, 4.0, 4.0]] * len(lab)).reshape(-1, 4) for lab in per_image],
                              labels, [torch.full_like(lab, int(crowd)) for lab in labels])

    return DataBundle(split(train_labels), split(val_labels), split([[0]]),
                      DatasetInfo("detect", ["cat", "dog"], 3, 8, name="boxes"))


def test_class_counts_are_a_bincount_per_split_type():
    labels = np.random.default_rng(0).integers(0, 10, 60_000)
    got = class_counts(TensorSplit(torch.zeros(60_000, 1, 1, 1, dtype=torch.uint8), torch.from_numpy(labels)), 10)
    assert got.unit == "images" and got.per_class.tolist() == np.bincount(labels, minlength=10).tolist()
    boxes = class_counts(boxes_bundle([[0, 1, 1], [1]], [[0]]).train, 2)
    assert boxes.unit == "boxes" and boxes.per_class.tolist() == [1, 3]
    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)
    masks[0, 0], masks[1, 1, :2] = 2, 255
    pixels = class_counts(SegSplit(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), masks), 3)
    assert pixels.unit == "pixels" and pixels.per_class.tolist() == [26, 0, 4] and pixels.background == 0


def test_a_class_only_in_val_or_test_warns_loudly_naming_class_and_splits():
    bundle = labels_bundle([0, 1, 0, 1], [2, 0], [2, 2])
    check_coverage(bundle)  # a warning, not a stop (see the module docstring)
    assert bundle.info.extra["notes"]["coverage:class-not-in-train"] == (
        'warning: mem has examples of a class that its train split never shows ("owl" in val (1 images) and test '
        "(2 images)): a model cannot learn a class it never sees, and its score there is zero by construction; "
        "move some of those images into train (carved splits are drawn anew with another data.split_seed).")


def test_a_class_without_train_examples_warns_on_stderr_and_training_goes_on(capsys):
    bundle = labels_bundle([0, 1, 0, 1], [0], [1])
    check_coverage(bundle)
    warning = bundle.info.extra["notes"]["coverage:class-without-examples"]
    assert warning == 'warning: class "owl" of mem has no example (images) in the train split: the model will ' \
                      "learn never to predict it."
    from cnnkit.data.health.coverage import print_notes

    print_notes(bundle)
    assert warning in capsys.readouterr().err


def test_detection_train_split_without_a_box_stops_and_crowd_boxes_do_not_count():
    for bundle in (boxes_bundle([[], []], [[0]]), boxes_bundle([[0], [1]], [[0]], crowd=True)):
        with pytest.raises(CnnkitError, match="train split of boxes holds 2 images but not one box of any class"):
            check_coverage(bundle)
    (fault,) = coverage_faults(boxes_bundle([[0], [0]], [[1]]))
    assert fault.kind == "class-not-in-train" and '"dog" in val (1 boxes)' in fault.message


def test_segmentation_train_split_of_background_only_stops():
    masks = torch.zeros(3, 4, 4, dtype=torch.uint8)
    split = SegSplit(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), masks)
    bundle = DataBundle(split, split, split, DatasetInfo("segment", ["background", "road"], 1, 4, name="seg"))
    (fault,) = coverage_faults(bundle)
    assert fault.stop and fault.kind == "no-class-examples"
    assert fault.message == ("The train split of seg holds 3 images but not one non-background pixel of any class "
                             "(all 48 pixels read are background (0)): draw the objects into the masks with their "
                             "class index (1, 2, ..).")


def test_an_eval_only_set_without_train_items_is_not_a_fault():
    assert coverage_faults(labels_bundle([], [0], [1])) == []


def test_csv_class_only_in_test_warns_in_build_data_and_fails_inspect_strict(tmp_path, capsys):
    for i in range(4):
        png(tmp_path / f"c{i}.png", value=i)
        png(tmp_path / f"d{i}.png", value=100 + i)
    png(tmp_path / "o.png", value=200)
    rows = [f"c{i}.png,cat,train" for i in range(4)] + [f"d{i}.png,dog,train" for i in range(3)]
    rows += ["d3.png,dog,val", "o.png,owl,test"]
    (tmp_path / "l.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    build_data(cfg_for(tmp_path / "l.csv"))
    assert '"owl" in test (1 images)' in capsys.readouterr().err.replace("\n", " ")
    report = inspect(str(tmp_path / "l.csv"))
    assert report.by_kind() == {"class-not-in-train": 1}
    assert main(["data", "inspect", str(tmp_path / "l.csv"), "--strict"]) == 1


def test_builtin_sets_have_full_coverage():
    digits = build_data(Config())
    assert coverage_faults(digits) == []
    cfg = Config()
    cfg.data.name = "digits-seg"
    seg = build_data(cfg)  # the canvases digits-detect draws too, here with masks and boxes
    assert coverage_faults(seg) == [] and coverage_faults(detection_view(seg)) == []
    assert "notes" not in seg.info.extra and "notes" not in digits.info.extra


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_box_class_only_in_val_is_one_fault_under_one_spelling(tmp_path, fmt):
    from cnnkit.data.registry import WRITERS

    WRITERS.get(fmt)(boxes_bundle([[0], [0]], [[1]]), tmp_path / fmt)
    report = inspect(str(tmp_path / fmt))
    assert report.by_kind() == {"class-not-in-train": 1}  # not also the box inspector's class_not_in_train
    assert 'has examples of a class that its train split never shows ("dog" in val (1 boxes))' in \
        report.issues[0]["problem"]
