"""Pascal VOC detection format (format "voc", task detect): reader and the "voc" writer.

    ROOT/Annotations/<id>.xml            <filename>, <size>, one <object> per box: <name>,
                                         <difficult>, <bndbox> xmin ymin xmax ymax
    ROOT/JPEGImages/<filename>           (any image type; the writer keeps PNGs lossless)
    ROOT/ImageSets/Main/{train,val,trainval,test}.txt   ids per subset (optional)
    ROOT/labels.txt (optional)           class order (classes.txt is read too); else the names
                                         found in the annotations, sorted
A VOCdevkit folder with one VOC20xx inside is accepted too, and so is LabelImg's default: the
<id>.xml files saved next to the images in one folder, no Annotations/ (read with a note;
an image there without its .xml is a background sample, listed `no_labels`, as in YOLO; so is an
image in JPEGImages/ without one in Annotations/ when no ImageSets lists name the set).
Tags are read without their XML namespace (<annotation xmlns="...">), as if it were absent.

Classes are never VOC's 20 just because every name happens to be a VOC name (a cat/dog set
stays 2 classes); to train on VOC's full list, put it in labels.txt (the writer does).
Annotations that cannot be read (an <object> without <name> or numeric <bndbox>) leave their
image out (listed with the reason) rather than turning the object into background.

VOC coordinates are 1-based pixel indices with xmax/ymax inclusive, so a box whose
pixel edges are x1..x2 (0-based, exclusive) reads xmin = x1 + 1, xmax = x2 — the
convention of VOC's devkit and Detectron. The writer keeps fractional values as floats
(integers print plainly), so reading back gives the same boxes. `difficult` boxes are
marked crowd: left out of training, matched as "ignore" in evaluation, as VOC's own
metric does; the writer writes crowd boxes as difficult.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.containment import elsewhere, elsewhere_note, inside, portable, trailing
from cnnkit.data.decode import data_files, text_lines
from cnnkit.data.detection import box_splits, save_image, unique_names
from cnnkit.data.formats.box_scan import RawImage, Scan, scan_to_bundle
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.data.segmentation import SegFileSplit, SegSplit
from cnnkit.errors import CnnkitError

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
SPLITS = ("train", "val", "test")


def _root(path: Path) -> Path | None:
    if (path / "Annotations").is_dir():
        return path
    inner = sorted(p for p in path.glob("VOC*") if (p / "Annotations").is_dir()) if path.is_dir() else []
    if len(inner) == 1:
        return inner[0]
    return path if path.is_dir() and beside_images(path) else None


def beside_images(folder: Path) -> bool:
    """True when `folder` holds LabelImg's default layout: <stem>.xml Pascal VOC files next to the
    images <stem>.jpg they describe, no Annotations/ (checked by the root tag, so other XML is not taken)."""
    images = {p.stem for p in data_files(folder, recursive=False)}
    for xml in data_files(folder, (".xml",), recursive=False):
        if xml.stem in images:
            try:
                head = xml.read_bytes()[:4096].decode("utf-8", "replace")
            except OSError:
                continue
            if re.search(r"<(\w+:)?annotation[\s>]", head):
                return True
    return False


def _folders(root: Path) -> tuple[str, str]:
    """(annotation folder, image folder) relative to `root`: VOC's own, or "." for both in LabelImg's layout."""
    return ("Annotations", "JPEGImages") if (root / "Annotations").is_dir() else (".", ".")


def detect(path: Path) -> bool:
    return path.is_dir() and _root(path) is not None


def _ids(root: Path, annotations: Path) -> dict[str, list[str]]:
    lists = root / "ImageSets" / "Main"
    found = {}
    for s in (*SPLITS, "trainval"):
        f = lists / f"{s}.txt"
        if f.is_file():
            found[s] = [ln.split()[0] for ln in text_lines(f)]
    if "trainval" in found:
        tv = found.pop("trainval")
        if "train" not in found:
            found["train"] = [i for i in tv if i not in set(found.get("val", []))]
    if not found:
        found["all"] = sorted(p.stem for p in data_files(annotations, (".xml",), recursive=False))
    return found


def _list_file(root: Path, split: str) -> Path:
    """The ImageSets file that listed a split's ids (train may come from trainval.txt)."""
    f = root / "ImageSets" / "Main" / f"{split}.txt"
    return f if f.is_file() else f.with_name("trainval.txt")


