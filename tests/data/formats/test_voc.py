"""Pascal VOC reader (1-based inclusive coordinates, ImageSets, difficult) and writer."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from cnnkit.data import build_data
from cnnkit.data.commands import inspect
from cnnkit.data.formats.voc import VOC_CLASSES
from cnnkit.data.registry import WRITERS
from cnnkit.data.sources import detect_format
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for

XML = """<annotation><folder>VOC2012</folder><filename>{name}</filename>
<size><width>60</width><height>40</height><depth>3</depth></size>
{objects}</annotation>"""
OBJ = ("<object><name>{cls}</name><difficult>{d}</difficult>"
       "<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")


def voc_tree(root, lists=True, extra_objects=()):
    """Two train images (dog + difficult person, cat; `extra_objects` go to the first) and one val (dog)."""
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    anns = {"2008_000001": [("dog", 0, (1, 1, 10, 20)), ("person", 1, (5, 5, 30, 30)), *extra_objects],
            "2008_000002": [("cat", 0, (11, 6, 60, 40)), ("dog", 0, (1, 1, 9, 9))],
            "2008_000003": [("dog", 0, (2, 3, 4, 5))]}
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
    return build_data(cfg_for(path, **data))


def test_reads_voc_conventions(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    assert detect_format(root).name == "voc"
    b = read(root, test_fraction=0.0)
    assert b.info.classes == ["cat", "dog", "person"]  # the names found, sorted: VOC names are no reason for 20
    assert len(b.val) == 1 and len(b.train) == 2
    t = b.val.target(0)
    assert t["boxes"].tolist() == [[1.0, 2.0, 4.0, 5.0]]  # 1-based inclusive -> 0-based edges
    t = b.train.target(b.train.names.index("2008_000001.jpg"))
    assert t["boxes"].tolist() == [[0.0, 0.0, 10.0, 20.0], [4.0, 4.0, 30.0, 30.0]]
    assert [b.info.classes[i] for i in t["labels"]] == ["dog", "person"] and t["iscrowd"].tolist() == [0, 1]


def test_voc_names_stay_the_classes_found_and_labels_txt_gives_a_superset(tmp_path):
    """voc_float: a cat/dog set whose names happen to be VOC names is a 2-class set; VOC's 20 only
    when labels.txt says so (the classes without boxes are then named in a note)."""
    root = voc_tree(tmp_path / "v")
    for f in (root / "Annotations").glob("*.xml"):  # drop the person: cat and dog only
        f.write_text(f.read_text().replace("<name>person</name>", "<name>dog</name>"))
    assert read(root, test_fraction=0.0).info.classes == ["cat", "dog"]
    (root / "labels.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    b = read(root, test_fraction=0.0)
    assert b.info.classes == VOC_CLASSES
    assert any("18 of 20" in n or "aeroplane" in n for n in b.info.extra["notes"].values())


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
    assert (tmp_path / "out/labels.txt").read_text().split() == ["cat", "dog", "person"]
    back = read(tmp_path / "out", test_fraction=0.0)
    assert back.train.names == b.train.names
    assert torch.allclose(back.train.boxes[0], b.train.boxes[0])
    assert back.train.iscrowd[0].tolist() == b.train.iscrowd[0].tolist()


def test_custom_classes_sorted_without_labels_file(tmp_path):
    root = voc_tree(tmp_path / "v", extra_objects=[("zebra", 0, (1, 1, 3, 3))])
    b = read(root, test_fraction=0.0)
    assert b.info.classes == ["cat", "dog", "person", "zebra"]


HOSTILE_XML = {  # (objects of the first train image, the issue kind inspect reports)
    "object without name": ("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
                            "</object>", "bad_annotation"),
    "empty name": ("<object><name> </name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
                   "</bndbox></object>", "bad_annotation"),
    "no bndbox": ("<object><name>dog</name></object>", "bad_annotation"),
    "coordinate missing": ("<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax></bndbox>"
                           "</object>", "bad_annotation"),
    "coordinate nan": ("<object><name>dog</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"
                       "</bndbox></object>", "bad_annotation"),
    "coordinate text": ("<object><name>dog</name><bndbox><xmin>left</xmin><ymin>1</ymin><xmax>9</xmax>"
                        "<ymax>9</ymax></bndbox></object>", "bad_annotation"),
    "float corners a hair out": ("<object><name>dog</name><bndbox><xmin>0.2</xmin><ymin>0.5</ymin>"
                                 "<xmax>61.5</xmax><ymax>40.9</ymax></bndbox></object>", None),  # clipped
}


@pytest.mark.parametrize("case", list(HOSTILE_XML))
def test_an_unreadable_object_leaves_its_image_out_with_a_sentence(tmp_path, case):
    objects, kind = HOSTILE_XML[case]
    root = voc_tree(tmp_path / "v")
    xml = root / "Annotations/2008_000001.xml"
    xml.write_text(xml.read_text().replace("</annotation>", objects + "</annotation>"))
    report = inspect(str(root))
    kinds = set(report.by_kind()) - {"class-without-examples"}  # coverage: the only person is difficult
    assert kinds == ({kind} if kind else set()), report.issues
    b = read(root, test_fraction=0.0, max_bad=1)
    assert ("2008_000001.jpg" in b.train.names) == (kind is None)
    if kind:
        assert "2008_000001.xml" in b.info.bad_files[0].reason and "<object> 3 lacks" in b.info.bad_files[0].reason


def test_size_zero_nan_or_negative_uses_the_image_header(tmp_path):
    root = voc_tree(tmp_path / "v")
    for stem, size in (("2008_000001", "0"), ("2008_000002", "nan"), ("2008_000003", "-60")):
        xml = root / f"Annotations/{stem}.xml"
        xml.write_text(xml.read_text().replace("<width>60</width>", f"<width>{size}</width>"))
    assert set(inspect(str(root)).by_kind()) == {"class-without-examples"}  # no size fault (the person is difficult)
    assert read(root, test_fraction=0.0).train.sizes == [(40, 60), (40, 60)]


def test_an_imagesets_id_without_its_xml_is_one_sentence(tmp_path):
    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000002\nimg999\n")
    xml, listing = root / "Annotations/img999.xml", root / "ImageSets/Main/train.txt"
    sentence = f"id 'img999' is listed in {listing} but {xml} does not exist; add it or remove the id"
    issues = [i for i in inspect(str(root)).issues if i["kind"] != "class-without-examples"]  # person is difficult
    assert issues == [{"kind": "missing_annotation", "file": str(xml), "problem": sentence}]
    with pytest.raises(CnnkitError, match=r"\(id 'img999' is listed in .*train\.txt but .*img999\.xml does not "
                                          r"exist; add it or remove the id\); fix or remove them"):
        read(root, test_fraction=0.0)
    assert len(read(root, test_fraction=0.0, max_bad=1).train) == 2


# ---- issue 15: <filename> and ids stay inside the VOC folder; external entities are never resolved ------------
@pytest.mark.parametrize("name", ["../../../../../../../../etc/passwd", "/etc/passwd"])
def test_a_filename_outside_the_voc_folder_is_refused(tmp_path, name):
    root = voc_tree(tmp_path / "voc")
    xml = root / "Annotations" / "2008_000001.xml"
    xml.write_text(XML.format(name=name, objects=OBJ.format(cls="dog", d=0, b=(1, 1, 10, 20))))
    with pytest.raises(CnnkitError, match=rf"2008_000001\.xml: <filename> '{name}' points outside the dataset"):
        read(root)
    (root / "ImageSets/Main/train.txt").write_text("../../../../../../tmp/x\n2008_000002\n")
    with pytest.raises(CnnkitError, match=r"train\.txt: id '../../../../../../tmp/x' points outside"):
        read(root)


def test_an_external_entity_is_not_resolved(tmp_path):
    root = voc_tree(tmp_path / "voc")
    (root / "Annotations" / "2008_000001.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        "<annotation><filename>&x;</filename></annotation>")
    (issue,) = [i for i in inspect(str(root)).issues if i["kind"] == "bad_annotation"]
    assert "undefined entity &x;" in issue["problem"]
