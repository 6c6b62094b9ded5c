"""YOLO txt reader (Ultralytics data.yaml and classes.txt layouts) and writer."""
from __future__ import annotations

import re

import pytest
import torch
import yaml
from PIL import Image

from cnnkit.data import build_data
from cnnkit.data.commands import inspect
from cnnkit.data.formats.yolo import label_path
from cnnkit.data.registry import WRITERS
from cnnkit.data.sources import detect_format
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for


def read(path, **data):
    return build_data(cfg_for(path, **data))


def ultralytics_layout(root, names=None):
    for s in ("train", "val"):
        (root / "images" / s).mkdir(parents=True)
        (root / "labels" / s).mkdir(parents=True)
    Image.new("RGB", (200, 100)).save(root / "images/train/a.jpg")
    Image.new("RGB", (200, 100)).save(root / "images/train/b.png")  # no label file: background
    Image.new("RGB", (80, 40)).save(root / "images/val/c.png")
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.2 0.1 0.2\n\n")
    (root / "labels/val/c.txt").write_text("1 0.1 0.1 0.3 0.1 0.3 0.5 0.1 0.5\n")  # polygon line
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                                    "names": names or {0: "car", 1: "bus"}}))
    return root


def test_reads_ultralytics_layout(tmp_path):
    root = ultralytics_layout(tmp_path / "ds")
    assert detect_format(root).name == "yolo"
    assert detect_format(root / "data.yaml").name == "yolo"
    b = read(root, test_fraction=0.0)
    assert b.info.classes == ["car", "bus"] and b.info.channels == 3
    names = b.train.names
    a = b.train.target(names.index("a.jpg"))
    assert torch.allclose(a["boxes"], torch.tensor([[80.0, 30, 120, 70], [10, 10, 30, 30]]))
    assert a["labels"].tolist() == [0, 1]
    assert len(b.train.target(names.index("b.png"))["boxes"]) == 0
    c = b.val.target(0)
    assert torch.allclose(c["boxes"], torch.tensor([[8.0, 4.0, 24.0, 20.0]])) and c["labels"].tolist() == [1]


