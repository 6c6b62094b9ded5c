"""The caps every data reader checks sizes, counts and dimensions against before allocating or decompressing.

A number read from a file (an IDX header's dimensions, a CSV's integer label, an image
header's width x height, a COCO RLE's size) is first checked against the data it describes
(an IDX body cannot be larger than its gzip can hold; an RLE must have its image's size),
then against one of these caps, so a small file can never claim gigabytes. Each cap has a
default that fits every real dataset cnnkit was tried on and is raised with an environment
variable (read at each check, so a test or a shell can change it):

    CNNKIT_MAX_CLASSES        100000       classes a reader may create from integer labels
                                           (CSV labels, IDX label files) without a classes.txt
    CNNKIT_MAX_IDX_BYTES      4294967296   decompressed body of one IDX file (4 GiB; MNIST's is 47 MB)
    CNNKIT_MAX_IMAGE_PIXELS   89478485     width x height of one image (Pillow's own
                                           decompression-bomb threshold, ~9459 x 9459)

`GZIP_MAX_RATIO` is not a cap but a fact of DEFLATE (at most ~1032 output bytes per input
byte): a gzip whose header promises more than that many times its size is refused unread.
"""
from __future__ import annotations

import os

from cnnkit.errors import CnnkitError

DEFAULTS = {"CNNKIT_MAX_CLASSES": 100_000, "CNNKIT_MAX_IDX_BYTES": 4 * 1024**3,
            "CNNKIT_MAX_IMAGE_PIXELS": 89_478_485}
GZIP_MAX_RATIO = 1100  # DEFLATE's ceiling is 1032:1; a little headroom for the gzip framing


def cap(name: str) -> int:
    """The cap `name` (a key of DEFAULTS): the environment's value when set, else the default.
    Raises CnnkitError for a value that is not a positive integer."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return DEFAULTS[name]
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise CnnkitError(f"{name}={raw!r} is not a positive integer; unset it or give a count "
                          f"(default {DEFAULTS[name]}).")
    return value


def raise_hint(name: str) -> str:
    """The clause every refusal ends with: how to raise the cap."""
    return f"if the data really is that large, raise the cap with {name}=N (now {cap(name)})"
