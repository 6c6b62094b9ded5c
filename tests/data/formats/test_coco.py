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
from cnnkit.data.commands import convert
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
    bundle = float_bundle(seed=1)
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

    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 3, "val": 2, "test": 2})
    make("digits-detect", "coco", tmp_path / "d")
    back = read(tmp_path / "d")
    assert back.info.hflip_ok is False and back.info.channels == 1 and back.info.image_size == 96
    assert back.train.instance_masks(0).shape == (len(back.train.labels[0]), 96, 96)
    assert [len(back.train), len(back.val), len(back.test)] == [3, 2, 2]


def test_not_coco_json(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CnnkitError, match="format"):
        detect_format(tmp_path / "x.json")
