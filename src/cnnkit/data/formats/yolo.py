"""YOLO txt format (format "yolo", task detect): reader and the "yolo" writer.

Layouts read (the writer produces the first, Ultralytics' own):

    ROOT/data.yaml     names: [...] or {0: name, ...}; train/val/test: image folders or .txt
                       lists, relative to `path:` (default, and what the writer relies on:
                       the yaml's folder); `nc` must agree with names (names default to
                       class_0.. when only nc is given, as in Ultralytics)
    ROOT/images/<split>/<name>.png  +  ROOT/labels/<split>/<name>.txt
    ROOT/classes.txt   one name per line (or obj.names: CVAT's YOLO 1.1 export), with images
                       in images/[<split>/] or in ROOT itself ([<split>/], obj_<split>_data/:
                       LabelImg and CVAT save them with the labels beside)

Roboflow writes `train: ../train/images` in a data.yaml that sits beside train/; as in
Ultralytics, a "../" entry that does not exist is read without its "../" (with a note).

A label file has one line per box: `class cx cy w h`, normalised to the image's width and
height (a polygon line `class x1 y1 x2 y2 ...` counts as its bounding box). A line with
coordinates past 1.5 (pixels, not fractions) or with a 6th column (a prediction's confidence)
is a bad annotation whose message says so. The label
file of `.../images/.../a.png` is `.../labels/.../a.txt` or, when labels/ has none, the
`a.txt` beside the image (as many export tools write them; a note says how many were read,
and inspect lists a differing one beside a labels/ file as `beside_labels`); an image
without either is a background sample. A test (or, when train has images, val) path in
data.yaml that does not exist is read as no such split, with a note, as Ultralytics does; a
missing train path, and a null or wrong-typed value, stop with one sentence. Image sizes come from the file
headers. The writer prints 12 significant digits, far below 1e-3 px for any real image
size; crowd boxes have no YOLO form and are left out (a note says how many).
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.containment import elsewhere, elsewhere_note, inside, portable, trailing
from cnnkit.data.decode import BadImage, data_files, probe_image, read_text, text_lines
from cnnkit.data.detection import box_splits, save_image, unique_names
from cnnkit.data.formats.box_scan import AnnotationError, RawImage, Scan, scan_to_bundle
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.data.splits import SPLIT_NAMES

SPLITS = ("train", "val", "test")
NAMES_FILES = ("classes.txt", "obj.names")  # LabelImg / Ultralytics, and Darknet as CVAT's YOLO 1.1 writes it
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")
MAX_DEPTH = 32  # nesting levels a data.yaml may have (it needs 2); deeper input makes PyYAML slow, then recurse


def _yaml_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".yaml", ".yml") else None
    for name in YAML_NAMES:
        if (path / name).is_file():
            return path / name
    return None


def detect(path: Path) -> bool:
    y = _yaml_file(path)
    if y is not None:
        try:
            data = _read_yaml(y)
        except AnnotationError:  # named as a YOLO data.yaml but broken: loading says what is wrong
            return y.name in YAML_NAMES
        return "names" in data or y.name in YAML_NAMES
    if not (path.is_dir() and _names_file(path)):
        return False
    folder = path / "images" if (path / "images").is_dir() else path
    return (path / "labels").is_dir() or any(img.with_suffix(".txt").is_file() for img in data_files(folder))


def _names_file(path: Path) -> Path | None:
    return next((path / n for n in NAMES_FILES if (path / n).is_file()), None)


def _split_folder(name: str) -> str | None:
    """The split a folder of images holds: train, val/valid/validation, test, or CVAT's obj_<split>_data."""
    name = name.lower()
    if name.startswith("obj_") and name.endswith("_data"):
        name = name[4:-5]
    return SPLIT_NAMES.get(name)


