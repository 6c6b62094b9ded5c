"""Mask health: a deliberately broken dataset, each fault flagged against its own file."""
import numpy as np
import pytest
from PIL import Image

import cnnkit.data  # noqa: F401
from cnnkit.config import Config
from cnnkit.data.commands import inspect
from cnnkit.data.segmentation import palette


def save_mask(values: np.ndarray, path) -> None:
    im = Image.fromarray(values.astype(np.uint8), mode="P")
    im.putpalette(palette())
    im.save(path)


def good_pair(root, stem, cls=1, size=(12, 10)):
    h, w = size
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(root / "images" / f"{stem}.png")
    m = np.zeros((h, w), np.uint8)
    m[2:6, 2:6] = cls
    m[0, 0] = 255  # ignore is allowed anywhere
    save_mask(m, root / "masks" / f"{stem}.png")


@pytest.fixture
def broken(tmp_path):
    root = tmp_path / "broken"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("background\nroad\ncar\n")
    good_pair(root, "ok1", 1)
    good_pair(root, "ok2", 2)
    good_pair(root, "mismatch")
    save_mask(np.ones((7, 7)), root / "masks" / "mismatch.png")  # 7x7 mask for a 10x12 image
    good_pair(root, "unknown")
    m = np.zeros((12, 10), np.uint8)
    m[3:5, 3:5] = 7  # not a class (3 classes) and not 255
    save_mask(m, root / "masks" / "unknown.png")
    good_pair(root, "empty")
    save_mask(np.zeros((12, 10)), root / "masks" / "empty.png")
    good_pair(root, "zero_image")
    (root / "images" / "zero_image.png").write_bytes(b"")
    good_pair(root, "bad_mask")
    (root / "masks" / "bad_mask.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(root / "images" / "lonely.png")  # no mask
    save_mask(np.zeros((12, 10)), root / "masks" / "stray.png")  # no image
    return root


def faults(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for issue in report.issues:
        out.setdefault(issue["kind"], set()).add(issue["file"].rsplit("/", 1)[-1])
    return out


def test_each_fault_in_a_broken_mask_folder_is_flagged_per_file(broken):
    report = inspect(str(broken))
    assert faults(report) == {
        "size-mismatch": {"mismatch.png"},
        "unknown-class": {"unknown.png"},
        "empty-mask": {"empty.png"},
        "unreadable": {"zero_image.png", "bad_mask.png"},
        "missing-mask": {"lonely.png"},
        "missing-image": {"stray.png"},
    }
    problems = {i["file"].rsplit("/", 1)[-1]: i["problem"] for i in report.issues}
    assert "10x12" in problems["mismatch.png"] and "7x7" in problems["mismatch.png"]
    assert "7" in problems["unknown.png"] and "zero-byte" in problems["zero_image.png"]
    counts = report.counts
    assert counts["images"] == 7 and counts["classes"] == 3
    assert counts["images_per_class"]["road"] >= 1 and counts["images_per_class"]["car"] == 1
    assert report.to_dict()["issue_counts"]["unreadable"] == 2


def test_voc_layout_is_inspected_with_the_same_checks(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for stem, mask in (("a", np.pad(np.full((4, 4), 15), 4)), ("b", np.zeros((12, 12))),
                       ("c", np.full((12, 12), 30))):
        Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        save_mask(mask, root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\nc\nmissing\n")
    report = inspect(str(root))
    assert faults(report) == {"empty-mask": {"b.png"}, "unknown-class": {"c.png"}, "missing-image": {"missing.jpg"},
                              "class-without-examples": {"voc"}}  # VOC's 21 names, only "person" drawn
    warning = next(i["problem"] for i in report.issues if i["kind"] == "class-without-examples")
    assert '"aeroplane"' in warning and '"person"' not in warning and "and 11 more" in warning


def test_builtin_digits_seg_is_healthy(monkeypatch):
    from cnnkit.data.builtin import canvas

    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 6, "val": 3, "test": 3})
    report = inspect("digits-seg", Config())
    assert report.counts["images"] == 12 and report.counts["classes"] == 11
    # a canvas may hold no digit at all, and 6 train canvases need not show every digit; nothing else
    assert set(faults(report)) <= {"empty-mask", "class-not-in-train", "class-without-examples"}
    assert sum(report.counts["pixels_per_class"].values()) == 12 * 96 * 96


def binary_folder(root, n=12):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(np.full((10, 10, 3), 90, np.uint8)).save(root / "images" / f"{i}.png")
        m = np.zeros((10, 10), np.uint8)
        m[2:5, 2:7] = 255
        Image.fromarray(m, mode="L").save(root / "masks" / f"{i}.png")
    return root


def test_binary_0_255_masks_are_inspected_as_class_1_and_the_report_says_so(tmp_path):
    report = inspect(str(binary_folder(tmp_path / "bin")))
    assert report.issues == []
    assert report.counts["pixels_per_class"] == {"background": 12 * 85, "1": 12 * 15}
    assert report.counts["notes"]["mask_255"].endswith(
        "masks hold only 0 and 255: 255 read as class 1 (set data.mask_255=ignore to keep 255 as ignore; "
        "all 12 masks read)")


def test_binary_masks_kept_as_ignore_are_faults_and_strict_exits_non_zero(tmp_path):
    from cnnkit.cli import main

    root = binary_folder(tmp_path / "bin")
    report = inspect(str(root), Config.from_dict({"data": {"mask_255": "ignore"}}))
    kinds = report.by_kind()
    assert kinds == {"empty-mask": 12, "no-class-examples": 1}
    stop = next(i["problem"] for i in report.issues if i["kind"] == "no-class-examples")
    assert stop.startswith("stops training: The train split of") and "data.mask_255=class" in stop
    assert main(["data", "inspect", str(root), "--strict", "--set", "data.mask_255=ignore"]) == 1
    assert main(["data", "inspect", str(root), "--strict"]) == 0  # auto: 255 is class 1, nothing wrong


def test_mixed_0_255_and_0_1_masks_are_named_with_the_counts_and_the_opt_in(tmp_path):
    root = binary_folder(tmp_path / "mixed")
    one = np.array(Image.open(root / "masks" / "0.png"))
    Image.fromarray(np.where(one == 255, 1, 0).astype(np.uint8), mode="L").save(root / "masks" / "0.png")
    report = inspect(str(root))
    stop = next(i["problem"] for i in report.issues if i["kind"] == "unusable")
    assert stop == (f"stops training: 11 of 12 masks in {root} hold only 0 and 255 (read as ignore, as the other 1 "
                    "hold 0, 1): set data.mask_255=class to read 255 as class 1, or data.mask_255=ignore to keep it "
                    "as ignore.")
    assert report.counts["pixels_per_class"] == {"background": 12 * 85, "1": 15}  # checked as stored
    fixed = inspect(str(root), Config.from_dict({"data": {"mask_255": "class"}}))
    assert fixed.issues == [] and fixed.counts["pixels_per_class"] == {"background": 12 * 85, "1": 12 * 15}


def test_0_128_masks_are_inspected_as_class_1_and_blurred_levels_as_a_stop(tmp_path):
    root = binary_folder(tmp_path / "m128")
    for p in (root / "masks").iterdir():
        m = np.array(Image.open(p))
        Image.fromarray(np.where(m == 255, 128, 0).astype(np.uint8), mode="L").save(p)
    report = inspect(str(root))
    assert report.issues == [] and report.counts["pixels_per_class"] == {"background": 12 * 85, "1": 12 * 15}
    assert report.counts["notes"]["mask_255"].startswith(f"{root}: masks hold only 0 and 128: 128 read as class 1")
    m = np.array(Image.open(root / "masks" / "0.png"))
    m[2, 2:4] = 127, 129  # a lossy save's neighbours of the level
    Image.fromarray(m, mode="L").save(root / "masks" / "0.png")
    stop = next(i["problem"] for i in inspect(str(root)).issues if i["kind"] == "unusable")
    assert stop.startswith(f"stops training: the masks in {root} hold the values 0, 127, 128, 129, which are not "
                           "class indices (a 130-class model would leave 126 classes without a pixel;")
