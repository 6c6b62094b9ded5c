"""data/transforms.py: preset names, eval preprocessing against a hand computation, batch augmentation, mixing."""
from __future__ import annotations

import pytest
import torch

from cnnkit.data.transforms import BatchAugment, check_preset, mix_transform, resize_uint8, to_model_input
from cnnkit.errors import CnnkitError


def test_unknown_preset_is_one_sentence_with_a_suggestion():
    with pytest.raises(CnnkitError) as e:
        check_preset("stong", "data.augment")
    assert str(e.value) == ('Unknown augmentation preset "stong" (data.augment). Did you mean "strong"? '
                            "Use one of none, flip, light, strong.")
    check_preset("light")  # a known preset passes


def test_to_model_input_is_resize_then_normalise():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 5, 5), generator=g, dtype=torch.uint8)
    pre = {"size": [5, 5], "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0]}
    x = to_model_input(images, pre)
    ref = (images.double() / 255 - torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64).view(1, 3, 1, 1)) \
        / torch.tensor([0.5, 0.25, 2.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and torch.allclose(x.double(), ref, atol=1e-6)
    small = to_model_input(images, {**pre, "size": [3, 4]})
    assert small.shape == (2, 3, 3, 4)
    assert resize_uint8(images, (5, 5)) is images  # same size: no copy, no resampling


def test_translate_moves_content_without_changing_it():
    torch.manual_seed(0)
    img = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    img[0, 0, 6:10, 6:10] = 200
    out = BatchAugment("light", hflip=False, image_size=(16, 16))(img.repeat(20, 1, 1, 1))
    assert out.shape == (20, 1, 16, 16) and out.dtype == torch.uint8
    assert all(int((o == 200).sum()) == 16 for o in out)  # a 2-px shift keeps the square inside
    assert len({tuple((o == 200).nonzero()[0].tolist()) for o in out}) > 1


def test_none_preset_is_the_identity_and_hflip_mirrors():
    images = torch.randint(0, 256, (6, 1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert BatchAugment("none", hflip=True, image_size=(8, 8))(images) is images
    aug = BatchAugment("light", hflip=True, image_size=(8, 8))
    aug.pad = 0  # no shift: what is left is the flip, so each output is the image or its mirror
    torch.manual_seed(3)
    out = aug(images)
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(2)) for o, i in zip(out, images))
    assert any(torch.equal(o, i.flip(2)) and not torch.equal(o, i) for o, i in zip(out, images))


def test_mix_transform_is_off_unless_asked():
    assert mix_transform(5, 0.0, 0.0) is None
    mix = mix_transform(5, 0.4, 0.0)
    x, y = mix(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))
    assert y.shape == (4, 5) and torch.allclose(y.sum(1), torch.ones(4))


def test_flip_preset_only_mirrors():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 6, 6), generator=g, dtype=torch.uint8)
    out = BatchAugment("flip", hflip=True, image_size=(6, 6))(images)
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())  # never translated: each image is itself or its mirror
    assert 10 < int(mirrored.sum()) < 54  # about half are flipped
    assert torch.equal(BatchAugment("flip", hflip=False, image_size=(6, 6))(images), images)  # digits: no flips


def test_augmentation_starts_at_the_given_epoch():
    from cnnkit.data.base import TensorSplit
    from cnnkit.data.loader import classification_loader

    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (32, 1, 6, 6), generator=g, dtype=torch.uint8)
    split = TensorSplit(images, torch.arange(32) % 4)
    pre = {"size": [6, 6], "mean": [0.0], "std": [1.0]}
    loader = classification_loader(split, pre, 32, True, 0, 1, "flip", True, 4, augment_start_epoch=2)
    clean = to_model_input(images, pre)

    def epoch_batch(epoch):
        loader.set_epoch(epoch)
        x, y = next(iter(loader))
        order = [int(i) for i in loader.batches()[0]]
        return x, clean[order]

    x, ref = epoch_batch(0)  # epoch 1: the images as they are
    assert torch.equal(x, ref)
    x, ref = epoch_batch(1)  # epoch 2: some mirrored
    assert not torch.equal(x, ref) and bool(((x == ref) | (x == ref.flip(3))).flatten(1).all(1).all())


def test_random_erasing_blanks_one_rectangle_per_erased_image_and_only_in_training():
    """data.random_erasing: about that share of images get one rectangle of zeros (2-33 % of the area,
    torchvision's RandomErasing defaults) after the preset; evaluation loaders never erase."""
    from cnnkit.data.base import TensorSplit
    from cnnkit.data.loader import classification_loader

    images = torch.full((400, 1, 20, 20), 200, dtype=torch.uint8)
    torch.manual_seed(0)
    out = BatchAugment("none", hflip=False, image_size=(20, 20), erasing=0.5)(images)
    zeros = (out == 0).flatten(1)
    erased = zeros.any(1)
    assert 150 < int(erased.sum()) < 250  # p = 0.5 of 400
    for mask in zeros[erased].view(-1, 20, 20):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert int(mask.sum()) == h * w and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # one box
        slack = 0.5 * (h + w) + 0.25  # torchvision rounds each side to whole pixels
        assert 0.02 * 400 - slack <= h * w <= 0.33 * 400 + slack
    assert bool((out[~erased] == 200).all())
    split = TensorSplit(images[:64], torch.arange(64) % 4)
    pre = {"size": [20, 20], "mean": [0.0], "std": [1.0]}
    for train, expect_erased in ((True, True), (False, False)):
        x, _ = next(iter(classification_loader(split, pre, 64, train, 0, 1, "none", False, 4, erasing=0.5)))
        assert bool((x == 0).flatten(1).any(1).any()) is expect_erased
