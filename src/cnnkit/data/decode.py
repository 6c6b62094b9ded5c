"""Turning files into arrays: `read_image` (any Pillow image -> uint8 C x H x W) and `read_idx` (IDX files).

Every image that enters cnnkit goes through `read_image`, so training, predict, serve and
explain see the same pixels. It applies the EXIF orientation, then reduces every Pillow
mode to gray (`L`, 1 channel) or `RGB` (3 channels):

- alpha (RGBA, LA, palette with transparency) is composited on white, because a transparent
  background is meant to show the page behind it, and the colour stored under fully
  transparent pixels is arbitrary (often black) — dropping alpha would expose it;
- 16-bit gray (`I;16*`, and `I` with values in 0..65535) is scaled with round(v * 255 / 65535),
  not clipped, so a 16-bit scan keeps its contrast; other `I` / `F` images are min-max scaled
  (`F` already in 0..1 is multiplied by 255);
- CMYK, YCbCr, LAB, HSV and palettes go through Pillow's own conversion to RGB; 1-bit to L.

A file that cannot be decoded raises `BadImage` whose `reason` reads "<kind>: <detail>"
(kind: zero-byte, missing, not-an-image, truncated, too-large — past CNNKIT_MAX_IMAGE_PIXELS, see
`data/limits.py`, checked from the header before any pixel is decoded —, unreadable). Truncated files
are detected by forcing `img.load()`; `ImageFile.LOAD_TRUNCATED_IMAGES` is deliberately left
off, since padding a half image with gray would hand the model a wrong sample.

Which files are data is one rule too (`is_data_file`, `data_files`), used by every reader
that walks a folder and by predict and explain: hidden names (a dot first: `.ipynb_checkpoints/`,
`.DS_Store`, AppleDouble `._x.png`) and the debris of archivers and file managers
(`__MACOSX/`, `__pycache__/`, `Thumbs.db`, `desktop.ini`) are never data, anywhere below the
folder given.

Text files of annotation tools (label .txt, class lists, image lists, COCO json) are read by one
rule too (`read_text`, `text_lines`): UTF-8 whatever the locale, the byte-order mark Windows
tools (Notepad, PowerShell) put first dropped — left in, it becomes part of the first class
index or name —, and bytes that are not UTF-8 replaced, so a stray Latin-1 byte shows in a
name instead of stopping the reader.
"""
from __future__ import annotations

