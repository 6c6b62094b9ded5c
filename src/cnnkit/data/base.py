"""What every data source hands the engine: a `DataBundle` of three splits plus `DatasetInfo`.

A split is whatever the task's loader understands (classification: `TensorSplit`, an
in-memory uint8 tensor with labels, or `FileSplit`, paths streamed by DataLoader workers;
detection/segmentation: their own split types). `DatasetInfo` carries the facts the model
and the checkpoint need: task, class names, channels, image size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class BadFile:
    """A file that could not be used, and why (listed in the data report, never dropped silently)."""

    path: str
    reason: str


@dataclass
class DatasetInfo:
    task: str  # classify | detect | segment
    classes: list[str]
    channels: int  # 1 (gray) or 3 (RGB)
    image_size: int | tuple[int, int]  # side (or (H, W)) the model sees
    name: str = ""  # built-in name or the path given
    hflip_ok: bool = True  # False for data where a mirror changes the meaning (digits)
    bad_files: list[BadFile] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class TensorSplit:
    """A classification split held in memory: images N x C x H x W uint8, labels N int64."""

    images: torch.Tensor
    labels: torch.Tensor
    names: list[str] | None = None  # source file (or index) per image, for reports

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def take(images: torch.Tensor, labels: torch.Tensor, idx: np.ndarray | None, source: str) -> TensorSplit:
        """The split of rows `idx` (all rows for None) of images N x C x H x W / labels N, each named
        "source[i]" after its row in the source."""
        idx = np.arange(len(labels)) if idx is None else np.asarray(idx, dtype=np.int64)
        # np.take is ~5x faster than torch advanced indexing for a 60k x 784 uint8 gather (measured, 1 thread)
        return TensorSplit(torch.from_numpy(np.take(images.numpy(), idx, axis=0)),
                           torch.from_numpy(np.take(labels.numpy(), idx)), [f"{source}[{i}]" for i in idx.tolist()])


@dataclass
class FileSplit:
    """A classification split streamed from files: paths + labels, decoded in workers."""

    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DataBundle:
    train: Any
    val: Any
    test: Any
    info: DatasetInfo

    def split(self, name: str) -> Any:
        from cnnkit.errors import CnnkitError

        if name not in ("train", "val", "test"):
            raise CnnkitError(f'Unknown split "{name}": use train, val or test.')
        return getattr(self, name)
