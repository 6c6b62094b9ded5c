"""read_image: every Pillow mode to L/RGB uint8, EXIF rotation, bad files; read_idx: IDX parsing;
which files are data (one rule for training, predict and explain)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.decode import BadImage, data_files, glob_data_files, is_data_file, probe_image, read_idx, read_image
from cnnkit.errors import CnnkitError

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                [[10, 20, 30], [200, 100, 50], [255, 255, 255]]], dtype=np.uint8)  # H=2, W=3


def save(tmp_path, img: Image.Image, name: str, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_rgb_is_exact_and_chw(tmp_path):
    t = read_image(save(tmp_path, Image.fromarray(RGB), "a.png"))
    assert t.dtype == torch.uint8 and t.shape == (3, 2, 3)
    assert torch.equal(t, torch.from_numpy(RGB).permute(2, 0, 1))


def test_gray_keeps_one_channel_and_expands_on_request(tmp_path):
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    path = save(tmp_path, Image.fromarray(gray), "g.png")
    assert torch.equal(read_image(path), torch.from_numpy(gray)[None])
    three = read_image(path, channels=3)
    assert three.shape == (3, 2, 3) and all(torch.equal(three[i], three[0]) for i in range(3))


def test_rgb_to_one_channel_is_pillow_luma(tmp_path):
    img = Image.fromarray(RGB)
    t = read_image(save(tmp_path, img, "a.png"), channels=1)
    assert torch.equal(t[0], torch.from_numpy(np.array(img.convert("L"))))


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = [0, 0, 0, 0]  # fully transparent black -> white
    rgba[0, 1] = [0, 0, 0, 255]  # opaque black stays black
    rgba[0, 2] = [0, 0, 0, 128]  # half transparent -> mid gray: 255 * (1 - 128/255) = 127
    t = read_image(save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"))
    assert t.shape == (3, 1, 3)
    assert t[:, 0, 0].tolist() == [255] * 3 and t[:, 0, 1].tolist() == [0] * 3 and t[:, 0, 2].tolist() == [127] * 3


def test_la_is_gray_composited_on_white(tmp_path):
    la = np.array([[[0, 0], [50, 255]]], np.uint8)
    t = read_image(save(tmp_path, Image.fromarray(la, "LA"), "a.png"))
    assert t.shape == (1, 1, 2) and t[0, 0].tolist() == [255, 50]


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    t = read_image(save(tmp_path, pal, "p.png"))
    assert t.shape == (3, 2, 3) and torch.equal(t, torch.from_numpy(np.array(pal.convert("RGB"))).permute(2, 0, 1))
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((1, 0), 1)
    t = read_image(save(tmp_path, p, "t.png", transparency=0))  # index 0 transparent -> white
    assert t[:, 0, 0].tolist() == [255, 255, 255] and t[:, 0, 1].tolist() == [255, 0, 0]


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535, 128, 129]], np.uint16)
    path = save(tmp_path, Image.fromarray(values), "g16.png")
    assert Image.open(path).mode.startswith("I;16")
    t = read_image(path)
    assert t.shape == (1, 1, 6) and t[0, 0].tolist() == [0, 1, 128, 255, 0, 1]  # round(v / 257)


def test_32_bit_and_float_images_are_min_max_scaled(tmp_path):
    big = np.array([[-100, 0, 100000]], np.int32)
    assert read_image(save(tmp_path, Image.fromarray(big, "I"), "i.tif"))[0, 0].tolist() == [0, 0, 255]
    unit = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert read_image(save(tmp_path, Image.fromarray(unit, "F"), "f.tif"))[0, 0].tolist() == [0, 128, 255]


def test_cmyk_and_one_bit(tmp_path):
    cmyk = Image.fromarray(RGB).convert("CMYK")
    t = read_image(save(tmp_path, cmyk, "c.tif"))
    assert t.shape == (3, 2, 3) and torch.equal(t, torch.from_numpy(np.array(cmyk.convert("RGB"))).permute(2, 0, 1))
    bits = Image.fromarray(np.array([[0, 255, 0]], np.uint8)).convert("1")
    assert read_image(save(tmp_path, bits, "b.png"))[0, 0].tolist() == [0, 255, 0]


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_exif_orientation_is_applied(tmp_path, ext):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be turned 90 degrees clockwise for display
    img = np.zeros((2, 4, 3), np.uint8)
    img[0, 0] = 255
    path = save(tmp_path, Image.fromarray(img), f"e.{ext}", exif=exif)
    t = read_image(path)
    assert t.shape == (3, 4, 2)
    assert probe_image(path) == (False, (4, 2))
    if ext == "png":  # lossless: the top-left pixel moved to the top-right
        assert t[:, 0, 1].tolist() == [255] * 3 and t[:, 0, 0].tolist() == [0] * 3


def test_bad_files_raise_bad_image_with_kind(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image at all")
    good = save(tmp_path, Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "g.png")
    for ext in ("png", "jpg"):
        src = save(tmp_path, Image.open(good).convert("RGB"), f"full.{ext}")
        data = src.read_bytes()
        (tmp_path / f"trunc.{ext}").write_bytes(data[: len(data) // 2])
    (tmp_path / "head.png").write_bytes((tmp_path / "full.png").read_bytes()[:20])  # cut inside the header
    expected = {"zero.png": "zero-byte", "text.png": "not-an-image", "missing.png": "missing",
                "trunc.png": "truncated", "trunc.jpg": "truncated", "head.png": "truncated"}
    for name, kind in expected.items():
        with pytest.raises(BadImage) as err:
            read_image(tmp_path / name)
        assert err.value.kind == kind and err.value.reason.startswith(kind + ":")


def test_probe_reads_header_only(tmp_path):
    path = save(tmp_path, Image.fromarray(RGB), "a.png")
    assert probe_image(path) == (False, (2, 3))
    with pytest.raises(BadImage):
        probe_image(tmp_path / "nope.png")


# ----- IDX -----------------------------------------------------------------------------------
def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    dt = np.dtype(arr.dtype).newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    head = bytes([0, 0, codes[np.dtype(dt)], arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return head + arr.astype(dt).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    raw = idx_bytes(images)
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(path)
    assert out.dtype == np.uint8 and np.array_equal(out, images) and out.flags.writeable
    ints = np.array([1, -2, 300000], np.int32)
    (tmp_path / "i").write_bytes(idx_bytes(ints.astype(">i4")))
    assert read_idx(tmp_path / "i").tolist() == ints.tolist()


def test_corrupt_idx_names_the_file(tmp_path):
    raw = idx_bytes(np.zeros((4, 2, 2), np.uint8))
    cases = {"short": raw[:-1], "magic": b"\x01\x02" + raw[2:], "tiny": b"\x00", "gz.gz": b"not gzip"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CnnkitError, match=name):
            read_idx(tmp_path / name)


# ---- which files are data -----------------------------------------------------------------------
def with_tool_debris(folder, value=0):
    """folder/a.png plus the copies notebooks, macOS archives, Windows and dot-files leave beside it."""
    from .conftest import png

    png(folder / "a.png", value=value)
    png(folder / ".ipynb_checkpoints" / "a-checkpoint.png", value=value)
    png(folder / "__MACOSX" / "._a.png", value=value)
    png(folder / ".hidden.png", value=value)
    png(folder / "._a.png", value=value)
    (folder / "Thumbs.db").write_bytes(b"x")
    (folder / "desktop.ini").write_text("[.ShellClassInfo]")
    return folder


def test_one_rule_names_the_data_files_of_a_folder(tmp_path):
    root = with_tool_debris(tmp_path / "d")
    from .conftest import png

    png(root / "sub" / "b.png")
    png(root / "sub" / ".DS_Store.png")
    assert data_files(root) == [root / "a.png", root / "sub" / "b.png"]
    assert data_files(root, recursive=False) == [root / "a.png"]
    assert is_data_file(root / "a.png", root) and not is_data_file(root / "__MACOSX" / "x.png", root)
    assert is_data_file(tmp_path / ".cache" / "a.png", tmp_path / ".cache")  # only parts below the folder given
    assert not is_data_file(root / "notes.txt") and is_data_file(root / "notes.txt", exts=None)
    assert glob_data_files(str(root / "**" / "*.png")) == [str(root / "a.png"), str(root / "sub" / "b.png")]


def test_predict_explain_and_training_see_the_same_files(tmp_path, digits_run):
    import cnnkit
    from cnnkit.data.sources import build_data
    from cnnkit.explain.subject import read_images

    from .conftest import cfg_for, png

    folder = with_tool_debris(tmp_path / "in")
    records = cnnkit.load(digits_run.best).predict([str(folder)])
    assert [r["file"] for r in records] == [str(folder / "a.png")]
    assert [name for name, _ in read_images([str(folder)], 1)] == [str(folder / "a.png")]
    for cls, value in (("cat", 0), ("dog", 90)):
        with_tool_debris(tmp_path / "set" / cls, value)
        for i in range(1, 5):
            png(tmp_path / "set" / cls / f"{i}.png", value=value + i)
            png(tmp_path / "set" / cls / "__MACOSX" / f"._{i}.png", value=value + i)
    b = build_data(cfg_for(tmp_path / "set"))
    names = sorted(b.train.names + b.val.names + b.test.names)
    assert not b.info.bad_files and names == sorted(str(p) for p in data_files(tmp_path / "set"))
    assert len(names) == 10


def test_an_image_past_the_pixel_cap_is_refused_from_its_header(tmp_path, monkeypatch, recwarn):
    """A decompression bomb is a BadImage "too-large" naming the cap, never Pillow's warning or error."""
    path = save(tmp_path, Image.new("L", (300, 200)), "big.png")
    monkeypatch.setenv("CNNKIT_MAX_IMAGE_PIXELS", "50000")
    for read in (read_image, probe_image):
        with pytest.raises(BadImage) as err:
            read(path)
        assert err.value.kind == "too-large"
        assert "300x200 = 60000 pixels" in err.value.reason
        assert "CNNKIT_MAX_IMAGE_PIXELS=N (now 50000)" in err.value.reason
    monkeypatch.setenv("CNNKIT_MAX_IMAGE_PIXELS", "60000")
    assert read_image(path).shape == (1, 200, 300)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 9_500)).save(bomb)  # 95 Mpx, 12 kB: past Pillow's warning threshold
    monkeypatch.delenv("CNNKIT_MAX_IMAGE_PIXELS")
    with pytest.raises(BadImage, match="too-large: 10000x9500"):
        probe_image(bomb)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_bad_cap_value_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNKIT_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(CnnkitError, match=r"CNNKIT_MAX_IMAGE_PIXELS='lots' is not a positive integer"):
        probe_image(save(tmp_path, Image.new("L", (4, 4)), "a.png"))
