"""The four name tables of `cnnkit.data`: built-in sets, on-disk readers, writers and inspectors.

- `BUILTINS`: name -> `load(cfg) -> DataBundle` (digits, fashion-mnist, the canvas sets);
- `FORMATS`: on-disk format name -> `Format` (a `detect(path)` test and a `load(path, cfg)`),
  tried in priority order by `sources.detect_format`;
- `WRITERS`: output format name -> `write(bundle, out)` (`cnnkit data make|convert --format`);
- `INSPECTORS`: format name, or task name for built-ins -> `inspect(path, cfg) -> HealthReport`.

Format modules (`data/formats/`) fill the first three for themselves; `data/health/` fills
`INSPECTORS`. This module imports nothing else of `cnnkit.data` but `base`, so every part
can register without import cycles.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.registry import Registry

BUILTINS = Registry("built-in dataset")
# name -> fn(bundle: DataBundle, out: Path) -> None   (e.g. "coco", "yolo", "voc", "masks", "folders")
WRITERS = Registry("output format")
# format name (see FORMATS) or task name -> fn(path: Path, cfg: Config) -> HealthReport
INSPECTORS = Registry("data inspector")


@dataclass
class Format:
    name: str
    task: str  # the task this format feeds by default
    detect: Callable[[Path], bool]
    load: Callable[[Path, Config], DataBundle]
    priority: int = 0  # higher is tried first (more specific formats)


FORMATS: dict[str, Format] = {}


def register_format(name: str, task: str, detect: Callable[[Path], bool], priority: int = 0):
    """Decorator for `load(path, cfg) -> DataBundle` of an on-disk format."""

    def add(load: Callable[[Path, Config], DataBundle]):
        FORMATS[name] = Format(name, task, detect, load, priority)
        return load

    return add
