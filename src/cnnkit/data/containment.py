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
annotation tool means one). A path written on another machine (a drive letter `C:\\...`, `D:/...`,
or a UNC share `\\\\server\\share\\...`) names a file of that machine: `elsewhere` tells it, and
`trailing` looks it up inside the set by the longest trailing part of it that exists under the folder it
would be joined to (`images/train/a.png`, else `train/a.png`, else `a.png`); `elsewhere_note` is the one
note a reader adds when it read such paths. Absolute POSIX paths are not "elsewhere": `inside` refuses them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from cnnkit.data.formats.box_scan import AnnotationError


def portable(name: str) -> str:
    """A file name as an annotation file wrote it, with Windows backslashes read as separators."""
    return name.replace("\\", "/")


def elsewhere(name: str) -> bool:
    """True when `name` (as the annotation file wrote it) is a path of another machine: a Windows drive
    letter (`C:\\...`, `C:/...`) or a UNC share (`\\\\server\\share\\...`)."""
    return bool(re.match(r"[A-Za-z]:[\\/]", name)) or name.startswith("\\\\")


def trailing(folder: str | Path, name: str) -> str | None:
    """For a path of another machine (`elsewhere`): the longest trailing part of it, with `/` separators,
    that names a file under `folder`; None when no part does. Parts holding `..` or `.` are not tried."""
    parts = [p for p in portable(name).split("/") if p][1:]  # without the drive letter or server
    for k in range(len(parts)):
        rest = parts[k:]
        if any(p in (".", "..") for p in rest):
            continue
        if os.path.isfile(os.path.join(folder, *rest)):
            return "/".join(rest)
    return None


def elsewhere_note(read: list[tuple[str, str]]) -> dict[str, str]:
    """The note for the (path as written, trailing part read) pairs a reader looked up with `trailing`."""
    if not read:
        return {}
    written, found = read[0]
    return {"paths:elsewhere": f"read {len(read)} image paths written on another machine (a drive letter or "
                               f"\\\\server share) by their trailing part inside the set (first: {written!r} as "
                               f"{found})"}


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
