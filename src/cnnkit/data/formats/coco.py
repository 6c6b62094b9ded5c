"""COCO detection format (format "coco", task detect): reader and the "coco" writer.

Layouts read (the writer produces the first):

    ROOT/annotations/instances_{train,val,test}.json    + ROOT/images/{train,val,test}/<file_name>
    ROOT/annotations/instances_train2017.json ...       + ROOT/train2017/<file_name> (COCO's own)
    FILE.json                                            + images next to it or in images/
    ROOT/{train,valid,test}/*.json                       + the images beside it (Roboflow's export)

The subset comes from the json name (train / val / test in it), else from its folder's name
(train, val, valid, validation, test); a single file is one pool
carved into train/val/test by `data.split_seed`. Boxes are `bbox` = [x, y, w, h] floats
(kept as floats), classes are the categories sorted by id (the ids are kept for results
files), `iscrowd` boxes are kept for evaluation and left out of training, and polygon or
RLE `segmentation`s are decoded by pycocotools when a mask is asked for (instance
segmentation). A category that no annotation uses and that other categories name as their
`supercategory` (Roboflow writes such a category 0) is a grouping, not a class: it is left
out, with a note. Image ids are matched by value, so an annotation's `"image_id": "7"` finds
the image `"id": 7`; `file_name`s written with Windows backslashes are read as paths.

Hand-edited and third-party files hold nulls and wrong types; each becomes one sentence
naming the json file and the entry, never a traceback: a category without an integer id
or a name stops loading (`AnnotationError`, `bad_annotation` in inspect); an annotation
whose bbox, iscrowd or segmentation cannot be read, or that has no category_id, leaves its
image out, listed with the reason (its object must not become background); an image entry without id or file_name
is listed; a null iscrowd is read as 0 with a note. A file without "annotations" is read as
background images, with a note (its images have no boxes).

The writer stores in-memory instance masks as compressed RLE and keeps `file_name`s, float
boxes and the category ids, so reading its output gives back the same boxes, labels and
masks.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.containment import elsewhere, elsewhere_note, inside, portable, trailing
from cnnkit.data.decode import data_files, hidden_name
from cnnkit.data.detection import DetectionSplit, box_splits, save_image, unique_names
from cnnkit.data.formats.box_scan import AnnotationError, RawImage, Scan, scan_to_bundle
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.data.splits import SPLIT_NAMES
from cnnkit.errors import CnnkitError

SPLITS = ("train", "val", "test")


def _looks_like_coco(f: Path) -> bool:
    if f.suffix.lower() != ".json" or not f.is_file():
        return False
    if f.name.lower().startswith("instances"):
        return True  # named as COCO: reading it says what is wrong, rather than skipping it silently
    with open(f, "rb") as fh:
        head = fh.read(1 << 16)
    return b'"images"' in head or b'"annotations"' in head


def _annotation_files(path: Path) -> list[Path]:
    return _json_files(path)[0]


def _json_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(the annotation files read, the .json files beside them skipped as not COCO): without an
    instances*.json every .json of the folder is a candidate, so a skipped one is reported."""
    if path.is_file():
        return ([path], []) if _looks_like_coco(path) else ([], [])
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    candidates = data_files(folder, (".json",), recursive=False)
    if not candidates and folder == path:  # Roboflow: train/_annotations.coco.json, valid/..., test/...
        candidates = [f for d in sorted(path.iterdir()) if d.is_dir() and not hidden_name(d.name)
                      and d.name.lower() in SPLIT_NAMES for f in data_files(d, (".json",), recursive=False)]
    files = [f for f in candidates if _looks_like_coco(f)]
    instances = [f for f in files if f.name.startswith("instances")]
    return (instances, []) if instances else (files, [f for f in candidates if f not in files])


def detect(path: Path) -> bool:
    return bool(_annotation_files(path))


def _split_of(f: Path, n_files: int) -> str:
    name = f.stem.lower()
    for s in SPLITS:
        if s in name:
            return s
    if f.parent.name.lower() in SPLIT_NAMES:
        return SPLIT_NAMES[f.parent.name.lower()]
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
            if (c / portable(first)).is_file() or elsewhere(first) and trailing(c, first):
                return c
    return candidates[0] if candidates[0].is_dir() else base


