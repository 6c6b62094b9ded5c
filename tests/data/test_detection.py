"""data/detection.py: `DetectionSplit`, box-aware augmentation presets, the loader's epoch order, writer names."""
from __future__ import annotations

import pytest
import torch

from cnnkit.data.builtin.canvas import digit_canvases
from cnnkit.data.detection import (DetectionLoader, DetectionSplit, apply_transform, detection_loader,
                                   detection_transform, unique_names)
from cnnkit.errors import CnnkitError

SIZE = 64


@pytest.fixture(scope="module")
def canvases() -> DetectionSplit:
    """8 digit canvases of 64 px with instance masks (the digits-detect generator, small)."""
    return digit_canvases("train", size=SIZE, seed=5, n=8).to_split("train")


def test_augmentation_moves_boxes_with_the_pixels():
    """A white rectangle's box must stay tight around it through jitter, crop and flip."""
    img = torch.zeros((1, 64, 64), dtype=torch.uint8)
    img[0, 20:40, 10:25] = 255
    target = {"boxes": torch.tensor([[10.0, 20.0, 25.0, 40.0]]), "labels": torch.tensor([3]),
              "iscrowd": torch.tensor([0])}
    transform = detection_transform("strong", True, 64, 1)
    for seed in range(6):
        torch.manual_seed(seed)
        out, t = apply_transform(transform, img, target)
        assert out.shape == (1, 64, 64)
        lit = (out[0] > 127).nonzero()
        if len(t["boxes"]) == 0:
            continue
        x1, y1, x2, y2 = t["boxes"][0].tolist()
        assert t["labels"].tolist() == [3]
        assert abs(x1 - lit[:, 1].min().item()) <= 1.5 and abs(x2 - lit[:, 1].max().item() - 1) <= 1.5
        assert abs(y1 - lit[:, 0].min().item()) <= 1.5 and abs(y2 - lit[:, 0].max().item() - 1) <= 1.5
    with pytest.raises(CnnkitError, match="augment"):
        detection_transform("medium", False, 64, 1)


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_presets_keep_boxes_inside_the_image_and_labels_paired(canvases, preset):
    transform = detection_transform(preset, True, SIZE, 1)
    kept = 0
    for i in range(len(canvases)):
        target = canvases.target(i)
        torch.manual_seed(i)
        out, t = apply_transform(transform, canvases.image(i), target)
        h, w = out.shape[-2:]
        assert (h, w) == (SIZE, SIZE)
        b = t["boxes"]
        assert len(b) == len(t["labels"]) == len(t["iscrowd"])
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert ((b[:, 2] - b[:, 0]) >= 2).all() and ((b[:, 3] - b[:, 1]) >= 2).all()  # SanitizeBoundingBoxes
        assert set(t["labels"].tolist()) <= set(target["labels"].tolist())
        kept += len(b)
    assert kept > 0
    assert detection_transform("none", True, SIZE, 1) is None