def test_classes_txt_layout_without_splits_is_carved(tmp_path):
    root = tmp_path / "flat"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("one\ntwo\n")
    for i in range(10):
        Image.new("L", (32, 32)).save(root / "images" / f"{i}.png")
        (root / "labels" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    b = read(root, val_fraction=0.2, test_fraction=0.2)
    assert (len(b.train), len(b.val), len(b.test)) == (6, 2, 2)
    assert b.info.channels == 1 and b.info.classes == ["one", "two"]
    assert b.train.target(0)["boxes"].tolist() == [[12.0, 12.0, 20.0, 20.0]]


def test_writer_layout_is_ultralytics(tmp_path):
    root = ultralytics_layout(tmp_path / "ds")
    b = read(root, test_fraction=0.0)
    WRITERS.get("yolo")(b, tmp_path / "out")
    data = yaml.safe_load((tmp_path / "out/data.yaml").read_text())
    assert data["names"] == {0: "car", 1: "bus"} and data["train"] == "images/train" and data["nc"] == 2
    assert (tmp_path / "out/images/train/a.jpg").read_bytes() == (root / "images/train/a.jpg").read_bytes()
    vals = [float(v) for v in (tmp_path / "out/labels/train/a.txt").read_text().split()]
    assert vals == pytest.approx([0, 0.5, 0.5, 0.2, 0.4, 1, 0.1, 0.2, 0.1, 0.2])
    back = read(tmp_path / "out", test_fraction=0.0)
    assert torch.allclose(back.train.boxes[0], b.train.boxes[0])


def test_label_path_rule(tmp_path):
    assert str(label_path(tmp_path / "x/images/train/images/a.jpg")).endswith("x/images/train/labels/a.txt")


def beside_layout(root, n=(3, 2)):
    """The trust/yolo_beside example: images/<split>/a.png with a.txt next to it, no labels/ folder."""
    for s, count in zip(("train", "val"), n):
        (root / "images" / s).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (64, 32)).save(root / "images" / s / f"{i}.png")
            (root / "images" / s / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [red, blue]\n")
    return root


def test_labels_beside_the_images_are_read_with_a_note(tmp_path, capsys):
    root = beside_layout(tmp_path / "yolo_beside")
    report = inspect(str(root))
    assert report.issues == [] and report.counts["boxes"] == 10
    assert report.counts["notes"]["yolo:beside"] == "read 5 label files next to the images (no labels/ folder)"
    b = read(root, test_fraction=0.0)
    assert "read 5 label files next to the images (no labels/ folder)" in capsys.readouterr().err
    t = b.train.target(b.train.names.index("1.png"))
    assert t["boxes"].tolist() == [[24.0, 8.0, 40.0, 24.0], [12.0, 4.0, 20.0, 12.0]] and t["labels"].tolist() == [1, 1]


def test_labels_folder_wins_and_a_differing_file_beside_is_reported(tmp_path):
    root = ultralytics_layout(tmp_path / "ds")
    (root / "images/train/a.txt").write_text((root / "labels/train/a.txt").read_text())  # same: nothing to say
    (root / "images/train/b.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # b has no labels/ file: read from here
    (root / "images/val/c.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # differs from labels/val/c.txt: not read
    report = inspect(str(root))
    assert report.by_kind() == {"beside_labels": 1} and report.issues[0]["file"].endswith("images/val/c.txt")
    assert report.counts["notes"]["yolo:beside"] == "read 1 label files next to the images (labels/ has none for them)"
    b = read(root, test_fraction=0.0)
    assert b.val.target(0)["labels"].tolist() == [1]  # labels/val/c.txt, not the file beside the image
    assert b.train.target(b.train.names.index("b.png"))["labels"].tolist() == [0]


def test_classes_txt_layout_with_labels_beside_the_images(tmp_path):
    root = tmp_path / "flat"
    (root / "images").mkdir(parents=True)
    (root / "classes.txt").write_text("one\ntwo\n")
    for i in range(4):
        Image.new("L", (32, 32)).save(root / "images" / f"{i}.png")
        (root / "images" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    assert detect_format(root).name == "yolo"
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert sum(len(x) for x in b.train.labels) == 4


HOSTILE_YAML = {
    "name null": "train: images/train\nnames: [car, null]\n",
    "name list": "train: images/train\nnames: [car, [bus]]\n",
    "names key not an id": "train: images/train\nnames: {car: 0}\n",
    "names not numbered from 0": "train: images/train\nnames: {0: car, 2: bus}\n",
    "names a number": "train: images/train\nnames: 5\n",
    "names null": "train: images/train\nnames: null\n",
    "path a number": "path: 5\ntrain: images/train\nnames: [car, bus]\n",
    "train a number": "train: 5\nnames: [car, bus]\n",
    "train list with null": "train: [images/train, null]\nnames: [car, bus]\n",
    "train folder missing": "train: images/training\nnames: [car, bus]\n",
    "not yaml": "train: [images/train\nnames: [car, bus]\n",
}


@pytest.mark.parametrize("case", list(HOSTILE_YAML))
def test_a_null_or_wrong_typed_data_yaml_is_one_sentence(tmp_path, case):
    root = ultralytics_layout(tmp_path / "ds")
    (root / "data.yaml").write_text(HOSTILE_YAML[case])
    with pytest.raises(CnnkitError, match=r"data\.yaml"):
        read(root)
    kinds = inspect(str(root)).by_kind()
    assert kinds.get("bad_annotation") == 1, kinds


@pytest.mark.parametrize("line, kind", [
    ("0 nan 0.5 0.2 0.2", "bad_annotation"), ("0 inf 0.5 0.2 0.2", "bad_annotation"), ("0 0.5 0.5", "bad_annotation"),
    ("0 0.5 0.5 0.2 zero", "bad_annotation"), ("car 0.5 0.5 0.2 0.2", "unknown_class"),
    ("-1 0.5 0.5 0.2 0.2", "unknown_class"), ("1.5 0.5 0.5 0.2 0.2", "unknown_class"),
    ("2.0 0.5 0.5 0.2 0.2", "unknown_class"), ("\x00\xff\xfe garbage", "bad_annotation")])
def test_a_bad_label_line_leaves_its_image_out(tmp_path, line, kind):
    root = ultralytics_layout(tmp_path / "ds")
    Image.new("RGB", (200, 100)).save(root / "images/train/d.png")
    (root / "labels/train/d.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.2 0.1 0.2\n")  # both classes stay in train
    with open(root / "labels/train/a.txt", "a", encoding="latin-1") as f:
        f.write(line + "\n")
    assert inspect(str(root)).by_kind() == {kind: 1, "no_labels": 1}  # b.png is a background sample
    b = read(root, test_fraction=0.0, max_bad=1)
    assert b.train.names == ["b.png", "d.png"] and b.info.bad_files[0].path.endswith("a.jpg")


def test_an_integral_float_class_id_is_that_class(tmp_path):
    """Exporters write `1.0`; Ultralytics reads the column as floats, so 1.0 is class 1 (bus)."""
    root = ultralytics_layout(tmp_path / "ds")
    (root / "labels/train/a.txt").write_text("0.0 0.5 0.5 0.2 0.4\n1.0 0.1 0.2 0.1 0.2\n")
    assert inspect(str(root)).by_kind() == {"no_labels": 1}
    b = read(root, test_fraction=0.0)
    assert b.train.target(b.train.names.index("a.jpg"))["labels"].tolist() == [0, 1]


# ---- issue 15: a recognised but broken data.yaml says what is broken; paths stay inside the dataset ---------
@pytest.mark.parametrize("text, sentence", [
    ("train: !!python/object/apply:os.system ['echo pwned']\nnames: [car]\n",
     r"data\.yaml uses a YAML tag cnnkit does not load \(.*python/object/apply:os\.system'\)"),
    ("names: " + "[" * 5000 + "]" * 5000 + "\ntrain: images/train\n", r"data\.yaml nests deeper than 32 levels"),
    ("names:\n" + "".join(" " * k + f"k{k}:\n" for k in range(1, 400)), r"data\.yaml nests deeper than 32 levels"),
    ("train: [images/train\nnames: [car, bus]\n", r"data\.yaml is not valid YAML \(line 2: "),
])
def test_a_broken_data_yaml_is_named_not_unrecognised(tmp_path, text, sentence):
    import time

    root = ultralytics_layout(tmp_path / "ds")
    (root / "data.yaml").write_text(text)
    start = time.perf_counter()
    with pytest.raises(CnnkitError, match=sentence):
        read(root)
    assert time.perf_counter() - start < 1.0


def test_a_data_yaml_pointing_at_no_images_is_never_healthy(tmp_path, capsys):
    from cnnkit.cli import main

    root = ultralytics_layout(tmp_path / "ds")
    (root / "images" / "empty").mkdir()
    (root / "data.yaml").write_text("train: images/empty\nval: images/empty\nnames: [car, bus]\n")
    with pytest.raises(CnnkitError, match=r"ds holds no images \(.*data\.yaml: train: images/empty holds no images"):
        read(root)
    main(["data", "inspect", str(root)])
    out = capsys.readouterr().out
    assert "no problems found" not in out and "no_images" in out
    (root / "data.yaml").write_text("train: images/train\nval: images/empty\nnames: [car, bus]\n")
    assert inspect(str(root)).by_kind().get("no_images") == 1  # partly empty: listed too


@pytest.mark.parametrize("yaml_text, entry", [
    ("path: /etc\ntrain: images/train\nnames: [car, bus]\n", "path '/etc'"),
    ("train: ../../../../../../../etc\nnames: [car, bus]\n", "train '../../../../../../../etc'"),
    ("train: list.txt\nnames: [car, bus]\n", "line 2 '/etc/passwd'"),
])
def test_a_data_yaml_path_outside_the_dataset_is_refused(tmp_path, yaml_text, entry):
    root = ultralytics_layout(tmp_path / "ds")
    first = sorted((root / "images" / "train").iterdir())[0].relative_to(root)
    (root / "list.txt").write_text(f"{first}\n/etc/passwd\n")
    (root / "data.yaml").write_text(yaml_text)
    with pytest.raises(CnnkitError, match=re.escape(entry) + " points outside the dataset folder"):
        read(root)
