"""`smallcnn`: the classic small CNN (conv -> pool stages, then a fully-connected head), with batchnorm.

Layout on a 28x28 grey image with the default widths (16, 64) and hidden=256:
    stage1  3x3 conv 16 + BN + ReLU -> 16x28x28, 2x2 max-pool -> 16x14x14
    stage2  3x3 conv 64 + BN + ReLU -> 64x14x14, 2x2 max-pool -> 64x7x7
    head    flatten 3136 -> linear 256 + ReLU -> dropout -> linear num_classes (logits)
2.8 M multiply-adds per image (5.6 MFLOPs, `cnnkit info smallcnn --data fashion-mnist`), 0.8 M parameters.

Why this network is the default for small images (<= 32 px) with many training images: on a CPU
the cost of a training step is the convolutions' multiply-adds at full resolution, so accuracy per
FLOP decides the time to a given accuracy (issue 14). Measured with `cnnkit train --data fashion-mnist`
(one 2 GHz AVX2 core, 1 thread, batch 64, SGD + one-cycle, label smoothing 0.1, val split of 6,000):
widths (16, 64), 3 epochs: val 0.921 in 145 s (1,070 img/s); widths (32, 64), 2 epochs: val 0.914 in
152 s (700 img/s) — the narrower first stage halves the full-resolution work and buys a third epoch.
The pytorch/examples two-conv Net needs three epochs (~360 s) for 91.5 % test accuracy.
Batchnorm is what lets a one-cycle schedule at lr 0.1 converge within an epoch; the flatten head
keeps where a feature is (Fashion-MNIST items are centred), which a global-average-pool head loses.
The pools make the size of the flattened vector depend on the image size, so the head is sized from it.

`convs=2` puts two conv-BN-ReLU in each stage (the VGG layout). With widths (32, 64, 128) it is the
network of `configs/fashion-mnist-best.yaml`: on 2 threads it trains 1.29x the images per second of
ResNet-20 (323 vs 251 img/s, batch 64, step benchmark) at about the same multiply-adds per image
(29 M vs 31 M) — six convs of 32-128 channels instead of nineteen of 16-64 — and at equal time it
learned at least as much.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import MODELS
from cnnkit.models.layers import ClassifierHead, ConvBNAct, image_hw, init_weights


class SmallCNN(nn.Module):
    """`convs` x conv-BN-ReLU + 2x2 max-pool per width, then flatten -> linear `hidden` + ReLU -> dropout
    -> linear. `convs=2` is the VGG layout (two 3x3 convs see 5x5 before each pool; Simonyan & Zisserman 2014).

    Input (N, in_channels, H, W) float; output (N, num_classes) logits. H and W must be at least
    2 ** len(widths) so every pool has a map to halve (CnnkitError otherwise).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: int | Sequence[int] = 28,
                 widths: Sequence[int] = (16, 64), hidden: int = 256, dropout: float = 0.0, convs: int = 1):
        super().__init__()
        h, w = image_hw(image_size)
        given = (widths, hidden, convs)
        try:  # a --set value arrives as parsed YAML: a bare 8, "abc" or [a] must read as one sentence too
            widths, hidden = [int(c) for c in widths if not isinstance(widths, str)], int(hidden)
            convs = int(convs) if not isinstance(convs, (str, bool)) and int(convs) == convs else 0
        except (TypeError, ValueError):
            widths = None
        if not widths or min(widths) < 1 or hidden < 1 or convs < 1:
            raise CnnkitError(f"smallcnn needs positive widths, hidden units and convs per stage, got "
                              f"widths={given[0]!r} hidden={given[1]!r} convs={given[2]!r}; e.g. --set "
                              f"model.kwargs.widths=[16,64] model.kwargs.hidden=256 model.kwargs.convs=1.")
        if min(h, w) < 2 ** len(widths):
            raise CnnkitError(f"smallcnn with {len(widths)} pools needs images of at least {2 ** len(widths)} px, "
                              f"got {h}x{w}; set data.image_size or fewer widths.")
        stages, c = [], in_channels
        for i, width in enumerate(widths):
            # one conv keeps the names features.stageN.conv of runs saved before `convs` existed
            names = ["conv"] if convs == 1 else [f"conv{j + 1}" for j in range(convs)]
            layers = [(n, ConvBNAct(c if j == 0 else width, width, 3)) for j, n in enumerate(names)]
            stages.append((f"stage{i + 1}", nn.Sequential(OrderedDict(layers + [("pool", nn.MaxPool2d(2))]))))
            c, h, w = width, h // 2, w // 2
        self.features = nn.Sequential(OrderedDict(stages))
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU())
        self.head = ClassifierHead(hidden, num_classes, dropout, pool=False)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.features(x)))


@MODELS.register("smallcnn", tasks=("classify",), backbone=False,
                 doc="conv-BN-ReLU (x convs=1) + pool per width (widths=[16, 64]) + FC (hidden=256): the default "
                     "for 5,000+ training images of <= 32 px")
def smallcnn(num_classes: int, in_channels: int, image_size: int | Sequence[int], dropout: float = 0.0,
             widths: Sequence[int] = (16, 64), hidden: int = 256, convs: int = 1) -> SmallCNN:
    return SmallCNN(num_classes, in_channels, image_size, widths, hidden, dropout, convs)
