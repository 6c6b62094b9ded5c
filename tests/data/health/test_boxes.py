"""Annotation health: a deliberately broken dataset has every fault flagged, and training skips them."""
from __future__ import annotations

import json
import warnings

import pytest
from PIL import Image

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.commands import inspect
from cnnkit.errors import CnnkitError


def broken_coco(root):
    img = root / "images" / "train"
    img.mkdir(parents=True)
    for name in ("ok.png", "nolabels.png", "dup.png", "wrongsize.png"):
        Image.new("L", (40, 30), 255).save(img / name)
    (img / "corrupt.png").write_bytes(b"this is not an image at all")
    (img / "empty.png").write_bytes(b"")
    images = [{"id": 1, "file_name": "ok.png", "width": 40, "height": 30},
              {"id": 2, "file_name": "missing.png", "width": 40, "height": 30},
              {"id": 3, "file_name": "corrupt.png", "width": 40, "height": 30},
              {"id": 4, "file_name": "empty.png", "width": 40, "height": 30},
              {"id": 5, "file_name": "nolabels.png", "width": 40, "height": 30},
              {"id": 1, "file_name": "dup.png", "width": 40, "height": 30},
              {"id": 7, "file_name": "wrongsize.png", "width": 100, "height": 100}]
    boxes = [(1, 1, [1, 1, 10, 10]), (1, 1, [35, 5, 20, 10]), (1, 1, [5, 5, 0, 4]), (1, 1, [5, 5, -3, 4]),
             (1, 99, [2, 2, 5, 5]), (2, 1, [1, 1, 5, 5]), (3, 1, [1, 1, 5, 5]), (77, 1, [1, 1, 5, 5]),
             (7, 1, [1, 1, 5, 5])]
    anns = [{"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "iscrowd": 0}
            for k, (i, c, b) in enumerate(boxes)]
    (root / "annotations").mkdir()
    (root / "annotations/instances_train.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}))
    return root


def test_every_fault_of_a_broken_coco_set_is_flagged(tmp_path):
    root = broken_coco(tmp_path / "bad")
    report = inspect(str(root))
    kinds = report.by_kind()
    assert kinds["box_outside"] == 1
    assert kinds["degenerate_box"] == 2
    assert kinds["unknown_class"] == 1
    assert kinds["missing_image"] == 1
    assert kinds["unreadable_image"] == 2
    assert kinds["duplicate_image_id"] == 1
    assert kinds["unknown_image"] == 1
    assert kinds["size_mismatch"] == 1
    assert kinds["no_labels"] >= 1
    files = {(i["kind"], i["file"].split("/")[-1]) for i in report.issues}
    for expected in [("missing_image", "missing.png"), ("unreadable_image", "corrupt.png"),
                     ("unreadable_image", "empty.png"), ("duplicate_image_id", "dup.png"),
                     ("no_labels", "nolabels.png"), ("size_mismatch", "wrongsize.png"),
                     ("box_outside", "instances_train.json"), ("unknown_image", "instances_train.json")]:
        assert expected in files, expected
    assert any("ok.png" in i["problem"] and "99" in i["problem"] for i in report.issues if i["kind"] == "unknown_class")
    assert report.counts["images"] == 7 and report.counts["per_class"] == {"thing": 7}
    assert report.to_dict()["issue_counts"] == kinds


def test_training_skips_bad_images_and_boxes_within_max_bad(tmp_path):
    root = broken_coco(tmp_path / "bad")
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    with pytest.raises(CnnkitError, match="data.max_bad"):
        build_data(cfg)
    cfg.data.max_bad = 50
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = build_data(cfg)
    assert any("boxes" in str(w.message) and "skipped" in str(w.message) for w in caught)
    bad = {b.path.split("/")[-1] for b in bundle.info.bad_files}
    assert {"missing.png", "corrupt.png", "empty.png", "dup.png", "wrongsize.png"} <= bad
    assert sorted(bundle.train.names) == ["nolabels.png", "ok.png"]
    ok = bundle.train.target(bundle.train.names.index("ok.png"))
    assert ok["boxes"].tolist() == [[1.0, 1.0, 11.0, 11.0]]
    assert bundle.info.extra["skipped_boxes"] == 4


def test_yolo_and_voc_specific_faults(tmp_path):
    y = tmp_path / "y"
    (y / "images").mkdir(parents=True)
    (y / "labels").mkdir()
    (y / "classes.txt").write_text("a\nb\n")
    Image.new("RGB", (20, 20)).save(y / "images/p.png")
    (y / "labels/p.txt").write_text("5 0.5 0.5 0.2 0.2\n0 1.2 0.5 0.4 0.2\n0 0.5 0.5 0 0.2\nnot a box\n")
    kinds = inspect(str(y)).by_kind()
    assert kinds == {"unknown_class": 1, "box_outside": 1, "degenerate_box": 1, "bad_annotation": 1}

    v = tmp_path / "v"
    (v / "Annotations").mkdir(parents=True)
    (v / "JPEGImages").mkdir()
    Image.new("RGB", (20, 20)).save(v / "JPEGImages/q.jpg")
    (v / "Annotations/q.xml").write_text("<annotation><filename>q.jpg</filename><object><name>a</name>"
                                         "<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>3</xmax><ymax>9</ymax>"
                                         "</bndbox></object></annotation>")
    (v / "Annotations/r.xml").write_text("<annotation><filename>r.jpg</filename>")  # truncated XML
    (v / "labels.txt").write_text("a\n")
    report = inspect(str(v))
    assert report.by_kind() == {"bad_annotation": 1, "degenerate_box": 1}
    assert report.issues[0]["file"].endswith("r.xml")


def test_builtin_set_is_clean(monkeypatch):
    from cnnkit.data.builtin import canvas

    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 4, "val": 2, "test": 2})
    report = inspect("digits-detect")
    assert report.by_kind() == {} and report.counts["images"] == 8
