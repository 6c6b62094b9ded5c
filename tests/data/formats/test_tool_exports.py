"""What annotation tools really write (Roboflow, CVAT, LabelImg, Windows editors, phone photos) is read as
the tool meant, or stops with one sentence naming the file and the value — never a silent misreading."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cnnkit.data import build_data
from cnnkit.data.commands import inspect
from cnnkit.data.sources import detect_format
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for, png

BOM = "\ufeff"
LINE = "{k} 0.5 0.5 0.25 0.5\n"  # a 16x16 box in the middle of a 64x32 image


def read(path, **data):
    return build_data(cfg_for(path, **data))


def box_images(folder, n, label_dir=None, line=LINE, suffix=".png"):
    """`n` 64x32 images in `folder`, each with a YOLO label file (beside it, or in `label_dir`); classes 0/1."""
    for i in range(n):
        png(folder / f"im{i}{suffix}", size=(64, 32), mode="RGB")
        (label_dir or folder).mkdir(parents=True, exist_ok=True)
        (((label_dir or folder) / f"im{i}.txt")).write_text(line.format(k=i % 2))


def boxes_of(split):
    return sorted((split.labels[i].tolist(), split.boxes[i].tolist()) for i in range(len(split)))


# ---- YOLO --------------------------------------------------------------------------------
def ultralytics(root, yaml_data, n=4, line=LINE):
    for s in ("train", "val"):
        box_images(root / "images" / s, n, root / "labels" / s, line)
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/val", **yaml_data}))
    return root


def test_yolo_label_files_with_a_byte_order_mark_keep_their_class(tmp_path):
    root = ultralytics(tmp_path / "y", {"names": ["a", "b"]}, line=BOM + LINE)  # Notepad's UTF-8
    b = read(root, test_fraction=0.0)
    assert [b.train.labels[i].tolist() for i in range(len(b.train))] == [[0], [1], [0], [1]]


def test_roboflow_data_yaml_dot_dot_entries_are_read_beside_the_yaml(tmp_path):
    root = tmp_path / "rf"
    for s in ("train", "valid", "test"):
        box_images(root / s / "images", 3, root / s / "labels")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
                                    "nc: 2\nnames: ['a', 'b']\n")
    b = read(root)
    assert (len(b.train), len(b.val), len(b.test)) == (3, 3, 3)
    assert "../train/images in data.yaml as train/images" in b.info.extra["notes"]["yolo:roboflow:train"]


def test_yolo_nc_must_agree_with_names_and_alone_names_the_classes(tmp_path):
    root = ultralytics(tmp_path / "y", {"nc": 3, "names": ["a", "b"]})
    with pytest.raises(CnnkitError, match=r"data.yaml: nc is 3 but names lists 2 classes"):
        read(root)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnc: 2\n")
    b = read(root)
    assert b.info.classes == ["class_0", "class_1"] and "nc: 2 but no names" in b.info.extra["notes"]["yolo:names"]


@pytest.mark.parametrize("line, says", [
    ("{k} 32 16 16 16\n", "YOLO coordinates are fractions of the image width and height"),
    ("{k} 0.5 0.5 0.25 0.5 0.91\n", "has a 6th column (a prediction's confidence?)"),
])
def test_yolo_pixel_coordinates_and_a_confidence_column_say_what_is_wrong(tmp_path, line, says):
    root = ultralytics(tmp_path / "y", {"names": ["a", "b"]}, line=line)
    problems = [i["problem"] for i in inspect(str(root)).issues if i["kind"] == "bad_annotation"]
    assert len(problems) == 8 and all(says in p for p in problems), problems


@pytest.mark.parametrize("layout", ["cvat", "labelimg"])
def test_cvat_yolo_1_1_and_labelimg_folders_are_boxes_not_one_class_of_images(tmp_path, layout):
    root = tmp_path / layout
    if layout == "cvat":  # obj.names + obj_train_data/ with the labels beside the images
        box_images(root / "obj_train_data", 6)
        (root / "obj.names").write_text("a\nb\n")
        (root / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n")
        (root / "train.txt").write_text("".join(f"data/obj_train_data/im{i}.png\n" for i in range(6)))
    else:  # LabelImg's default: images, their .txt and classes.txt in one folder
        box_images(root, 6)
        (root / "classes.txt").write_text("a\nb\n")
    assert detect_format(root).name == "yolo"
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert b.info.classes == ["a", "b"] and len(b.train) == 6
    assert boxes_of(b.train)[0] == ([0], [[24.0, 8.0, 40.0, 24.0]])


def test_one_class_folder_is_refused_not_a_one_class_classifier(tmp_path):
    for i in range(4):
        png(tmp_path / "set" / "frames" / f"{i}.png")
    with pytest.raises(CnnkitError, match=r"holds one class \(frames\): a classifier needs at least two"):
        read(tmp_path / "set")


# ---- COCO --------------------------------------------------------------------------------
def coco_entries(folder, n, first_id=1):
    images, anns = [], []
    for i in range(n):
        png(folder / f"im{i}.png", size=(64, 32), mode="RGB")
        images.append({"id": first_id + i, "file_name": f"im{i}.png", "width": 64, "height": 32})
        anns.append({"id": i + 1, "image_id": first_id + i, "category_id": 1 + i % 2, "bbox": [24, 8, 16, 16],
                     "area": 256, "iscrowd": 0, "segmentation": []})
    return images, anns


def test_roboflow_coco_split_folders_and_its_grouping_category_0(tmp_path):
    root = tmp_path / "rf"
    cats = [{"id": 0, "name": "shapes", "supercategory": "none"}, {"id": 1, "name": "a", "supercategory": "shapes"},
            {"id": 2, "name": "b", "supercategory": "shapes"}]
    for s in ("train", "valid", "test"):
        images, anns = coco_entries(root / s, 3)
        (root / s / "_annotations.coco.json").write_text(json.dumps(
            {"categories": cats, "images": images, "annotations": anns}))
    assert detect_format(root).name == "coco"
    b = read(root)
    assert (len(b.train), len(b.val), len(b.test)) == (3, 3, 3)
    assert b.info.classes == ["a", "b"] and b.info.extra["category_ids"] == [1, 2]
    assert "left out category 0 ('shapes', the supercategory of a, b)" in b.info.extra["notes"]["coco:supercategory"]


def test_coco_json_with_a_bom_and_windows_file_names_is_read(tmp_path):
    root = tmp_path / "c"
    images, anns = coco_entries(root / "images" / "sub", 4)
    for im in images:
        im["file_name"] = "sub\\" + im["file_name"]
    data = json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"},
                                                                             {"id": 2, "name": "b"}]})
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_bytes(b"\xef\xbb\xbf" + data.encode())
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert len(b.train) == 4 and not b.info.bad_files


def test_a_train_subset_left_empty_says_so_instead_of_asking_for_one(tmp_path):
    root = tmp_path / "c"
    (root / "annotations").mkdir(parents=True)
    for s in ("train", "val"):
        images, anns = coco_entries(root / "images" / s, 2)
        if s == "train":
            for im in images:
                im["width"] = 640  # every train image disagrees with its file: all left out
        (root / "annotations" / f"instances_{s}.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    with pytest.raises(CnnkitError, match=r"The train subset of .* has no usable image: all 2 of its images were "
                                          r"left out \(first: .*im0.png: size_mismatch"):
        read(root, max_bad=10)


def test_a_size_that_only_fits_the_unrotated_photo_names_its_exif_orientation(tmp_path):
    root = tmp_path / "c"
    images, anns = coco_entries(root / "images" / "train", 2)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x32, shown upright as 32x64
    Image.new("RGB", (64, 32)).save(root / "images" / "train" / "im0.png", exif=exif.tobytes())
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    [issue] = [i for i in inspect(str(root)).issues if i["kind"] == "size_mismatch"]
    assert "says 64x32 but the image is 32x64 once turned upright by its EXIF orientation" in issue["problem"]


# ---- VOC and masks -----------------------------------------------------------------------
def test_voc_windows_filename_and_difficult_true(tmp_path):
    root = tmp_path / "v"
    (root / "Annotations").mkdir(parents=True)
    for i in range(3):
        png(root / "JPEGImages" / f"im{i}.jpg", size=(64, 32), mode="RGB")
        difficult = "True" if i == 0 else "0"
        (root / "Annotations" / f"im{i}.xml").write_text(
            f"<annotation><filename>C:\\Users\\me\\Pictures\\im{i}.jpg</filename><object><name>a</name>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>25</xmin><ymin>9</ymin><xmax>40</xmax><ymax>24</ymax>"
            "</bndbox></object></annotation>")
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert len(b.train) == 3 and not b.info.bad_files
    assert sorted(int(b.train.iscrowd[i].sum()) for i in range(3)) == [0, 0, 1]


def test_a_jpeg_mask_is_named_and_a_gray_alpha_mask_is_read(tmp_path):
    root = tmp_path / "m"
    for i in range(4):
        png(root / "images" / f"im{i}.png", size=(16, 8))
        m = np.zeros((8, 16), np.uint8)
        m[2:6, 4:12] = 1
        (root / "masks").mkdir(exist_ok=True)
        if i == 0:
            Image.fromarray(m).save(root / "masks" / "im0.jpg")
        else:  # gray + alpha, as image editors export
            Image.fromarray(np.stack([m, np.full_like(m, 255)], -1), "LA").save(root / "masks" / f"im{i}.png")
    [missing] = [i for i in inspect(str(root)).issues if i["kind"] == "missing-mask"]
    assert "(only im0.jpg, a lossy file whose compression blurs class values" in missing["problem"]
    b = read(root, max_bad=10, val_fraction=0.0, test_fraction=0.0)
    assert b.info.classes == ["background", "1"]
    assert torch.bincount(b.train.mask(0).flatten(), minlength=2).tolist()[1] == 32


# ---- found by the adversarial sweep: tool layouts read as meant ---------------------------
def voc_xml(name, xmlns=""):
    attr = f' xmlns="{xmlns}"' if xmlns else ""
    return (f"<annotation{attr}><filename>{name}.jpg</filename><size><width>64</width><height>32</height></size>"
            "<object><name>{cls}</name><bndbox><xmin>25</xmin><ymin>9</ymin><xmax>40</xmax><ymax>24</ymax>"
            "</bndbox></object></annotation>")


def test_labelimg_pascal_voc_xml_beside_the_images_is_read_as_voc(tmp_path):
    root = tmp_path / "labelimg"  # LabelImg's default: a.jpg and a.xml in one folder, no Annotations/
    for i in range(4):
        png(root / f"im{i}.jpg", size=(64, 32), mode="RGB")
        (root / f"im{i}.xml").write_text(voc_xml(f"im{i}").replace("{cls}", "ab"[i % 2]))
    assert detect_format(root).name == "voc"
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert b.info.classes == ["a", "b"] and boxes_of(b.train)[0] == ([0], [[24.0, 8.0, 40.0, 24.0]])
    assert "read 4 Pascal VOC .xml files next to the images" in b.info.extra["notes"]["voc:beside"]


def test_voc_xml_with_a_namespace_keeps_its_objects(tmp_path):
    root = tmp_path / "v"
    for i in range(3):
        png(root / "JPEGImages" / f"im{i}.jpg", size=(64, 32), mode="RGB")
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"im{i}.xml").write_text(voc_xml(f"im{i}", "http://example.com/voc")
                                                         .replace("{cls}", "a"))
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert b.info.classes == ["a"] and [len(b.train.boxes[i]) for i in range(3)] == [1, 1, 1]


def test_roboflow_data_yaml_naming_a_missing_test_folder_reads_without_it(tmp_path):
    root = tmp_path / "rf"
    for s in ("train", "valid"):
        box_images(root / s / "images", 5, root / s / "labels")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
                                    "nc: 2\nnames: ['a', 'b']\n")
    b = read(root, test_fraction=0.2)
    assert (len(b.train), len(b.val), len(b.test)) == (4, 5, 1)
    assert "test: ../test/images in data.yaml does not exist" in b.info.extra["notes"]["yolo:missing:test"]
    (root / "data.yaml").write_text("train: ../nowhere/images\nval: ../valid/images\nnames: ['a', 'b']\n")
    with pytest.raises(CnnkitError, match=r"nowhere/images is neither an image folder"):  # train stays required
        read(root)


def test_coco_annotation_without_category_id_names_the_missing_key(tmp_path):
    root = tmp_path / "c"
    images, anns = coco_entries(root / "images", 4)
    del anns[2]["category_id"]
    (root / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    [issue] = [i for i in inspect(str(root)).issues if i["kind"] == "bad_annotation"]
    assert issue["file"].endswith("instances.json") and issue["problem"].endswith(
        'annotation 3 has no "category_id" key')


def voc_seg_set(root, values, n=6):
    """VOC segmentation layout without classes.txt: each mask holds 0, a void border and `values`."""
    for i in range(n):
        png(root / "JPEGImages" / f"im{i}.jpg", size=(16, 8), mode="RGB")
        m = np.zeros((8, 16), np.uint8)
        for k, v in enumerate(values):
            m[2:6, 2 + 4 * k:5 + 4 * k] = v
        m[7, :] = 255
        (root / "SegmentationClass").mkdir(exist_ok=True)
        Image.fromarray(m).save(root / "SegmentationClass" / f"im{i}.png")
    return root


def test_voc_seg_custom_values_get_their_own_classes_and_real_voc_keeps_its_names(tmp_path):
    custom = read(voc_seg_set(tmp_path / "custom", [1]))  # {0, 1, 255}: not VOC's aeroplane
    assert custom.info.classes == ["background", "1"]
    assert "do not look like Pascal VOC's classes" in custom.info.extra["notes"]["classes"]
    assert "add classes.txt to name them" in custom.info.extra["notes"]["classes"]
    voc = read(voc_seg_set(tmp_path / "voc", [8, 12, 15]))  # cat, dog, person: gaps in 1..20
    assert len(voc.info.classes) == 21 and voc.info.classes[15] == "person"
    assert "fit Pascal VOC's 21 classes" in voc.info.extra["notes"]["classes"]


CVAT_COLOURS = {"background": (0, 0, 0), "cat": (250, 50, 83), "dog": (61, 61, 245)}


def cvat_masks(root, labelmap=True):
    """CVAT's "Segmentation mask 1.1" export: RGB masks in SegmentationClass/ and labelmap.txt."""
    for i in range(6):
        png(root / "JPEGImages" / f"im{i}.jpg", size=(16, 8), mode="RGB")
        m = np.zeros((8, 16, 3), np.uint8)
        m[2:6, 2:6] = CVAT_COLOURS["cat"]
        m[2:6, 8:14] = CVAT_COLOURS["dog"]
        (root / "SegmentationClass").mkdir(exist_ok=True)
        Image.fromarray(m).save(root / "SegmentationClass" / f"im{i}.png")
    if labelmap:
        (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
            f"{k}:{','.join(map(str, c))}::\n" for k, c in CVAT_COLOURS.items()))
    return root


