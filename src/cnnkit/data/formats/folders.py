"""On-disk classification formats: class folders and a `path,label` CSV; their reader and the "folders" writer.

class-folders  root/<class>/*.png, or root/{train,val,test}/<class>/... (missing splits are carved
               from train with `split_seed`); class names are the sorted folder names.
csv            a .csv with header `path,label` (optional `split` column); paths relative to the csv;
               labels are names or ints, checked against a `classes.txt` beside it when present.

A set with a single class is refused (a classifier needs two; one folder is usually a
detection export in a layout no box reader recognised).

Files are listed first, the split is drawn over the listing (so fixing one bad file never
reshuffles the others), headers are probed for channels and size, then images are decoded
with `read_image` and resized to one size into a uint8 tensor — or, past ~2 GB, kept as paths
for the streaming loader. Bad files are skipped, listed in `info.bad_files`, and `data.max_bad`
decides when there are too many.
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cnnkit.config import Config
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo, FileSplit, TensorSplit
from cnnkit.data.containment import inside
from cnnkit.data.decode import BadImage, data_files, hidden_name, is_data_file, probe_image, read_image
from cnnkit.data.formats.idx import read_classes_txt
from cnnkit.data.limits import cap, raise_hint
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.data.splits import SPLIT_NAMES, carve_missing, check_bad_files
from cnnkit.errors import CnnkitError

NATIVE_LIMIT = 256  # keep the most common size when no image side exceeds this, else FALLBACK_SIZE
FALLBACK_SIZE = 64
MEMORY_LIMIT = 2 * 1024**3  # in_memory=auto holds the set as one tensor below this many bytes


@dataclass
class Listing:
    """Labelled files per given split, before any decoding."""

    classes: list[str]
    items: dict[str, list[tuple[str, int]]]  # split -> [(path, label)]
    total: int  # candidate files (image-extension files, or CSV rows)
    empty: list[str] = field(default_factory=list)  # class folders without images


# ----- listing --------------------------------------------------------------------------------
def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not hidden_name(p.name))


def _images_under(folder: Path) -> list[str]:
    return [str(p) for p in data_files(folder)]


def _split_roots(root: Path) -> dict[str, Path]:
    subdirs = _visible_dirs(root)
    if not subdirs or not all(d.name.lower() in SPLIT_NAMES for d in subdirs):
        return {"train": root}  # plain root/<class>/ layout: everything is the pool to split
    out: dict[str, Path] = {}
    for d in subdirs:
        split = SPLIT_NAMES[d.name.lower()]
        if split in out:
            raise CnnkitError(f"{root} has both {out[split].name}/ and {d.name}/: keep one folder per split.")
        out[split] = d
    if "train" not in out:
        raise CnnkitError(
            f"{root} has {', '.join(sorted(out))} folders but no train folder: add train/<class>/ images."
        )
    return out


def scan_class_folders(root: Path) -> Listing:
    roots = _split_roots(root)
    class_dirs = {split: _visible_dirs(folder) for split, folder in roots.items()}
    classes = [d.name for d in class_dirs["train"]]
    if not classes:
        raise CnnkitError(f"{roots['train']} has no class folders: put images in {roots['train']}/<class name>/.")
    index = {c: i for i, c in enumerate(classes)}
    items: dict[str, list[tuple[str, int]]] = {}
    empty, total = [], 0
    for split, dirs in class_dirs.items():
        items[split] = []
        for d in dirs:
            if d.name not in index:
                raise CnnkitError(
                    f"Class folder {d} has no counterpart in {roots['train']}: add training images for "
                    f'"{d.name}" or remove the folder.'
                )
            files = _images_under(d)
            if not files:
                empty.append(str(d))
            total += len(files)
            items[split] += [(f, index[d.name]) for f in files]
    return Listing(classes, items, total, empty)


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    """(row number, row) of a UTF-8 CSV with path and label columns; one sentence naming the file otherwise."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [(n or "").strip().lower() for n in reader.fieldnames or []]
            missing = [c for c in ("path", "label") if c not in reader.fieldnames]
            if missing:
                raise CnnkitError(f"{path} has no {' or '.join(missing)} column (its header is "
                                  f"{','.join(reader.fieldnames)[:120]!r}): an image CSV needs the columns path,label.")
            return [(i, r) for i, r in enumerate(reader, start=2)]  # row 1 is the header
    except UnicodeDecodeError as e:
        raise CnnkitError(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start} cannot be "
                          "decoded): save it as UTF-8 CSV.") from None
    except csv.Error as e:
        raise CnnkitError(f"{path} is not a readable CSV file ({e}): save it as UTF-8 CSV.") from None


