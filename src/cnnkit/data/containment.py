"""Path containment: a file name read from inside a dataset stays inside that dataset.

COCO `file_name`, VOC `<filename>` and ImageSets ids, YOLO data.yaml `path` / split entries /
image-list lines and CSV `path` cells are joined to the dataset root and kept only when the
result lies inside it (`..` and absolute paths that leave it are refused with one sentence
naming the annotation file, the entry and the value, before the file is opened), unless the
user opts in with `--set data.allow_outside_root=true`. The check is on the normalised path
(`os.path.abspath`), not on symlink targets: a symlink placed inside the root is the owner's
own layout (a folder of links is a common way to assemble a set) and is followed. A name the
file system cannot hold (a NUL byte, a component over 255 bytes) is refused the same way, so no
reader meets an OSError or ValueError from `stat`.

Annotation files written on Windows name files with backslashes (`sub\\a.jpg`,
`C:\\Users\\me\\a.jpg`); `portable` reads them as separators before any join, so
`sub\\a.jpg` finds `sub/a.jpg` (a backslash inside a file name is legal on POSIX but no
annotation tool means one).
"""
from __future__ import annotations

import os
from pathlib import Path

from cnnkit.data.formats.box_scan import AnnotationError


def portable(name: str) -> str:
    """A file name as an annotation file wrote it, with Windows backslashes read as separators."""
    return name.replace("\\", "/")


def inside(root: str | Path, entry: str | Path, *, allow: bool, source: str | Path, what: str,
           shown: str | None = None) -> Path:
    """`root / entry`, refused with AnnotationError(source) when it resolves outside `root` and not `allow`.
    `what` names the entry in the message ("image entry 3 file_name", "row 5 path"), `shown` the value
    as the file wrote it (default: `entry`)."""
    text = str(entry)
    if "\x00" in text or len(text.encode("utf-8", "surrogateescape")) > 4096 or \
            any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in Path(text).parts):
        raise AnnotationError(source, f"{source}: {what} {(shown or repr(text))[:80]}... is not a usable file name "
                                      "(a NUL byte, a name over 255 bytes or a path over 4096); fix the entry.")
    base = os.path.abspath(root)
    full = os.path.abspath(os.path.join(base, str(entry)))
    if allow or full == base or full.startswith(base.rstrip(os.sep) + os.sep):
        return Path(root) / entry
    value = shown or repr(str(entry))
    raise AnnotationError(source, f"{source}: {what} {value} points outside the dataset folder {root}; "
                                  "cnnkit does not open it (move the file into the dataset, or allow it with "
                                  "--set data.allow_outside_root=true).")
