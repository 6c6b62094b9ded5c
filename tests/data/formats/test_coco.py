"""COCO reader/writer, and the coco -> yolo -> voc -> coco round trip (lossless for boxes and labels)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.commands import convert, inspect
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.registry import WRITERS
from cnnkit.data.sources import detect_format
from cnnkit.errors import CnnkitError

CLASSES = ["cat", "dog", "fox"]


def float_bundle(n=(5, 3, 2), size=(40, 56), seed=0) -> DataBundle:
    """In-memory RGB images with fractional boxes, crowd-free, one image without boxes."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    splits = []
    for s, count in zip(("train", "val", "test"), n):
        boxes, labels = [], []
        for i in range(count):
            k = 0 if (s == "train" and i == 1) else int(torch.randint(1, 4, (1,), generator=g))
            xy = torch.rand((k, 2), generator=g) * torch.tensor([w - 12.0, h - 12.0])
            wh = 2 + torch.rand((k, 2), generator=g) * 9.7
            boxes.append(torch.cat([xy, xy + wh], 1).float())
            labels.append(torch.randint(0, 3, (k,), generator=g))
        images = torch.randint(0, 256, (count, 3, h, w), generator=g, dtype=torch.uint8)
        splits.append(DetectionSplit(images, boxes, labels, names=[f"{s}_{i}.png" for i in range(count)]))
    info = DatasetInfo("detect", list(CLASSES), 3, max(size), name="float-boxes")
    return DataBundle(*splits, info)


def read(path) -> DataBundle:
    cfg = Config()
    cfg.data.name = str(path)
    return build_data(cfg)


def by_name(split: DetectionSplit) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {Path(split.name(i)).stem: (split.boxes[i], split.labels[i]) for i in range(len(split))}


def assert_same(a: DataBundle, b: DataBundle, tol=1e-3):
    assert b.info.classes == a.info.classes
    for s in ("train", "val", "test"):
        ea, eb = by_name(a.split(s)), by_name(b.split(s))
        assert ea.keys() == eb.keys(), s
        for k in ea:
            assert torch.equal(ea[k][1], eb[k][1]), (s, k)
            assert torch.allclose(ea[k][0], eb[k][0], atol=tol, rtol=0), (s, k, ea[k][0], eb[k][0])


def test_write_read_is_exact(tmp_path):
    bundle = float_bundle()
    WRITERS.get("coco")(bundle, tmp_path / "c")
    assert (tmp_path / "c/annotations/instances_train.json").is_file()
    assert (tmp_path / "c/images/val/val_0.png").is_file()
    assert detect_format(tmp_path / "c").name == "coco"
    back = read(tmp_path / "c")
    assert_same(bundle, back, tol=1e-6)
    assert back.info.channels == 3 and back.info.image_size == 64
    assert torch.equal(back.val.image(1), bundle.val.images[1])  # PNG keeps the pixels


def test_round_trip_coco_yolo_voc_coco(tmp_path):
    bundle = float_bundle(seed=2)  # a seed whose train split holds every class (the coverage check)
    WRITERS.get("coco")(bundle, tmp_path / "coco")
    convert(str(tmp_path / "coco"), "yolo", tmp_path / "yolo")
    convert(str(tmp_path / "yolo"), "voc", tmp_path / "voc")
    convert(str(tmp_path / "voc"), "coco", tmp_path / "coco2")
    for name in ("yolo", "voc", "coco2"):
        assert_same(bundle, read(tmp_path / name))


