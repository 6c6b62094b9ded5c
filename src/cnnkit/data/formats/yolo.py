"""YOLO txt format (format "yolo", task detect): reader and the "yolo" writer.

Layouts read (the writer produces the first, Ultralytics' own):

    ROOT/data.yaml     names: [...] or {0: name, ...}; train/val/test: image folders or .txt
                       lists, relative to `path:` (default, and what the writer relies on:
                       the yaml's folder)
    ROOT/images/<split>/<name>.png  +  ROOT/labels/<split>/<name>.txt
    ROOT/classes.txt   one name per line, with images/[<split>/] and labels/[<split>/]

A label file has one line per box: `class cx cy w h`, normalised to the image's width and
height (a polygon line `class x1 y1 x2 y2 ...` counts as its bounding box). The label
file of `.../images/.../a.png` is `.../labels/.../a.txt`; an image without one is a
background sample. Image sizes come from the file headers. The writer prints 12
significant digits, far below 1e-3 px for any real image size; crowd boxes have no YOLO
form and are left out (a warning says how many).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.decode import BadImage, is_image_file, probe_image
from cnnkit.data.detection import box_splits, save_image, unique_names
from cnnkit.data.formats.box_scan import RawImage, Scan, scan_to_bundle
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.errors import CnnkitError

SPLITS = ("train", "val", "test")


def _yaml_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".yaml", ".yml") else None
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (path / name).is_file():
            return path / name
    return None


def detect(path: Path) -> bool:
    y = _yaml_file(path)
    if y is not None:
        try:
            return "names" in (yaml.safe_load(y.read_text()) or {})
        except yaml.YAMLError:
            return False
    return path.is_dir() and (path / "classes.txt").is_file() and (path / "labels").is_dir()


def _names(raw, source: Path) -> list[str]:
    if isinstance(raw, dict):
        keys = sorted(int(k) for k in raw)
        if keys != list(range(len(keys))):
            raise CnnkitError(f"{source}: names must be numbered 0..{len(keys) - 1}, got ids {keys[:8]}.")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in keys]
    if isinstance(raw, list):
        return [str(n) for n in raw]
    raise CnnkitError(f"{source}: names must be a list or a mapping of class id to name.")


def _images_in(entry: Path) -> list[Path]:
    if entry.is_file() and entry.suffix == ".txt":  # a list of image paths
        base = entry.parent
        return [(base / line.strip()) if not Path(line.strip()).is_absolute() else Path(line.strip())
                for line in entry.read_text().splitlines() if line.strip()]
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if is_image_file(p))
    return []


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    parts = list(image.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _layout(path: Path) -> tuple[list[str], dict[str, list[Path]], bool]:
    y = _yaml_file(path)
    if y is not None:
        data = yaml.safe_load(y.read_text()) or {}
        root = Path(data.get("path") or ".")
        root = root if root.is_absolute() else (y.parent / root)
        splits = {}
        for s in SPLITS:
            entries = data.get(s) or []
            for e in entries if isinstance(entries, list) else [entries]:
                splits.setdefault(s, []).extend(_images_in(root / e))
        return _names(data.get("names"), y), splits, bool(data.get("hflip_ok", data.get("fliplr", 0.5) != 0))
    names = [ln.strip() for ln in (path / "classes.txt").read_text().splitlines() if ln.strip()]
    images = path / "images"
    splits = {s: _images_in(images / s) for s in SPLITS if (images / s).is_dir()}
    return names, (splits or {"all": _images_in(images)}), True


def _parse_line(line: str) -> tuple[str, list[float]] | None:
    parts = line.split()
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError:
        return None
    if len(values) == 4:
        cx, cy, w, h = values
        return parts[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    if len(values) >= 6 and len(values) % 2 == 0:  # polygon: its bounding box
        xs, ys = values[0::2], values[1::2]
        return parts[0], [min(xs), min(ys), max(xs), max(ys)]
    return None


def scan(path: Path) -> Scan:
    classes, split_images, hflip_ok = _layout(path)
    splits: dict[str, list[RawImage]] = {}
    issues: list[tuple[str, str, str]] = []
    for s, images in split_images.items():
        recs = splits.setdefault(s, [])
        for img in images:
            lp = label_path(img)
            rec = RawImage(str(img), str(img.relative_to(path)) if img.is_relative_to(path) else str(img), str(lp))
            recs.append(rec)
            try:
                _, (h, w) = probe_image(img)
                rec.width, rec.height = float(w), float(h)
            except BadImage:
                w = h = None  # the health check reports the image itself
            if not lp.is_file():
                continue
            for n, line in enumerate(lp.read_text(errors="replace").splitlines(), start=1):
                if not line.strip():
                    continue
                parsed = _parse_line(line)
                if parsed is None:
                    issues.append(("bad_annotation", str(lp), f"line {n} is not 'class cx cy w h': {line[:60]!r}"))
                    continue
                cls, (x1, y1, x2, y2) = parsed
                k = int(cls) if cls.isdigit() and int(cls) < len(classes) else -1
                sx, sy = (w or 1), (h or 1)
                rec.boxes.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
                rec.labels.append(k)
                rec.names.append(cls)
                rec.iscrowd.append(0)
    return Scan(classes, splits, issues, hflip_ok)


@register_format("yolo", task="detect", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    return scan_to_bundle(scan(path), cfg, str(path))


# ---- writer ------------------------------------------------------------------------------
@WRITERS.register("yolo")
def write(bundle: DataBundle, out: Path) -> None:
    from cnnkit.data.segmentation import detection_view

    bundle = detection_view(bundle)  # a segmentation set with instance masks is written as boxes
    out = Path(out)
    info = bundle.info
    written, crowd = {}, 0
    for s, split in box_splits(bundle, "YOLO"):
        (out / "labels" / s).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(unique_names(split)):
            save_image(split, i, out / "images" / s / name)
            h, w = split.size(i)
            t = split.target(i)
            lines = []
            for (x1, y1, x2, y2), label, c in zip(t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist()):
                if c:
                    crowd += 1
                    continue
                vals = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
                lines.append(f"{label} " + " ".join(f"{v:.12g}" for v in vals))
            (out / "labels" / s / Path(name).with_suffix(".txt")).write_text("".join(ln + "\n" for ln in lines))
        written[s] = f"images/{s}"
    data = {**written, "nc": info.num_classes, "names": dict(enumerate(info.classes)),
            "hflip_ok": bool(info.hflip_ok)}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    if crowd:
        warnings.warn(f"{crowd} crowd boxes have no YOLO form and were not written to {out}.", stacklevel=2)