def _rectangles(n: int, size: int) -> DetectionSplit:
    """n in-memory images, each with 1-3 filled rectangles of value 200 and their exact boxes."""
    g = torch.Generator().manual_seed(0)
    images, boxes = torch.zeros((n, 1, size, size), dtype=torch.uint8), []
    for i in range(n):
        k = int(torch.randint(1, 4, (1,), generator=g))
        b = []
        for j in range(k):  # side by side in columns, so no two rectangles touch
            x1 = j * size // 3 + int(torch.randint(0, 4, (1,), generator=g))
            y1 = int(torch.randint(0, size - 20, (1,), generator=g))
            w, h = int(torch.randint(6, size // 3 - 4, (1,), generator=g)), int(torch.randint(6, 20, (1,), generator=g))
            images[i, 0, y1:y1 + h, x1:x1 + w] = 200
            b.append([x1, y1, x1 + w, y1 + h])
        boxes.append(torch.tensor(b, dtype=torch.float32))
    labels = [torch.arange(len(b)) for b in boxes]
    return DetectionSplit(images, boxes, labels, iscrowd=[torch.zeros_like(x) for x in labels], channels=1)


def test_light_preset_boxes_follow_the_pixels_and_epochs_repeat():
    """The batched "light" path (scale jitter, window, flip, brightness/contrast): every kept box stays
    tight around its rectangle's pixels, clipped ones too; the same epoch gives the same batches."""
    split = _rectangles(24, SIZE)
    loader = detection_loader(split, 8, True, seed=2, augment="light", hflip=True, image_size=SIZE, channels=1)
    assert loader.batch_augment is not None and loader.samples.transform is None
    kept = flipped = 0
    for images, targets in loader:
        for img, t in zip(images, targets):
            assert img.shape == (1, SIZE, SIZE) and img.dtype == torch.uint8
            assert len(t["boxes"]) == len(t["labels"]) == len(t["iscrowd"])
            lit = img[0].float() > img.float().max() / 2
            cover = torch.zeros_like(lit)
            for box, label in zip(t["boxes"], t["labels"]):
                x1, y1, x2, y2 = box.tolist()
                assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE and x2 - x1 >= 2 and y2 - y1 >= 2
                inside = lit[max(0, round(y1) - 1):round(y2) + 1, max(0, round(x1) - 1):round(x2) + 1]
                ys, xs = inside.nonzero(as_tuple=True)
                ox, oy = max(0, round(x1) - 1), max(0, round(y1) - 1)
                assert abs(xs.min() + ox - x1) <= 1 and abs(xs.max() + ox + 1 - x2) <= 1
                assert abs(ys.min() + oy - y1) <= 1 and abs(ys.max() + oy + 1 - y2) <= 1
                cover[max(0, round(y1) - 1):round(y2) + 1, max(0, round(x1) - 1):round(x2) + 1] = True
                kept += 1
            # a lit pixel outside every box is a sliver dropped as too small, so at the window's edge
            ys, xs = (lit & ~cover).nonzero(as_tuple=True)
            assert (torch.stack([xs, ys, SIZE - 1 - xs, SIZE - 1 - ys]).amin(0) < 3).all()
            i = int(t["image_id"])
            flipped += int(len(t["boxes"]) > 1 and t["boxes"][0, 0] > t["boxes"][-1, 0])
            assert set(t["labels"].tolist()) <= set(split.labels[i].tolist())
    assert kept > 0 and flipped > 0  # columns in reverse order: mirrored images occur
    again = [[img.clone() for img in images] for images, _ in loader]
    assert all(torch.equal(a, b) for first, (images, _) in zip(again, loader) for a, b in zip(first, images))


def test_light_preset_draws_other_augmentations_on_each_torchrun_rank(monkeypatch):
    """Under torchrun, batch k of rank 0 and of rank 1 must not share one scale/window/flip draw."""
    split = _rectangles(1, SIZE)
    split = split.subset([0] * 16)  # the same image everywhere: only the augmentation differs
    first = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        loader = detection_loader(split, 8, True, seed=4, augment="light", hflip=True, image_size=SIZE, channels=1)
        first.append(next(iter(loader))[1][0]["boxes"])
    assert not torch.equal(first[0], first[1])


def test_light_preset_on_image_files_of_other_sizes_fits_them_to_the_window(tmp_path):
    """Files of any size in one batch: each is shrunk to fit `image_size` (x 0.75-1.25), boxes with it."""
    from PIL import Image

    paths, boxes = [], []
    for k, (w, h) in enumerate([(200, 120), (90, 150)]):
        img = Image.new("L", (w, h))
        img.paste(255, (20, 30, 60, 90))  # a white 40 x 60 px rectangle
        img.save(tmp_path / f"{k}.png")
        paths.append(str(tmp_path / f"{k}.png"))
        boxes.append(torch.tensor([[20.0, 30.0, 60.0, 90.0]]))
    split = DetectionSplit(paths, boxes, [torch.tensor([0])] * 2, iscrowd=[torch.tensor([0])] * 2,
                           sizes=[(120, 200), (150, 90)], channels=1)
    for epoch in range(4):
        loader = detection_loader(split, 2, True, seed=epoch, augment="light", image_size=SIZE, channels=1)
        (images, targets), = list(loader)
        for img, t in zip(images, targets):
            assert img.shape == (1, SIZE, SIZE)
            if len(t["boxes"]):
                x1, y1, x2, y2 = t["boxes"][0].tolist()
                lit = (img[0].float() > img.float().max() / 2).nonzero()
                assert abs(lit[:, 1].min() - x1) <= 1 and abs(lit[:, 1].max() + 1 - x2) <= 1
                assert abs(lit[:, 0].min() - y1) <= 1 and abs(lit[:, 0].max() + 1 - y2) <= 1


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_loader_carries_instance_masks_through_augmentation(canvases, preset):
    """Instance segmentation reuses this loader: masks must stay paired with their boxes."""
    loader = detection_loader(canvases, 4, True, seed=1, augment=preset, image_size=SIZE, channels=1,
                              masks=True)
    for images, targets in loader:
        for img, t in zip(images, targets):
            assert t["masks"].shape == (len(t["boxes"]), *img.shape[-2:]) and t["masks"].dtype == torch.uint8
            for box, mask in zip(t["boxes"], t["masks"]):
                ys, xs = mask.nonzero(as_tuple=True)
                if len(xs):  # a mask's pixels lie inside its (possibly clipped) box
                    assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
                    assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1


def test_loader_takes_the_epoch_order(rank1_of_2_order):
    n, seed, epoch, want = rank1_of_2_order
    det = DetectionLoader(DetectionSplit(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), [torch.zeros(0, 4)] * n,
                                         [torch.zeros(0, dtype=torch.int64)] * n), 4, train=True, seed=seed)
    det.set_epoch(epoch)
    assert [int(t["image_id"]) for _, targets in det for t in targets] == want and len(det) == 2


def test_eval_loader_keeps_order_crowd_and_pixels(canvases):
    split = canvases.subset([3, 1, 2])
    split.iscrowd = [torch.ones_like(x) for x in split.labels]  # crowd objects are dropped in training only
    (images, targets), = list(detection_loader(split, 8, False, augment="strong", image_size=SIZE, channels=1))
    assert [int(t["image_id"]) for t in targets] == [0, 1, 2]
    assert torch.equal(images[0], canvases.images[3])
    assert [len(t["boxes"]) for t in targets] == [len(canvases.boxes[i]) for i in (3, 1, 2)]


def test_unique_names_deduplicate_and_make_in_memory_images_png():
    files = DetectionSplit(["/a/x.jpg", "/b/x.jpg", "/c/x.jpg", "/a/y.png"], [torch.zeros(0, 4)] * 4,
                           [torch.zeros(0, dtype=torch.int64)] * 4)
    assert unique_names(files) == ["x.jpg", "x_2.jpg", "x_3.jpg", "y.png"]
    memory = DetectionSplit(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [torch.zeros(0, 4)] * 2,
                            [torch.zeros(0, dtype=torch.int64)] * 2, names=["a.jpg", "a.png"])
    assert unique_names(memory, prefix="p_") == ["p_a.png", "p_a_2.png"]