import contextlib
import glob
import gzip
import math
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnkit.data.limits import GZIP_MAX_RATIO, cap, raise_hint
from cnnkit.errors import CnnkitError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
# Modes whose pixels carry no colour: they decode to one channel unless 3 are asked for.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class BadImage(Exception):
    """A file that is not a usable image; `reason` is "<kind>: <detail>", `kind` its first word."""

    def __init__(self, reason: str, path: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.path = path

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


def read_text(path: str | Path) -> str:
    """The text of an annotation or list file (see the module docstring); OSError as `open` raises it."""
    return Path(path).read_bytes().decode("utf-8-sig", errors="replace")


def text_lines(path: str | Path) -> list[str]:
    """The non-blank lines of `read_text(path)`, stripped (CRLF and surrounding blanks gone)."""
    return [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


# Folder and file names that tools leave beside data (compared lower-case); dot-names are hidden too.
NOT_DATA_NAMES = frozenset({"__macosx", "__pycache__", "thumbs.db", "desktop.ini", "ehthumbs.db"})


def hidden_name(name: str) -> bool:
    """True for one path component that is never data (see the module docstring)."""
    return name.startswith(".") or name.lower() in NOT_DATA_NAMES


def is_data_file(path: str | Path, root: str | Path | None = None,
                 exts: frozenset[str] | tuple[str, ...] | None = IMAGE_EXTENSIONS) -> bool:
    """True when `path` is data: no hidden component below `root` (only its own name is judged
    when `root` is None or not above it) and, unless `exts` is None, a suffix in `exts`."""
    p = Path(path)
    try:
        parts = p.relative_to(root).parts if root is not None else (p.name,)
    except ValueError:
        parts = (p.name,)
    if any(hidden_name(part) for part in parts):
        return False
    return exts is None or p.suffix.lower() in exts


def data_files(folder: str | Path, exts: frozenset[str] | tuple[str, ...] | None = IMAGE_EXTENSIONS,
               recursive: bool = True) -> list[Path]:
    """The data files under `folder` (`is_data_file`), in walk order: a folder's own files sorted
    by name, then each visible subfolder (sorted) in turn; hidden folders are not entered.
    Symlinked folders are not followed. [] for a folder that does not exist."""
    out: list[Path] = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not hidden_name(d)) if recursive else []
        out += [Path(top, f) for f in sorted(files)
                if not hidden_name(f) and (exts is None or Path(f).suffix.lower() in exts)]
    return out


def glob_data_files(pattern: str) -> list[str]:
    """Sorted matches of a glob (`**` recursive) that are data: no hidden part below the folder
    the pattern names before its first wildcard (so `~/.cache/x/*.png` itself is fine)."""
    fixed = pattern[:min((i for i, ch in enumerate(pattern) if ch in "*?["), default=len(pattern))]
    root = os.path.dirname(fixed) or "."
    return sorted(m for m in glob.glob(pattern, recursive=True) if is_data_file(m, root, exts=None))


def read_image(path: str | Path | BinaryIO, channels: int | None = None) -> torch.Tensor:
    """Decode `path` to a uint8 tensor C x H x W; C = `channels` (1 or 3), or 1 for gray-like
    images and 3 otherwise when `channels` is None. Raises `BadImage` for unusable files."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    with _opened(path) as img:
        img.load()
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - a malformed EXIF block should not cost a decodable image
            pass
        arr = pil_to_uint8(img, channels)
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def probe_image(path: str | Path) -> tuple[bool, tuple[int, int]]:
    """(gray-like?, (H, W) after EXIF rotation) from the file header only, without decoding pixels.
    Catches zero-byte, missing and non-image files; truncation shows only in `read_image`."""
    with _opened(path) as img:
        w, h = img.size
        try:
            if img.getexif().get(0x0112) in (5, 6, 7, 8):  # orientations that swap width and height
                w, h = h, w
        except Exception:  # noqa: BLE001 - unreadable EXIF: the size before rotation is still a good guess
            pass
        return img.mode in GRAY_MODES, (h, w)


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file (1 = as stored; 5-8 swap width and height), 1 when unreadable."""
    try:
        with _opened(path) as img:
            value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - only ever used to explain a size; a bad file is reported elsewhere
        return 1
    return value if isinstance(value, int) else 1


@contextlib.contextmanager
def _opened(path: str | Path | BinaryIO) -> Iterator[Image.Image]:
    """Open with Pillow; every failure inside the block becomes a `BadImage` naming its kind."""
    name = str(path) if isinstance(path, (str, Path)) else getattr(path, "name", "<stream>")
    if isinstance(path, (str, Path)):
        try:
            if os.stat(path).st_size == 0:
                raise BadImage("zero-byte: the file is empty", name)
        except FileNotFoundError:
            raise BadImage("missing: file not found", name) from None
        except OSError as e:
            raise BadImage(f"unreadable: {e.strerror or e}", name) from None
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the cap below decides, with one sentence
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            _check_pixels(img, name)
            yield img
    except (BadImage, CnnkitError):
        raise
    except UnidentifiedImageError:
        if isinstance(path, (str, Path)) and _looks_like_image(path):
            raise BadImage("truncated: the file starts like an image but its header is cut off or corrupt",
                           name) from None
        raise BadImage("not-an-image: Pillow cannot identify the file format", name) from None
    except Image.DecompressionBombError as e:  # past twice Pillow's own limit, which a raised cap cannot lift
        raise BadImage(f"too-large: {e} (Pillow's PIL.Image.MAX_IMAGE_PIXELS)", name) from None
    except OSError as e:
        text = str(e)
        low = text.lower()
        kind = "truncated" if "truncated" in low or "broken data stream" in low else "unreadable"
        raise BadImage(f"{kind}: {text}", name) from None
    except Exception as e:  # noqa: BLE001 - plugins raise SyntaxError/ValueError/struct.error on broken data
        raise BadImage(f"unreadable: {type(e).__name__}: {e}", name) from None


def _check_pixels(img: Image.Image, name: str) -> None:
    """BadImage "too-large" for an image past CNNKIT_MAX_IMAGE_PIXELS, before any pixel is decoded."""
    w, h = img.size
    if w * h > cap("CNNKIT_MAX_IMAGE_PIXELS"):
        raise BadImage(f"too-large: {w}x{h} = {w * h} pixels is more than the cap on one image; "
                       f"{raise_hint('CNNKIT_MAX_IMAGE_PIXELS')}", name)


# First bytes of the common formats: tells a cut-off image from a file that never was one.
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def _looks_like_image(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(_SIGNATURES)


def pil_to_uint8(img: Image.Image, channels: int | None) -> np.ndarray:
    """H x W (gray) or H x W x 3 (RGB) uint8 array for any Pillow mode (16-bit scaled, alpha on white, CMYK
    converted); `channels` 1 or 3 forces gray or RGB. Used by the file reader and for in-memory PIL images."""
    mode = img.mode
    gray = mode in GRAY_MODES
    if mode in ("I", "F") or mode.startswith("I;16"):
        out = _scale_high_depth(np.asarray(img))
    elif mode in ("LA", "La"):
        out = _on_white(np.asarray(img.convert("LA")))
    elif mode == "1":
        out = np.asarray(img.convert("L"))
    elif mode == "L":
        out = np.asarray(img)
    elif mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        out = _on_white(np.asarray(img.convert("RGBA")))
    elif mode == "RGB":
        out = np.asarray(img)
    else:  # P, CMYK, YCbCr, LAB, HSV, ...
        out = np.asarray(img.convert("RGB"))
    want = channels or (1 if gray else 3)
    if want == 3 and out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    elif want == 1 and out.ndim == 3:
        out = np.asarray(Image.fromarray(out, "RGB").convert("L"))  # ITU-R 601 luma, as Pillow does
    out = np.ascontiguousarray(out, dtype=np.uint8)
    return out if out.flags.writeable else out.copy()  # Pillow's buffers are read-only; torch wants to own one


def _scale_high_depth(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "u" or (a.dtype.kind == "i" and a.size and a.min() >= 0 and a.max() <= 65535):
        # 16-bit data: round(v * 255 / 65535) in integers (0 -> 0, 257 -> 1, 65535 -> 255)
        return ((a.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    is_float = a.dtype.kind == "f"
    a = a.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if is_float and lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _on_white(a: np.ndarray) -> np.ndarray:
    """Composite the last (alpha) channel over white; returns gray (H x W) or RGB."""
    color = a[..., :-1].astype(np.float32)
    alpha = a[..., -1:].astype(np.float32) / 255.0
    out = np.rint(color * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


# ----- IDX (the MNIST / Fashion-MNIST file format) ----------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a writable array; CnnkitError naming the file if corrupt.

    The header (magic, dimensions) is read and checked first — against the file's size (a gzip
    holds at most `limits.GZIP_MAX_RATIO` times its size) and against the cap
    CNNKIT_MAX_IDX_BYTES — and only then is the body read, streamed into a buffer of exactly
    the size the header promises, so a small file claiming gigabytes is refused in milliseconds."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            shape, dtype, header = _idx_header(f, path)
            expected = math.prod(shape) * dtype.itemsize
            _check_idx_size(path, shape, expected, size, header)
            data = bytearray(expected)  # writable: torch.from_numpy warns on read-only buffers
            got = _read_into(f, data)
            extra = len(f.read(1)) if got == expected else 0
    except (OSError, EOFError, zlib.error) as e:
        raise CnnkitError(f"Cannot read the IDX file {path} ({e}): replace it with a fresh copy.") from None
    if got != expected or extra:
        held = f"{got}" if got != expected else f"more than {expected}"
        raise CnnkitError(
            f"{path} is a corrupt IDX file: its header promises {expected} bytes of data for shape {shape} "
            f"but it holds {held}; replace it with a fresh copy."
        )
    arr = np.frombuffer(data, dtype).reshape(shape)
    return arr if dtype.byteorder in ("=", "|") else arr.astype(dtype.newbyteorder("="))


def _read_into(f: BinaryIO, buf: bytearray) -> int:
    """Fill `buf` from `f` in chunks (a gzip stream returns short reads); the bytes read."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = f.readinto(view[got:got + (1 << 24)])
        if not n:
            break
        got += n
    return got


def _idx_header(f: BinaryIO, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) from the first bytes of an open IDX stream."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise CnnkitError(f"{path} is not an IDX file (bad magic number): replace it with a fresh copy.")
    ndim = magic[3]
    dims = f.read(4 * ndim)
    if ndim == 0 or len(dims) < 4 * ndim:
        raise CnnkitError(f"{path} is a corrupt IDX file (short header): replace it with a fresh copy.")
    shape = tuple(int(d) for d in np.frombuffer(dims, ">u4"))
    return shape, np.dtype(_IDX_TYPES[magic[2]]), 4 + 4 * ndim


def _check_idx_size(path: Path, shape: tuple[int, ...], expected: int, size: int, header: int) -> None:
    """Refuse a header whose promised body the file cannot hold, or that is past CNNKIT_MAX_IDX_BYTES."""
    if path.suffix == ".gz" and expected > GZIP_MAX_RATIO * size:
        raise CnnkitError(
            f"{path} is a corrupt IDX file: its header promises {expected} bytes of data for shape {shape}, "
            f"more than a {size}-byte gzip can hold; replace it with a fresh copy."
        )
    if path.suffix != ".gz" and expected != size - header:
        raise CnnkitError(
            f"{path} is a corrupt IDX file: its header promises {expected} bytes of data for shape {shape} "
            f"but it holds {size - header}; replace it with a fresh copy."
        )
    if expected > cap("CNNKIT_MAX_IDX_BYTES"):
        raise CnnkitError(f"{path} holds {expected} bytes of data (shape {shape}), more than the cap on one IDX "
                          f"file; {raise_hint('CNNKIT_MAX_IDX_BYTES')}.")