def test_masks_survive_as_rle_and_polygons_decode(tmp_path):
    masks = torch.zeros((1, 2, 20, 30), dtype=torch.uint8)
    masks[0, 0, 2:9, 3:12] = 1
    masks[0, 1, 10:18, 15:29] = 1
    split = DetectionSplit(torch.zeros((1, 1, 20, 30), dtype=torch.uint8),
                           [torch.tensor([[3.0, 2, 12, 9], [15, 10, 29, 18]])], [torch.tensor([0, 2])],
                           masks=[masks[0]], names=["m.png"], channels=1)
    empty = DetectionSplit(torch.zeros((0, 1, 20, 30), dtype=torch.uint8), [], [], channels=1)
    bundle = DataBundle(split, empty, empty, DatasetInfo("detect", CLASSES, 1, 30))
    WRITERS.get("coco")(bundle, tmp_path / "m")
    ann = json.loads((tmp_path / "m/annotations/instances_train.json").read_text())["annotations"]
    assert isinstance(ann[0]["segmentation"], dict) and ann[0]["area"] == 63
    # add a polygon annotation by hand: pycocotools is the reference for its rasterisation
    poly = [[1.0, 1.0, 8.0, 1.0, 8.0, 6.0, 1.0, 6.0]]
    data = json.loads((tmp_path / "m/annotations/instances_train.json").read_text())
    data["annotations"].append({"id": 9, "image_id": 1, "category_id": 2, "bbox": [1, 1, 7, 5], "area": 35,
                                "iscrowd": 0, "segmentation": poly})
    (tmp_path / "m/annotations/instances_train.json").write_text(json.dumps(data))
    cfg = Config()
    cfg.data.name = str(tmp_path / "m")
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    back = build_data(cfg)
    got = back.train.instance_masks(0)
    assert torch.equal(got[:2], masks[0])
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 20, 30)))
    assert np.array_equal(got[2].numpy(), ref)


