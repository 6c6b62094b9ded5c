"""What an upload must be before the server decodes it: size, format, pixels, one frame, a plain name.

Every check that can be made from the bytes' header is made before any pixel is decoded, so a
decompression bomb (a small PNG declaring 20000 x 20000 pixels) costs a header read, not gigabytes:
Pillow's `Image.open` parses only the header, and its own bomb guard (which fires above twice
`Image.MAX_IMAGE_PIXELS`) is reported the same way as ours. Only formats on `FORMATS` are decoded;
the decoding itself is the project's (`cnnkit.data.decode.read_image`), so an upload becomes the
same uint8 tensor as the same file given to `cnnkit predict`.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import torch
from PIL import Image, UnidentifiedImageError

# Pillow format names accepted; everything else (TIFF, PSD, EPS, SVG, ...) is refused before decoding.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
_NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,255}$")


class Rejected(Exception):
    """A request the server answers with `status` and the JSON body {"error": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024  # one request's body (all its files together), bytes
    max_pixels: int = 25_000_000  # width x height of one image, read from its header
    max_files: int = 16  # images in one request
    formats: tuple[str, ...] = FORMATS


def check_filename(name: str | None) -> str:
    """A client's file name is only echoed back, never used to open anything; still, a name with a
    path separator, '..' or control characters is refused (400) rather than repeated."""
    if name is None or name == "":
        return "upload"
    if not _NAME.match(name) or name in (".", "..") or name.startswith(".."):
        raise Rejected(400, f"File name {name[:80]!r} is not a plain file name: send the name without any "
                            "folder part ('/', '\\', '..') or control characters.")
    return name


def decode_upload(data: bytes, name: str, channels: int, limits: Limits) -> torch.Tensor:
    """Bytes of one uploaded image -> uint8 C x H x W with `channels` channels.

    Raises `Rejected`: 400 for an empty body, bytes that are no image, a format off the allowlist,
    an animated image or a truncated / corrupt file; 413 for more bytes or pixels than `limits` allow.
    """
    check_upload(data, name, limits)
    return decode_checked(data, name, channels)


def decode_checked(data: bytes, name: str, channels: int) -> torch.Tensor:
    """The decoding half of `decode_upload`, for bytes `check_upload` has passed. Raises `Rejected`
    (400) for a truncated or corrupt image."""
    from cnnkit.data.decode import BadImage, read_image

    try:
        return read_image(io.BytesIO(data), channels)
    except BadImage as e:
        raise Rejected(400, f"{name}: cannot decode the image ({e.reason}).") from None


def check_upload(data: bytes, name: str, limits: Limits) -> int:
    """Every check `decode_upload` makes from the header alone; returns the image's pixels (w x h).
    Raises `Rejected` as `decode_upload` does."""
    if not data:
        raise Rejected(400, f"{name}: the upload is empty; send the image's bytes.")
    if len(data) > limits.max_bytes:
        raise Rejected(413, f"{name}: {len(data):,} bytes is over the {limits.max_bytes:,}-byte upload limit.")
    try:
        with Image.open(io.BytesIO(data)) as img:  # header only
            fmt, (w, h) = img.format, img.size
            if fmt not in limits.formats:
                raise Rejected(400, f"{name}: {fmt} images are not accepted; send one of "
                                    f"{', '.join(limits.formats)}.")
            if w * h > limits.max_pixels:
                raise Rejected(413, f"{name}: {w} x {h} pixels is over the {limits.max_pixels:,}-pixel limit; "
                                    "send a smaller image.")
            if getattr(img, "is_animated", False):
                raise Rejected(400, f"{name}: animated {fmt} images are not accepted; send a single frame.")
    except Image.DecompressionBombError:
        raise Rejected(413, f"{name}: the image declares more pixels than the {limits.max_pixels:,}-pixel "
                            "limit; send a smaller image.") from None
    except UnidentifiedImageError:
        raise Rejected(400, f"{name}: the bytes are not an image in a known format; send one of "
                            f"{', '.join(limits.formats)}.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise Rejected(400, f"{name}: the image header is corrupt ({str(e)[:120]}).") from None
    return w * h
