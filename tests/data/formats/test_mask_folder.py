"""Image + mask-PNG folders: the "masks" writer and the reader round-trip exactly; layouts; faults."""
import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit.data  # noqa: F401  registers the formats
from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.registry import WRITERS
from cnnkit.data.segmentation import BadMask, SegSplit, palette, read_mask, samples
from cnnkit.data.sources import build_data, detect_format

CLASSES = ["background", "cat", "dog"]


def bundle(channels: int = 3, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    splits = []
    for n in (6, 2, 2):
        images = torch.randint(0, 256, (n, channels, 20, 24), generator=g, dtype=torch.int64).to(torch.uint8)
        masks = torch.randint(0, 3, (n, 20, 24), generator=g).to(torch.uint8)
        masks[:, :2] = 255
        splits.append(SegSplit(images, masks, [f"img{i}.png" for i in range(n)]))
    return DataBundle(*splits, DatasetInfo("segment", list(CLASSES), channels, 24, name="mem"))


def load(path, **kw) -> DataBundle:
    return build_data(Config.from_dict({"data": {"name": str(path), **kw}}))


def as_dict(split, channels):
    return {name.rsplit("/", 1)[-1]: (img, m) for name, img, m in samples(split, channels)}


def test_writer_and_reader_round_trip_exactly(tmp_path):
    src = bundle()
    WRITERS.get("masks")(src, tmp_path)
    assert detect_format(tmp_path).name == "mask-folder"
    got = load(tmp_path)
    assert got.info.task == "segment" and got.info.classes == CLASSES and got.info.channels == 3
    assert got.info.extra["counts"] == {"train": 6, "val": 2, "test": 2} and not got.info.bad_files
    for key in ("train", "val", "test"):
        mine, theirs = as_dict(src.split(key), 3), as_dict(got.split(key), 3)
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert torch.equal(mine[name][0], theirs[name][0]) and torch.equal(mine[name][1], theirs[name][1])
    assert Image.open(tmp_path / "train" / "masks" / "img0.png").mode == "P"


def test_flat_layout_gray_masks_no_class_file_and_carved_splits(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.jpg")
        m = np.zeros((16, 16), np.uint8)
        m[4:9, 4:9] = 1 + i % 4
        Image.fromarray(m, mode="L").save(tmp_path / "masks" / f"{i}.png")
    got = load(tmp_path, val_fraction=0.2, test_fraction=0.2)
    assert got.info.classes == ["background", "1", "2", "3", "4"] and got.info.channels == 1
    assert (len(got.train), len(got.val), len(got.test)) == (12, 4, 4)
    assert load(tmp_path, val_fraction=0.2, test_fraction=0.2).val.image_paths == got.val.image_paths


def test_nested_layout_and_faults_are_listed(tmp_path):
    src = bundle(channels=1)
    WRITERS.get("masks")(src, tmp_path / "w")
    root = tmp_path / "nested"
    for key in ("train", "val"):
        for kind in ("images", "masks"):
            (root / kind / key).mkdir(parents=True)
            for p in (tmp_path / "w" / key / kind).iterdir():
                (root / kind / key / p.name).write_bytes(p.read_bytes())
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "masks" / "train" / "img1.png").unlink()  # image without mask
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "train" / "img2.png")  # size mismatch
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "train" / "orphan.png")  # no image
    got = load(root, max_bad=10)
    bad = {b.path.rsplit("/", 1)[-1]: b.reason for b in got.info.bad_files}
    assert set(bad) == {"img1.png", "img2.png", "orphan.png"}
    assert "no mask" in bad["img1.png"] and "24x20" in bad["img2.png"]
    assert len(got.train) + len(got.test) == 6 - 2 and len(got.val) == 2


def test_palette_index_and_rgb_masks(tmp_path):
    values = np.array([[0, 1], [2, 255]], np.uint8)
    p = Image.fromarray(values, mode="P")
    p.putpalette(palette())
    p.save(tmp_path / "p.png")
    Image.fromarray(values, mode="L").save(tmp_path / "l.png")
    assert torch.equal(read_mask(tmp_path / "p.png"), read_mask(tmp_path / "l.png"))
    Image.fromarray(np.stack([values] * 3, -1)).save(tmp_path / "gray_rgb.png")
    assert torch.equal(read_mask(tmp_path / "gray_rgb.png"), torch.from_numpy(values))
    color = np.zeros((2, 2, 3), np.uint8)
    color[0, 0] = (128, 0, 0)
    Image.fromarray(color).save(tmp_path / "color.png")
    with pytest.raises(BadMask, match="colour"):
        read_mask(tmp_path / "color.png")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(BadMask, match="cannot be read"):
        read_mask(tmp_path / "zero.png")


