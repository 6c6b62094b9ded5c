"""COCO detection format (format "coco", task detect): reader and the "coco" writer.

Layouts read (the writer produces the first):

    ROOT/annotations/instances_{train,val,test}.json    + ROOT/images/{train,val,test}/<file_name>
    ROOT/annotations/instances_train2017.json ...       + ROOT/train2017/<file_name> (COCO's own)
    FILE.json                                            + images next to it or in images/

The subset comes from the json name (train / val / test in it); a single file is one pool
carved into train/val/test by `data.split_seed`. Boxes are `bbox` = [x, y, w, h] floats
(kept as floats), classes are the categories sorted by id (the ids are kept for results
files), `iscrowd` boxes are kept for evaluation and left out of training, and polygon or
RLE `segmentation`s are decoded by pycocotools when a mask is asked for (instance
segmentation). The writer stores in-memory instance masks as compressed RLE and keeps
`file_name`s, float boxes and the category ids, so reading its output gives back the
same boxes, labels and masks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.detection import DetectionSplit, box_splits, save_image, unique_names
from cnnkit.data.formats.box_scan import RawImage, Scan, scan_to_bundle
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.errors import CnnkitError

SPLITS = ("train", "val", "test")


def _looks_like_coco(f: Path) -> bool:
    if f.suffix.lower() != ".json" or not f.is_file():
        return False
    with open(f, "rb") as fh:
        head = fh.read(1 << 16)
    return b'"images"' in head or b'"annotations"' in head


def _annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if _looks_like_coco(path) else []
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    files = sorted(f for f in folder.glob("*.json") if _looks_like_coco(f))
    instances = [f for f in files if f.name.startswith("instances")]
    return instances or files


def detect(path: Path) -> bool:
    return bool(_annotation_files(path))


def _split_of(f: Path, n_files: int) -> str:
    name = f.stem.lower()
    for s in SPLITS:
        if s in name:
            return s
    if n_files == 1:
        return "all"
    raise CnnkitError(f"Cannot tell which subset {f} holds: put train, val or test in its name.")


def _image_root(root: Path, f: Path, split: str, first: str | None) -> Path:
    """The folder the json's file_names are relative to (the first candidate holding its first image)."""
    base = root if root.is_dir() else f.parent
    stem = f.stem.split("_", 1)[-1]  # instances_train2017 -> train2017
    candidates = [base / "images" / split, base / split, base / stem, base / "images" / stem, base / "images",
                  base, f.parent, f.parent / "images"]
    if first:
        for c in candidates:
            if (c / first).is_file():
                return c
    return candidates[0] if candidates[0].is_dir() else base


def _read_json(f: Path) -> dict[str, Any]:
    try:
        data = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CnnkitError(f"{f} is not readable JSON ({e}); fix or remove it.") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CnnkitError(f"{f} is not a COCO instances file: it has no \"images\" list.")
    return data


def scan(path: Path) -> Scan:
    files = _annotation_files(path)
    if not files:
        raise CnnkitError(f"No COCO annotation json found in {path} (expected annotations/instances_*.json).")
    splits: dict[str, list[RawImage]] = {}
    issues: list[tuple[str, str, str]] = []
    cats: dict[int, str] = {}
    hflip_ok = True
    for f in files:
        data = _read_json(f)
        for c in data.get("categories", []):
            cats.setdefault(int(c["id"]), str(c.get("name", c["id"])))
        hflip_ok &= bool((data.get("info") or {}).get("hflip_ok", True))
    ids = sorted(cats)
    index = {cid: k for k, cid in enumerate(ids)}
    for f in files:
        data = _read_json(f)
        split = _split_of(f, len(files))
        first = next((im.get("file_name") for im in data["images"] if isinstance(im, dict)), None)
        root = _image_root(path, f, split, first)
        records: dict[Any, RawImage] = {}
        recs = splits.setdefault(split, [])
        for im in data["images"]:
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                issues.append(("bad_annotation", str(f), f"image entry {str(im)[:80]} lacks id or file_name"))
                continue
            rec = RawImage(str(root / im["file_name"]), im["id"], str(f), _num(im.get("width")),
                           _num(im.get("height")), segmentations=[])
            if im["id"] not in records:
                records[im["id"]] = rec
            recs.append(rec)
        for a in data.get("annotations", []):
            rec = records.get(a.get("image_id")) if isinstance(a, dict) else None
            if rec is None:
                which = a.get("id") if isinstance(a, dict) else a
                issues.append(("unknown_image", str(f), f"annotation {which} refers to an image id that is not listed"))
                continue
            bbox = a.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                issues.append(("bad_annotation", str(f), f"annotation {a.get('id')} has no [x, y, w, h] bbox"))
                continue
            x, y, w, h = (float(v) for v in bbox)
            cid = a.get("category_id")
            rec.boxes.append([x, y, x + w, y + h])
            rec.labels.append(index.get(cid, -1))
            rec.names.append(str(cid))
            rec.iscrowd.append(int(a.get("iscrowd", 0)))
            rec.segmentations.append(a.get("segmentation") or None)
    return Scan([cats[i] for i in ids], splits, issues, hflip_ok, category_ids=ids)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


@register_format("coco", task="detect", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    return scan_to_bundle(scan(path), cfg, str(path))


# ---- writer ------------------------------------------------------------------------------
def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def split_to_coco(split: DetectionSplit, names: list[str], classes: list[str], category_ids: list[int],
                  hflip_ok: bool = True) -> dict[str, Any]:
    """A COCO instances dict for a split whose images are (to be) saved under `names`."""
    images, anns = [], []
    for i in range(len(split)):
        h, w = split.size(i)
        images.append({"id": i + 1, "file_name": names[i], "width": int(w), "height": int(h)})
        t = split.target(i)
        raw = split.masks[i] if split.masks is not None else None
        masks = raw.numpy() if hasattr(raw, "numpy") else raw
        for j, (box, label, crowd) in enumerate(zip(t["boxes"].tolist(), t["labels"].tolist(),
                                                    t["iscrowd"].tolist())):
            x1, y1, x2, y2 = box
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(category_ids[label]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(crowd),
                   "segmentation": []}
            if isinstance(masks, np.ndarray) and masks[j].any():
                ann["segmentation"], ann["area"] = _rle(masks[j]), float(masks[j].sum())
            elif isinstance(masks, list) and masks[j]:
                ann["segmentation"] = masks[j]
            anns.append(ann)
    categories = [{"id": int(category_ids[k]), "name": c, "supercategory": ""} for k, c in enumerate(classes)]
    return {"info": {"description": "written by cnnkit", "hflip_ok": hflip_ok}, "images": images,
            "annotations": anns, "categories": categories}


@WRITERS.register("coco")
def write(bundle: DataBundle, out: Path) -> None:
    from cnnkit.data.segmentation import detection_view

    bundle = detection_view(bundle)  # a segmentation set with instance masks is written as boxes and RLE masks
    out = Path(out)
    info = bundle.info
    cat_ids = list(info.extra.get("category_ids") or range(1, info.num_classes + 1))
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for s, split in box_splits(bundle, "COCO"):
        names = unique_names(split)
        for i, name in enumerate(names):
            save_image(split, i, out / "images" / s / name)
        data = split_to_coco(split, names, info.classes, cat_ids, info.hflip_ok)
        (out / "annotations" / f"instances_{s}.json").write_text(json.dumps(data))
