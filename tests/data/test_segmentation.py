"""data/segmentation.py: mask resizing and remapping, mask checks, class masks from instances, the loader's order."""
from __future__ import annotations

import torch

from cnnkit.data.segmentation import (IGNORE_INDEX, SegLoader, SegSplit, mask_problem, read_mask, remap_counts,
                                      remap_mask, resize_mask, semantic_from_instances, value_counts,
                                      write_mask)

PRE = {"size": [4, 4], "mean": [0.5], "std": [0.25], "channels": 1}


def _mask(seed=0, size=(23, 31)):
    return torch.tensor([0, 1, 2, 7, IGNORE_INDEX], dtype=torch.uint8)[
        torch.randint(0, 5, size, generator=torch.Generator().manual_seed(seed))]


def test_resize_mask_never_invents_class_values():
    mask = _mask()
    for size in ((64, 64), (8, 11), (23, 31)):
        out = resize_mask(mask, size)
        assert out.shape == size and out.dtype == torch.uint8
        assert set(out.unique().tolist()) <= {0, 1, 2, 7, IGNORE_INDEX}
    up = resize_mask(mask, (46, 62))  # an exact 2x nearest-neighbour upscale repeats each pixel
    assert torch.equal(up, mask.repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_remap_mask_and_remap_counts_agree():
    raw = torch.tensor([[0, 255, 255], [3, 0, 255]], dtype=torch.uint8)
    remap = {255: 1}
    assert remap_mask(raw, remap).tolist() == [[0, 1, 1], [3, 0, 1]]
    counts = torch.bincount(raw.reshape(-1), minlength=256)
    assert torch.equal(remap_counts(counts, remap), torch.bincount(remap_mask(raw, remap).reshape(-1), minlength=256))
    assert remap_mask(raw, None) is raw


def test_mask_problem_names_size_and_values():
    image = torch.zeros(1, 4, 6, dtype=torch.uint8)
    assert mask_problem(image, torch.zeros(5, 6, dtype=torch.uint8), 3) == \
        "image is 6x4 (WxH) but its mask is 6x5"
    mask = torch.tensor([[0, 1, 2, 9, 4, IGNORE_INDEX]] * 4, dtype=torch.uint8)
    assert mask_problem(image, mask, 3) == "mask has values 4, 9 outside the 3 classes (0..2, 255 = ignore)"
    assert mask_problem(image, mask, 10) is None


def test_semantic_from_instances_paints_crowd_first():
    masks = torch.zeros(3, 4, 4, dtype=torch.uint8)
    masks[0, :2] = 1  # crowd, top half
    masks[1, 1, 1] = 1  # an object inside the crowd region keeps its class
    masks[2, 3, 3] = 1
    target = {"masks": masks, "labels": torch.tensor([5, 0, 2]), "iscrowd": torch.tensor([1, 0, 0])}
    want = torch.zeros(4, 4, dtype=torch.uint8)
    want[:2] = IGNORE_INDEX
    want[1, 1], want[3, 3] = 1, 3
    assert torch.equal(semantic_from_instances(target, (4, 4)), want)


def test_write_then_read_mask_and_count_values(tmp_path):
    mask = _mask(2, (9, 7))
    write_mask(mask, tmp_path / "m.png")
    assert torch.equal(read_mask(tmp_path / "m.png"), mask)
    pixels, n = value_counts(SegSplit(torch.zeros(1, 1, 9, 7, dtype=torch.uint8), mask[None]))
    assert n == 1 and torch.equal(pixels, torch.bincount(mask.reshape(-1).long(), minlength=256))


def test_loader_takes_the_epoch_order(rank1_of_2_order):
    n, seed, epoch, want = rank1_of_2_order
    seg = SegLoader(SegSplit(torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
                             torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, 4, 4).clone()),
                    PRE, 4, train=True, seed=seed)
    seg.set_epoch(epoch)
    assert [int(m[0, 0]) for _, masks in seg for m in masks] == want and len(seg) == 2


def test_a_file_split_reads_a_binary_0_128_mask_through_its_remap(tmp_path):
    from PIL import Image

    from cnnkit.data.segmentation import SegFileSplit

    raw = torch.zeros(6, 5, dtype=torch.uint8)
    raw[1:4, 2:4] = 128
    Image.fromarray(raw.numpy(), mode="L").save(tmp_path / "m.png")
    split = SegFileSplit([str(tmp_path / "i.png")], [str(tmp_path / "m.png")], remap={128: 1})
    assert torch.equal(split.mask(0), (raw == 128).to(torch.uint8))  # the loader hands the model class 1
    assert mask_problem(torch.zeros(3, 6, 5), split.mask(0), 2) is None
    stored = mask_problem(torch.zeros(3, 6, 5), raw, 2)
    assert stored == "mask has values 128 outside the 2 classes (0..1, 255 = ignore)"