def test_cvat_colour_masks_are_read_through_labelmap_txt(tmp_path):
    b = read(cvat_masks(tmp_path / "cvat"), val_fraction=0.0, test_fraction=0.0)
    assert b.info.classes == ["background", "cat", "dog"]
    assert torch.bincount(b.train.mask(0).flatten().long(), minlength=3).tolist() == [88, 16, 24]
    with pytest.raises(CnnkitError, match=r"masks in .* are colour images .* add a labelmap.txt"):
        read(cvat_masks(tmp_path / "bare", labelmap=False))


def test_a_labelmap_listing_background_later_still_makes_it_class_0(tmp_path):
    root = cvat_masks(tmp_path / "cvat")
    (root / "labelmap.txt").write_text("cat:{}::\nbackground:0,0,0::\ndog:{}::\n".format(
        ",".join(map(str, CVAT_COLOURS["cat"])), ",".join(map(str, CVAT_COLOURS["dog"]))))
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert b.info.classes == ["background", "cat", "dog"]
    assert torch.bincount(b.train.mask(0).flatten().long(), minlength=3).tolist() == [88, 16, 24]


def test_colour_masks_with_a_colour_missing_from_labelmap_say_so_when_they_stop(tmp_path, capsys, monkeypatch):
    from cnnkit.cli import main
    from cnnkit.report import console

    monkeypatch.setattr(console.console, "width", 1000)  # one table row per line

    root = cvat_masks(tmp_path / "cvat")
    (root / "labelmap.txt").write_text("".join(f"{k}:{','.join(map(str, c))}::\n" for k, c in CVAT_COLOURS.items()
                                               if k != "background"))
    main(["data", "inspect", str(root)])
    out = " ".join(capsys.readouterr().out.split())
    assert "labelmap.txt lists every colour" in out and "draw the objects" not in out