def _read_json(f: Path) -> dict[str, Any]:
    try:
        raw = f.read_bytes()
        if not raw.strip():
            raise AnnotationError(f, f"{f} is empty; write the COCO instances json there or remove the file.")
        data = json.loads(raw)  # bytes: json reads UTF-8 with or without the BOM Windows tools write, and UTF-16
    except UnicodeDecodeError as e:
        raise AnnotationError(f, f"{f} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                                 "save it as UTF-8.") from None
    except (OSError, json.JSONDecodeError) as e:
        raise AnnotationError(f, f"{f} is not readable JSON ({e}); fix or remove it.") from None
    except RecursionError:
        raise AnnotationError(f, f"{f} nests its JSON deeper than Python can read; a COCO file is at most a few "
                                 "levels deep: fix or remove it.") from None
    if not isinstance(data, dict):
        raise AnnotationError(f, f"{f} is not a COCO instances file: expected an object with images/annotations/"
                                 f"categories, found a {type(data).__name__}.")
    if not isinstance(data.get("images"), list):
        raise AnnotationError(f, f"{f} is not a COCO instances file: it has no \"images\" list.")
    return data


def _entries(data: dict[str, Any], key: str, f: Path) -> list:
    """data[key] as a list (missing or null: empty); AnnotationError when it is something else."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise AnnotationError(f, f"{f}: \"{key}\" must be a list, not {type(value).__name__}; fix the file.")
    return value


def _int_id(v) -> int | None:
    """An integer id as COCO writes it (int, integral float or digit string), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        try:
            return int(v)
        except ValueError:  # more digits than Python converts (4300): no id anyone wrote
            return None
    return None


def _is_key(v) -> bool:
    """An image id usable as a key: a number or a string (never null, bool, list or object)."""
    return isinstance(v, (int, float, str)) and not isinstance(v, bool)


def _key(v):
    """The image id `v` as images and annotations are matched: integral values as int (7, 7.0 and "7"
    are one id: converters write them differently in the two lists), other strings as written."""
    return v if (k := _int_id(v)) is None else k


def _categories(files: list[Path], datas: list[dict[str, Any]]) -> dict[int, str]:
    """COCO id -> name over every file; one sentence naming the file and category for a bad entry."""
    cats: dict[int, tuple[str, Path]] = {}
    for f, data in zip(files, datas):
        for n, c in enumerate(_entries(data, "categories", f), start=1):
            if not isinstance(c, dict):
                raise AnnotationError(f, f"{f}: category {n} is not an object with an id and a name; fix the file.")
            shown = f"category {n}" + (f" ({c['name']!r})" if isinstance(c.get("name"), str) else "")
            if c.get("id") is None:
                raise AnnotationError(f, f"{f}: {shown} has no id; give every category an integer id.")
            cid = _int_id(c["id"])
            if cid is None:
                raise AnnotationError(f, f"{f}: {shown} has id {_js(c['id'])}; category ids must be integers.")
            name = c.get("name", str(cid))
            if isinstance(name, bool) or not isinstance(name, (str, int, float)) or not str(name).strip():
                raise AnnotationError(f, f"{f}: category {n} (id {cid}) has name {_js(name)}; give it a name.")
            if cid in cats and cats[cid][0] != str(name):
                where = ("earlier in the same file; give each category its own id" if cats[cid][1] == f else
                         f"in {cats[cid][1]}; the annotation files must agree")
                raise AnnotationError(f, f"{f}: category id {cid} is named {str(name)!r} here but {cats[cid][0]!r} "
                                         f"{where}.")
            cats.setdefault(cid, (str(name), f))
    if not cats:
        raise AnnotationError(files[0], f"{files[0]}: no annotation file lists \"categories\"; add them as "
                                        "{\"id\": 1, \"name\": \"...\"} entries.")
    return {cid: name for cid, (name, _) in cats.items()}


def _js(v) -> str:
    """A value as the json file writes it (null, "text", [1, 2]), for messages."""
    try:
        return json.dumps(v, ensure_ascii=False)[:60]
    except (TypeError, ValueError):
        return str(v)[:60]


def _bbox(v) -> tuple[list[float] | None, str | None]:
    """xyxy from a COCO [x, y, w, h], or (None, why not)."""
    if not isinstance(v, list) or len(v) != 4:
        return None, f"has bbox {_js(v)} where [x, y, w, h] is expected"
    nums = [_coord(x) for x in v]
    if any(x is None for x in nums):
        return None, f"has bbox {_js(v)} where 4 numbers [x, y, w, h] are expected"
    x, y, w, h = nums
    return [x, y, x + w, y + h], None


def _coord(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        return float(v)  # "NaN" and "inf" strings pass: the box check calls them non-finite
    except ValueError:
        return None
    except OverflowError:  # an integer past float range (10**400): a number, just not a finite one
        return math.inf


def _segmentation(v) -> tuple[Any, str | None]:
    """(polygons / RLE / None, problem): what pycocotools can decode, checked before it is asked to."""
    if v is None or v == [] or v == {}:
        return None, None
    if isinstance(v, list):
        ok = all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 and
                 all(not isinstance(x, str) and (c := _coord(x)) is not None and math.isfinite(c) for x in p)
                 for p in v)
        return (v, None) if ok else (None, "has a segmentation that is not a list of [x1, y1, x2, y2, ...] polygons")
    if isinstance(v, dict):
        size, counts = v.get("size"), v.get("counts")
        ok = (isinstance(size, list) and len(size) == 2 and all(_int_id(x) is not None for x in size)
              and (isinstance(counts, str) or (isinstance(counts, list) and all(_int_id(x) is not None
                                                                                 for x in counts))))
        return (v, None) if ok else (None, "has an RLE segmentation without a [h, w] size and counts")
    return None, f"has segmentation {_js(v)} where polygons or RLE are expected"


def _iscrowd(v) -> tuple[int | None, str | None]:
    if v is None:
        return 0, "null"
    if not isinstance(v, (bool, int, float, str)) or str(v).strip() not in ("0", "1", "0.0", "1.0", "False", "True"):
        return None, f"has iscrowd {_js(v)} where 0 or 1 is expected"
    return int(str(v).strip() in ("1", "1.0", "True")), None


def _read_images(data: dict[str, Any], f: Path, root: Path, issues: list, base: Path,
                 allow_outside: bool, read: list | None = None, dropped: set | None = None) -> list[RawImage]:
    """One record per usable image entry, in file order (a repeated id too: the health check reports it);
    a file_name leaving the dataset folder `base` is refused (`containment.inside`). A file_name written on
    another machine (`containment.elsewhere`) is read by its trailing part under `root` (appended to `read`),
    or, when none exists, is one `missing_image` row naming the json and the entry (its id goes to `dropped`)."""
    recs = []
    for n, im in enumerate(data["images"], start=1):
        iid = im.get("id") if isinstance(im, dict) else None
        name = im.get("file_name") if isinstance(im, dict) else None
        if not _is_key(iid) or not isinstance(name, str) or not name.strip():
            issues.append(("bad_annotation", str(f), f"image entry {n} ({_js(im)}) lacks an id or a file_name"))
            continue
        local = name
        if elsewhere(name):
            local = trailing(root, name)
            if local is None:
                issues.append(("missing_image", str(f), f"image entry {n} (id {_js(iid)}) file_name {name!r} names a "
                                                         f"file of another machine and no trailing part of it exists "
                                                         f"under {root}"))
                if dropped is not None:
                    dropped.add(_key(iid))
                continue
            if read is not None:
                read.append((name, local))
        file = inside(base, os.path.relpath(root / portable(local), base), allow=allow_outside, source=f,
                      what=f"image entry {n} (id {_js(iid)}) file_name", shown=repr(name))
        recs.append(RawImage(str(file), _key(iid), str(f), _num(im.get("width")), _num(im.get("height")),
                             segmentations=[]))
    return recs


def _read_annotation(a: dict[str, Any], rec: RawImage, index: dict[int, int]) -> str | None:
    """Append annotation `a` to `rec`; the problem (`a` left out) or "null iscrowd"."""
    box, problem = _bbox(a.get("bbox"))
    crowd, crowd_problem = _iscrowd(a.get("iscrowd", 0))
    seg, seg_problem = _segmentation(a.get("segmentation"))
    problem = problem or (crowd_problem if crowd is None else None) or seg_problem
    if problem:
        return problem
    if a.get("category_id") is None:  # else it reads as an unknown class 'None'
        return "has no \"category_id\" key" if "category_id" not in a else "has category_id null"
    cid = a["category_id"]
    rec.boxes.append(box)
    rec.labels.append(index.get(_int_id(cid), -1) if _int_id(cid) is not None else -1)
    rec.names.append(str(cid))
    rec.iscrowd.append(crowd)
    rec.segmentations.append(seg)
    return "null iscrowd" if crowd_problem else None


def scan(path: Path, allow_outside: bool = False) -> Scan:
    """Parse the COCO files of `path` (see the module docstring). `allow_outside`: open file_names outside
    the dataset folder (data.allow_outside_root). Raises AnnotationError for a file that cannot be read."""
    files, skipped = _json_files(path)
    if files:  # a .json named as a subset beside COCO files is meant as one: reading it says what is wrong
        files += [f for f in skipped if any(s in f.stem.lower() for s in SPLITS)]
        skipped = [f for f in skipped if f not in files]
    if not files:
        raise CnnkitError(f"No COCO annotation json found in {path} (expected annotations/instances_*.json).")
    datas = [_read_json(f) for f in files]
    cats = _categories(files, datas)
    notes = _drop_groupings(cats, files, datas)
    ids = sorted(cats)
    index = {cid: k for k, cid in enumerate(ids)}
    splits: dict[str, list[RawImage]] = {}
    issues: list[tuple[str, str, str]] = []
    remarks: list[tuple[str, str, str]] = [
        ("not_coco", str(f), "left out: not a COCO instances file (no \"images\" or \"annotations\" key in "
                             "its first 64 KB)") for f in skipped]
    hflip_ok = True
    read: list[tuple[str, str]] = []  # file_names written on another machine, read by their trailing part
    for f, data in zip(files, datas):
        info = data.get("info")
        hflip_ok &= bool(info.get("hflip_ok", True)) if isinstance(info, dict) else True
        split = _split_of(f, len(files))
        first = next((im["file_name"] for im in data["images"]  # the first usable one: a bad entry is listed
                      if isinstance(im, dict) and isinstance(im.get("file_name"), str)), None)
        root = _image_root(path, f, split, first)
        base = path if path.is_dir() else f.parent
        dropped: set = set()  # ids of entries already listed as missing_image: their annotations say no more
        recs = _read_images(data, f, root, issues, base, allow_outside, read, dropped)
        splits.setdefault(split, []).extend(recs)
        records: dict[Any, RawImage] = {}
        for rec in recs:
            records.setdefault(rec.image_id, rec)
        if recs and data.get("annotations") is None:
            notes[f"coco:no_annotations:{f}"] = (f"{f} has no \"annotations\" list: its {len(recs)} images are "
                                                      "read as background (no boxes)")
        for n, a in enumerate(_entries(data, "annotations", f), start=1):
            if not isinstance(a, dict):
                issues.append(("bad_annotation", str(f), f"annotation entry {n} ({_js(a)}) is not an object"))
                continue
            aid, image_id = a.get("id", f"#{n}"), a.get("image_id")
            rec = records.get(_key(image_id)) if _is_key(image_id) else None
            if rec is None and _is_key(image_id) and _key(image_id) in dropped:
                continue
            if rec is None:
                issues.append(("unknown_image", str(f), f"annotation {aid} refers to image id {_js(image_id)}, "
                                                        "which the images list does not hold"))
                continue
            problem = _read_annotation(a, rec, index)
            if problem == "null iscrowd":
                remarks.append(("bad_annotation", str(f), f"annotation {aid} has iscrowd null, read as 0 (not crowd)"))
            elif problem:
                rec.faults.append(("bad_annotation", f"annotation {aid} {problem}"))
    notes.update(elsewhere_note(read))
    hint = f"annotations were looked for in {', '.join(str(f) for f in files[:3])}"
    return Scan([cats[i] for i in ids], splits, issues, hflip_ok, category_ids=ids, remarks=remarks,
                notes=notes, labels_hint=hint)


def _drop_groupings(cats: dict[int, str], files: list[Path], datas: list[dict[str, Any]]) -> dict[str, str]:
    """Remove from `cats` the categories no annotation uses whose name other categories give as their
    supercategory (Roboflow's category 0): a model class for them could never be learned. Returns the note."""
    used, parents = set(), {}
    for f, data in zip(files, datas):
        used |= {_int_id(a.get("category_id")) for a in _entries(data, "annotations", f) if isinstance(a, dict)}
        for c in _entries(data, "categories", f):
            parent = c.get("supercategory")
            child = cats.get(_int_id(c.get("id")))
            if isinstance(parent, str) and child not in (None, parent) and child not in parents.get(parent, []):
                parents.setdefault(parent, []).append(child)
    grouping = {cid: name for cid, name in cats.items() if cid not in used and name in parents}
    if not grouping or len(grouping) == len(cats):
        return {}
    for cid in grouping:
        del cats[cid]
    shown = "; ".join(f"{cid} ({name!r}, the supercategory of {', '.join(parents[name][:3])})"
                      for cid, name in grouping.items())
    return {"coco:supercategory": f"left out category {shown}: no annotation uses it, so it is a grouping, "
                                  "not a class"}


def _num(v) -> float | None:
    """A declared width/height: a positive finite number, else None (the image header is used)."""
    c = None if isinstance(v, str) else _coord(v)
    return c if c is not None and math.isfinite(c) and c > 0 else None


@register_format("coco", task="detect", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    return scan_to_bundle(scan(path, cfg.data.allow_outside_root), cfg, str(path))


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