def _int_classes(path: Path, raw: list[tuple[int, str, str, str]]) -> list[str]:
    """"0".."K-1" for integer labels, K = the largest + 1, checked against CNNKIT_MAX_CLASSES before any name
    is made (a label of 10**12 must not build 10**12 class names)."""
    row_no, _, top, _ = max(raw, key=lambda r: int(r[2]))
    if int(top) >= cap("CNNKIT_MAX_CLASSES"):
        raise CnnkitError(f"{path} row {row_no} has the label {top}, which would make {int(top) + 1} classes for "
                          f"{len(raw)} rows: put the class names in {path.parent / 'classes.txt'} and the labels in "
                          f"0..K-1, or {raise_hint('CNNKIT_MAX_CLASSES')}.")
    return [str(i) for i in range(int(top) + 1)]


def scan_csv(path: Path, allow_outside: bool = False) -> Listing:
    """List a `path,label[,split]` CSV. Paths are relative to its folder and must stay inside it unless
    `allow_outside` (data.allow_outside_root). Raises CnnkitError naming the file and row for a bad row."""
    rows = _csv_rows(path)
    classes = read_classes_txt(path.parent)
    raw = []
    for row_no, row in rows:
        file, label, split = (str(row.get(k) or "").strip() for k in ("path", "label", "split"))
        if not file or not label:
            raise CnnkitError(f"{path} row {row_no} needs both a path and a label; fill it in or delete the row.")
        if split and split.lower() not in SPLIT_NAMES:
            raise CnnkitError(f'{path} row {row_no} has split "{split}": use train, val or test.')
        file = str(inside(path.parent, file, allow=allow_outside, source=path, what=f"row {row_no} path"))
        raw.append((row_no, file, label, SPLIT_NAMES[split.lower()] if split else "train"))
    if classes is None:
        if raw and all(lab.lstrip("-").isdigit() for _, _, lab, _ in raw):
            ints = [int(lab) for _, _, lab, _ in raw]
            if min(ints) < 0:
                bad = next(r for r in raw if int(r[2]) < 0)
                raise CnnkitError(f"{path} row {bad[0]} has the negative label {bad[2]}: labels count from 0.")
            classes = _int_classes(path, raw)
        else:
            classes = sorted({lab for _, _, lab, _ in raw})
    index = {c: i for i, c in enumerate(classes)}
    items: dict[str, list[tuple[str, int]]] = {}
    for row_no, file, label, split in raw:
        if label in index:
            y = index[label]
        elif label.isdigit() and int(label) < len(classes):
            y = int(label)
        else:
            raise CnnkitError(
                f'{path} row {row_no} has the label "{label}", which is not in {path.parent / "classes.txt"} '
                f"({len(classes)} classes): fix the row or add the class to classes.txt."
            )
        items.setdefault(split, []).append((file, y))
    if "train" not in items:
        raise CnnkitError(f"{path} has no training rows: give rows without a split or with split train.")
    return Listing(classes, items, len(raw))


# ----- decoding into a bundle -----------------------------------------------------------------
def _storage_size(cfg: Config, sizes: Counter) -> tuple[int, int]:
    if cfg.data.image_size:
        s = int(cfg.data.image_size)
        return (s, s)
    if sizes and max(max(hw) for hw in sizes) <= NATIVE_LIMIT:
        return sizes.most_common(1)[0][0]
    return (FALLBACK_SIZE, FALLBACK_SIZE)


def files_bundle(listing: Listing, cfg: Config, name: str, fmt: str, verify: bool = False) -> DataBundle:
    """Carve the missing splits, probe, decode and resize the listed files into a DataBundle.
    `verify` decodes every file even on the streaming path (slower; used by `cnnkit data inspect`)."""
    if cfg.data.in_memory not in ("auto", "yes", "no"):
        raise CnnkitError(f'data.in_memory must be auto, yes or no, got "{cfg.data.in_memory}".')
    if len(listing.classes) < 2:  # often a detection export in a layout no box reader claimed
        raise CnnkitError(f"{name} holds one class ({listing.classes[0] if listing.classes else 'none'}): a "
                          "classifier needs at least two; add a folder (or label) per class, or, if the folder "
                          "holds boxes or masks, see `cnnkit data --help` for the layouts cnnkit reads.")
    pool = listing.items["train"]
    have = {s for s in ("val", "test") if listing.items.get(s)}
    idx = carve_missing([y for _, y in pool], cfg, "val" in have, "test" in have)
    plan = {s: listing.items[s] if s in have else [pool[i] for i in i_s]
            for s, i_s in zip(("train", "val", "test"), idx)}
    bad: list[BadFile] = []
    sizes: Counter = Counter()
    gray = True
    for split, items in plan.items():
        kept = []
        for path, y in items:
            try:
                is_gray, hw = probe_image(path)
            except BadImage as e:
                bad.append(BadFile(path, e.reason))
                continue
            gray &= is_gray
            sizes[hw] += 1
            kept.append((path, y))
        plan[split] = kept
    check_bad_files(bad, listing.total, cfg.data.max_bad, name)
    channels, (h, w) = (1 if gray else 3), _storage_size(cfg, sizes)
    count = sum(len(v) for v in plan.values())
    nbytes = count * channels * h * w
    in_memory = cfg.data.in_memory == "yes" or (cfg.data.in_memory == "auto" and nbytes < MEMORY_LIMIT)
    splits = {}
    for split, items in plan.items():
        if in_memory:
            splits[split] = _decode_split(items, channels, (h, w), bad)
        else:
            if verify:
                items = [(p, y) for p, y in items if _decodes(p, channels, bad)]
            splits[split] = FileSplit([p for p, _ in items], [y for _, y in items])
    check_bad_files(bad, listing.total, cfg.data.max_bad, name)
    info = DatasetInfo(
        "classify", list(listing.classes), channels, h if h == w else (h, w), name=name, hflip_ok=True,
        bad_files=bad, extra={"size": (h, w), "format": fmt, "in_memory": in_memory,
                              "sizes_seen": {f"{sw}x{sh}": n for (sh, sw), n in sizes.most_common()}},
    )
    return DataBundle(splits["train"], splits["val"], splits["test"], info)


