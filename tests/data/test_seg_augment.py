"""data/seg_augment.py: the batched warp keeps class values, fills uncovered pixels with ignore, matches
torchvision's affine, crops, and is a pure function of its generator."""
from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnkit.data.seg_augment import SegBatchAugment
from cnnkit.data.segmentation import IGNORE_INDEX, SegLoader, SegSplit


def _batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)
    masks = torch.tensor([0, 1, 2, 7], dtype=torch.uint8)[torch.randint(0, 4, (n, size, size), generator=g)]
    return images, masks


def _fixed(aug: SegBatchAugment, scale: float = 1.0) -> SegBatchAugment:
    aug.degrees, aug.scale, aug.shift = 0.0, (scale, scale), 0.0
    return aug


def test_keeps_mask_values_and_fills_uncovered_pixels_with_ignore():
    images, masks = _batch()
    _, out = SegBatchAugment("strong", hflip=True)(images, masks, torch.Generator().manual_seed(1))
    assert set(out.unique().tolist()) <= {0, 1, 2, 7, IGNORE_INDEX}
    assert (out == IGNORE_INDEX).any()  # uncovered corners are ignore, not background


def test_zero_warp_is_the_identity_and_flip_mirrors():
    images, masks = _batch()
    out, m = _fixed(SegBatchAugment("light", hflip=False))(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(out, images) and torch.equal(m, masks)
    out, m = _fixed(SegBatchAugment("light", hflip=True))(images, masks, torch.Generator().manual_seed(1))
    flipped = [torch.equal(out[i], images[i].flip(-1)) and torch.equal(m[i], masks[i].flip(-1)) for i in range(4)]
    same = [torch.equal(out[i], images[i]) for i in range(4)]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped)


def test_scaling_matches_torchvision_affine():
    images, masks = _batch(1)
    out, m = _fixed(SegBatchAugment("light", hflip=False), 1.25)(images, masks, torch.Generator().manual_seed(0))
    ref = v2.functional.affine(tv_tensors.Image(images[0]), angle=0.0, translate=[0, 0], scale=1.25, shear=[0.0, 0.0],
                               interpolation=v2.InterpolationMode.BILINEAR).as_subclass(torch.Tensor)
    assert (out[0].int() - ref.int()).abs().max() <= 1  # rounding of the bilinear weights
    ref_m = v2.functional.affine(tv_tensors.Mask(masks), angle=0.0, translate=[0, 0], scale=1.25,
                                 shear=[0.0, 0.0]).as_subclass(torch.Tensor)
    assert (m[0] != ref_m[0]).float().mean() < 0.01  # nearest neighbour; ties may round the other way


def test_crop_is_a_window_of_the_image_and_generator_decides_everything():
    images, masks = _batch()
    aug = _fixed(SegBatchAugment("none", hflip=False, crop=20))
    out, m = aug(images, masks, torch.Generator().manual_seed(3))
    assert out.shape == (4, 1, 20, 20) and m.shape == (4, 20, 20)
    assert all(any(torch.equal(out[i, 0], images[i, 0, y:y + 20, x:x + 20]) and torch.equal(m[i], masks[i, y:y + 20, x:x + 20])
                   for y in range(13) for x in range(13)) for i in range(4))
    aug = SegBatchAugment("strong", hflip=True, crop=20)
    a = aug(images, masks, torch.Generator().manual_seed(5))
    b = aug(images, masks, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_loader_batches_are_cropped_and_the_same_with_workers():
    images, masks = _batch(8, 16)
    split = SegSplit(images, masks)
    pre = {"size": [16, 16], "mean": [0.5], "std": [0.25], "channels": 1}
    runs = []
    for workers in (0, 2):
        loader = SegLoader(split, pre, 4, train=True, seed=3, augment="light", workers=workers, crop=12)
        loader.set_epoch(1)
        runs.append(list(loader))
    assert [tuple(x.shape) for x, _ in runs[0]] == [(4, 1, 12, 12)] * 2
    assert all(torch.equal(x0, x1) and torch.equal(y0, y1) for (x0, y0), (x1, y1) in zip(*runs))
