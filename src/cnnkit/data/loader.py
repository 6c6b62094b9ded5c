"""Classification loaders: the tensor-resident fast path and the streaming DataLoader path.

Both yield `(images, labels)` with images already normalised float and augmented, and
both follow the epoch contract of `tasks.base.Loader`: the order of epoch e comes from a
generator seeded with (seed, e), so a resumed run replays exactly the same batches.

- `TensorLoader`: the whole split is one uint8 tensor in memory (digits, Fashion-MNIST,
  small folders). Indexing a batch out of it is ~100x cheaper than a Dataset/collate
  round trip per image, which is what makes CPU training of small nets fast.
- `StreamLoader`: paths decoded by DataLoader workers (`read_image`), for sets too large
  to hold; unreadable files are skipped and reported, never silently dropped.
Under torchrun each rank takes every world_size-th index of the epoch's permutation.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from cnnkit.data.base import BadFile, FileSplit, TensorSplit
from cnnkit.data.transforms import BatchAugment, mix_transform, resize_uint8, to_model_input


def shard() -> tuple[int, int]:
    """(rank, world_size) under torchrun, (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), max(1, int(os.environ.get("WORLD_SIZE", 1)))


def shard_order(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's share of an epoch's permutation. The tail that does not divide by world_size is
    dropped (the next epoch's permutation covers it) so every rank takes the same number of steps:
    one rank with an extra batch would wait forever in DDP's gradient all-reduce."""
    return order[: len(order) - len(order) % world][rank::world] if world > 1 else order


def sharded_count(n: int, world: int) -> int:
    return n - n % world if world > 1 else n


class _EpochOrder:
    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool):
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.epoch = 0
        self.rank, self.world = shard() if shuffle else (0, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[torch.Tensor]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = shard_order(torch.randperm(self.n, generator=g), self.rank, self.world)
        else:
            order = torch.arange(self.n)
        chunks = list(order.split(self.batch_size))
        if self.drop_last and len(chunks) > 1 and len(chunks[-1]) < self.batch_size:
            chunks.pop()
        return chunks

    def __len__(self) -> int:
        n = sharded_count(self.n, self.world) // self.world if self.shuffle else self.n
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest and not (self.drop_last and full) else 0)


class TensorLoader(_EpochOrder):
    def __init__(self, split: TensorSplit, batch_size: int, preprocess: dict, train: bool, seed: int,
                 augment: str = "none", hflip: bool = False, mix=None):
        super().__init__(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)
        self.split, self.preprocess, self.mix = split, preprocess, mix if train else None
        self.augment = BatchAugment(augment if train else "none", hflip, preprocess["size"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        size = self.preprocess["size"]
        for idx in self.batches():
            images = self.augment(resize_uint8(self.split.images[idx], size))
            x, y = to_model_input(images, self.preprocess), self.split.labels[idx]
            if self.mix is not None:
                x, y = self.mix(x, y)
            yield x, y


class _FileDataset(Dataset):
    def __init__(self, split: FileSplit, channels: int, size: Sequence[int]):
        self.split, self.channels, self.size = split, channels, list(size)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        from cnnkit.data.decode import BadImage, read_image

        path = self.split.paths[i]
        try:
            return resize_uint8(read_image(path, self.channels), self.size), self.split.labels[i], None
        except BadImage as e:
            return None, self.split.labels[i], BadFile(str(path), str(e))


def _collate(items):
    good = [(img, lab) for img, lab, _ in items if img is not None]
    bad = [b for _, _, b in items if b is not None]
    if not good:
        return None, None, bad
    return torch.stack([g[0] for g in good]), torch.tensor([g[1] for g in good]), bad


class StreamLoader(_EpochOrder):
    def __init__(self, split: FileSplit, batch_size: int, preprocess: dict, train: bool, seed: int,
                 channels: int, augment: str = "none", hflip: bool = False, mix=None, workers: int = 0):
        super().__init__(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)
        self.dataset = _FileDataset(split, channels, preprocess["size"])
        self.preprocess, self.workers, self.mix = preprocess, workers, mix if train else None
        self.augment = BatchAugment(augment if train else "none", hflip, preprocess["size"])
        self.bad_files: list[BadFile] = []

    def __iter__(self):
        loader = DataLoader(self.dataset, batch_sampler=[b.tolist() for b in self.batches()],
                            num_workers=self.workers, collate_fn=_collate,
                            persistent_workers=False, pin_memory=torch.cuda.is_available())
        for images, labels, bad in loader:
            self.bad_files.extend(b for b in bad if b.path not in {x.path for x in self.bad_files})
            if images is None:
                continue
            x, y = to_model_input(self.augment(images), self.preprocess), labels
            if self.mix is not None:
                x, y = self.mix(x, y)
            yield x, y


def classification_loader(split, preprocess: dict, batch_size: int, train: bool, seed: int, channels: int,
                          augment: str, hflip: bool, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0,
                          workers: int = 0):
    mix = mix_transform(num_classes, mixup, cutmix) if train else None
    if isinstance(split, TensorSplit):
        return TensorLoader(split, batch_size, preprocess, train, seed, augment, hflip, mix)
    return StreamLoader(split, batch_size, preprocess, train, seed, channels, augment, hflip, mix, workers)