def _read_yaml(y: Path) -> dict:
    """The mapping in data.yaml, read with yaml.safe_load (no tag can run code); AnnotationError naming
    the file for invalid YAML, a `!!python` (or other unknown) tag, nesting past MAX_DEPTH or a non-mapping."""
    try:
        text = y.read_text(errors="replace")
        _check_depth(text, y)
        data = yaml.safe_load(text)
    except OSError as e:
        raise AnnotationError(y, f"cannot read {y} ({e.strerror or e}).") from None
    except RecursionError:
        raise AnnotationError(y, f"{y} nests deeper than {MAX_DEPTH} levels; a data.yaml needs two: fix it.") from None
    except yaml.constructor.ConstructorError as e:
        raise AnnotationError(y, f"{y} uses a YAML tag cnnkit does not load ({e.problem}); data.yaml may hold only "
                                 "plain values (strings, numbers, lists, mappings): remove the tag.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or e
        raise AnnotationError(y, f"{y} is not valid YAML ({where}{problem}); fix it.") from None
    if not isinstance(data, dict):
        raise AnnotationError(y, f"{y} must be a mapping with names and train/val/test keys, "
                                 f"not {type(data).__name__}.")
    return data


def _check_depth(text: str, y: Path) -> None:
    """AnnotationError when `text` nests more than MAX_DEPTH levels: first flow brackets (outside quotes and
    comments; PyYAML's scanner takes seconds on thousands of them), then block nesting via the parser's events."""
    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            quote = None if ch == quote or ch == "\n" else quote
        elif ch in "'\"#":
            quote = "\n" if ch == "#" else ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest <= MAX_DEPTH:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                deepest = max(deepest, depth)
                if deepest > MAX_DEPTH:
                    break
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    if deepest > MAX_DEPTH:
        raise RecursionError


def _name(value, k, source: Path) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
        raise AnnotationError(source, f"{source}: class {k} has no usable name ({value!r}); give every class a name.")
    return str(value)


def _names(raw, source: Path) -> list[str]:
    if isinstance(raw, dict):
        ids = {}
        for k in raw:
            if isinstance(k, bool) or not (isinstance(k, int) or (isinstance(k, str) and k.strip().isdigit())):
                raise AnnotationError(source, f"{source}: names must map class ids 0, 1, ... to names, "
                                              f"got the key {k!r}.")
            ids[int(k)] = raw[k]
        keys = sorted(ids)
        if keys != list(range(len(keys))):
            raise AnnotationError(source, f"{source}: names must be numbered 0..{len(keys) - 1}, got ids {keys[:8]}.")
        return [_name(ids[k], k, source) for k in keys]
    if isinstance(raw, list):
        return [_name(n, k, source) for k, n in enumerate(raw)]
    raise AnnotationError(source, f"{source}: names must be a list or a mapping of class id to name, got {raw!r}.")


def _images_in(entry: Path, source: Path, allow_outside: bool = True, issues: list | None = None,
               read: list | None = None) -> list[Path]:
    """The images of a data.yaml split entry: a folder's data files, or the lines of a .txt list, each of
    which must lie inside the data.yaml's folder unless `allow_outside`. A line written on another machine
    (`containment.elsewhere`) is read by its trailing part under the list's folder (appended to `read`), or,
    when none exists, is one `missing_image` row in `issues` naming the list and the line."""
    if entry.is_file() and entry.suffix == ".txt":  # a list of image paths
        base = entry.parent
        try:
            lines = text_lines(entry)
        except OSError as e:
            raise AnnotationError(source, f"{source}: cannot read the image list {entry} "
                                          f"({e.strerror or e}).") from None
        found = []
        for n, ln in enumerate(lines, start=1):
            local = ln
            if elsewhere(ln):
                local = trailing(base, ln)
                if local is None:
                    if issues is not None:
                        issues.append(("missing_image", str(entry), f"line {n} {ln!r} names a file of another "
                                       f"machine and no trailing part of it exists under {base}"))
                    continue
                if read is not None:
                    read.append((ln, local))
            found.append(_contained(source.parent, base / portable(local), allow_outside, entry, f"line {n}", ln))
        return found
    if entry.is_dir():
        return sorted(data_files(entry))  # the one rule of which files are data (data/decode.py)
    raise AnnotationError(source, f"{source}: {entry} is neither an image folder nor a .txt list of images; "
                                  "fix the path.")


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    parts = list(image.parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _contained(folder: Path, p: Path, allow: bool, source: Path, what: str, value: str) -> Path:
    """`p`, refused (containment.inside) when it lies outside the data.yaml's folder."""
    return inside(folder, os.path.relpath(p, folder), allow=allow, source=source, what=what, shown=repr(value))


def _layout(path: Path, allow_outside: bool = False, remarks: list | None = None,
            notes: dict | None = None, issues: list | None = None) -> tuple[list[str], dict[str, list[Path]], bool]:
    notes = {} if notes is None else notes
    read: list[tuple[str, str]] = []  # list lines written on another machine, read by their trailing part
    y = _yaml_file(path)
    if y is not None:
        data = _read_yaml(y)
        base = data.get("path") or "."
        if not isinstance(base, str):
            raise AnnotationError(y, f"{y}: path must be a folder name, got {base!r}.")
        root = _contained(y.parent, y.parent / base, allow_outside, y, "path", base)
        splits = {}
        for s in SPLITS:
            entries = data.get(s) or []
            entries = entries if isinstance(entries, list) else [entries]
            for e in entries:
                if not isinstance(e, str):
                    raise AnnotationError(y, f"{y}: {s} must be an image folder, a .txt list or a list of them, "
                                             f"got {e!r}.")
                written = e
                if e.startswith("../") and not (root / e).exists():  # Ultralytics' rule for Roboflow's yaml
                    notes[f"yolo:roboflow:{s}"] = (f"read {s}: {e} in {y.name} as {e[3:]} (it names a folder "
                                                   "beside the yaml, as Roboflow's exports do)")
                    e = e[3:]
                if not (root / e).exists() and (s == "test" or s == "val" and splits.get("train")):
                    # Ultralytics skips a missing test (Roboflow writes one for exports without it); a
                    # missing val can be carved out of train, a missing train cannot be made up.
                    notes.pop(f"yolo:roboflow:{s}", None)
                    notes[f"yolo:missing:{s}"] = (f"{s}: {written} in {y.name} does not exist, so the set is read "
                                                  f"without it ({s} images are carved out of train, "
                                                  f"data.{s}_fraction)")
                    continue
                found = _images_in(_contained(y.parent, root / e, allow_outside, y, s, e), y, allow_outside,
                                   issues, read)
                if not found and remarks is not None:
                    remarks.append(("no_images", str(y), f"{s}: {e} holds no images"))
                splits.setdefault(s, []).extend(found)
        names = _checked_names(data, y, notes)
        notes.update(elsewhere_note(read))
        return names, splits, bool(data.get("hflip_ok", data.get("fliplr", 0.5) != 0))
    names = text_lines(_names_file(path))
    images = path / "images" if (path / "images").is_dir() else path
    splits: dict[str, list[Path]] = {}
    for d in sorted(p for p in images.iterdir() if p.is_dir()):
        if _split_folder(d.name):
            splits.setdefault(_split_folder(d.name), []).extend(_images_in(d, path))
    return names, (splits or {"all": _images_in(images, path)}), True


def _checked_names(data: dict, y: Path, notes: dict) -> list[str]:
    """The class names of data.yaml, checked against its `nc` (Ultralytics stops on a mismatch too)."""
    nc = data.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
        raise AnnotationError(y, f"{y}: nc must be the number of classes (a positive integer), got {nc!r}.")
    if data.get("names") is None and nc is not None:
        notes["yolo:names"] = f"{y.name} gives nc: {nc} but no names: the classes are named class_0..class_{nc - 1}"
        return [f"class_{k}" for k in range(nc)]
    names = _names(data.get("names"), y)
    if nc is not None and nc != len(names):
        raise AnnotationError(y, f"{y}: nc is {nc} but names lists {len(names)} classes; make them agree "
                                 "(or remove nc).")
    return names


PIXELS = 1.5  # a label value above this is a pixel coordinate, not a fraction that overshoots the border


def _parse_line(line: str) -> tuple[str, list[float]] | str:
    """(class as written, xyxy fractions), or why the line is not a box."""
    parts = line.split()
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError:
        return "is not 'class cx cy w h'"
    if any(v > PIXELS for v in values):
        return ("holds values above 1: YOLO coordinates are fractions of the image width and height (0..1), "
                "not pixels")
    if len(values) == 5:
        return "has a 6th column (a prediction's confidence?): a label line is 'class cx cy w h'"
    if len(values) == 4:
        cx, cy, w, h = values
        return parts[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    if len(values) >= 6 and len(values) % 2 == 0:  # polygon: its bounding box
        xs, ys = values[0::2], values[1::2]
        return parts[0], [min(xs), min(ys), max(xs), max(ys)]
    return "is not 'class cx cy w h'"


def _class_index(cls: str, num_classes: int) -> int:
    """The class index a label row names, -1 when it names none: "3", and "3.0" as exporters write it
    (Ultralytics reads the column as floats too), but never "3.5" or "-1"."""
    try:
        value = float(cls)
    except ValueError:
        return -1
    return int(value) if value.is_integer() and 0 <= value < num_classes else -1


def _label_file(img: Path, remarks: list) -> tuple[Path | None, bool]:
    """(label file of `img` or None, True when it is the .txt beside the image): labels/ first (Ultralytics),
    else the .txt next to the image; a differing .txt beside an image that labels/ covers is a remark."""
    lp, beside = label_path(img), img.with_suffix(".txt")
    if lp.is_file():
        if beside != lp and beside.is_file() and beside.read_bytes() != lp.read_bytes():
            remarks.append(("beside_labels", str(beside), f"not read: {lp} is the label file of {img.name} "
                                                           "and says otherwise"))
        return lp, False
    return (beside, True) if beside.is_file() else (None, False)


def _read_labels(rec: RawImage, lp: Path, classes: list[str], w, h) -> None:
    try:
        text = read_text(lp)
    except OSError as e:
        rec.faults.append(("bad_annotation", f"cannot read {lp}: {e.strerror or e}"))
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parsed = _parse_line(line)
        if isinstance(parsed, str):
            rec.faults.append(("bad_annotation", f"line {n} {parsed}: {line.strip()[:60]!r}"))
            continue
        cls, (x1, y1, x2, y2) = parsed
        k = _class_index(cls, len(classes))
        sx, sy = (w or 1), (h or 1)
        rec.boxes.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
        rec.labels.append(k)
        rec.names.append(cls)
        rec.iscrowd.append(0)


def scan(path: Path, allow_outside: bool = False) -> Scan:
    """Parse the YOLO set at `path` (see the module docstring); data.yaml paths leaving its folder are refused
    (AnnotationError) unless `allow_outside` (data.allow_outside_root)."""
    remarks: list[tuple[str, str, str]] = []
    notes: dict[str, str] = {}
    issues: list[tuple[str, str, str]] = []
    classes, split_images, hflip_ok = _layout(path, allow_outside, remarks, notes, issues)
    splits: dict[str, list[RawImage]] = {}
    beside: list[Path] = []
    for s, images in split_images.items():
        recs = splits.setdefault(s, [])
        for img in images:
            lp, is_beside = _label_file(img, remarks)
            rec = RawImage(str(img), str(img.relative_to(path)) if img.is_relative_to(path) else str(img),
                           str(lp or label_path(img)))
            recs.append(rec)
            try:
                _, (h, w) = probe_image(img)
                rec.width, rec.height = float(w), float(h)
            except BadImage:
                w = h = None  # the health check reports the image itself
            if lp is not None:
                _read_labels(rec, lp, classes, w, h)
                beside += [lp] if is_beside else []
    images = [img for imgs in split_images.values() for img in imgs]
    if beside:
        none = not any(label_path(img).parent.is_dir() for img in images)
        notes["yolo:beside"] = (f"read {len(beside)} label files next to the images "
                                f"({'no labels/ folder' if none else 'labels/ has none for them'})")
    looked = sorted({str(label_path(img).parent) for img in images})
    hint = (f"label files were looked for in {', '.join(looked[:3])}{' ...' if len(looked) > 3 else ''} "
            "and next to the images")
    return Scan(classes, splits, issues, hflip_ok, remarks=remarks, notes=notes, labels_hint=hint)


@register_format("yolo", task="detect", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    return scan_to_bundle(scan(path, cfg.data.allow_outside_root), cfg, str(path))


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
        from rich.console import Console
        from rich.text import Text

        # a console line, not a Python warning with a source line
        Console(stderr=True, highlight=False).print(
            Text(f"note: {crowd} crowd boxes have no YOLO form and were not written to {out}", style="cyan"))
