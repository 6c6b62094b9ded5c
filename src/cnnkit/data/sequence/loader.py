"""Batches of token ids for the sequence tasks, in an epoch order that is a function of (seed, epoch).

The order comes from `data.loader.EpochOrder` (sharded the same way under torchrun), so `--resume`
replays the same batches. A batch is `(ids, targets)`: int64 N x L ids padded with 0 (`<pad>`) to
the batch's longest string, and the split's targets; with test-time augmentation (`tta` K > 0) a
third tensor holds the ids of K randomised SMILES per string (K*N x L', variant-major).
Training augmentation with SMILES (`augment` light: half the molecules, strong: all) writes each
molecule with its atoms in a random order drawn from (seed, epoch), a new one every epoch.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from cnnkit.data.loader import EpochOrder
from cnnkit.data.sequence.data import SequenceSplit
from cnnkit.data.sequence.tokenize import Encoder

AUGMENT_SHARE = {"none": 0.0, "light": 0.5, "strong": 1.0}


def tta_variants(texts: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """K randomised SMILES of each text, variant-major (variant j of text i at j * N + i)."""
    from cnnkit.data.sequence.chem import randomized_smiles

    return [randomized_smiles(t, rng) for _ in range(k) for t in texts]


class SequenceLoader:
    def __init__(self, split: SequenceSplit, encoder: Encoder, batch_size: int, train: bool, seed: int,
                 augment: str = "none", tta: int = 0):
        self.split, self.encoder, self.train, self.seed = split, encoder, train, seed
        self.share = AUGMENT_SHARE.get(augment, 0.0) if train else 0.0
        self.tta = 0 if train else int(tta)
        self.order = EpochOrder(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        rng = np.random.default_rng([self.seed, self.order.epoch])
        for idx in self.order.batches():
            idx = idx.tolist()
            texts = [self.split.texts[i] for i in idx]
            if self.share > 0:
                from cnnkit.data.sequence.chem import randomized_smiles

                texts = [randomized_smiles(t, rng) if rng.random() < self.share else t for t in texts]
            batch = (self.encoder.batch(texts), self.split.targets[idx])
            if self.tta:
                batch += (self.encoder.batch(tta_variants(texts, self.tta, rng)),)
            yield batch