def _text(node, tag: str, default: str = "") -> str:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text else default


def _local_tags(root: ET.Element) -> ET.Element:
    """`root` with every tag stripped of its XML namespace: tools that write <annotation xmlns="...">
    make ElementTree name each tag "{uri}object", which a plain find("object") never matches."""
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]
    return root


def _classes(root: Path, names: set[str]) -> list[str]:
    """labels.txt (or classes.txt) when given, else the names found, sorted — never a superset."""
    for fname in ("labels.txt", "classes.txt"):
        f = root / fname
        if f.is_file():
            return text_lines(f)
    return sorted(names)


def scan(path: Path, allow_outside: bool = False) -> Scan:
    """Parse the VOC folder `path` (see the module docstring); an id or <filename> naming a file outside
    it is refused (AnnotationError) unless `allow_outside` (data.allow_outside_root)."""
    root = _root(path)
    if root is None:
        raise CnnkitError(f"{path} is not a Pascal VOC folder: expected Annotations/ and JPEGImages/.")
    parsed: dict[str, list[RawImage]] = {}
    issues: list[tuple[str, str, str]] = []
    names: set[str] = set()
    ann_dir, img_dir = _folders(root)
    by_stem = {p.stem: p for p in data_files(root / img_dir, recursive=False)}
    read: list[tuple[str, str]] = []  # <filename>s written on another machine, read by their trailing part
    split_ids = _ids(root, root / ann_dir)
    for split, ids in split_ids.items():
        recs = parsed.setdefault(split, [])
        for image_id in ids:
            xml = inside(root, Path(ann_dir) / f"{image_id}.xml", allow=allow_outside,
                         source=_list_file(root, split), what="id", shown=repr(image_id))
            if not xml.is_file():
                issues.append(("missing_annotation", str(xml), f"id {image_id!r} is listed in {_list_file(root, split)} "
                                                               f"but {xml} does not exist; add it or remove the id"))
                continue
            try:
                ann = _local_tags(ET.parse(xml).getroot())
            except (OSError, ET.ParseError) as e:
                issues.append(("bad_annotation", str(xml), f"cannot read the annotation: {e}"))
                continue
            fname = portable(_text(ann, "filename")) or f"{image_id}.jpg"
            if elsewhere(_text(ann, "filename")):  # C:\\Users\\..\\a.jpg, \\\\server\\..: a path of the tool's machine
                written = _text(ann, "filename")
                found = trailing(root / img_dir, written)
                fname = found or Path(fname).name  # else the stem below, as before
                read += [(written, found)] if found else []
            file = inside(root, Path(img_dir) / fname, allow=allow_outside, source=xml, what="<filename>",
                          shown=repr(fname))
            if not file.is_file() and Path(fname).stem in by_stem:
                file = by_stem[Path(fname).stem]
            size = ann.find("size")
            rec = RawImage(str(file), image_id, str(xml), _float(_text(size, "width")) if size is not None else None,
                           _float(_text(size, "height")) if size is not None else None)
            if not rec.width or not rec.height or rec.width < 0 or rec.height < 0:
                rec.width = rec.height = None  # VOC files sometimes say 0: use the image header
            for n, obj in enumerate(ann.iter("object"), start=1):
                bb = obj.find("bndbox")
                vals = [_float(_text(bb, t)) for t in ("xmin", "ymin", "xmax", "ymax")] if bb is not None else []
                name = _text(obj, "name")
                if len(vals) != 4 or any(v is None for v in vals) or not name:
                    lacks = "a numeric <bndbox> (xmin, ymin, xmax, ymax)" if name else "a <name>"
                    rec.faults.append(("bad_annotation", f"<object> {n} lacks {lacks}"))
                    continue
                names.add(name)
                xmin, ymin, xmax, ymax = vals
                rec.boxes.append([xmin - 1, ymin - 1, xmax, ymax])
                rec.names.append(name)
                rec.iscrowd.append(1 if _text(obj, "difficult", "0").lower() in ("1", "true") else 0)
            recs.append(rec)
    classes = _classes(root, names)
    index = {c: k for k, c in enumerate(classes)}
    for recs in parsed.values():
        for rec in recs:
            rec.labels = [index.get(n, -1) for n in rec.names]
    notes = elsewhere_note(read)
    n = sum(len(recs) for recs in parsed.values())
    background = _background(root / img_dir, root / ann_dir, parsed, split_ids)
    without = f"{background} images without one are read as background (no boxes)" if background else ""
    if ann_dir == ".":
        notes["voc:beside"] = (f"read {n} Pascal VOC .xml files next to the images in {root} (LabelImg's layout, "
                               "no Annotations/ folder)" + (f"; {without}" if without else ""))
    elif without:
        notes["voc:background"] = (f"{root / img_dir} holds images with no .xml in {root / ann_dir} and no "
                                   f"ImageSets/Main lists name the set: {without}")
    return Scan(classes, parsed, issues, notes=notes,
                labels_hint=f"<object> entries were looked for in {root / ann_dir}")


