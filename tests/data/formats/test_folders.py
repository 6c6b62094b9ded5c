"""class-folders and csv formats: layouts, bad files and max_bad, the folders writer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.base import FileSplit, TensorSplit
from cnnkit.data.commands import inspect, make
from cnnkit.data.formats import folders
from cnnkit.data.sources import build_data, detect_format
from cnnkit.errors import CnnkitError

from ..conftest import cfg_for, class_tree, png


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


# ----- writer ---------------------------------------------------------------------------------
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


# ---- issue 15: hostile CSVs end in one sentence naming the file, never an allocation or a traceback -----------
def _csv(tmp_path, text, data=b""):
    png(tmp_path / "a.png", 10)
    png(tmp_path / "b.png", 200)
    f = tmp_path / "l.csv"
    f.write_bytes(data or text.encode())
    return f


def test_a_huge_integer_label_is_refused_before_any_class_name_is_made(tmp_path, monkeypatch):
    f = _csv(tmp_path, "path,label\na.png,0\nb.png,1000000000000\n")
    with pytest.raises(CnnkitError, match=r"l\.csv row 3 has the label 1000000000000, which would make "
                                          r"1000000000001 classes for 2 rows.*CNNKIT_MAX_CLASSES"):
        build_data(cfg_for(f))
    monkeypatch.setenv("CNNKIT_MAX_CLASSES", "5")  # the cap is the documented one, and it can be moved
    f.write_text("path,label\na.png,0\nb.png,5\n")
    with pytest.raises(CnnkitError, match="row 3 has the label 5"):
        build_data(cfg_for(f))
    f.write_text("path,label\na.png,0\nb.png,4\n")
    assert folders.scan_csv(f).classes == ["0", "1", "2", "3", "4"]


def test_a_csv_whose_files_are_all_missing_is_a_sentence_and_inspect_says_so(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("path,label\nx.png,0\ny.png,1\n")
    with pytest.raises(CnnkitError, match=r"2 of 2 files in .*l\.csv could not be used.*x\.png \(missing"):
        build_data(cfg_for(f))
    kinds = inspect(str(f)).by_kind()
    assert kinds["missing"] == 2 and kinds["no_images"] == 1


@pytest.mark.parametrize("text, data, sentence", [
    ("path,klass\na.png,0\n", b"", r"l\.csv has no label column \(its header is 'path,klass'\)"),
    ("", "path,label\na.png,caf\xe9\nb.png,th\xe9\n".encode("latin-1"),
     r"l\.csv is not UTF-8 text \(byte 0xe9 at offset 20"),
])
def test_a_recognised_but_broken_csv_says_what_is_broken(tmp_path, text, data, sentence):
    f = _csv(tmp_path, text, data)
    assert detect_format(f).name == "csv"
    with pytest.raises(CnnkitError, match=sentence):
        build_data(cfg_for(f))


def test_a_non_utf8_file_no_reader_claims_is_called_that(tmp_path):
    f = tmp_path / "notes.csv"
    f.write_bytes("texte;étiquette\nbonjour;fr\n".encode("latin-1"))
    with pytest.raises(CnnkitError, match=r"notes\.csv is not UTF-8 text \(byte 0xe9"):
        detect_format(f)


@pytest.mark.parametrize("entry", ["../../../../../../../../etc/passwd", "/etc/passwd", "../outside.png"])
def test_a_csv_path_outside_its_folder_is_refused_unless_allowed(tmp_path, entry):
    png(tmp_path / "outside.png", 90)
    f = _csv(tmp_path / "ds", f"path,label\na.png,0\nb.png,1\n{entry},1\n")
    with pytest.raises(CnnkitError, match=rf"l\.csv: row 4 path '{entry}' points outside the dataset folder"):
        build_data(cfg_for(f))
    assert "points outside" in inspect(str(f)).issues[0]["problem"]
    if entry == "../outside.png":
        cfg = cfg_for(f, val_fraction=0.0, test_fraction=0.0)
        cfg.set("data.allow_outside_root", True)
        assert len(build_data(cfg).train) == 3
