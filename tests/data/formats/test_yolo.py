"""YOLO txt reader (Ultralytics data.yaml and classes.txt layouts) and writer."""
from __future__ import annotations

import pytest
import torch
import yaml
from PIL import Image

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.formats.yolo import label_path
from cnnkit.data.registry import WRITERS
from cnnkit.data.sources import detect_format


def read(path, **data):
    cfg = Config()
    cfg.data.name = str(path)
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return build_data(cfg)


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
