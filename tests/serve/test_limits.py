"""Bad uploads: each is a 4xx with a JSON error, decided before any pixel is decoded where the header
tells, and the server answers a good image normally afterwards."""
from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnkit.serve.limits import Limits, Rejected, check_filename, decode_upload
from tests.serve.conftest import AUTH, png_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = 20000) -> bytes:
    """A real decompression bomb: a gray side x side PNG of zeros, ~400 MB of pixels in ~400 KB."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row * min(500, side - y)) for y in range(0, side, 500)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb()


def _bad_cases(digit_png: bytes, bomb: bytes) -> dict:
    tiff = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tiff, "TIFF")
    return {  # name -> (request kwargs, status, words in the error)
        "empty body": ({"content": b""}, 400, "empty"),
        "non-image bytes": ({"content": b"%PDF-1.4 not an image at all" * 10}, 400, "not an image"),
        "truncated PNG": ({"content": digit_png[: len(digit_png) // 2]}, 400, "truncated"),
        "20000x20000 PNG bomb": ({"content": bomb}, 413, "pixel"),
        "animated GIF": ({"content": animated_gif()}, 400, "animated"),
        "TIFF (not on the allowlist)": ({"content": tiff.getvalue()}, 400, "TIFF"),
        "path-like filename": ({"files": [("file", ("../../etc/passwd", digit_png, "image/png"))]}, 400, "plain"),
        "backslash filename": ({"files": [("file", ("..\\boot.ini", digit_png, "image/png"))]}, 400, "plain"),
        "multipart without field 'file'": ({"files": [("image", ("a.png", digit_png, "image/png"))]}, 400, "'file'"),
        "17 files": ({"files": [("file", (f"{i}.png", digit_png, "image/png")) for i in range(17)]}, 400, "multipart"),
    }


def test_bad_inputs_are_4xx_json_and_the_server_stays_healthy(apps, digit_png, bomb):
    client = apps["classify"]
    for name, (kwargs, status, words) in _bad_cases(digit_png, bomb).items():
        start = time.perf_counter()
        r = client.post("/predict", headers=AUTH, **kwargs)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json" and words in r.json()["error"], (name, r.text)
        assert time.perf_counter() - start < 5, f"{name}: decided from the header, not by decoding"
        assert client.get("/health").status_code == 200
    good = client.post("/predict", content=digit_png, headers=AUTH)
    assert good.status_code == 200 and good.json()["results"][0]["label"] in [str(i) for i in range(10)]


@pytest.mark.parametrize("headers,word", [({}, "missing"), ({"Authorization": "Bearer nope"}, "wrong"),
                                          ({"Authorization": "Basic dGVzdA=="}, "wrong")])
def test_token_is_required_everywhere_but_health(apps, digit_png, headers, word):
    client = apps["classify"]
    for method, path in (("post", "/predict"), ("post", "/explain"), ("get", "/info"), ("get", "/metrics")):
        r = getattr(client, method)(path, headers=headers, **({"content": digit_png} if method == "post" else {}))
        assert r.status_code == 401 and word in r.json()["error"], (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/health").status_code == 200


def test_oversized_upload_is_413_from_content_length(checkpoints, digit_png):
    from fastapi.testclient import TestClient

    from cnnkit.serve import ServeSettings, create_app

    with TestClient(create_app(checkpoints["classify"], ServeSettings(limits=Limits(max_bytes=2000)),
                               device="cpu")) as client:
        big = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
        assert len(big) > 2000
        for kwargs in ({"content": big}, {"files": [("file", ("big.png", big, "image/png"))]}):
            r = client.post("/predict", **kwargs)
            assert r.status_code == 413 and "2,000-byte" in r.json()["error"]
        # A body without Content-Length (chunked) is cut off while it is read.
        r = client.post("/predict", content=iter([big[:1500], big[1500:]]))
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert client.post("/predict", content=digit_png).status_code == 200


def test_pixel_cap_is_read_from_the_header():
    small_cap = Limits(max_pixels=100)
    header_only = png_bomb(side=16)[:33 + 8 + 4]  # IHDR, then the IDAT chunk cut off after 4 bytes
    with pytest.raises(Rejected) as e:
        decode_upload(header_only, "x.png", 1, small_cap)
    assert e.value.status == 413 and "16 x 16 pixels" in e.value.message
    img = decode_upload(png_bomb(side=16), "y.png", 3, Limits())
    assert img.shape == (3, 16, 16) and int(img.max()) == 0


@pytest.mark.parametrize("name", ["a.png", "photo 1.JPG", "日本.png", ""])
def test_plain_names_pass(name):
    assert check_filename(name) == (name or "upload")


@pytest.mark.parametrize("name", ["../a.png", "/etc/passwd", "a/b.png", "C:\\x.png", "..", "a\x00.png", "a\nb.png"])
def test_path_like_names_are_refused(name):
    with pytest.raises(Rejected) as e:
        check_filename(name)
    assert e.value.status == 400
