"""Label coverage: does every split give a model something to learn, for every task, before training?

`class_counts(split, num_classes)` is the one question asked of a split, whatever holds it
(a `functools.singledispatch`: a new split type registers its own counter). It answers
with examples per class in the split's own unit: images (classification), non-crowd boxes
(detection), pixels (segmentation, where class 0 is background and is not an example of
anything). `coverage_faults(bundle)` turns the counts into faults:

- `no-class-examples` (stops): the train split has items but not one example of any class
  (all masks background/ignore, label files without boxes) — training would learn nothing;
- `class-not-in-train` (warns loudly): a class appears in val or test but never in train, so
  its val/test score is zero by construction. A warning, not a stop: carving a small box or
  mask set by size can leave a rare class out of train, and the run still measures the
  others; the warning names each class and split, and `data inspect --strict` fails on it;
- `class-without-examples` (warns): a class with no example in train at all.

`check_coverage` is what `build_data` runs (CnnkitError for stops, a note for warnings);
`print_notes` shows a bundle's notes once on stderr; `add_coverage` puts the same faults
and notes into a `cnnkit data inspect` report, where `--strict` exits non-zero on them.
Counting is cheap: labels are bincounted, boxes' labels are already in memory, and a mask
set's pixel values were counted by its reader (`SegFileSplit.values`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from cnnkit.data.base import DataBundle, FileSplit, TensorSplit
from cnnkit.data.detection import DetectionSplit
from cnnkit.data.segmentation import IGNORE_INDEX, SegFileSplit, SegSplit, remap_counts, value_counts
from cnnkit.errors import CnnkitError

SPLITS = ("train", "val", "test")
MASK_COUNT_LIMIT = 1000  # masks decoded to count a file split whose reader left no counts


@dataclass
class ClassCounts:
    """Examples per class in one split: `per_class` int64 (K,), in `unit` ("images", "boxes", "pixels")."""

    per_class: torch.Tensor
    unit: str
    items: int  # images in the split
    example: str = "image"  # one example, in words ("box", "non-background pixel")
    background: int | None = None  # a class index that is no example of anything (segmentation's 0)
    counted: str = ""  # "" when every item was counted, else e.g. "in 1000 of 2913 masks read"
    empty_why: str = ""  # what the items hold instead, for the no-examples message
    advice: str = ""  # what to do when there are no examples

    def foreground(self) -> torch.Tensor:
        """Counts with the background class zeroed."""
        fg = self.per_class.clone()
        if self.background is not None:
            fg[self.background] = 0
        return fg


@functools.singledispatch
def class_counts(split, num_classes: int) -> ClassCounts | None:
    """Examples per class of `split` (None for a split type that has no counter registered)."""
    return None


@class_counts.register
def _labels(split: TensorSplit, num_classes: int) -> ClassCounts:
    return _label_counts(split.labels.numpy(), num_classes)


@class_counts.register
def _file_labels(split: FileSplit, num_classes: int) -> ClassCounts:
    return _label_counts(np.asarray(split.labels, dtype=np.int64), num_classes)


def _label_counts(labels: np.ndarray, num_classes: int) -> ClassCounts:
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes]
    return ClassCounts(torch.from_numpy(counts), "images", len(labels))


@class_counts.register
def _boxes(split: DetectionSplit, num_classes: int) -> ClassCounts:
    labels = [lab[crowd == 0] if crowd is not None else lab
              for lab, crowd in zip(split.labels, split.iscrowd or [None] * len(split.labels))]
    flat = torch.cat(labels).long() if labels else torch.zeros(0, dtype=torch.int64)
    counts = torch.bincount(flat[(flat >= 0) & (flat < num_classes)], minlength=num_classes)[:num_classes]
    return ClassCounts(counts, "boxes", len(split), "box", empty_why="no usable box was read for its images",
                       advice="check that the label files are where the format expects them (YOLO: labels/ next "
                              "to images/, one .txt per image; COCO: annotations with its image ids) and see what "
                              "was read with `cnnkit data inspect`")


@class_counts.register(SegSplit)
@class_counts.register(SegFileSplit)
def _pixels(split, num_classes: int) -> ClassCounts:
    if isinstance(split, SegFileSplit) and split.values is not None:
        pixels, read = remap_counts(split.values.pixels, split.remap), split.values.read
    else:
        pixels, read = value_counts(split, MASK_COUNT_LIMIT if isinstance(split, SegFileSplit) else None)
    ignored = int(pixels[IGNORE_INDEX])
    counted = "" if read >= len(split) else f"in {read} of {len(split)} masks read"
    why = f"all {int(pixels.sum()):,} pixels read are background (0)"
    advice = "draw the objects into the masks with their class index (1, 2, ..)"
    if getattr(split, "colours", None):  # colour masks read through labelmap.txt
        advice = ("check that labelmap.txt lists every colour the masks use (a mask with an unlisted colour is "
                  "left out; `cnnkit data inspect` names the colour)")
    elif ignored:
        why = f"all {int(pixels.sum()):,} pixels read are background (0) or ignore (255: {ignored:,})"
        advice = "if 255 marks the objects, set data.mask_255=class; else " + advice
    return ClassCounts(pixels[:num_classes].clone(), "pixels", len(split), "non-background pixel", background=0,
                       counted=counted, empty_why=why, advice=advice)


@dataclass
class Fault:
    kind: str  # no-class-examples | class-not-in-train | class-without-examples
    stop: bool
    message: str


def coverage_faults(bundle: DataBundle) -> list[Fault]:
    """The coverage faults of a bundle (see the module docstring); [] when its split types have no counter."""
    info = bundle.info
    name = info.name or "the data"
    counts = {s: class_counts(bundle.split(s), info.num_classes) for s in SPLITS}
    train = counts["train"]
    if train is None or train.items == 0:  # no train split (an eval-only set): nothing to learn from
        return []
    fg = train.foreground()
    if int(fg.sum()) == 0:
        sampled = f", {train.counted}" if train.counted else ""
        return [Fault("no-class-examples", True,
                      f"The train split of {name} holds {train.items} images but not one {train.example} of any "
                      f"class ({train.empty_why}{sampled}): {train.advice}.")]
    held_out = {s: c for s, c in counts.items() if s != "train" and c is not None}
    missing = [c for c in range(info.num_classes) if c != train.background and fg[c] == 0]
    unseen = [c for c in missing if any(other.per_class[c] > 0 for other in held_out.values())]
    absent = [c for c in missing if c not in unseen]
    sampled = f" ({train.counted})" if train.counted else ""
    faults = []
    if unseen:
        where = _listed([f'"{info.classes[c]}" in ' + " and ".join(
            f"{s} ({int(o.per_class[c]):,} {o.unit})" for s, o in held_out.items() if o.per_class[c] > 0)
            for c in unseen], sep="; ")
        faults.append(Fault("class-not-in-train", False,
                            f"{name} has examples of {_a_class(unseen)} that its train split{sampled} "
                            f"never shows ({where}): a model cannot learn a class it never sees, and its score "
                            "there is zero by construction; move some of those images into train (carved splits "
                            "are drawn anew with another data.split_seed)."))
    if absent:
        names = _listed([f'"{info.classes[c]}"' for c in absent], sep=", ")
        many = len(absent) > 1
        faults.append(Fault("class-without-examples", False,
                            f"{_plural('class', absent)} {names} of {name} {'have' if many else 'has'} no example "
                            f"({train.unit}) in the train split{sampled}: the model will learn never to predict "
                            f"{'them' if many else 'it'}."))
    return faults


def _listed(items: list[str], sep: str, limit: int = 8) -> str:
    more = f"{sep}and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def _a_class(items: list) -> str:
    return "classes" if len(items) > 1 else "a class"


def _plural(word: str, items: list) -> str:
    return word + ("es" if len(items) > 1 else "")


def check_coverage(bundle: DataBundle) -> None:
    """Raise CnnkitError (all stopping faults, one sentence each) or add warnings to the bundle's notes."""
    faults = coverage_faults(bundle)
    stops = [f.message for f in faults if f.stop]
    if stops:
        raise CnnkitError(" ".join(stops))
    for f in faults:
        bundle.info.extra.setdefault("notes", {})[f"coverage:{f.kind}"] = "warning: " + f.message


def print_notes(bundle: DataBundle) -> None:
    """Each note of the bundle (reader notes, coverage warnings) as one line on stderr."""
    notes = bundle.info.extra.get("notes") or {}
    if not notes:
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False)
    for text in notes.values():
        style = "yellow" if text.startswith("warning:") else "cyan"
        console.print(Text(text if text.startswith("warning:") else "note: " + text, style=style), soft_wrap=True)


def add_coverage(report, source: str, bundle: DataBundle):
    """Add the coverage faults and notes of `bundle` (read from `source`) to a `HealthReport`;
    returns the report."""
    for f in coverage_faults(bundle):
        report.add(f.kind, source, ("stops training: " if f.stop else "") + f.message)
    notes = {k: v for k, v in (bundle.info.extra.get("notes") or {}).items()}
    if notes:
        report.counts["notes"] = {**notes, **report.counts.get("notes", {})}
    return report
