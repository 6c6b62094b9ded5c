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
    # the counts are what training uses: only nolabels.png (a background sample) survives
    assert (report.counts["images"], report.counts["boxes"], report.counts["left_out_images"]) == (1, 0, 6)
    assert report.counts["per_class"] == {"thing": 0}
    assert report.to_dict()["issue_counts"] == kinds


def yolo_set(root, rows: dict[str, list[str]], names=("a", "b"), size=(40, 30)):
    """A classes.txt YOLO set: one image per key of `rows` (its label lines; None = no label file)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    for stem, lines in rows.items():
        Image.new("RGB", size).save(root / "images" / f"{stem}.png")
        if lines is not None:
            (root / "labels" / f"{stem}.txt").write_text("".join(ln + "\n" for ln in lines))
    return root


def test_an_image_with_a_bad_box_is_left_out_whole_and_listed(tmp_path):
    """yolo_edge with data.max_bad: the object of a dropped box must not become background."""
    root = yolo_set(tmp_path / "y", {"ok1": ["0 0.5 0.5 0.2 0.2", "1 0.3 0.3 0.2 0.2"], "ok2": ["1 0.5 0.5 0.2 0.2"],
                                     "bad": ["0 0.5 0.5 0.2 0.2", "1 1.2 0.5 0.4 0.2"]})  # 10 px past the right edge
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    with pytest.raises(CnnkitError, match=r"--set data.max_bad=1`"):
        build_data(cfg)
    cfg.data.max_bad = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a console note, never a Python warning
        bundle = build_data(cfg)
    assert sorted(bundle.train.names) == ["ok1.png", "ok2.png"]
    (bad,) = bundle.info.bad_files
    assert bad.path.endswith("bad.png") and "box_outside" in bad.reason and "bad.txt" in bad.reason
    assert bundle.info.extra["skipped_boxes"] == 1
    assert bundle.info.extra["notes"]["boxes:left_out"].startswith("warning: left out 1 of 3 images")


def test_a_class_whose_training_boxes_were_all_dropped_stops_by_name(tmp_path):
    root = yolo_set(tmp_path / "y", {"ok1": ["0 0.5 0.5 0.2 0.2"], "ok2": ["0 0.4 0.4 0.2 0.2"],
                                     "bad": ["1 0.5 0.5 0.2 0.2", "0 -0.5 0.5 0.2 0.2"]})
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    cfg.data.max_bad = 1
    with pytest.raises(CnnkitError, match="class b has no training box left after leaving out 1 images"):
        build_data(cfg)


def test_broken_coco_set_stops_when_every_box_image_is_left_out(tmp_path):
    root = broken_coco(tmp_path / "bad")
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    cfg.data.max_bad = 50
    with pytest.raises(CnnkitError, match="class thing has no training box left"):
        build_data(cfg)  # ok.png carries the bad boxes: keeping it would make them background


def test_duplicate_rows_clipped_boxes_and_beside_labels_in_the_report(tmp_path):
    root = yolo_set(tmp_path / "y", {"p": ["0 0.5 0.5 0.2 0.2", "0 0.5 0.5 0.2 0.2", "1 0.5 0.5 0.2 1.01"],
                                     "q": ["1 0.5 0.5 0.2 0.2"]})
    report = inspect(str(root))
    assert report.by_kind() == {"duplicate_box": 1}
    (dup,) = report.issues
    assert dup["file"].endswith("p.txt") and "box 2 repeats box 1" in dup["problem"]
    assert report.counts["clipped_boxes"] == 1 and report.counts["duplicate_boxes"] == 1
    assert "1 boxes clipped to the image border" in report.counts["notes"]["boxes:clipped"]
    # 4 boxes written, the copy is dropped on load: the counts say what training uses, as build_data does
    assert (report.counts["boxes"], report.counts["per_class"]) == (3, {"a": 1, "b": 2})
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    assert sum(len(b) for b in build_data(cfg).train.boxes) == 3


def test_counts_leave_out_an_image_loading_leaves_out(tmp_path):
    root = voc_set(tmp_path / "v", {"a": ["cat", "dog"], "b": ["cat"], "c": ["dog"]})
    (root / "JPEGImages/b.jpg").unlink()
    report = inspect(str(root))
    assert report.by_kind() == {"missing_image": 1}
    assert {k: report.counts[k] for k in ("images", "boxes", "left_out_images", "per_class")} == \
        {"images": 2, "boxes": 3, "left_out_images": 1, "per_class": {"cat": 1, "dog": 2}}


def test_no_box_at_all_is_a_fault_and_names_where_labels_were_looked_for(tmp_path):
    root = yolo_set(tmp_path / "y", {"p": None, "q": None})
    kinds = inspect(str(root)).by_kind()
    assert kinds.get("no_boxes") == 1 and "no_labels" not in kinds  # one fault, not two background samples
    cfg = Config()
    cfg.data.name = str(root)
    with pytest.raises(CnnkitError, match=r"not a single box \(label files were looked for in .*labels"):
        build_data(cfg)


def test_yolo_and_voc_specific_faults(tmp_path):
    y = tmp_path / "y"
    (y / "images").mkdir(parents=True)
    (y / "labels").mkdir()
    (y / "classes.txt").write_text("a\nb\n")
    Image.new("RGB", (20, 20)).save(y / "images/p.png")
    (y / "labels/p.txt").write_text("5 0.5 0.5 0.2 0.2\n0 1.2 0.5 0.4 0.2\n0 0.5 0.5 0 0.2\nnot a box\n")
    kinds = inspect(str(y)).by_kind()
    # the only image is left out for its bad boxes, so the set cannot be loaded at all (coverage's `unusable`)
    assert kinds == {"unknown_class": 1, "box_outside": 1, "degenerate_box": 1, "bad_annotation": 1, "unusable": 1}

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
    assert report.by_kind() == {"bad_annotation": 1, "degenerate_box": 1, "unusable": 1}
    assert report.issues[0]["file"].endswith("r.xml")


def test_builtin_set_is_clean(monkeypatch):
    from cnnkit.data.builtin import canvas

    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 8, "val": 2, "test": 2})  # train sees every digit
    report = inspect("digits-detect")
    assert report.by_kind() == {} and report.counts["images"] == 12


def _strict(root, capsys) -> tuple[int, dict]:
    from cnnkit.cli import main

    rc = main(["data", "inspect", str(root), "--strict", "--json"])
    return rc, json.loads(capsys.readouterr().out)


BOX = "0 0.5 0.5 0.2 0.2"
STRICT = {  # set -> the fault kind `--strict` must name (None: a clean set, exit 0)
    "duplicate rows": ({"p": [BOX, BOX], "q": [BOX]}, "duplicate_box"),
    "no box at all": ({"p": [], "q": []}, "no_boxes"),
    "box far outside": ({"p": [BOX, "0 1.4 0.5 0.2 0.2"], "q": [BOX]}, "box_outside"),
    "unparsable row": ({"p": [BOX, "0 0.5 zero 0.2 0.2"], "q": [BOX]}, "bad_annotation"),
    "clipped only": ({"p": ["0 0.5 0.5 0.2 1.01"], "q": [BOX]}, None),  # clipped boxes are counted, not faults
}


@pytest.mark.parametrize("case", list(STRICT))
def test_inspect_strict_exits_non_zero_and_names_each_fault(tmp_path, capsys, case):
    rows, kind = STRICT[case]
    rc, report = _strict(yolo_set(tmp_path / "y", rows, names=("a",)), capsys)
    assert (rc, set(report["issue_counts"]) - {"unusable"}) == ((1, {kind}) if kind else (0, set()))


def test_inspect_strict_names_a_differing_label_file_beside_an_image(tmp_path, capsys):
    root = yolo_set(tmp_path / "y", {"p": [BOX], "q": [BOX]}, names=("a",))
    (root / "images/p.txt").write_text("0 0.1 0.1 0.1 0.1\n")
    rc, report = _strict(root, capsys)
    assert rc == 1 and report["issue_counts"] == {"beside_labels": 1}


def voc_set(root, objects: dict[str, list[str]]):
    """A VOC folder without labels.txt: one 40x30 image per key, one 10x10 box per class name listed."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem, names in objects.items():
        Image.new("RGB", (40, 30)).save(root / "JPEGImages" / f"{stem}.jpg")
        objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{5 + 3 * k}</xmin><ymin>5</ymin><xmax>{15 + 3 * k}"
                       f"</xmax><ymax>15</ymax></bndbox></object>" for k, n in enumerate(names))
        (root / "Annotations" / f"{stem}.xml").write_text(f"<annotation><filename>{stem}.jpg</filename>{objs}"
                                                          "</annotation>")
    return root


def test_class_names_differing_only_in_case_are_reported_and_warned_not_merged(tmp_path):
    root = voc_set(tmp_path / "v", {"a": ["cat", "dog"], "b": ["cat"], "c": ["Cat", "dog"], "d": ["dog"]})
    report = inspect(str(root))
    (clash,) = [i for i in report.issues if i["kind"] == "class_name_case"]
    assert clash["problem"] == ("class names 'Cat' and 'cat' differ only in case, so they are 2 separate classes; "
                                "if they are one, write it one way in every annotation file")
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    loaded = build_data(cfg)
    assert loaded.info.classes == ["Cat", "cat", "dog"]
    assert loaded.info.extra["notes"]["boxes:class_name_case:0"] == f"warning: {root}: " + clash["problem"]
