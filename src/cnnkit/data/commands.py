"""`cnnkit data make|convert|inspect`: write a built-in set to disk, convert between formats, report health.

Everything goes through a `DataBundle`: a reader (built-in or `FORMATS`) fills it, a
writer registered in `WRITERS` puts it on disk, so make and convert are the same path.
Inspectors (`INSPECTORS`, keyed by format name, or by task for built-ins) return a
`HealthReport`; `data/health/` registers them (all tables live in `data/registry.py`).
"""
from __future__ import annotations

from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.health.report import HealthReport
from cnnkit.data.registry import BUILTINS, INSPECTORS, WRITERS
from cnnkit.data.sources import build_named, detect_format
from cnnkit.errors import CnnkitError


def make(name: str, fmt: str, out: Path, cfg: Config | None = None) -> Path:
    """Write the built-in set `name` to `out` in format `fmt`."""
    BUILTINS.get(name)  # unknown name -> the registry's one-sentence error
    bundle = build_named(name, cfg or Config())
    WRITERS.get(fmt)(bundle, Path(out))
    return Path(out)


def convert(src: str, fmt: str, out: Path, cfg: Config | None = None) -> Path:
    """Read `src` (any readable format) and write it as `fmt` under `out`."""
    bundle = build_named(src, cfg or Config())
    WRITERS.get(fmt)(bundle, Path(out))
    return Path(out)


def inspect(src: str, cfg: Config | None = None) -> HealthReport:
    """Health report of a path (its format's inspector) or a built-in set (its task's), plus the
    label coverage that `build_data` checks before training (read as for training, bad files tolerated)."""
    from cnnkit.data.health.coverage import add_coverage

    cfg = cfg or Config()
    lenient = cfg.copy()
    lenient.data.max_bad = 1e18  # inspect lists bad files; it does not stop at the limit (inf is out of bounds)
    bundle = None
    if src in BUILTINS:
        bundle = build_named(src, lenient, check=False)
        key, path, source = bundle.info.task, Path(src), src
    else:
        path = Path(src).expanduser()
        if not path.exists():
            raise CnnkitError(f"Data path {path} does not exist.")
        key, source = detect_format(path).name, str(path)
    if key not in INSPECTORS:
        raise CnnkitError(f"No health check is available for {src} (format {key}).")
    try:
        report = INSPECTORS.get(key)(path, cfg)
    except CnnkitError as e:  # the reader stops before any file is checked: that sentence is the report's row
        report = HealthReport(source=source)
        report.add("unusable", source, f"stops training: {e}")
        return report
    if bundle is None:
        try:
            bundle = build_named(source, lenient, check=False)
        except CnnkitError as e:  # a set training could not even read: the sentence it would stop with
            report.add("unusable", source, f"stops training: {e}")
            return report
    return _never_healthy_when_dropped(add_coverage(report, source, bundle), source, bundle)


def _never_healthy_when_dropped(report: HealthReport, source: str, bundle) -> HealthReport:
    """A report without a problem row for a set that loading empties or partly drops would read "no problems
    found": list what loading leaves out (`info.bad_files`) and an empty set as problems."""
    if not report.issues:
        for b in bundle.info.bad_files:
            report.add("left_out", b.path, b.reason)
    if not any(len(bundle.split(s)) for s in ("train", "val", "test")) and "no_images" not in report.by_kind():
        report.add("no_images", source, "not a single image can be used: training stops here")
    return report
