"""digits-seg: the digits-detect canvases with class masks; `cnnkit data make` through the writers."""
import pytest
import torch

import cnnkit.data  # noqa: F401
from cnnkit.config import Config
from cnnkit.data.builtin import canvas
from cnnkit.data.commands import make
from cnnkit.data.sources import build_data
from cnnkit.errors import CnnkitError


@pytest.fixture(autouse=True)
def few_canvases(monkeypatch):
    monkeypatch.setattr(canvas, "CANVAS_COUNTS", {"train": 8, "val": 4, "test": 4})


def test_masks_are_the_canvases_semantic_masks():
    b = build_data(Config.from_dict({"data": {"name": "digits-seg", "canvas_size": 48}}))
    info = b.info
    assert info.task == "segment" and info.classes == ["background"] + [str(i) for i in range(10)]
    assert info.channels == 1 and info.image_size == 48 and not info.hflip_ok
    assert b.train.images.shape == (8, 1, 48, 48) and b.train.masks.shape == (8, 48, 48)
    ref = canvas.digit_canvases("val", 48, 0)
    assert torch.equal(b.val.masks, ref.semantic) and torch.equal(b.val.images, ref.images)
    for i in range(len(b.train)):  # class = digit + 1 exactly under each instance mask (last one wins)
        inst = b.train.instances
        expect = torch.zeros((48, 48), dtype=torch.uint8)
        for m, lab in zip(inst.masks[i], inst.labels[i]):
            expect[m.bool()] = int(lab) + 1
        assert torch.equal(b.train.masks[i], expect)
    assert len(info.extra["mean"]) == 1 and 0 < info.extra["std"][0] < 1


@pytest.mark.parametrize("task", ["instance", "detect"])
def test_instance_and_detect_tasks_see_boxes_and_instance_masks(task):
    """`--data digits-seg --task instance` trains Mask R-CNN on the same canvases' instance masks."""
    from cnnkit.tasks import get_task

    t = get_task(task)  # what it needs from the data (`target` "boxes") picks the view
    b = build_data(Config.from_dict({"task": task, "data": {"name": "digits-seg", "canvas_size": 48}}), target=t.target)
    assert b.info.task == "detect" and b.info.classes == [str(i) for i in range(10)]
    ref = canvas.digit_canvases("test", 48, 0)
    assert torch.equal(b.test.images, ref.images)
    assert all(torch.equal(m, r) for m, r in zip(b.test.masks, ref.masks))
    cfg = Config.from_dict({"task": task, "data": {"name": "digits-seg", "canvas_size": 48},
                            "train": {"batch_size": 4}})
    cfg.fill_defaults(t.defaults(cfg, b.info))
    t.setup(cfg, b.info)
    images, targets = next(iter(t.loader(b.train, cfg, b.info, train=False)))
    assert len(images) == len(targets) == 4
    for i, tgt in enumerate(targets):  # the canvases' own boxes and instance masks reach the model
        assert torch.equal(tgt["boxes"], b.train.boxes[i])
        if task == "instance":
            assert torch.equal(tgt["masks"].to(torch.uint8), b.train.masks[i])


def test_too_small_canvas_is_one_sentence():
    with pytest.raises(CnnkitError, match="canvas_size"):
        build_data(Config.from_dict({"data": {"name": "digits-seg", "canvas_size": 16}}))


@pytest.mark.parametrize("fmt,marker", [("masks", "train/masks"), ("voc-seg", "SegmentationClass"),
                                        ("voc", "SegmentationClass")])
def test_make_writes_a_folder_that_reads_back(tmp_path, fmt, marker):
    cfg = Config.from_dict({"data": {"canvas_size": 48}})
    out = make("digits-seg", fmt, tmp_path / fmt, cfg)
    assert (out / marker).is_dir()
    back = build_data(Config.from_dict({"data": {"name": str(out)}, "task": "segment"}))
    src = build_data(Config.from_dict({"data": {"name": "digits-seg", "canvas_size": 48}}))
    assert back.info.classes == src.info.classes and len(back.train) == 8 and len(back.test) == 4
    from cnnkit.data.segmentation import read_mask

    assert torch.equal(read_mask(back.test.mask_paths[0]), src.test.masks[0])


def test_detection_view_feeds_the_coco_writer_with_instance_masks(tmp_path):
    from cnnkit.data.registry import WRITERS
    from cnnkit.data.segmentation import detection_view, segment_view

    src = build_data(Config.from_dict({"data": {"name": "digits-seg", "canvas_size": 48}}))
    det = detection_view(src)
    assert det.info.task == "detect" and det.info.classes == [str(i) for i in range(10)]
    WRITERS.get("coco")(det, tmp_path)
    back = segment_view(build_data(Config.from_dict({"data": {"name": str(tmp_path)}})))
    assert back.info.classes == src.info.classes
    from cnnkit.data.segmentation import samples

    (_, _, mask), = list(samples(back.test, 1, limit=1))
    assert torch.equal(mask, src.test.masks[0])


def test_make_coco_writes_instance_masks_that_give_back_the_class_masks(tmp_path):
    out = make("digits-seg", "coco", tmp_path / "coco", Config.from_dict({"data": {"canvas_size": 48}}))
    from cnnkit.data.segmentation import samples, segment_view

    back = segment_view(build_data(Config.from_dict({"data": {"name": str(out)}})))
    src = build_data(Config.from_dict({"data": {"name": "digits-seg", "canvas_size": 48}}))
    assert len(back.train) == 8 and back.info.classes == src.info.classes
    (_, _, mask), = list(samples(back.test, 1, limit=1))
    assert torch.equal(mask, src.test.masks[0])


def test_cli_make_then_inspect_a_mask_folder_and_a_voc_layout(tmp_path):
    """Through the CLI, so the mask inspectors must be registered by `import cnnkit.data` alone."""
    import json
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    for fmt in ("masks", "voc"):
        out = tmp_path / fmt
        subprocess.run([sys.executable, "-m", "cnnkit", "data", "make", "digits-seg", "--format", fmt, str(out),
                        "--canvas-size", "32", "--set", "data.split_seed=3"], check=True, capture_output=True)
        mask_dir = out / ("train/masks" if fmt == "masks" else "SegmentationClass")
        first = sorted(mask_dir.glob("*.png"))[0]
        assert Image.open(first).size == (32, 32)
        Image.fromarray(np.full((20, 20), 3, np.uint8)).save(first)  # wrong size: must be reported
        res = subprocess.run([sys.executable, "-m", "cnnkit", "data", "inspect", str(out), "--json"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        assert any(first.stem in i["file"] for i in report["issues"]), report["issues"]
