"""data/box_jitter.py: the hand-written light detection augmentation against exact references."""
from __future__ import annotations

import torch

from cnnkit.data.box_jitter import BoxJitter


def _sample():
    img = torch.zeros((1, 48, 48), dtype=torch.uint8)
    img[0, 10:30, 5:17] = 200
    target = {"boxes": torch.tensor([[5.0, 10.0, 17.0, 30.0], [40.0, 40.0, 41.0, 48.0]]),
              "labels": torch.tensor([3, 4]), "iscrowd": torch.tensor([0, 1]),
              "masks": torch.zeros((2, 48, 48), dtype=torch.uint8)}
    target["masks"][0, 10:30, 5:17] = 1
    return img, target


def test_no_jitter_is_the_identity_except_dropping_thin_boxes():
    img, target = _sample()
    out, t = BoxJitter(48, hflip=False, scale_range=(1.0, 1.0), p_color=0.0)(img, target)
    assert torch.equal(out, img) and torch.equal(t["masks"], target["masks"][:1])
    assert t["boxes"].tolist() == [[5.0, 10.0, 17.0, 30.0]]  # the 1 px wide box is sanitised away
    assert t["labels"].tolist() == [3] and t["iscrowd"].tolist() == [0]


def test_half_scale_places_the_image_and_moves_the_box_with_it():
    img, target = _sample()
    for seed in range(4):
        torch.manual_seed(seed)
        out, t = BoxJitter(96, hflip=True, scale_range=(1.0, 1.0), p_color=0.0)(img, target)  # 48 -> 96: x2
        lit = (out[0] > 100).nonzero()
        x1, y1, x2, y2 = t["boxes"][0].tolist()
        assert (x1, y1, x2, y2) == (lit[:, 1].min().item(), lit[:, 0].min().item(),
                                    lit[:, 1].max().item() + 1, lit[:, 0].max().item() + 1)
        assert torch.equal(t["masks"][0].bool(), out[0] > 100)


def test_same_seed_same_sample():
    img, target = _sample()
    aug = BoxJitter(40, hflip=True)
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        runs.append(aug(img, target))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1]["boxes"], runs[1][1]["boxes"])
