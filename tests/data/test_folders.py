"""class-folders, csv and idx formats: layouts, bad files and max_bad, the health report, the folders writer."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.config import Config
from cnnkit.data import folders
from cnnkit.data.base import FileSplit, TensorSplit
from cnnkit.data.commands import inspect, make
from cnnkit.data.sources import build_data, detect_format
from cnnkit.errors import CnnkitError


def png(path, value=0, size=(8, 8), mode="L"):
    """An image whose pixels all equal `value` (so content identifies the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)
    return path


def class_tree(root, classes=("cat", "dog", "owl"), per_class=10, mode="L", size=(8, 8)):
    for c, name in enumerate(classes):
        for i in range(per_class):
            png(root / name / f"{i}.png", value=c * 50 + i, size=size, mode=mode)
    return root


def cfg_for(path, **data):
    cfg = Config()
    cfg.data.name = str(path)
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg


def test_plain_class_folders_are_split_by_seed(tmp_path):
    root = class_tree(tmp_path / "d")
    (root / "cat" / "notes.txt").write_text("ignored: not an image extension")
    (root / "cat" / ".hidden.png").write_bytes(b"")  # hidden: ignored, not reported
    (root / ".ipynb_checkpoints").mkdir()
    b = build_data(cfg_for(root))
    assert detect_format(root).name == "class-folders"
    assert b.info.classes == ["cat", "dog", "owl"] and b.info.channels == 1 and b.info.image_size == 8
    assert (len(b.train), len(b.val), len(b.test)) == (21, 3, 6)  # per class 7 / 1 / 2
    assert isinstance(b.train, TensorSplit) and b.train.images.shape[1:] == (1, 8, 8)
    assert b.info.bad_files == []
    # labels follow the folder: the pixel value encodes class * 50 + i
    assert torch.equal(b.train.labels, (b.train.images[:, 0, 0, 0].long() // 50))
    again = build_data(cfg_for(root))
    assert again.val.names == b.val.names


def test_mixed_modes_and_sizes_go_to_rgb_and_the_common_size(tmp_path):
    root = class_tree(tmp_path / "d", per_class=4, size=(10, 6))
    png(root / "cat" / "color.png", value=200, size=(12, 12), mode="RGB")
    b = build_data(cfg_for(root))
    assert b.info.channels == 3 and b.info.extra["size"] == (6, 10) and b.info.image_size == (6, 10)
    assert b.info.extra["sizes_seen"] == {"10x6": 12, "12x12": 1}
    resized = build_data(cfg_for(root, image_size=5))
    assert resized.train.images.shape[1:] == (3, 5, 5) and resized.info.image_size == 5


def test_big_images_fall_back_to_64(tmp_path):
    root = class_tree(tmp_path / "d", classes=("a", "b"), per_class=3, size=(300, 280))
    b = build_data(cfg_for(root))
    assert b.info.extra["size"] == (64, 64)
    assert b.train.images.shape[1:] == (1, 64, 64)


def test_given_splits_are_used_and_missing_val_is_carved(tmp_path):
    class_tree(tmp_path / "d" / "train", per_class=10)
    class_tree(tmp_path / "d" / "test", per_class=2)
    b = build_data(cfg_for(tmp_path / "d"))
    assert (len(b.train), len(b.val), len(b.test)) == (27, 3, 6)
    assert all("/test/" in n for n in b.test.names)
    class_tree(tmp_path / "d" / "val", classes=("cat", "dog"), per_class=1)  # val may lack a class
    b = build_data(cfg_for(tmp_path / "d"))
    assert (len(b.train), len(b.val), len(b.test)) == (30, 2, 6)


def test_structure_errors_name_the_folder(tmp_path):
    class_tree(tmp_path / "a" / "train", classes=("cat",), per_class=3)
    class_tree(tmp_path / "a" / "val", classes=("cat", "emu"), per_class=1)
    with pytest.raises(CnnkitError, match=r"val/emu has no counterpart"):
        build_data(cfg_for(tmp_path / "a"))
    root = class_tree(tmp_path / "b", classes=("cat", "dog"), per_class=3)
    (root / "empty").mkdir()
    with pytest.raises(CnnkitError, match=r"b/empty holds no images"):
        build_data(cfg_for(root))


def test_bad_files_below_max_bad_are_listed_and_above_it_stop(tmp_path):
    root = class_tree(tmp_path / "d", per_class=10)
    (root / "dog" / "zero.png").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(noise).save(root / "owl" / "full.png")
    data = (root / "owl" / "full.png").read_bytes()
    (root / "owl" / "full.png").unlink()
    (root / "owl" / "trunc.png").write_bytes(data[: len(data) // 2])  # header fine, pixel data cut
    b = build_data(cfg_for(root, max_bad=2))
    reasons = {f.path.split("/")[-1]: f.reason.split(":")[0] for f in b.info.bad_files}
    assert reasons == {"zero.png": "zero-byte", "trunc.png": "truncated"}
    assert len(b.train) + len(b.val) + len(b.test) == 30
    with pytest.raises(CnnkitError) as err:
        build_data(cfg_for(root, max_bad=0.05))  # 2 of 32 > 5%
    msg = str(err.value)
    assert "2 of 32 files" in msg and "zero.png" in msg and "--set data.max_bad=2" in msg


def test_streaming_split_keeps_paths(tmp_path):
    root = class_tree(tmp_path / "d", per_class=4)
    b = build_data(cfg_for(root, in_memory="no"))
    assert isinstance(b.train, FileSplit) and all(p.endswith(".png") for p in b.train.paths)
    assert b.info.extra["size"] == (8, 8) and b.info.channels == 1 and not b.info.extra["in_memory"]


# ----- csv -----------------------------------------------------------------------------------
def test_csv_with_names_and_missing_file(tmp_path):
    for i in range(6):
        png(tmp_path / "img" / f"a{i}.png", 10)
        png(tmp_path / "img" / f"b{i}.png", 200)
    rows = [f"img/a{i}.png,apple" for i in range(6)] + [f"img/b{i}.png,banana" for i in range(6)]
    rows.append("img/gone.png,apple")
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    assert detect_format(tmp_path / "labels.csv").name == "csv"
    b = build_data(cfg_for(tmp_path / "labels.csv", max_bad=1))
    assert b.info.classes == ["apple", "banana"]
    assert [f.reason.split(":")[0] for f in b.info.bad_files] == ["missing"]
    assert "gone.png" in b.info.bad_files[0].path
    for s in (b.train, b.val, b.test):
        assert torch.equal(s.labels, (s.images[:, 0, 0, 0] == 200).long())
    with pytest.raises(CnnkitError, match="1 of 13 files"):
        build_data(cfg_for(tmp_path / "labels.csv", max_bad=0))


def test_csv_label_checked_against_classes_txt(tmp_path):
    png(tmp_path / "x.png")
    (tmp_path / "classes.txt").write_text("zero\none\n")
    (tmp_path / "d.csv").write_text("path,label\nx.png,one\nx.png,1\nx.png,two\n")
    with pytest.raises(CnnkitError, match=r'row 4 has the label "two"'):
        build_data(cfg_for(tmp_path / "d.csv"))


def test_csv_int_labels_and_split_column(tmp_path):
    lines = ["path,label,split"]
    for i in range(12):
        png(tmp_path / f"{i}.png", i)
        lines.append(f"{i}.png,{i % 3},{'test' if i < 3 else ''}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    b = build_data(cfg_for(tmp_path / "d.csv"))
    assert b.info.classes == ["0", "1", "2"] and len(b.test) == 3 and len(b.val) == 3


# ----- idx -----------------------------------------------------------------------------------
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


# ----- health report and writer ----------------------------------------------------------------
def test_inspect_reports_bad_empty_imbalanced_and_duplicate(tmp_path):
    root = tmp_path / "d"
    class_tree(root / "train", classes=("big",), per_class=22)
    class_tree(root / "train", classes=("small",), per_class=2)
    png(root / "test" / "big" / "dup.png", value=0)  # same pixels as train/big/0.png
    (root / "train" / "none").mkdir()
    (root / "train" / "big" / "z.png").write_bytes(b"")
    rep = inspect(str(root), cfg_for(root, max_bad=0))  # inspect never stops at max_bad
    kinds = rep.by_kind()
    assert kinds == {"zero-byte": 1, "empty-class": 1, "imbalance": 1, "duplicate": 1}
    assert rep.counts["images"] == 25 and rep.counts["per_class"] == {"big": 23, "none": 0, "small": 2}
    assert rep.counts["channels"] == 1 and rep.counts["sizes"] == {"8x8": 25}
    dup = next(i for i in rep.issues if i["kind"] == "duplicate")
    assert "0.png" in dup["file"] + dup["problem"] and "dup.png" in dup["file"] + dup["problem"]


def test_make_digits_as_folders_reads_back_identically(tmp_path):
    out = make("digits", "folders", tmp_path / "out")
    src = build_data(cfg_for("digits"))
    back = build_data(cfg_for(out))
    assert back.info.classes == src.info.classes and back.info.channels == 1
    for name in ("train", "val", "test"):
        a, b = src.split(name), back.split(name)
        assert len(a) == len(b)
        key = lambda imgs, labels: sorted(zip(labels.tolist(), map(bytes, imgs.numpy())))  # noqa: E731
        assert key(a.images, a.labels) == key(b.images, b.labels)
    with pytest.raises(CnnkitError, match="not empty"):
        make("digits", "folders", out)
    assert inspect("digits").counts["images"] == 1797


def test_folder_names_of_classes_are_made_safe():
    assert folders._folder_name("T-shirt/top") == "T-shirt_top" and folders._folder_name(".x") == "x"