def test_coco_polygons_and_rle_convert_to_mask_folders(tmp_path):
    import json

    from pycocotools import mask as mask_utils

    from cnnkit.data.commands import convert

    (tmp_path / "coco" / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "coco" / "images" / name)
    rle_mask = np.zeros((20, 30), np.uint8)
    rle_mask[5:15, 20:28] = 1
    rle = mask_utils.encode(np.asfortranarray(rle_mask))
    rle["counts"] = rle["counts"].decode()
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 30, "height": 20},
                       {"id": 2, "file_name": "b.png", "width": 30, "height": 20}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 2, "bbox": [2, 2, 8, 6], "iscrowd": 0, "area": 48,
                 "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]]},
                {"id": 2, "image_id": 2, "category_id": 1, "bbox": [20, 5, 8, 10], "iscrowd": 0, "area": 80,
                 "segmentation": rle}]}
    (tmp_path / "coco" / "instances_train.json").write_text(json.dumps(coco))
    cfg = Config.from_dict({"data": {"val_fraction": 0.0, "test_fraction": 0.0}})
    out = convert(str(tmp_path / "coco"), "masks", tmp_path / "masks", cfg)
    assert (out / "classes.txt").read_text().split() == ["background", "cat", "dog"]
    a, b = read_mask(out / "train" / "masks" / "a.png"), read_mask(out / "train" / "masks" / "b.png")
    poly = torch.from_numpy(mask_utils.decode(mask_utils.frPyObjects([[2, 2, 10, 2, 10, 8, 2, 8]], 20, 30))[..., 0])
    assert torch.equal(a, poly * 2) and int(a.sum()) > 0
    assert torch.equal(b, torch.from_numpy(rle_mask))