def _decodes(path: str, channels: int, bad: list[BadFile]) -> bool:
    try:
        read_image(path, channels)
        return True
    except BadImage as e:
        bad.append(BadFile(path, e.reason))
        return False


def _decode_split(items: list[tuple[str, int]], channels: int, hw: tuple[int, int], bad: list[BadFile]) -> TensorSplit:
    images = torch.empty((len(items), channels, *hw), dtype=torch.uint8)
    labels, names = [], []
    for path, y in items:
        try:
            img = read_image(path, channels)
        except BadImage as e:
            bad.append(BadFile(path, e.reason))
            continue
        if tuple(img.shape[1:]) != hw:
            img = TF.resize(img, list(hw), antialias=True)
        images[len(labels)] = img
        labels.append(y)
        names.append(path)
    if len(labels) < len(items):
        images = images[: len(labels)].clone()
    return TensorSplit(images, torch.tensor(labels, dtype=torch.int64), names)


# ----- formats --------------------------------------------------------------------------------
def _dir_has_image(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.is_file() and is_data_file(e.name) for e in it)


def _is_class_folders(path: Path) -> bool:
    if not path.is_dir():
        return False
    for d in _visible_dirs(path):
        if _dir_has_image(d) or (d.name.lower() in SPLIT_NAMES and any(_dir_has_image(c) for c in _visible_dirs(d))):
            return True
    return False


def _is_csv(path: Path) -> bool:
    """A .csv whose header has a path column (an image CSV; text CSVs have none): claimed even when it is not
    UTF-8 or lacks the label column, so that loading says what is wrong instead of "Could not tell the format"."""
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    with open(path, "rb") as f:
        first = f.readline(1 << 16).decode("latin-1")  # any bytes decode: the header's words are ASCII
    try:
        header = {h.strip().lower() for h in next(csv.reader([first.lstrip("\ufeff\u00ef\u00bb\u00bf")]), [])}
    except csv.Error:
        return False
    return "path" in header


@register_format("csv", task="classify", detect=_is_csv, priority=30)
def load_csv(path: Path, cfg: Config) -> DataBundle:
    return files_bundle(scan_csv(path, cfg.data.allow_outside_root), cfg, str(path), "csv")


@register_format("class-folders", task="classify", detect=_is_class_folders, priority=-10)
def load_class_folders(path: Path, cfg: Config) -> DataBundle:
    listing = scan_class_folders(path)
    if listing.empty:
        raise CnnkitError(f"Class folder {listing.empty[0]} holds no images: add images or remove the folder.")
    return files_bundle(listing, cfg, str(path), "class-folders")


# ----- writer ---------------------------------------------------------------------------------
def _folder_name(cls: str) -> str:
    safe = "".join("_" if ch in '/\\:*?"<>|' else ch for ch in cls).strip().lstrip(".")
    return safe or "_"


@WRITERS.register("folders", task="classify")
def write_folders(bundle: DataBundle, out: Path) -> None:
    """root/{train,val,test}/<class>/<n>.png, readable back as class-folders."""
    if not isinstance(bundle.train, (TensorSplit, FileSplit)):
        raise CnnkitError(f"The folders format holds classification data, but {bundle.info.name} is "
                          f"{bundle.info.task} data: write it as coco, yolo, voc or masks instead.")
    out = Path(out)
    if out.is_file() or (out.exists() and any(out.iterdir())):
        raise CnnkitError(f"Output folder {out} is not empty: choose a new folder or empty it first.")
    dirs = [_folder_name(c) for c in bundle.info.classes]
    if len(set(dirs)) != len(dirs):
        raise CnnkitError(f"Class names {bundle.info.classes} collide as folder names; rename the classes.")
    for split in ("train", "val", "test"):
        data = bundle.split(split)
        labels = data.labels.tolist() if torch.is_tensor(data.labels) else list(data.labels)
        for y in set(labels):  # only classes with images: an empty folder would not read back
            (out / split / dirs[y]).mkdir(parents=True, exist_ok=True)
        width = len(str(max(len(data) - 1, 0)))
        for i, y in enumerate(labels):
            img = data.images[i] if isinstance(data, TensorSplit) else read_image(data.paths[i], bundle.info.channels)
            arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(out / split / dirs[y] / f"{i:0{width}d}.png")
