"""Image + mask-PNG folders (format "mask-folder", task segment): reader and the "masks" writer.

Layouts (a mask pairs with the image of the same file stem):

    ROOT/images/*.jpg   ROOT/masks/*.png                    one pool: val/test carved out by seed
    ROOT/{train,val,test}/images   ROOT/{train,val,test}/masks    given subsets
    ROOT/images/{train,val,test}   ROOT/masks/{train,val,test}    given subsets, the other nesting
    ROOT/classes.txt (optional)    one class name per line; line i names mask value i
    ROOT/labelmap.txt (optional)   CVAT's `name:r,g,b::` lines: masks are read by colour (labelmap.py)

Masks are index PNGs (gray values = classes) or palette PNGs (palette indices = classes);
255 is "ignore". Without classes.txt the classes are "background", "1", .., up to the
largest value found. Images without a mask, masks without an image and pairs whose
sizes differ are skipped and listed in `info.bad_files` (never dropped silently); a mask
saved as JPEG (or another lossy type) is not read, and its image's entry says so.
Val/test subsets that are missing are carved out of train with `data.split_seed`.

Binary masks saved as 0/255 (what most drawing tools and tutorials write; 0/128 and 0/254
too) would leave no pixel in any class, or make a 129-class model, so `mask_reading` looks at
the values: when the masks read hold only 0 and one value v > 1 that is not a class index, v
is read as class 1, with a note (`data.mask_255`: auto | class | ignore). Values that cannot
be class indices (JPEG-blurred levels, most masks 0/255 but some 0/1) stop the run with one
sentence (`values_problem`) instead of building a model from arbitrary pixel values.
The values come from every mask, or from `SCAN_LIMIT` evenly spaced ones in a larger set
(the note says which); a mask outside that sample with other values fails `mask_problem`
at load time and is skipped as a bad file, as any mask with values outside the classes is.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cnnkit.config import Config
from cnnkit.data.base import BadFile, DataBundle, DatasetInfo
from cnnkit.data.decode import IMAGE_EXTENSIONS, data_files, text_lines
from cnnkit.data.formats.idx import read_classes_txt
from cnnkit.data.formats.labelmap import read_labelmap
from cnnkit.data.registry import WRITERS, register_format
from cnnkit.data.segmentation import (IGNORE_INDEX, MASK_EXTS, BadMask, MaskValues, SegFileSplit, read_mask,
                                      remap_counts, samples, segment_view, write_mask)
from cnnkit.data.splits import carve_splits, check_bad_files
from cnnkit.errors import CnnkitError

SPLITS = ("train", "val", "test")
# Masks whose values are read when a set is loaded: ~1-2 ms each for VOC-sized PNGs, so at most a
# couple of seconds; every mask is read below this, an evenly spaced sample above it.
SCAN_LIMIT = 1000


def subsets(root: Path) -> dict[str, tuple[Path, Path]]:
    """split name ("all" for a single pool) -> (images dir, masks dir) in any of the layouts."""
    if (root / "images").is_dir() and (root / "masks").is_dir():
        nested = {s: (root / "images" / s, root / "masks" / s) for s in SPLITS if (root / "images" / s).is_dir()}
        return nested or {"all": (root / "images", root / "masks")}
    return {s: (root / s / "images", root / s / "masks") for s in SPLITS
            if (root / s / "images").is_dir() and (root / s / "masks").is_dir()}


def detect(path: Path) -> bool:
    return path.is_dir() and bool(subsets(path))


def _files(folder: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    return {p.stem: p for p in data_files(folder, exts, recursive=False)}


def pairs(images_dir: Path, masks_dir: Path) -> tuple[SegFileSplit, list[BadFile]]:
    """Images matched to masks by stem; the unmatched on either side come back as BadFiles."""
    images, masks = _files(images_dir, IMAGE_EXTENSIONS), _files(masks_dir, MASK_EXTS)
    lossy = _files(masks_dir, tuple(IMAGE_EXTENSIONS - set(MASK_EXTS)))  # a.jpg masks: not read, but said so
    stems = sorted(set(images) & set(masks))
    bad = [BadFile(str(images[s]), f"has no mask {masks_dir / (s + '.png')}" + (
        f" (only {lossy[s].name}, a lossy file whose compression blurs class values into others: save masks as PNG)"
        if s in lossy else "")) for s in sorted(set(images) - set(masks))]
    bad += [BadFile(str(masks[s]), f"is a mask without an image in {images_dir}")
            for s in sorted(set(masks) - set(images))]
    split = SegFileSplit([str(images[s]) for s in stems], [str(masks[s]) for s in stems],
                         names=[str(images[s]) for s in stems])
    return split, bad


def scan(root: Path) -> tuple[dict[str, SegFileSplit], list[BadFile]]:
    """Subset -> (image, mask) pairs in any of the layouts; unmatched files as BadFiles."""
    found, bad = {}, []
    for key, (images_dir, masks_dir) in subsets(root).items():
        found[key], missing = pairs(images_dir, masks_dir)
        bad += missing
    return found, bad


def read_classes(root: Path) -> list[str] | None:
    """ROOT/classes.txt (`read_classes_txt`), None without one; CnnkitError when it lists no class."""
    names = read_classes_txt(root)
    if names == []:
        raise CnnkitError(f"{root / 'classes.txt'} lists no classes: write one class name per line "
                          "(line 1 = mask value 0).")
    return names


def value_histograms(splits: dict[str, SegFileSplit], limit: int = SCAN_LIMIT) -> dict[str, torch.Tensor]:
    """mask path -> int64 pixels per raw value (256 bins), for every mask of `splits`, or for
    `limit` evenly spaced ones when there are more; unreadable masks are left out."""
    paths = [p for s in splits.values() for p in s.mask_paths]
    if len(paths) > limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    colours = {p: s.colours for s in splits.values() for p in s.mask_paths}
    out = {}
    for p in paths:
        try:
            out[p] = torch.bincount(read_mask(p, colours[p]).reshape(-1), minlength=256)
        except BadMask:
            continue
    return out


def with_labelmap(root: Path, splits: dict[str, SegFileSplit],
                  classes: list[str] | None) -> tuple[dict[str, SegFileSplit], list[str] | None, dict[str, str]]:
    """(splits reading their masks by colour, class names, a note) when ROOT/labelmap.txt exists (CVAT's
    colour masks, `labelmap.py`), else (splits, classes, {}) unchanged."""
    found = read_labelmap(root)
    if found is None:
        return splits, classes, {}
    names, colours = found
    note = (f"{root}: masks read by colour through labelmap.txt ({len(names)} classes: "
            f"{', '.join(names[:4])}{', ..' if len(names) > 4 else ''})")
    return {k: replace(s, colours=colours) for k, s in splits.items()}, names, {"labelmap": note}


def colour_stop(splits: dict[str, SegFileSplit], root: Path) -> None:
    """CnnkitError when the masks are colour pictures and no labelmap.txt says which colour is which
    class (else every mask is unreadable and the run would stop later, blaming empty masks)."""
    first = next((s for s in splits.values() if len(s) and s.colours is None), None)
    if first is None:
        return
    try:
        read_mask(first.mask_paths[0])
    except BadMask as e:
        if "colour" in str(e):
            raise CnnkitError(f"the masks in {root} are colour images (e.g. {first.mask_paths[0]}), not class "
                              "indices: add a labelmap.txt with one 'name:r,g,b::' line per class, background "
                              "first (as CVAT's segmentation mask export writes it), or save the masks as index "
                              "or palette PNGs (0 = background, 1, 2, ..).") from None


def fits_default(hists: dict[str, torch.Tensor], default: list[str]) -> bool:
    """Whether the mask values read (`hists`) look like indices into the `default` names (VOC's 21)
    rather than a set of its own: at most half of the masks hold values past it (a stray value in a
    few is left to `mask_problem`), and the values inside it either leave gaps in 1..max (a few of
    VOC's classes, e.g. only 15 = person) or run all the way to its last class. A custom set numbers
    its classes 1, 2, .., k without gaps, so 1..k with k short of the last is not VOC."""
    per_mask = [set(torch.nonzero(h).flatten().tolist()) - {0, IGNORE_INDEX} for h in hists.values()]
    if 2 * sum(1 for s in per_mask if max(s, default=0) >= len(default)) > len(per_mask):
        return False
    found = {v for s in per_mask for v in s if v < len(default)}
    return bool(found) and (found != set(range(1, max(found) + 1)) or max(found) == len(default) - 1)


def _shown(values) -> str:
    values = sorted(values)
    return ", ".join(str(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")


def mask_reading(hists: dict[str, torch.Tensor], total: int, classes: list[str] | None, mode: str,
                 source: str, default: list[str] | None = None, check: bool = True,
                 default_name: str = "the default") -> tuple[list[str], dict[int, int] | None, dict[str, str]]:
    """(classes, remap, notes) for a set whose masks read gave `hists` (of `total` masks); `notes`
    holds one line each ("mask_255", "classes") on how the values were read.

    mode is `data.mask_255`: "auto" reads v as class 1 when the masks read hold only 0 and one
    value v > 1 that is not a class index (0/255, 0/128, 0/254 ...; says so in `note`), "class"
    always does (v = 255 unless the masks hold only 0 and v, so 0/1 and 0/255 masks mix), "ignore" never
    remaps (values are class indices, 255 is ignore). Classes: `classes` (a classes.txt) when
    given, else `default` (`default_name`, e.g. VOC's names) when the values fit it (`fits_default`;
    a note says so), else "background", "1", .. up to the largest class value (a note says how to
    name them). Raises CnnkitError (one sentence; only with `check`) for
    "class" on masks that hold other values too, and for masks whose values are not class
    indices (`values_problem`): blurred by lossy saving, or mixed binary conventions.
    """
    pixels = sum(hists.values(), torch.zeros(256, dtype=torch.int64))
    values = set(torch.nonzero(pixels).flatten().tolist())
    notes: dict[str, str] = {}
    fits = None  # without classes.txt: whether the values fit the `default` names (None: nothing to weigh)
    if classes is None and default:
        fits = fits_default(hists, default)
        default = default if fits else None
    known = classes or default
    remap = None
    if mode == "class":
        v = max(values) if len(values) == 2 and 0 in values and max(values) > 1 else IGNORE_INDEX
        if values - {0, 1, v} and check:
            shown = ", ".join(str(x) for x in sorted(values - {0, 1, v})[:5])
            raise CnnkitError(f"data.mask_255=class reads {v} as class 1 of binary masks, but the masks in {source} "
                              f"also hold the values {shown}: set data.mask_255=auto (or ignore) for these masks.")
        remap = {v: 1}
    elif mode == "auto" and len(values) == 2 and 0 in values:
        v = max(values)
        if v > 1 and (v == IGNORE_INDEX or not known or v >= len(known)):
            remap = {v: 1}  # a binary mask saved with a visible foreground value, not a class index
    problem = None if remap else values_problem(hists, values, known, mode, source)
    if problem and check:
        raise CnnkitError(problem)
    if remap and mode == "auto":
        (v,) = remap
        read = f"all {total} masks read" if len(hists) >= total else f"{len(hists)} of {total} masks read"
        keep = ("set data.mask_255=ignore to keep 255 as ignore" if v == IGNORE_INDEX
                else f"if {v} is a class index, list the classes in classes.txt")
        notes["mask_255"] = f"{source}: masks hold only 0 and {v}: {v} read as class 1 ({keep}; {read})"
    if classes is None:
        top = max(torch.nonzero(remap_counts(pixels, remap)[:IGNORE_INDEX]).flatten().tolist(), default=0)
        classes = default if default and not remap else ["background"] + [str(i) for i in range(1, max(top, 1) + 1)]
        found = f"{source}: no classes.txt, and the mask values ({_shown(values - {0, IGNORE_INDEX})})"
        named = "add classes.txt to name them (line i = mask value i)"
        if fits and not remap:  # binary masks: the mask_255 note already says how they are read
            notes["classes"] = (f"{found} fit {default_name} {len(classes)} classes, so those names are used "
                                f"({classes[0]}, {classes[1]}, .., {classes[-1]}); if these are other classes, {named}")
        elif fits is False and not remap and len(classes) > 1:
            notes["classes"] = (f"{found} do not look like {default_name} classes, so only {len(classes)} classes "
                                f"are used ({', '.join(classes[:4])}{', ..' if len(classes) > 4 else ''}); {named}")
    return classes, remap, notes


def values_problem(hists: dict[str, torch.Tensor], values: set[int], known: list[str] | None, mode: str,
                   source: str) -> str | None:
    """Why raw mask values (no remap) cannot be class indices, as one sentence, or None.

    - mixed conventions ("auto" only): most masks hold only 0 and one value v > 1, the others 0 and
      1, so v would be read as its raw value (255 = ignore) in all of them;
    - values outside the classes of `known` in more than half of the masks read (a stray value
      in a few masks is left to `mask_problem`, which skips those masks as bad files);
    - without `known`: a largest value of 16 or more with fewer than a quarter of the classes it
      implies present, e.g. JPEG-blurred 0/255 masks (0, 252..255) or 0/128/255 levels — a model
      whose class count comes from an arbitrary pixel value.
    """
    read = len(hists)
    per_mask = [set(torch.nonzero(h).flatten().tolist()) for h in hists.values()]
    if mode == "auto":
        pairs = [max(s) for s in per_mask if len(s) == 2 and 0 in s and max(s) > 1]
        for v in sorted(set(pairs)):
            rest = set().union(*(s for s in per_mask if not (len(s) == 2 and 0 in s and max(s) == v)))
            if (2 * pairs.count(v) > read and rest <= {0, 1, v}
                    and (v == IGNORE_INDEX or not known or v >= len(known))):
                as_ = "ignore" if v == IGNORE_INDEX else f"class {v}"
                fix = (f"set data.mask_255=class to read {v} as class 1, or data.mask_255=ignore to keep it as {as_}"
                       if v == IGNORE_INDEX else f"save every mask with the same values (0 and {v}, or 0 and 1)")
                return (f"{pairs.count(v)} of {read} masks in {source} hold only 0 and {v} (read as {as_}, as the "
                        f"other {read - pairs.count(v)} hold {', '.join(map(str, sorted(rest)))}): {fix}.")
    shown = ", ".join(str(v) for v in sorted(values)[:8]) + (", ..." if len(values) > 8 else "")
    fix = "save the masks as lossless PNGs whose values are the class indices (0 = background, 1, 2, ..)"
    if known:
        stray = {v for v in values if len(known) <= v != IGNORE_INDEX}
        holding = sum(1 for s in per_mask if s & stray)
        if stray and 2 * holding > read:
            return (f"{holding} of {read} masks in {source} hold values outside the {len(known)} classes "
                    f"(0..{len(known) - 1}, 255 = ignore) — values found: {shown}: {fix}, or list every class "
                    f"in classes.txt.")
        return None
    indices = values - {IGNORE_INDEX}
    top = max(indices, default=0)
    if top >= 16 and 4 * len(indices) < top + 1:
        return (f"the masks in {source} hold the values {shown}, which are not class indices (a {top + 1}-class "
                f"model would leave {top + 1 - len(indices)} classes without a pixel; lossy JPEG saving blurs "
                f"0/255 masks like this): {fix}, or list the classes in classes.txt.")
    return None


def header_check(split: SegFileSplit) -> tuple[SegFileSplit, list[BadFile], list[tuple[int, int, int]]]:
    """Keep pairs whose image and mask headers open and agree in size; (kept, bad, (h, w, c) per kept)."""
    import warnings

    from PIL import Image

    from cnnkit.data.decode import BadImage, probe_image

    keep, bad, shapes = [], [], []
    for i, (img, msk) in enumerate(zip(split.image_paths, split.mask_paths)):
        try:
            gray, (h, w) = probe_image(img)
        except BadImage as e:
            bad.append(BadFile(img, e.reason))
            continue
        c = 1 if gray else 3
        try:
            with warnings.catch_warnings():  # size is compared with the image's, which the pixel cap bounds
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(msk) as im:
                    mw, mh = im.size
        except Exception as e:  # noqa: BLE001 - Pillow plugins raise SyntaxError/ValueError/struct.error on bad headers
            bad.append(BadFile(msk, f"mask cannot be read ({type(e).__name__})"))
            continue
        if (mh, mw) != (h, w):
            bad.append(BadFile(img, f"image is {w}x{h} but its mask {msk} is {mw}x{mh}"))
            continue
        keep.append(i)
        shapes.append((h, w, c))
    kept = SegFileSplit([split.image_paths[i] for i in keep], [split.mask_paths[i] for i in keep],
                        [split.names[i] for i in keep] if split.names else None)
    return kept, bad, shapes


def take(split: SegFileSplit, idx) -> SegFileSplit:
    idx = [int(i) for i in idx]
    return SegFileSplit([split.image_paths[i] for i in idx], [split.mask_paths[i] for i in idx],
                        [split.names[i] for i in idx] if split.names else None)


def carve(splits: dict[str, SegFileSplit], cfg: Config) -> tuple[SegFileSplit, SegFileSplit, SegFileSplit]:
    """train/val/test from the subsets given; missing val/test are carved out of train (`carve_missing`)."""
    train = splits.get("train", splits.get("all"))
    if train is None:
        train = SegFileSplit([], [])
    return carve_splits(train, splits, cfg, take)


def finish(root: Path, found: dict[str, SegFileSplit], bad: list[BadFile], classes: list[str] | None,
           cfg: Config, fmt: str, default: list[str] | None = None, default_name: str = "the default") -> DataBundle:
    """Header-check every pair, read the mask values (`mask_reading`), carve missing splits, and
    describe the data (shared with voc_seg; `default`: class names, whose they are `default_name`,
    for masks that fit them when there is no classes.txt)."""
    found, classes, colour_note = with_labelmap(root, found, classes)
    checked, shapes = {}, []
    total = sum(len(s) for s in found.values()) + len(bad)
    for key, split in found.items():
        kept, more_bad, sh = header_check(split)
        kept.colours = split.colours
        checked[key] = kept
        bad += more_bad
        shapes += sh
    check_bad_files(bad, total, cfg.data.max_bad, str(root))
    if not shapes:
        raise CnnkitError(f"{root} holds no usable image + mask pairs; see `cnnkit data inspect {root}`.")
    hists = value_histograms(checked)
    if not hists:
        colour_stop(checked, root)
    classes, remap, notes = mask_reading(hists, len(shapes), classes, cfg.data.mask_255, str(root), default,
                                         default_name=default_name)
    train, val, test = carve(checked, cfg)
    for split in (train, val, test):
        seen = [hists[p] for p in split.mask_paths if p in hists]
        split.remap = remap
        split.colours = next((s.colours for s in checked.values()), None)
        split.values = MaskValues(sum(seen, torch.zeros(256, dtype=torch.int64)), len(seen))
    sides = sorted(max(h, w) for h, w, _ in shapes)
    info = DatasetInfo(task="segment", classes=classes, channels=3 if any(c == 3 for *_, c in shapes) else 1,
                       image_size=sides[len(sides) // 2], name=str(root), hflip_ok=True, bad_files=bad,
                       extra={"counts": {"train": len(train), "val": len(val), "test": len(test)}, "format": fmt})
    if notes or colour_note:
        info.extra["notes"] = {**colour_note, **notes}
    return DataBundle(train, val, test, info)


@register_format("mask-folder", task="segment", detect=detect, priority=20)
def load(path: Path, cfg: Config) -> DataBundle:
    found, bad = scan(path)
    return finish(path, found, bad, read_classes(path), cfg, "mask-folder")


@WRITERS.register("masks")
def write_masks(bundle: DataBundle, out: Path) -> None:
    """OUT/{train,val,test}/{images,masks}/<name>.png and OUT/classes.txt (palette masks, lossless images)."""
    from PIL import Image

    bundle = segment_view(bundle)  # detection data with instance masks becomes class masks
    out = Path(out)
    for key in SPLITS:
        split = bundle.split(key)
        for i, (name, image, mask) in enumerate(samples(split, bundle.info.channels)):
            if image is None:
                continue  # unreadable in the source: already listed by its reader
            stem = Path(name).stem if name else f"{key}_{i:05d}"
            (out / key / "images").mkdir(parents=True, exist_ok=True)
            arr = image.permute(1, 2, 0).numpy()
            Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(out / key / "images" / f"{stem}.png")
            write_mask(mask, out / key / "masks" / f"{stem}.png")
    (out / "classes.txt").write_text("\n".join(bundle.info.classes) + "\n")
