"""CVAT / Datumaro `labelmap.txt`: the colour of each class in RGB segmentation masks.

CVAT's "Segmentation mask 1.1" export (VOC layout: JPEGImages/, SegmentationClass/) saves each
mask as an RGB picture, one colour per class, and lists the colours beside it:

    # label:color_rgb:parts:actions
    background:0,0,0::
    cat:250,50,83::

Line k (comments left out) is class k, so with its "background" first the class indices are
VOC's (0 = background); a "background" line further down is moved to index 0, the others keep
their order. `read_mask(path, colours)` turns the mask's colours into those indices.
"""
from __future__ import annotations

from pathlib import Path

from cnnkit.data.decode import text_lines
from cnnkit.errors import CnnkitError

FILE = "labelmap.txt"

Colours = dict[tuple[int, int, int], int]  # (r, g, b) -> class index


def read_labelmap(root: Path) -> tuple[list[str], Colours] | None:
    """(class names, colour -> class index) from ROOT/labelmap.txt, or None without one; CnnkitError
    (one sentence naming the file and line) for a line without a `name:r,g,b` or with a repeated colour."""
    path = root / FILE
    if not path.is_file():
        return None
    names: list[str] = []
    colours: Colours = {}
    for n, line in enumerate(text_lines(path), start=1):
        if line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        parts = rest.split(":", 1)[0].split(",")
        try:
            rgb = tuple(int(v) for v in parts)
        except ValueError:
            rgb = ()
        if not name.strip() or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise CnnkitError(f"{path}: line {n} ({line.strip()!r}) is not 'name:r,g,b::' with r, g, b in 0..255; "
                              "fix it.")
        if rgb in colours:
            raise CnnkitError(f"{path}: line {n} gives {name.strip()} the colour {','.join(map(str, rgb))} of "
                              f"{names[colours[rgb]]}; give every class its own colour.")
        colours[rgb] = len(names)
        names.append(name.strip())
    if not names:
        raise CnnkitError(f"{path} lists no classes: write one 'name:r,g,b::' line per class (background first).")
    lowered = [n.lower() for n in names]
    if "background" in lowered[1:] and lowered[0] != "background":
        # class 0 is background everywhere in cnnkit (metrics, health checks, overlays): a hand-edited
        # labelmap that lists it later keeps its colours, with background moved to index 0
        k = lowered.index("background")
        order = [k] + [i for i in range(len(names)) if i != k]
        names = [names[i] for i in order]
        colours = {rgb: order.index(i) for rgb, i in colours.items()}
    return names, colours
