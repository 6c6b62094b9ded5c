"""The epoch order every loader shares (`EpochOrder`), bad-file collation, and the classification loaders.

`EpochOrder` is the epoch contract of `tasks.base.Loader`, written once: the order of epoch e
comes from a generator seeded with (seed, e), so a resumed run replays exactly the same
batches; the classification, detection and segmentation loaders all take their batches
from it. Datasets return `(*fields, bad)` per index, `bad` a `BadFile` (fields None) when
the file cannot be used; `collate_usable` and `usable_batches` skip and record those.

Classification loaders yield `(images, labels)` with images already normalised float and
augmented:

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
from torch.utils.data import DataLoader, Dataset, default_collate

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


class EpochOrder:
    """Batches of indices 0..n-1 for the current epoch (see module docstring).

    shuffle: a permutation from `torch.Generator().manual_seed(seed * 100_003 + epoch)`, of which
    this rank takes its share (`shard_order`); else 0..n-1 in order, whole on every rank.
    drop_last: leave out a short last batch (when there is more than one), so training steps
    are equal-sized; the next epoch's permutation covers those indices.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool):
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.epoch = 0
        self.rank, self.world = shard() if shuffle else (0, 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_order(self) -> tuple[torch.Tensor, torch.Generator | None]:
        """This rank's indices (int64) for the epoch, and the generator that drew them (None when not
        shuffled), left just past the permutation so a loader can draw per-sample seeds from it."""
        if not self.shuffle:
            return torch.arange(self.n), None
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return shard_order(torch.randperm(self.n, generator=g), self.rank, self.world), g

    def batches(self) -> list[torch.Tensor]:
        return self.chunk(self.epoch_order()[0])

    def batch_generator(self, k: int) -> torch.Generator:
        """The generator that augments batch `k` of this epoch on this rank (the batch augmentations of
        the segmentation and detection loaders): a function of (seed, epoch, k, rank), so an epoch is the
        same with 0 or N workers and on resume, and each torchrun rank draws its own augmentation."""
        batch = k * self.world + self.rank
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_033 + batch)

    def chunk(self, keys):
        """`keys` (a tensor or list, one entry per index of the epoch order) cut into batches."""
        chunks = [keys[j:j + self.batch_size] for j in range(0, len(keys), self.batch_size)]
        if self.drop_last and len(chunks) > 1 and len(chunks[-1]) < self.batch_size:
            chunks.pop()
        return chunks

    def __len__(self) -> int:
        n = sharded_count(self.n, self.world) // self.world if self.shuffle else self.n
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest and not (self.drop_last and full) else 0)


def endless(loader) -> Iterator:
    """A loader's batches, epoch after epoch, each epoch in its own seeded order (`set_epoch`):
    the stream of the LR range test and `cnnkit bench`, which take steps, not epochs."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def collate_usable(items: list[tuple], stack: bool = True) -> tuple[list | None, list[BadFile]]:
    """(batch, bad files) from Dataset items `(*fields, bad)`; batch is None when no item is usable.

    stack=True: `default_collate` (tensors stacked, numbers made one tensor); False: one list per
    field (detection images differ in size)."""
    good = [item[:-1] for item in items if item[-1] is None]
    bad = [item[-1] for item in items if item[-1] is not None]
    if not good:
        return None, bad
    return (default_collate(good) if stack else [list(field) for field in zip(*good)]), bad


def usable_batches(stream, bad_files: list[BadFile]) -> Iterator[list]:
    """The batches of a stream of `collate_usable` results; its bad files are appended to `bad_files`
    once each (a file met again in a later epoch is not listed twice)."""
    seen = {b.path for b in bad_files}
    for batch, bad in stream:
        for b in bad:
            if b.path not in seen:
                seen.add(b.path)
                bad_files.append(b)
        if batch is not None:
            yield batch


class AugmentFrom:
    """The batch augmentation of a training loader from `start_epoch` (1-based) on; the epochs before
    it see the images as they are (`data.augment_start_epoch`)."""

    def __init__(self, loader: EpochOrder, augment: BatchAugment, start_epoch: int = 1):
        self.loader, self.augment, self.start_epoch = loader, augment, start_epoch

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.augment(images) if self.loader.epoch + 1 >= self.start_epoch else images


def train_augment(augment: str, hflip: bool, preprocess: dict, train: bool, erasing: float) -> BatchAugment:
    """The batch augmentation of a classification loader: the preset and random erasing when training,
    nothing otherwise."""
    if not train:
        return BatchAugment("none", hflip, preprocess["size"])
    return BatchAugment(augment, hflip, preprocess["size"], erasing)


class TensorLoader(EpochOrder):
    def __init__(self, split: TensorSplit, batch_size: int, preprocess: dict, train: bool, seed: int,
                 augment: str = "none", hflip: bool = False, mix=None, augment_start_epoch: int = 1,
                 erasing: float = 0.0):
        super().__init__(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)
        self.split, self.preprocess, self.mix = split, preprocess, mix if train else None
        self.augment = AugmentFrom(self, train_augment(augment, hflip, preprocess, train, erasing),
                                   augment_start_epoch)

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


class StreamLoader(EpochOrder):
    def __init__(self, split: FileSplit, batch_size: int, preprocess: dict, train: bool, seed: int,
                 channels: int, augment: str = "none", hflip: bool = False, mix=None, workers: int = 0,
                 augment_start_epoch: int = 1, erasing: float = 0.0):
        super().__init__(len(split), batch_size, shuffle=train, seed=seed, drop_last=train)
        self.dataset = _FileDataset(split, channels, preprocess["size"])
        self.preprocess, self.workers, self.mix = preprocess, workers, mix if train else None
        self.augment = AugmentFrom(self, train_augment(augment, hflip, preprocess, train, erasing),
                                   augment_start_epoch)
        self.bad_files: list[BadFile] = []

    def __iter__(self):
        loader = DataLoader(self.dataset, batch_sampler=[b.tolist() for b in self.batches()],
                            num_workers=self.workers, collate_fn=collate_usable,
                            persistent_workers=False, pin_memory=torch.cuda.is_available())
        for images, labels in usable_batches(loader, self.bad_files):
            x, y = to_model_input(self.augment(images), self.preprocess), labels
            if self.mix is not None:
                x, y = self.mix(x, y)
            yield x, y


def classification_loader(split, preprocess: dict, batch_size: int, train: bool, seed: int, channels: int,
                          augment: str, hflip: bool, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0,
                          workers: int = 0, augment_start_epoch: int = 1, erasing: float = 0.0):
    mix = mix_transform(num_classes, mixup, cutmix) if train else None
    if isinstance(split, TensorSplit):
        return TensorLoader(split, batch_size, preprocess, train, seed, augment, hflip, mix, augment_start_epoch,
                            erasing)
    return StreamLoader(split, batch_size, preprocess, train, seed, channels, augment, hflip, mix, workers,
                        augment_start_epoch, erasing)
