"""The shared box load path: clipping within the edge tolerance, duplicate boxes, sets without boxes, notes."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from PIL import Image

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.commands import convert, inspect
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.formats.box_scan import box_faults, edge_tolerance
from cnnkit.data.registry import WRITERS
from cnnkit.errors import CnnkitError
from cnnkit.tasks.detection_metrics import DetectionMetric


def read(path, **data) -> DataBundle:
    cfg = Config()
    cfg.data.name = str(path)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return build_data(cfg)


def yolo_edge(root):
    """The trust/yolo_edge example: 320x240 images, block boxes inside; in train, three full-height bars
    exported with h = 1.01 (1.2 px past top and bottom) and one bar 1.9 px past the right edge."""
    w, h = 320, 240
    for split, n in {"train": 8, "val": 2, "test": 2}.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (w, h)).save(root / "images" / split / f"{i}.png")
            lines = [f"0 {(20 + 10 * i + 25) / w:.6f} {(30 + 30) / h:.6f} {50 / w:.6f} {60 / h:.6f}"]
            if split == "train" and i < 3:
                lines.append(f"1 {(230 + 10 * i + 15) / w:.6f} 0.500000 {30 / w:.6f} 1.010000")
            if split == "train" and i == 3:
                lines.append(f"1 {(w - 15 + 1) / w:.6f} 0.500000 {(30 + 1.9) / w:.6f} 0.500000")
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\ntest: images/test\n"
                                    "names:\n  0: block\n  1: bar\n")
    return root


def test_edge_tolerance_scales_with_the_image_side():
    assert edge_tolerance(64) == 2.0 and edge_tolerance(240) == pytest.approx(4.8)
    assert edge_tolerance(4000) == pytest.approx(80.0)
    ok = [[-1.2, 0, 10, 10], [0, 0, 241.9, 10], [0, -2.0, 10, 66.0]]  # within max(2 px, 2 %) of its side
    assert [box_faults(b, 0, "a", 1, 240.0, 64.0) for b in ok] == [None, None, None]
    assert box_faults([0, 0, 10, 66.5], 0, "a", 1, 240.0, 64.0)[0] == "box_outside"  # 2.5 px past a 64-px side
    assert box_faults([0, 0, 250, 10], 0, "a", 1, 240.0, 64.0)[0] == "box_outside"  # 10 px past a 240-px side
    assert box_faults([241, 0, 243, 10], 0, "a", 1, 240.0, 64.0)[1].endswith("lies outside the 240x64 image")
    assert box_faults([0, float("nan"), 3, 4], 0, "a", 1, 240.0, 64.0)[0] == "bad_annotation"


def test_yolo_edge_boxes_a_hair_out_are_clipped_and_counted(tmp_path, capsys):
    root = yolo_edge(tmp_path / "yolo_edge")
    report = inspect(str(root))
    assert report.issues == [] and report.counts["clipped_boxes"] == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the note is a console line, never a Python warning
        b = read(root, val_fraction=0.0)
    assert "4 boxes clipped to the image border" in capsys.readouterr().err
    assert b.info.bad_files == [] and b.info.extra["clipped_boxes"] == 4 and b.info.extra["skipped_boxes"] == 0
    bars = [box for i in range(len(b.train)) for box, lab in zip(b.train.boxes[i].tolist(), b.train.labels[i])
            if lab == 1]
    assert len(bars) == 4  # every bar keeps its box: none becomes background
    assert all(0.0 <= y1 and y2 <= 240.0 and x2 <= 320.0 for _, y1, x2, y2 in bars)
    assert sorted(round(y2 - y1, 3) for _, y1, _, y2 in bars) == [120.0, 240.0, 240.0, 240.0]
    convert(str(root), "coco", tmp_path / "out")
    written = json.loads((tmp_path / "out/annotations/instances_train.json").read_text())["annotations"]
    assert len(written) == 12 and max(a["bbox"][1] + a["bbox"][3] for a in written) == pytest.approx(240.0)


def one_image_bundle() -> DataBundle:
    boxes = torch.tensor([[2.0, 3.0, 20.0, 25.0], [30.0, 10.0, 50.0, 30.0], [5.5, 30.25, 18.0, 38.0]])
    split = DetectionSplit(torch.full((2, 3, 40, 56), 90, dtype=torch.uint8), [boxes, boxes[:2] + 1],
                           [torch.tensor([0, 1, 1]), torch.tensor([1, 0])], names=["p.png", "q.png"])
    empty = DetectionSplit(torch.zeros((0, 3, 40, 56), dtype=torch.uint8), [], [])
    return DataBundle(split, empty, empty, DatasetInfo("detect", ["cat", "dog"], 3, 56, name="dups"))


def _duplicate_rows(fmt, root):
    if fmt == "yolo":
        for f in (root / "labels/train").glob("*.txt"):
            f.write_text(f.read_text() * 2)
    elif fmt == "voc":
        for f in (root / "Annotations").glob("*.xml"):
            text = f.read_text()
            objects = text[text.index("<object>"):text.rindex("</object>") + len("</object>")]
            f.write_text(text.replace(objects, objects + objects))
    else:
        f = root / "annotations/instances_train.json"
        data = json.loads(f.read_text())
        data["annotations"] += [{**a, "id": a["id"] + 100} for a in data["annotations"]]
        f.write_text(json.dumps(data))


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_duplicate_boxes_are_reported_dropped_and_counted(tmp_path, fmt):
    original = one_image_bundle()
    WRITERS.get(fmt)(original, tmp_path / fmt)
    _duplicate_rows(fmt, tmp_path / fmt)
    assert inspect(str(tmp_path / fmt)).by_kind() == {"duplicate_box": 5}
    b = read(tmp_path / fmt)
    assert b.info.extra["duplicate_boxes"] == 5 and "dropped 5 duplicate boxes" in b.info.extra["notes"][
        "boxes:duplicates"]
    got = {b.train.name(i): b.train.boxes[i] for i in range(len(b.train))}
    assert torch.allclose(got["p.png"], original.train.boxes[0]) and torch.allclose(got["q.png"],
                                                                                    original.train.boxes[1])


def _map(targets, objects, classes) -> float:
    """mAP of perfect detections: one box with score 1 per object of `objects`, against `targets`."""
    metric = DetectionMetric(classes)
    for t, o in zip(targets, objects):
        pred = {"boxes": o["boxes"], "labels": o["labels"], "scores": torch.ones(len(o["labels"]))}
        metric.update([pred], (None, [t]))
    return metric.compute()["map"]


def test_perfect_detections_score_map_1_on_a_set_with_duplicated_rows(tmp_path):
    """The duplicated-rows example: duplicates in the ground truth made perfect detections score 0.505."""
    WRITERS.get("yolo")(one_image_bundle(), tmp_path / "y")
    _duplicate_rows("yolo", tmp_path / "y")
    split = read(tmp_path / "y").train
    targets = [split.target(i) for i in range(len(split))]
    objects = [one_image_bundle().train.target(i) for i in range(2)]
    assert sum(len(t["labels"]) for t in targets) == 5
    assert _map(targets, objects, ["cat", "dog"]) == pytest.approx(1.0)
    doubled = [{k: torch.cat([v, v]) for k, v in t.items()} for t in targets]  # what reached the metric before
    assert _map(doubled, objects, ["cat", "dog"]) < 0.6


def test_a_set_without_boxes_stops_train_and_convert_with_one_sentence(tmp_path):
    root = tmp_path / "nolabels"
    for s in ("train", "val"):
        (root / "images" / s).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32)).save(root / "images" / s / f"{i}.png")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    with pytest.raises(CnnkitError, match=r"nolabels holds 6 images but not a single box \(label files were looked "
                                          r"for in .*labels/train, .*labels/val and next to the images\)"):
        convert(str(root), "coco", tmp_path / "out")
    assert not (tmp_path / "out").exists()