def test_paths_of_another_machine_are_read_by_their_trailing_part_inside_the_set(tmp_path):
    root = ultralytics(tmp_path / "y", {"names": ["a", "b"]}, n=3)  # YOLO image list written on Windows
    (root / "train.txt").write_text("C:\\Users\\me\\ds\\images\\train\\im0.png\nD:/ds/images/train/im1.png\n"
                                    "\\\\nas\\share\\ds\\images\\train\\im2.png\nC:\\Users\\me\\ds\\gone.png\n"
                                    "/etc/passwd\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "train.txt", "val": "images/val", "names": ["a", "b"]}))
    with pytest.raises(CnnkitError, match=r"line 5 '/etc/passwd' points outside the dataset folder"):
        read(root)  # an absolute POSIX path stays refused
    (root / "train.txt").write_text("\n".join((root / "train.txt").read_text().splitlines()[:4]) + "\n")
    report = inspect(str(root))
    assert report.counts["splits"] == {"train": 3, "val": 3}
    assert [(i["kind"], i["file"]) for i in report.issues] == [("missing_image", str(root / "train.txt"))]
    assert "line 4 'C:\\\\Users\\\\me\\\\ds\\\\gone.png'" in report.issues[0]["problem"]
    assert "as images/train/im0.png" in report.counts["notes"]["paths:elsewhere"]

    root = tmp_path / "c"  # COCO file_names written on Windows
    images, anns = coco_entries(root / "train", 3)
    for im in images:
        im["file_name"] = "C:\\Users\\me\\export\\train\\" + im["file_name"]
    (root / "train" / "_annotations.coco.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert len(b.train) == 3 and not b.info.bad_files
    assert "read 3 image paths written on another machine" in b.info.extra["notes"]["paths:elsewhere"]


def test_labelimg_images_without_their_xml_are_background_like_yolo(tmp_path):
    root = tmp_path / "labelimg"
    for i in range(5):
        png(root / f"im{i}.jpg", size=(64, 32), mode="RGB")
        if i < 3:
            (root / f"im{i}.xml").write_text(voc_xml(f"im{i}").replace("{cls}", "ab"[i % 2]))
    report = inspect(str(root))
    assert report.counts["splits"] == {"all": 5}
    assert sorted((i["kind"], i["file"]) for i in report.issues) == [
        ("no_labels", str(root / "im3.jpg")), ("no_labels", str(root / "im4.jpg"))]
    assert "2 images without one are read as background" in report.counts["notes"]["voc:beside"]
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert len(b.train) == 5 and sorted(len(b.train.boxes[i]) for i in range(5)) == [0, 0, 1, 1, 1]


def test_voc_layout_images_without_their_xml_are_background_when_no_lists_name_the_set(tmp_path):
    root = tmp_path / "voc"  # Annotations/ + JPEGImages/, LabelImg's "change save dir", no ImageSets
    for i in range(5):
        png(root / "JPEGImages" / f"im{i}.jpg", size=(64, 32), mode="RGB")
        if i < 3:
            (root / "Annotations").mkdir(exist_ok=True)
            (root / "Annotations" / f"im{i}.xml").write_text(voc_xml(f"im{i}").replace("{cls}", "ab"[i % 2]))
    report = inspect(str(root))
    assert report.counts["splits"] == {"all": 5}
    assert sorted((i["kind"], i["file"]) for i in report.issues) == [
        ("no_labels", str(root / "JPEGImages" / "im3.jpg")), ("no_labels", str(root / "JPEGImages" / "im4.jpg"))]
    assert "2 images without one are read as background" in report.counts["notes"]["voc:background"]
    b = read(root, val_fraction=0.0, test_fraction=0.0)
    assert sorted(len(b.train.boxes[i]) for i in range(5)) == [0, 0, 1, 1, 1]
    # ImageSets lists say which images belong: an unlisted image stays out, with no note
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("im0\nim1\nim2\n")
    listed = read(root, val_fraction=0.0, test_fraction=0.0)
    assert len(listed.train) == 3 and "voc:background" not in listed.info.extra.get("notes", {})
