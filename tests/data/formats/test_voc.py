"""Pascal VOC reader (1-based inclusive coordinates, ImageSets, difficult) and writer."""
from __future__ import annotations

import torch
from PIL import Image

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.formats.voc import VOC_CLASSES
from cnnkit.data.registry import WRITERS
from cnnkit.data.sources import detect_format

XML = """<annotation><folder>VOC2012</folder><filename>{name}</filename>
<size><width>60</width><height>40</height><depth>3</depth></size>
{objects}</annotation>"""
OBJ = ("<object><name>{cls}</name><difficult>{d}</difficult>"
       "<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")


def voc_tree(root, lists=True, extra_objects=()):
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    anns = {"2008_000001": [("dog", 0, (1, 1, 10, 20)), ("person", 1, (5, 5, 30, 30))],
            "2008_000002": [("cat", 0, (11, 6, 60, 40))],
            "2008_000003": [("dog", 0, (2, 3, 4, 5)), *extra_objects]}
    for stem, objs in anns.items():
        Image.new("RGB", (60, 40)).save(root / "JPEGImages" / f"{stem}.jpg")
        body = "".join(OBJ.format(cls=c, d=d, b=b) for c, d, b in objs)
        (root / "Annotations" / f"{stem}.xml").write_text(XML.format(name=f"{stem}.jpg", objects=body))
    if lists:
        (root / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000002\n")
        (root / "ImageSets/Main/val.txt").write_text("2008_000003\n")
        (root / "ImageSets/Main/dog_train.txt").write_text("2008_000001  1\n")  # per-class lists are ignored
    return root


def read(path, **data):
    cfg = Config()
    cfg.data.name = str(path)
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return build_data(cfg)


def test_reads_voc_conventions(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    assert detect_format(root).name == "voc"
    b = read(root, test_fraction=0.5)
    assert b.info.classes == VOC_CLASSES  # every name is a VOC class: VOC's own order
    assert len(b.val) == 1 and len(b.train) + len(b.test) == 2
    t = b.val.target(0)
    assert t["boxes"].tolist() == [[1.0, 2.0, 4.0, 5.0]]  # 1-based inclusive -> 0-based edges
    first = next(b.split(s) for s in ("train", "test") if "2008_000001.jpg" in b.split(s).names)
    t = first.target(first.names.index("2008_000001.jpg"))
    assert t["boxes"].tolist() == [[0.0, 0.0, 10.0, 20.0], [4.0, 4.0, 30.0, 30.0]]
    assert [VOC_CLASSES[i] for i in t["labels"]] == ["dog", "person"] and t["iscrowd"].tolist() == [0, 1]


def test_vocdevkit_folder_and_no_lists(tmp_path):
    voc_tree(tmp_path / "VOCdevkit" / "VOC2007", lists=False)
    b = read(tmp_path / "VOCdevkit", val_fraction=0.34, test_fraction=0.0)
    assert len(b.train) + len(b.val) == 3


def test_writer_keeps_float_boxes_order_and_difficult(tmp_path):
    root = voc_tree(tmp_path / "v")
    b = read(root, test_fraction=0.0)
    b.train.boxes[0] = b.train.boxes[0] + torch.tensor([0.25, 0.5, 0.75, 0.125])
    WRITERS.get("voc")(b, tmp_path / "out")
    xml = (tmp_path / "out/Annotations/2008_000001.xml").read_text()
    assert "<xmin>1.25</xmin>" in xml and "<difficult>1</difficult>" in xml
    assert (tmp_path / "out/labels.txt").read_text().split() == VOC_CLASSES
    back = read(tmp_path / "out", test_fraction=0.0)
    assert back.train.names == b.train.names
    assert torch.allclose(back.train.boxes[0], b.train.boxes[0])
    assert back.train.iscrowd[0].tolist() == b.train.iscrowd[0].tolist()


def test_custom_classes_sorted_without_labels_file(tmp_path):
    root = voc_tree(tmp_path / "v", extra_objects=[("zebra", 0, (1, 1, 3, 3))])
    b = read(root, test_fraction=0.0)
    assert b.info.classes == ["cat", "dog", "person", "zebra"]
