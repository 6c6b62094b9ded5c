"""Pascal VOC segmentation layout: writer -> reader round trip, 255 = ignore, lists, and the hand-off to
the detection VOC reader when the folder also has boxes."""
import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit.data  # noqa: F401
from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.registry import FORMATS, WRITERS
from cnnkit.data.segmentation import SegSplit, palette, read_mask
from cnnkit.data.sources import build_data, detect_format
from cnnkit.errors import CnnkitError


def bundle() -> DataBundle:
    g = torch.Generator().manual_seed(0)
    splits = []
    for key, n in (("train", 5), ("val", 2), ("test", 2)):
        images = torch.full((n, 3, 18, 22), 40, dtype=torch.uint8)
        masks = torch.zeros((n, 18, 22), dtype=torch.uint8)
        for i in range(n):
            y, x = torch.randint(0, 10, (2,), generator=g).tolist()
            masks[i, y:y + 6, x:x + 6] = 1 + i % 2
            masks[i, y + 6, x:x + 6] = 255  # VOC's void border
            images[i, :, y:y + 6, x:x + 6] = 200
        splits.append(SegSplit(images, masks, [f"{key}_{i}.png" for i in range(n)]))
    return DataBundle(*splits, DatasetInfo("segment", ["background", "cat", "dog"], 3, 22, name="mem"))


def load(path, **kw):
    return build_data(Config.from_dict({"data": {"name": str(path)}, **kw}))


def test_round_trip_keeps_masks_and_void(tmp_path):
    src = bundle()
    WRITERS.get("voc-seg")(src, tmp_path)
    assert (tmp_path / "ImageSets" / "Segmentation" / "train.txt").read_text().split() == \
        [f"train_{i}" for i in range(5)]
    assert detect_format(tmp_path).name == "voc-seg"
    got = load(tmp_path)
    assert got.info.task == "segment" and got.info.classes == ["background", "cat", "dog"]
    assert (len(got.train), len(got.val), len(got.test)) == (5, 2, 2) and not got.info.bad_files
    for key in ("train", "val", "test"):
        for i, mask_path in enumerate(got.split(key).mask_paths):
            m = read_mask(mask_path)
            assert torch.equal(m, src.split(key).masks[i])
            assert Image.open(mask_path).mode == "P"
    assert (read_mask(got.train.mask_paths[0]) == 255).any()


def test_without_lists_or_classes_file_uses_voc_names_and_carves(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    for i in range(10):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "JPEGImages" / f"2007_{i:06d}.jpg")
        m = Image.fromarray(np.full((8, 8), 15, np.uint8), mode="P")  # person
        m.putpalette(palette())
        m.save(tmp_path / "SegmentationClass" / f"2007_{i:06d}.png")
    got = load(tmp_path)
    assert len(got.info.classes) == 21 and got.info.classes[15] == "person"
    assert len(got.train) + len(got.val) + len(got.test) == 10 and len(got.test) == 2


def test_listed_ids_without_files_are_reported(tmp_path):
    WRITERS.get("voc-seg")(bundle(), tmp_path)
    (tmp_path / "SegmentationClass" / "train_1.png").unlink()
    with open(tmp_path / "ImageSets" / "Segmentation" / "val.txt", "a") as f:
        f.write("ghost\n")
    got = load(tmp_path, **{"data": {"name": str(tmp_path), "max_bad": 5}})
    reasons = sorted(b.reason for b in got.info.bad_files)
    assert len(got.train) == 4 and len(reasons) == 2
    assert any("mask is missing" in r for r in reasons) and any("missing" in r for r in reasons)
    with pytest.raises(CnnkitError, match="max_bad"):
        load(tmp_path, **{"data": {"name": str(tmp_path), "max_bad": 0}})


def test_detection_folders_go_to_the_box_reader_unless_segment_is_asked(tmp_path, monkeypatch):
    WRITERS.get("voc-seg")(bundle(), tmp_path)
    (tmp_path / "Annotations").mkdir()
    called = []
    fake = type(FORMATS["voc-seg"])("voc", "detect", lambda p: True, lambda p, c: called.append(p) or "boxes", 10)
    monkeypatch.setitem(FORMATS, "voc", fake)
    read = FORMATS["voc-seg"].load
    assert read(tmp_path, Config()) == "boxes" and called == [tmp_path]
    assert read(tmp_path, Config(task="segment")).info.task == "segment"
    (tmp_path / "Annotations").rmdir()
    assert read(tmp_path, Config()).info.task == "segment"


def test_binary_0_255_masks_in_the_voc_layout_are_background_and_1_not_aeroplane(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    for i in range(8):
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "JPEGImages" / f"{i}.jpg")
        m = np.zeros((10, 12), np.uint8)
        m[2:6, 3:9] = 255
        Image.fromarray(m, mode="L").save(tmp_path / "SegmentationClass" / f"{i}.png")
    (tmp_path / "SegmentationClass" / "._0.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble: not data
    got = load(tmp_path)
    assert got.info.classes == ["background", "1"] and got.train.remap == {255: 1}
    assert "255 read as class 1" in got.info.extra["notes"]["mask_255"] and not got.info.bad_files
    assert int((got.train.mask(0) == 1).sum()) == 24
