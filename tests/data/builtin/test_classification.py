"""digits and fashion-mnist built-ins (Fashion-MNIST read from IDX files in the known places)."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from cnnkit.data.builtin import classification as builtin
from cnnkit.data.builtin.classification import FASHION_CLASSES
from cnnkit.data.registry import BUILTINS
from cnnkit.data.sources import build_data
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for


def idx_bytes(arr: np.ndarray) -> bytes:
    assert arr.dtype == np.uint8
    return bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()


def write_idx_set(folder, n_train=100, n_test=20, gz=True, prefix_test="t10k", seed=0):
    """A tiny MNIST-layout set: labels cycle 0..9, each image is filled with its own index."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), (prefix_test, n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, tag in (("images", images, "idx3"), ("labels", labels, "idx1")):
            name = f"{prefix}-{kind}-{tag}-ubyte" + (".gz" if gz else "")
            data = idx_bytes(arr)
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
        out[prefix] = (images, labels)
    return out


def test_digits_bundle():
    from sklearn.datasets import load_digits

    b = BUILTINS.get("digits")(cfg_for("digits"))
    info = b.info
    assert (info.task, info.channels, info.image_size, info.hflip_ok) == ("classify", 1, 8, False)
    assert info.classes == [str(i) for i in range(10)]
    assert len(b.train) + len(b.val) + len(b.test) == 1797
    assert b.train.images.shape[1:] == (1, 8, 8) and b.train.images.dtype == torch.uint8
    assert b.train.labels.dtype == torch.int64
    # pixel values: round(v * 255 / 16), checked against scikit-learn's own array
    d = load_digits()
    k = int(b.test.names[0][len("digits["):-1])
    expected = np.floor(d.images[k] * 255 / 16 + 0.5).astype(np.uint8)
    assert np.array_equal(b.test.images[0, 0].numpy(), expected) and int(b.test.labels[0]) == d.target[k]
    assert int(b.train.images.max()) == 255
    # stratified: every class in every split, about 10% / 20%
    for split, frac in ((b.val, 0.1), (b.test, 0.2)):
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.min() >= 1
        assert abs(len(split) / 1797 - frac) < 0.01


def test_digits_split_is_deterministic_and_seeded():
    a = BUILTINS.get("digits")(cfg_for("digits"))
    b = BUILTINS.get("digits")(cfg_for("digits"))
    c = BUILTINS.get("digits")(cfg_for("digits", split_seed=1))
    assert a.val.names == b.val.names and torch.equal(a.val.images, b.val.images)
    assert a.val.names != c.val.names
    assert set(a.train.names).isdisjoint(a.val.names) and set(a.train.names).isdisjoint(a.test.names)


@pytest.fixture
def no_system_fashion(monkeypatch, tmp_path):
    """Hide the Debian copy and any cached download, and forbid the network."""
    monkeypatch.setattr(builtin, "DEBIAN_FASHION", tmp_path / "no-debian")
    monkeypatch.setattr(builtin, "CACHE_DIR", tmp_path / "no-cache")
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")


def test_fashion_mnist_not_found_says_how_to_get_it(no_system_fashion, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CnnkitError) as err:
        build_data(cfg_for("fashion-mnist", root=str(empty)))
    assert str(err.value) == (
        "Fashion-MNIST not found: install it with `apt-get install dataset-fashion-mnist` "
        "or pass --root DIR with the IDX files."
    )


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_root(no_system_fashion, tmp_path, gz):
    written = write_idx_set(tmp_path / "fm", gz=gz)
    b = build_data(cfg_for("fashion-mnist", root=str(tmp_path / "fm"), val_fraction=0.2))
    assert b.info.classes == FASHION_CLASSES and b.info.hflip_ok and b.info.channels == 1
    assert b.info.image_size == 28
    assert (len(b.train), len(b.val), len(b.test)) == (80, 20, 20)
    assert torch.equal(b.test.images[:, 0], torch.from_numpy(written["t10k"][0]))  # official test split, in order
    assert torch.bincount(b.val.labels, minlength=10).tolist() == [2] * 10  # stratified
    assert b.train.images.dtype == torch.uint8 and b.train.labels.dtype == torch.int64


def test_fashion_mnist_torchvision_layout_and_cache(no_system_fashion, tmp_path, monkeypatch):
    write_idx_set(tmp_path / "cache" / "FashionMNIST" / "raw", gz=False)
    monkeypatch.setattr(builtin, "CACHE_DIR", tmp_path / "cache")
    b = build_data(cfg_for("fashion-mnist"))
    assert len(b.test) == 20


@pytest.mark.skipif(not builtin.DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_copy():
    b = build_data(cfg_for("fashion-mnist"))
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert b.train.images.shape[1:] == (1, 28, 28)
    assert torch.bincount(b.test.labels).tolist() == [1000] * 10