def _background(images: Path, annotations: Path, parsed: dict[str, list[RawImage]], split_ids: dict[str, list[str]]) -> int:
    """Without ImageSets lists (LabelImg beside the images, or Annotations/ + JPEGImages/): each image in
    `images` with no <stem>.xml (and named by no <filename>) is a background sample, as YOLO reads an image
    without a label file; the number added. With lists, the lists say which images belong to the set."""
    if set(split_ids) != {"all"}:
        return 0
    recs = parsed.setdefault("all", [])
    taken = {Path(r.file) for r in recs} | {r.image_id for r in recs}
    added = [RawImage(str(img), img.stem, str(annotations / f"{img.stem}.xml"))
             for img in sorted(data_files(images, recursive=False)) if img not in taken and img.stem not in taken]
    recs.extend(added)
    recs.sort(key=lambda r: str(r.image_id))
    return len(added)


def _float(text: str) -> float | None:
    """The number in `text`, or None when it is not a finite number."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


@register_format("voc", task="detect", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    return scan_to_bundle(scan(path, cfg.data.allow_outside_root), cfg, str(path))


# ---- writer ------------------------------------------------------------------------------
def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _xml(name: str, h: int, w: int, c: int, boxes, labels, crowd, classes: list[str]) -> str:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "JPEGImages"
    ET.SubElement(ann, "filename").text = name
    size = ET.SubElement(ann, "size")
    for tag, v in (("width", w), ("height", h), ("depth", c)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(ann, "segmented").text = "0"
    for (x1, y1, x2, y2), label, difficult in zip(boxes, labels, crowd):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = classes[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(int(difficult))
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bb, tag).text = _num(v)
    ET.indent(ann)
    return ET.tostring(ann, encoding="unicode") + "\n"


@WRITERS.register("voc")
def write(bundle: DataBundle, out: Path) -> None:
    if all(isinstance(s, (SegSplit, SegFileSplit)) for s in (bundle.train, bundle.val, bundle.test)):
        # For a segmentation set "voc" means the VOC segmentation layout (SegmentationClass PNGs).
        WRITERS.get("voc-seg")(bundle, out)
        return
    out = Path(out)
    info = bundle.info
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    for s, split in box_splits(bundle, "VOC"):
        names = unique_names(split)
        if taken & {Path(n).stem for n in names}:  # VOC keeps every subset in one folder
            names = unique_names(split, prefix=f"{s}_")
        ids = []
        for i, name in enumerate(names):
            stem = Path(name).stem
            save_image(split, i, out / "JPEGImages" / name)
            h, w = split.size(i)
            t = split.target(i)
            (out / "Annotations" / f"{stem}.xml").write_text(
                _xml(name, h, w, split.channels, t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist(),
                     info.classes))
            ids.append(stem)
        taken |= set(ids)
        (out / "ImageSets" / "Main" / f"{s}.txt").write_text("".join(i + "\n" for i in ids))
    (out / "labels.txt").write_text("".join(c + "\n" for c in info.classes))