# ---- binary 0/255 masks (case trust/mask_0_255) ------------------------------------------------
def binary_set(root, n=24, seed=8):
    """The trust/mask_0_255 case: 48x48 images each with one bright disc its 8-bit gray mask marks 255."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        im = Image.fromarray(rng.integers(0, 60, (48, 48, 3), dtype=np.uint8))
        m = Image.new("L", (48, 48), 0)
        x, y, r = rng.integers(12, 36), rng.integers(12, 36), rng.integers(6, 11)
        ImageDraw.Draw(im).ellipse([x - r, y - r, x + r, y + r], fill=(240, 220, 60))
        ImageDraw.Draw(m).ellipse([x - r, y - r, x + r, y + r], fill=255)
        im.save(root / "images" / f"s{i:02d}.png")
        m.save(root / "masks" / f"s{i:02d}.png")
    return root


def test_binary_0_255_masks_read_255_as_class_1_with_a_note(tmp_path, capsys):
    from cnnkit.data.segmentation import pixel_counts

    root = binary_set(tmp_path / "mask_0_255")
    got = load(root)
    assert got.info.classes == ["background", "1"] and got.train.remap == {255: 1}
    note = got.info.extra["notes"]["mask_255"]
    assert "masks hold only 0 and 255: 255 read as class 1 (set data.mask_255=ignore to keep 255 as ignore" in note
    assert "all 24 masks read" in note and "note: " + note in capsys.readouterr().err.replace("\n", " ")
    mask = got.train.mask(0)
    raw = read_mask(got.train.mask_paths[0])
    assert set(mask.unique().tolist()) == {0, 1} and torch.equal(mask == 1, raw == 255)
    counts = pixel_counts(got.train, 2)
    assert counts[1] == sum(int((read_mask(p) == 255).sum()) for p in got.train.mask_paths)
    # the loader hands the model class 1 where the file holds 255
    _, masks = next(iter(__import__("cnnkit.data.segmentation", fromlist=["SegLoader"]).SegLoader(
        got.train, {"channels": 3, "size": [48, 48], "mean": [0.5] * 3, "std": [0.25] * 3}, 4, False, 0,
        num_classes=2)))
    assert set(masks.unique().tolist()) == {0, 1}


def test_binary_masks_with_mask_255_ignore_stop_before_training_and_the_advice_works(tmp_path):
    from cnnkit.errors import CnnkitError

    root = binary_set(tmp_path / "mask_0_255")
    with pytest.raises(CnnkitError, match=r"train split of .*mask_0_255 holds \d+ images but not one "
                                          r"non-background pixel of any class .*ignore \(255.*"
                                          r"if 255 marks the objects, set data.mask_255=class"):
        load(root, mask_255="ignore")
    fixed = load(root, mask_255="class")  # the advice, as printed
    assert fixed.info.classes == ["background", "1"] and "notes" not in fixed.info.extra


def test_mask_255_class_refuses_masks_that_hold_other_classes(tmp_path):
    from cnnkit.errors import CnnkitError

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    values = np.zeros((8, 8), np.uint8)
    values[:4], values[6:] = 1, 2
    for i in range(6):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray(values, mode="L").save(tmp_path / "masks" / f"{i}.png")
    assert load(tmp_path).info.classes == ["background", "1", "2"]  # auto: not binary, 255 stays ignore
    with pytest.raises(CnnkitError, match="data.mask_255=class .* also hold the values 2: set data.mask_255=auto"):
        load(tmp_path, mask_255="class")


def test_binary_masks_convert_as_class_1(tmp_path):
    from cnnkit.data.commands import convert

    root = binary_set(tmp_path / "mask_0_255", n=10)
    out = convert(str(root), "masks", tmp_path / "out")
    assert (out / "classes.txt").read_text().split() == ["background", "1"]
    back = [read_mask(p) for p in sorted((out / "train" / "masks").iterdir())]
    assert all(set(m.unique().tolist()) == {0, 1} for m in back)


def test_binary_masks_train_to_a_real_miou(tmp_path):
    import cnnkit

    root = binary_set(tmp_path / "mask_0_255")
    run = cnnkit.train(data=str(root), epochs=6, batch_size=4, threads=1, out=str(tmp_path / "run"), quiet=True)
    assert run.test_metrics["miou"] > 0.5  # 255 ignored left 0.0035 (background only); measured 0.84


def test_hidden_and_tool_files_beside_masks_are_not_data(tmp_path):
    root = binary_set(tmp_path / "set", n=6)
    for folder in ("images", "masks"):
        (root / folder / "._s00.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork
        (root / folder / "Thumbs.db").write_bytes(b"x")
    (root / "images" / ".ipynb_checkpoints").mkdir()
    got = load(root)
    assert got.info.bad_files == [] and len(got.train) + len(got.val) + len(got.test) == 6


def recoded_set(root, fn, n=24):
    """binary_set with each mask i rewritten as fn(i, mask) (uint8 H x W 0/255 -> any values)."""
    binary_set(root, n)
    for i, p in enumerate(sorted((root / "masks").glob("*.png"))):
        Image.fromarray(fn(i, np.array(Image.open(p))).astype(np.uint8), mode="L").save(p)
    return root


@pytest.mark.parametrize("v", [128, 254])
def test_binary_masks_with_any_foreground_value_read_it_as_class_1_with_a_note(tmp_path, v):
    root = recoded_set(tmp_path / f"m{v}", lambda i, m: np.where(m == 255, v, 0))
    got = load(root)
    assert got.info.classes == ["background", "1"] and got.train.remap == {v: 1}
    assert got.info.extra["notes"]["mask_255"] == (
        f"{root}: masks hold only 0 and {v}: {v} read as class 1 (if {v} is a class index, list the classes in "
        "classes.txt; all 24 masks read)")
    raw = read_mask(got.train.mask_paths[0])
    assert torch.equal(got.train.mask(0), (raw == v).to(torch.uint8))


def test_a_binary_value_that_classes_txt_names_stays_that_class(tmp_path):
    root = recoded_set(tmp_path / "m2", lambda i, m: np.where(m == 255, 2, 0))
    (root / "classes.txt").write_text("background\nroad\ncar\n")
    got = load(root)
    assert got.info.classes == ["background", "road", "car"] and got.train.remap is None


def test_jpeg_blurred_masks_stop_naming_the_folder_values_and_fix(tmp_path):
    from cnnkit.errors import CnnkitError

    def blur(i, m):  # +-3 noise on the object, as a JPEG round trip leaves 0/255 masks
        noise = np.random.default_rng(i).integers(-3, 4, m.shape) * (m > 0)
        return np.clip(m.astype(int) + noise, 0, 255)

    root = recoded_set(tmp_path / "jpeg_like", blur)
    with pytest.raises(CnnkitError, match=r"^the masks in .*jpeg_like hold the values 0, 252, 253, 254, 255, which "
                                          r"are not class indices .*: save the masks as lossless PNGs whose values "
                                          r"are the class indices"):
        load(root)
    (root / "classes.txt").write_text("background\nobject\n")
    with pytest.raises(CnnkitError, match=r"^24 of 24 masks in .*jpeg_like hold values outside the 2 classes "
                                          r"\(0..1, 255 = ignore\) — values found: 0, 252, 253, 254, 255: save"):
        load(root)


def test_mostly_0_255_masks_with_some_0_1_stop_naming_the_counts_and_the_opt_in(tmp_path):
    from cnnkit.errors import CnnkitError

    root = recoded_set(tmp_path / "mixed", lambda i, m: np.where(m == 255, 1, 0) if i == 0 else m)
    with pytest.raises(CnnkitError) as e:
        load(root)
    assert str(e.value) == (f"23 of 24 masks in {root} hold only 0 and 255 (read as ignore, as the other 1 hold "
                            "0, 1): set data.mask_255=class to read 255 as class 1, or data.mask_255=ignore to keep "
                            "it as ignore.")
    fixed = load(root, mask_255="class")  # the opt-in, as printed: every object is class 1
    assert fixed.info.classes == ["background", "1"] and fixed.train.remap == {255: 1}


def test_voc_style_border_masks_keep_255_as_ignore_without_a_stop(tmp_path):
    from scipy import ndimage

    def border(i, m):  # 0 background, 1 object, 255 a one-pixel ring around it
        inner = ndimage.binary_erosion(m == 255)
        return np.where(inner, 1, np.where(m == 255, 255, 0))

    got = load(recoded_set(tmp_path / "border", border))
    assert got.info.classes == ["background", "1"] and got.train.remap is None and "notes" not in got.info.extra