def test_single_json_with_category_id_gaps_and_crowd(tmp_path):
    Image.new("L", (50, 40)).save(tmp_path / "a.png")
    Image.new("L", (50, 40)).save(tmp_path / "b.png")
    data = {"images": [{"id": 7, "file_name": "a.png", "width": 50, "height": 40},
                       {"id": 9, "file_name": "b.png", "width": 50, "height": 40}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 18, "bbox": [1.5, 2.25, 10, 12], "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 90, "bbox": [20, 5, 8, 8], "iscrowd": 1},
                            {"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0}],
            "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    cfg = Config()
    cfg.data.name = str(tmp_path / "ann.json")
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    b = build_data(cfg)
    assert b.info.classes == ["person", "dog", "toothbrush"] and b.info.extra["category_ids"] == [1, 18, 90]
    assert b.info.channels == 1
    t = b.train.target(0)
    assert t["boxes"].tolist() == [[1.5, 2.25, 11.5, 14.25], [20.0, 5.0, 28.0, 13.0]]
    assert t["labels"].tolist() == [1, 2] and t["iscrowd"].tolist() == [0, 1]
    WRITERS.get("coco")(b, tmp_path / "out")
    cats = json.loads((tmp_path / "out/annotations/instances_train.json").read_text())["categories"]
    assert [c["id"] for c in cats] == [1, 18, 90]


def test_single_pool_is_split_by_seed(tmp_path):
    bundle = float_bundle(n=(20, 0, 0))
    WRITERS.get("coco")(bundle, tmp_path / "c")
    cfg = Config()
    cfg.data.name = str(tmp_path / "c")
    cfg.data.val_fraction, cfg.data.test_fraction = 0.2, 0.1
    b1, b2 = build_data(cfg), build_data(cfg)
    assert (len(b1.train), len(b1.val), len(b1.test)) == (14, 4, 2)
    assert b1.val.names == b2.val.names
    names = set(b1.train.names) | set(b1.val.names) | set(b1.test.names)
    assert len(names) == 20


def test_make_digits_detect_writes_coco(tmp_path, monkeypatch):
    from cnnkit.data.builtin import canvas
    from cnnkit.data.commands import make

    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 8, "val": 2, "test": 2})  # train sees every digit
    make("digits-detect", "coco", tmp_path / "d")
    back = read(tmp_path / "d")
    assert back.info.hflip_ok is False and back.info.channels == 1 and back.info.image_size == 96
    assert back.train.instance_masks(0).shape == (len(back.train.labels[0]), 96, 96)
    assert [len(back.train), len(back.val), len(back.test)] == [8, 2, 2]


def test_not_coco_json(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CnnkitError, match="format"):
        detect_format(tmp_path / "x.json")


# ---- hostile files: nulls and wrong types are one sentence or a reported issue, never a traceback ----------
def hostile_coco(root: Path, mutate=None) -> Path:
    """ann.json over a.png, b.png, c.png (40x30): a red+blue, b red, c blue+red; `mutate(data)` edits it."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (40, 30)).save(root / name)
    data = {"info": {"description": "hostile"},
            "images": [{"id": i + 1, "file_name": n, "width": 40, "height": 30} for i, n in enumerate("abc")],
            "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": [2 + k, 3, 10, 8], "iscrowd": 0,
                             "segmentation": []} for k, (i, c) in enumerate([(1, 1), (1, 2), (2, 1), (3, 2), (3, 1)])],
            "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}
    for im in data["images"]:
        im["file_name"] += ".png"
    if mutate:
        mutate(data)
    (root / "ann.json").write_text(json.dumps(data))
    return root


def _set(section, key, value):
    def mutate(data):
        entry = data[section][0] if isinstance(data[section], list) else data[section]
        if value is MISSING:
            entry.pop(key, None)
        else:
            entry[key] = value
    return mutate


def _top(key, value):
    def mutate(data):
        if value is MISSING:
            data.pop(key)
        else:
            data[key] = value
    return mutate


MISSING = object()
WRONG = [1]  # a list where a number or a string belongs
# (mutation, the issue kind inspect must report (None: nothing wrong), does the set still load)
HOSTILE = {
    "image id null": (_set("images", "id", None), "bad_annotation", True),
    "image id list": (_set("images", "id", WRONG), "bad_annotation", True),
    "image id missing": (_set("images", "id", MISSING), "bad_annotation", True),
    "file_name null": (_set("images", "file_name", None), "bad_annotation", True),
    "file_name list": (_set("images", "file_name", WRONG), "bad_annotation", True),
    "file_name missing": (_set("images", "file_name", MISSING), "bad_annotation", True),
    "width null": (_set("images", "width", None), None, True),  # the image header gives the size
    "width string": (_set("images", "width", "forty"), None, True),
    "width missing": (_set("images", "width", MISSING), None, True),
    "annotation id null": (_set("annotations", "id", None), None, True),
    "annotation id list": (_set("annotations", "id", WRONG), None, True),
    "annotation id missing": (_set("annotations", "id", MISSING), None, True),
    "image_id null": (_set("annotations", "image_id", None), "unknown_image", True),
    "image_id list": (_set("annotations", "image_id", WRONG), "unknown_image", True),
    "image_id missing": (_set("annotations", "image_id", MISSING), "unknown_image", True),
    "bbox null": (_set("annotations", "bbox", None), "bad_annotation", True),
    "bbox string": (_set("annotations", "bbox", "2 3 10 8"), "bad_annotation", True),
    "bbox missing": (_set("annotations", "bbox", MISSING), "bad_annotation", True),
    "bbox null coordinate": (_set("annotations", "bbox", [None, 3, 10, 8]), "bad_annotation", True),
    "bbox list coordinate": (_set("annotations", "bbox", [2, WRONG, 10, 8]), "bad_annotation", True),
    "category_id null": (_set("annotations", "category_id", None), "bad_annotation", True),
    "category_id list": (_set("annotations", "category_id", WRONG), "unknown_class", True),
    "category_id missing": (_set("annotations", "category_id", MISSING), "bad_annotation", True),
    "iscrowd null": (_set("annotations", "iscrowd", None), "bad_annotation", True),  # read as 0, with a note
    "iscrowd string": (_set("annotations", "iscrowd", "yes"), "bad_annotation", True),
    "iscrowd missing": (_set("annotations", "iscrowd", MISSING), None, True),
    "segmentation null": (_set("annotations", "segmentation", None), None, True),
    "segmentation string": (_set("annotations", "segmentation", "poly"), "bad_annotation", True),
    "segmentation null point": (_set("annotations", "segmentation", [[1, None, 5, 1, 5, 5]]), "bad_annotation",
                                True),
    "category id null": (_set("categories", "id", None), "bad_annotation", False),
    "category id list": (_set("categories", "id", WRONG), "bad_annotation", False),
    "category id missing": (_set("categories", "id", MISSING), "bad_annotation", False),
    "category name null": (_set("categories", "name", None), "bad_annotation", False),
    "category name list": (_set("categories", "name", WRONG), "bad_annotation", False),
    "category name missing": (_set("categories", "name", MISSING), None, True),  # named by its id
    "info null": (_top("info", None), None, True),
    "info string": (_top("info", "hostile"), None, True),
    "image entry null": (lambda d: d["images"].__setitem__(0, None), "bad_annotation", True),
    "annotation entry null": (lambda d: d["annotations"].__setitem__(0, None), "bad_annotation", True),
    "category entry null": (lambda d: d["categories"].__setitem__(0, None), "bad_annotation", False),
    "images null": (_top("images", None), "bad_annotation", False),
    "images string": (_top("images", "a.png"), "bad_annotation", False),
    "annotations null": (_top("annotations", None), "no_boxes", False),
    "annotations string": (_top("annotations", "none"), "bad_annotation", False),
    "annotations missing": (_top("annotations", MISSING), "no_boxes", False),
    "categories null": (_top("categories", None), "bad_annotation", False),
    "categories string": (_top("categories", "red"), "bad_annotation", False),
    # numbers past float range and digit strings past int() limit: a listed bad value, not OverflowError
    "bbox huge integer": (_set("annotations", "bbox", [10**400, 3, 10, 8]), "bad_annotation", True),
    "polygon huge integer": (_set("annotations", "segmentation", [[1, 10**400, 5, 1, 5, 5]]), "bad_annotation",
                             True),
    "width huge integer": (_set("images", "width", 10**400), None, True),
    "category id 5000 digits": (_set("categories", "id", "9" * 5000), "bad_annotation", False),
    # converters write ids as strings in one list and numbers in the other: one id
    "image_id as string": (lambda d: [a.update(image_id=str(a["image_id"])) for a in d["annotations"]], None, True),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_null_wrong_type_or_missing_field_is_a_sentence_or_an_issue(tmp_path, case):
    mutate, kind, loads = HOSTILE[case]
    root = hostile_coco(tmp_path / "h", mutate)
    report = inspect(str(root))  # reports, never raises
    kinds = set(report.by_kind()) - {"unusable", "class-without-examples"}  # coverage's lines, when it cannot load
    orphans = {"unknown_image"} if case.startswith(("image id", "file_name", "image entry")) else set()
    assert kinds == ({kind} | orphans if kind else set()), report.issues
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    cfg.data.max_bad = 100
    if loads:
        assert len(build_data(cfg).train) >= 2
    else:
        with pytest.raises(CnnkitError, match=r"ann\.json|not a single box|no images"):
            build_data(cfg)


def test_coco_malformed_cases(tmp_path):
    """The hostile/coco_malformed examples: null iscrowd, a null bbox coordinate, a category without id."""
    root = hostile_coco(tmp_path / "iscrowd", _set("annotations", "iscrowd", None))
    (issue,) = inspect(str(root)).issues
    assert issue == {"kind": "bad_annotation", "file": str(root / "ann.json"),
                     "problem": "annotation 1 has iscrowd null, read as 0 (not crowd)"}
    cfg = Config()
    cfg.data.name = str(root)
    cfg.data.val_fraction = cfg.data.test_fraction = 0.0
    b = build_data(cfg)
    a = b.train.target(b.train.names.index("a.png"))
    assert a["iscrowd"].tolist() == [0, 0] and not b.info.bad_files
    assert "annotation 1 has iscrowd null" in b.info.extra["notes"]["remarks:bad_annotation"]

    root = hostile_coco(tmp_path / "bbox", _set("annotations", "bbox", [None, 3, 10, 8]))
    (issue,) = inspect(str(root)).issues
    assert issue["kind"] == "bad_annotation" and issue["file"] == str(root / "ann.json")
    assert issue["problem"] == "a.png: annotation 1 has bbox [null, 3, 10, 8] where 4 numbers [x, y, w, h] are expected"
    cfg.data.name = str(root)
    with pytest.raises(CnnkitError, match=r"1 of 3 files .* `--set data.max_bad=1`"):
        build_data(cfg)
    cfg.data.max_bad = 1
    b = build_data(cfg)
    assert sorted(b.train.names) == ["b.png", "c.png"]  # a.png is left out whole, not kept without its box
    assert b.info.bad_files[0].reason.endswith("has bbox [null, 3, 10, 8] where 4 numbers [x, y, w, h] are expected")
    with pytest.raises(CnnkitError, match=r"are expected\); fix or remove them"):  # one closing bracket, not "]))"
        cfg.data.max_bad = 0
        build_data(cfg)

    root = hostile_coco(tmp_path / "noid", _set("categories", "id", MISSING))
    cfg.data.name = str(root)
    with pytest.raises(CnnkitError, match=r"^\S+ann\.json: category 1 \('red'\) has no id; give every category"):
        build_data(cfg)
    assert inspect(str(root)).by_kind()["bad_annotation"] == 1


def test_categories_that_disagree_between_files_stop(tmp_path):
    bundle = float_bundle(seed=2)
    WRITERS.get("coco")(bundle, tmp_path / "c")
    f = tmp_path / "c/annotations/instances_val.json"
    data = json.loads(f.read_text())
    data["categories"][0]["name"] = "wolf"
    f.write_text(json.dumps(data))
    with pytest.raises(CnnkitError, match="category id 1 is named 'wolf' here but 'cat' in"):
        read(tmp_path / "c")


def test_one_category_id_twice_in_one_file_says_so(tmp_path):
    bundle = float_bundle(seed=2)
    WRITERS.get("coco")(bundle, tmp_path / "c")
    f = tmp_path / "c/annotations/instances_test.json"  # the first file read
    data = json.loads(f.read_text())
    data["categories"].append({**data["categories"][0], "name": "wolf"})
    f.write_text(json.dumps(data))
    with pytest.raises(CnnkitError, match="category id 1 is named 'wolf' here but 'cat' earlier in the same file; "
                                          "give each category its own id"):
        read(tmp_path / "c")


@pytest.mark.parametrize("content, sentence", [
    ("", r"instances_train\.json is empty; write the COCO instances json there"),
    ("[1, 2]", r"instances_train\.json is not a COCO instances file: expected an object with "
               r"images/annotations/categories, found a list\."),
])
def test_empty_or_non_coco_instances_file_is_named_not_skipped(tmp_path, content, sentence):
    WRITERS.get("coco")(float_bundle(), tmp_path / "c")
    (tmp_path / "c/annotations/instances_train.json").write_text(content)
    with pytest.raises(CnnkitError, match=sentence):  # not "has test and val subsets but no train subset"
        read(tmp_path / "c")
    (issue,) = [i for i in inspect(str(tmp_path / "c")).issues if i["kind"] == "bad_annotation"]
    assert issue["file"] == str(tmp_path / "c/annotations/instances_train.json")


# ---- issue 15: bounded decoding, containment, what inspect says about dropped files ---------------------------
def _rle_on_a(seg):
    def mutate(data):
        data["annotations"][0]["segmentation"] = seg
    return mutate


@pytest.mark.parametrize("seg, problem", [
    ({"size": [100000, 100000], "counts": "PPYo1"}, "RLE size [100000, 100000] is not the image's [30, 40]"),
    ({"size": [30, 40], "counts": "\x7f~}|" * 20}, "RLE counts are neither"),
    ({"size": [30, 40], "counts": [5, 10**9, 3]}, "add up to 1000000008 pixels"),
    ({"size": [30, 40], "counts": [1300, -100]}, "negative run"),
    ([[1, 1, 1e12, 1, 5, 5]], "far outside the 40x30 image"),
])
def test_a_mask_that_does_not_fit_its_image_is_refused_before_pycocotools(tmp_path, seg, problem):
    root = hostile_coco(tmp_path / "h", _rle_on_a(seg))
    (issue,) = inspect(str(root)).issues
    assert issue["kind"] == "bad_annotation" and problem in issue["problem"] and "a.png: box 1" in issue["problem"]
    cfg = Config()
    cfg.data.name = str(root)
    with pytest.raises(CnnkitError, match=r"1 of 3 files .*a\.png"):
        build_data(cfg)


def test_instance_masks_that_disagree_with_the_image_are_one_sentence_not_a_crash():
    from cnnkit.data.detection import decode_segmentations

    good = mask_utils.encode(np.asfortranarray(np.eye(8, dtype=np.uint8)))
    good = {"size": [8, 8], "counts": good["counts"].decode()}
    assert decode_segmentations([good], 8, 8)[0].numpy().tolist() == np.eye(8, dtype=np.uint8).tolist()
    with pytest.raises(CnnkitError, match=r"Mask 1 of a 32x32 image .*RLE size \[8, 8\]"):
        decode_segmentations([good], 32, 32)  # pycocotools would write past its 32x32 buffer... or segfault


@pytest.mark.parametrize("name", ["../../../../../../../../etc/passwd", "/etc/passwd", "../outside.png"])
def test_a_file_name_outside_the_dataset_is_refused_unless_allowed(tmp_path, name, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "outside.png")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    root = hostile_coco(tmp_path / "h", _set("images", "file_name", name))
    cfg = Config()
    cfg.data.name = str(root)
    with pytest.raises(CnnkitError, match=rf"ann\.json: image entry 1 \(id 1\) file_name '{name}' points outside"):
        build_data(cfg)
    (issue, *_) = inspect(str(root)).issues
    assert "points outside the dataset folder" in issue["problem"] and "allow_outside_root=true" in issue["problem"]
    assert not any("passwd" in f or "outside" in f for f in opened)
    if name == "../outside.png":  # the opt-in reads it
        cfg.set("data.allow_outside_root", True)
        cfg.data.val_fraction = cfg.data.test_fraction = 0.0
        assert any(p.endswith("h/../outside.png") for p in build_data(cfg).train.images)


def test_deeply_nested_json_and_a_non_coco_subset_file_are_named(tmp_path):
    root = hostile_coco(tmp_path / "deep")
    (root / "ann.json").rename(root / "instances_train.json")
    (root / "instances_train.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CnnkitError, match=r"instances_train\.json nests its JSON deeper than Python can read"):
        read(root)
    ann = tmp_path / "split" / "annotations"
    for s in ("train", "val"):
        hostile_coco(tmp_path / "split" / "images" / s)
        (ann / f"{s}.json").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "split" / "images" / s / "ann.json").rename(ann / f"{s}.json")
    (ann / "train.json").write_text(json.dumps({"licenses": []}))  # not COCO: must not be dropped quietly
    with pytest.raises(CnnkitError, match=r"train\.json is not a COCO instances file"):
        read(tmp_path / "split")
    assert "bad_annotation" in inspect(str(tmp_path / "split")).by_kind()


def test_a_nan_box_is_reported_with_its_values(tmp_path):
    root = hostile_coco(tmp_path / "h", _set("annotations", "bbox", ["NaN", 3, 10, 8]))
    (issue,) = inspect(str(root)).issues
    assert issue["problem"] == "a.png: box 1: box [nan, 3.0, nan, 11.0] has a coordinate that is not a finite number"


def test_a_number_file_name_lists_only_its_own_entry(tmp_path):
    """The image folder is found from the first usable file_name, so one bad entry does not lose the others."""
    root = hostile_coco(tmp_path / "h", _set("images", "file_name", 5))
    (root / "images").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (root / name).rename(root / "images" / name)
    assert inspect(str(root)).by_kind() == {"bad_annotation": 1, "unknown_image": 2}
    cfg = Config()
    cfg.data.name = str(root)
    with pytest.raises(CnnkitError, match=r"^3 of 5 files in .*image entry 1 \(\{\"id\": 1, \"file_name\": 5"):
        build_data(cfg)
