"""`cnnkit data make|convert|inspect`: write a built-in set to disk, convert between formats, report health.

Everything goes through a `DataBundle`: a reader (built-in or `FORMATS`) fills it, a
writer registered in `WRITERS` puts it on disk, so make and convert are the same path.
Inspectors (`INSPECTORS`, keyed by format name, or by task for built-ins) return a
`HealthReport`; each format module registers its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.errors import CnnkitError
from cnnkit.registry import Registry

# name -> fn(bundle: DataBundle, out: Path) -> None   (e.g. "coco", "yolo", "voc", "masks", "folders")
WRITERS = Registry("output format")
# format name (see FORMATS) or task name -> fn(path: Path, cfg: Config) -> HealthReport
INSPECTORS = Registry("data inspector")


@dataclass
class HealthReport:
    """What `cnnkit data inspect` prints: counts, and one line per problem with its file."""

    source: str
    counts: dict[str, Any] = field(default_factory=dict)  # e.g. {"images": 120, "boxes": 300, "per_class": {...}}
    issues: list[dict[str, str]] = field(default_factory=list)  # {"file": ..., "problem": ..., "kind": ...}

    def add(self, kind: str, file: str, problem: str) -> None:
        self.issues.append({"kind": kind, "file": str(file), "problem": problem})

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue["kind"]] = out.get(issue["kind"], 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "counts": self.counts, "issue_counts": self.by_kind(), "issues": self.issues}


def _bundle_for(source: str, cfg: Config) -> DataBundle:
    from cnnkit.data.sources import build_data

    cfg = cfg.copy()
    cfg.data.name = source
    return build_data(cfg)


def make(name: str, fmt: str, out: Path, cfg: Config | None = None) -> Path:
    """Write the built-in set `name` to `out` in format `fmt`."""
    from cnnkit.data.sources import BUILTINS

    BUILTINS.get(name)  # unknown name -> the registry's one-sentence error
    bundle = _bundle_for(name, cfg or Config())
    WRITERS.get(fmt)(bundle, Path(out))
    return Path(out)


def convert(src: str, fmt: str, out: Path, cfg: Config | None = None) -> Path:
    """Read `src` (any readable format) and write it as `fmt` under `out`."""
    bundle = _bundle_for(src, cfg or Config())
    WRITERS.get(fmt)(bundle, Path(out))
    return Path(out)


def inspect(src: str, cfg: Config | None = None) -> HealthReport:
    """Health report of a path (its format's inspector) or a built-in set (its task's)."""
    from cnnkit.data.sources import BUILTINS, detect_format

    cfg = cfg or Config()
    if src in BUILTINS:
        bundle = _bundle_for(src, cfg)
        key = bundle.info.task
        path = Path(src)
    else:
        path = Path(src).expanduser()
        if not path.exists():
            raise CnnkitError(f"Data path {path} does not exist.")
        key = detect_format(path).name
    if key not in INSPECTORS:
        raise CnnkitError(f"No health check is available for {src} (format {key}).")
    return INSPECTORS.get(key)(path, cfg)


InspectFn = Callable[[Path, Config], HealthReport]
