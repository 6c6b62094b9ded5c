"""idx format: MNIST-style pairs found by name, split by prefix or carved, classes.txt, corrupt files."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from cnnkit.data.formats.idx import find_idx_pairs
from cnnkit.data.sources import build_data, detect_format
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for


def write_pair(folder, prefix, images, labels, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for kind, arr, tag in (("images", images, "idx3"), ("labels", labels, "idx1")):
        data = bytes([0, 0, 8, arr.ndim]) + np.array(arr.shape, ">u4").tobytes() + arr.astype(np.uint8).tobytes()
        (folder / f"{prefix}-{kind}-{tag}-ubyte{'.gz' if gz else ''}").write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (50, 5, 7), dtype=np.uint8), np.arange(50) % 5
    xt, yt = rng.integers(0, 256, (10, 5, 7), dtype=np.uint8), np.arange(10) % 5
    write_pair(tmp_path / "m", "train", x, y, gz)
    write_pair(tmp_path / "m", "t10k", xt, yt, gz)
    assert detect_format(tmp_path / "m").name == "idx"
    b = build_data(cfg_for(tmp_path / "m"))
    assert b.info.classes == ["0", "1", "2", "3", "4"] and b.info.image_size == (5, 7)
    assert (len(b.train), len(b.val), len(b.test)) == (45, 5, 10)
    assert torch.equal(b.test.images[:, 0], torch.from_numpy(xt)) and b.test.labels.tolist() == yt.tolist()
    rebuilt = torch.cat([b.train.images, b.val.images])[:, 0]
    assert sorted(map(bytes, rebuilt.numpy())) == sorted(map(bytes, x))


def test_idx_single_pair_with_classes_txt(tmp_path):
    x, y = np.zeros((20, 4, 4), np.uint8), np.arange(20) % 2
    write_pair(tmp_path, "digits", x, y)
    (tmp_path / "classes.txt").write_text("even\nodd\n")
    b = build_data(cfg_for(tmp_path))
    assert b.info.classes == ["even", "odd"] and len(b.train) + len(b.val) + len(b.test) == 20
    (tmp_path / "classes.txt").write_text("only\n")
    with pytest.raises(CnnkitError, match="classes.txt"):
        build_data(cfg_for(tmp_path))


def test_corrupt_idx_names_the_file(tmp_path):
    write_pair(tmp_path, "train", np.zeros((4, 3, 3), np.uint8), np.zeros(4))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CnnkitError, match="train-images-idx3-ubyte is a corrupt IDX file"):
        build_data(cfg_for(tmp_path))


def test_find_idx_pairs_prefers_plain_files_and_maps_names(tmp_path):
    x, y = np.zeros((4, 3, 3), np.uint8), np.arange(4)
    for gz in (True, False):
        write_pair(tmp_path, "train", x, y, gz)
        write_pair(tmp_path, "test", x, y, gz)
    pairs = find_idx_pairs(tmp_path)
    assert set(pairs) == {"train", "test"}
    assert all(p.suffix != ".gz" for pair in pairs.values() for p in pair)
    assert find_idx_pairs(tmp_path / "train-images-idx3-ubyte") == {"train": pairs["train"]}


def test_a_small_gzip_claiming_gigabytes_fails_fast_before_decompressing(tmp_path):
    """1.3 MB of gzip whose header claims 4,000,000 x 28 x 28 (3.1 GB): refused from the header and file size."""
    import time

    rng = np.random.default_rng(0)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(bytes([0, 0, 8, 3]) + np.array([4_000_000, 28, 28], ">u4").tobytes())
        f.write(rng.integers(0, 256, 1_300_000, dtype=np.uint8).tobytes())
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([4_000_000], ">u4").tobytes() + bytes(10))
    assert (tmp_path / "train-images-idx3-ubyte.gz").stat().st_size > 1_300_000
    start = time.perf_counter()
    with pytest.raises(CnnkitError, match=r"promises 3136000000 bytes of data for shape \(4000000, 28, 28\), more "
                                          r"than a \d+-byte gzip can hold"):
        build_data(cfg_for(tmp_path))
    assert time.perf_counter() - start < 0.5


def test_the_idx_caps_hold_for_plausible_headers_too(tmp_path, monkeypatch):
    images = np.zeros((20, 4, 4), np.uint8)
    write_pair(tmp_path, "train", images, np.arange(20, dtype=np.uint8) % 2, gz=True)
    monkeypatch.setenv("CNNKIT_MAX_IDX_BYTES", "100")
    with pytest.raises(CnnkitError, match=r"holds 320 bytes of data .*CNNKIT_MAX_IDX_BYTES=N \(now 100\)"):
        build_data(cfg_for(tmp_path))
    monkeypatch.delenv("CNNKIT_MAX_IDX_BYTES")
    monkeypatch.setenv("CNNKIT_MAX_CLASSES", "1")  # labels 0 and 1 would be 2 classes
    with pytest.raises(CnnkitError, match=r"labels of .* go up to 1, which would make 2 classes"):
        build_data(cfg_for(tmp_path))
