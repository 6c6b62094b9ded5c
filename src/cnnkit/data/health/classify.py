"""Classification health reports for `cnnkit data inspect`: class folders, CSV, IDX and built-in sets.

Every file is decoded (not just probed); the report counts images per split and class and
lists bad files, empty classes, a class imbalance above 10:1 and images that appear in two
splits (byte-identical files, or identical pixels for in-memory sets).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, TensorSplit
from cnnkit.data.formats.folders import files_bundle, scan_class_folders, scan_csv
from cnnkit.data.formats.idx import load_idx
from cnnkit.data.health.report import HealthReport
from cnnkit.data.registry import BUILTINS, INSPECTORS
from cnnkit.data.sources import build_data


def _lenient(cfg: Config) -> Config:
    cfg = cfg.copy()
    cfg.data.max_bad = 1e18  # inspect lists every bad file instead of stopping at the limit (inf is out of bounds)
    return cfg


def _image_hashes(split) -> list[tuple[str, str]]:
    if not len(split):
        return []
    if isinstance(split, TensorSplit):
        flat = split.images.reshape(len(split), -1).numpy()
        names = split.names or [str(i) for i in range(len(split))]
        return [(hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest(), n) for row, n in zip(flat, names)]
    return [(hashlib.blake2b(Path(p).read_bytes(), digest_size=16).hexdigest(), p) for p in split.paths]


def health(bundle: DataBundle, source: str, empty_folders: list[str] = ()) -> HealthReport:
    """Counts and problems of a classification bundle (bad files, empty classes, imbalance, duplicates)."""
    info = bundle.info
    report = HealthReport(source)
    per_class = np.zeros(len(info.classes), dtype=np.int64)
    split_sizes = {}
    for name in ("train", "val", "test"):
        labels = np.asarray(bundle.split(name).labels, dtype=np.int64)
        split_sizes[name] = len(labels)
        per_class += np.bincount(labels, minlength=len(info.classes))[: len(info.classes)]
    c, (h, w) = info.channels, info.extra.get("size", (info.image_size, info.image_size))
    report.counts = {
        "images": int(sum(split_sizes.values())), "splits": split_sizes,
        "per_class": {cls: int(n) for cls, n in zip(info.classes, per_class)},
        "sizes": info.extra.get("sizes_seen", {f"{w}x{h}": int(sum(split_sizes.values()))}),
        "channels": c, "bad_files": len(info.bad_files),
    }
    for b in info.bad_files:
        report.add(b.reason.split(":", 1)[0], b.path, b.reason)
    if not report.counts["images"]:
        report.add("no_images", source, "not a single image can be used: training stops here")
    for folder in empty_folders:
        report.add("empty-class", folder, "class folder holds no images")
    reported = {Path(f).name for f in empty_folders}
    for cls, n in zip(info.classes, per_class):
        if n == 0 and cls not in reported:
            report.add("empty-class", source, f'class "{cls}" has no images')
    present = per_class[per_class > 0]
    if len(present) > 1 and present.max() / present.min() > 10:
        ratio = present.max() / present.min()
        report.add("imbalance", source, f"class imbalance {ratio:.1f}:1 (largest / smallest class); "
                                        "consider --set data.class_weights=auto")
    seen: dict[str, tuple[str, str]] = {}
    for name in ("train", "val", "test"):
        for digest, file in _image_hashes(bundle.split(name)):
            first = seen.setdefault(digest, (name, file))
            if first[0] != name:
                report.add("duplicate", file, f"same image as {first[1]} ({first[0]}) in {name}")
    return report


@INSPECTORS.register("class-folders")
def inspect_class_folders(path: Path, cfg: Config) -> HealthReport:
    listing = scan_class_folders(path)
    bundle = files_bundle(listing, _lenient(cfg), str(path), "class-folders", verify=True)
    return health(bundle, str(path), listing.empty)


@INSPECTORS.register("csv")
def inspect_csv(path: Path, cfg: Config) -> HealthReport:
    listing = scan_csv(path, cfg.data.allow_outside_root)
    return health(files_bundle(listing, _lenient(cfg), str(path), "csv", verify=True), str(path))


@INSPECTORS.register("idx")
def inspect_idx(path: Path, cfg: Config) -> HealthReport:
    return health(load_idx(path, cfg), str(path))


@INSPECTORS.register("classify")
def inspect_classify(path: Path, cfg: Config) -> HealthReport:
    """Built-in classification sets (`cnnkit data inspect digits`)."""
    cfg = _lenient(cfg)
    cfg.data.name = str(path)
    if str(path) in BUILTINS:
        return health(BUILTINS.get(str(path))(cfg), str(path))
    return health(build_data(cfg, check=False), str(path))
