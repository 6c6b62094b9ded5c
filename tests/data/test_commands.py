"""data/commands.py: `cnnkit data make|convert|inspect` — names checked first, one path for make and convert."""
from __future__ import annotations

import pytest

from cnnkit.data.commands import convert, inspect, make
from cnnkit.data.registry import BUILTINS
from cnnkit.data.sources import build_data
from cnnkit.errors import CnnkitError

from .conftest import cfg_for, class_tree


def test_make_refuses_an_unknown_name_before_writing(tmp_path):
    with pytest.raises(CnnkitError) as e:
        make("digitz", "folders", tmp_path / "out")
    assert str(e.value) == f'Unknown built-in dataset "digitz". Did you mean "digits"? Known: {", ".join(BUILTINS)}.'
    assert not (tmp_path / "out").exists()


def test_convert_writes_what_build_data_reads_back(tmp_path):
    src = class_tree(tmp_path / "src")
    with pytest.raises(CnnkitError, match='^Unknown output format "folderz". Did you mean "folders"?'):
        convert(str(src), "folderz", tmp_path / "bad")
    assert convert(str(src), "folders", tmp_path / "out") == tmp_path / "out"
    before, after = build_data(cfg_for(src)), build_data(cfg_for(tmp_path / "out"))
    assert after.info.classes == before.info.classes == ["cat", "dog", "owl"]
    assert [len(after.split(s)) for s in ("train", "val", "test")] == \
        [len(before.split(s)) for s in ("train", "val", "test")]


def test_inspect_reports_counts_or_names_the_missing_path(tmp_path):
    report = inspect(str(class_tree(tmp_path / "set")))
    assert report.counts["images"] == 30 and report.counts["per_class"] == {"cat": 10, "dog": 10, "owl": 10}
    assert report.issues == []
    with pytest.raises(CnnkitError, match=r"^Data path .*nope does not exist\.$"):
        inspect(str(tmp_path / "nope"))


def test_inspect_reports_a_set_its_reader_refuses_as_an_unusable_row(tmp_path, capsys):
    import json

    from cnnkit.cli import main

    for split, classes in (("train", ("blue", "red")), ("test", ("green", "red"))):
        class_tree(tmp_path / "cs" / split, classes=classes, per_class=2)
    assert main(["data", "inspect", str(tmp_path / "cs"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["issues"] == [{"kind": "unusable", "file": str(tmp_path / "cs"), "problem":
                                 f"stops training: Class folder {tmp_path}/cs/test/green has no counterpart in "
                                 f"{tmp_path}/cs/train: add training images for \"green\" or remove the folder."}]


def test_inspect_never_calls_a_set_it_partly_drops_healthy(tmp_path, capsys):
    """A set whose files loading leaves out gets those files as problem rows, whatever the inspector saw."""
    from cnnkit.cli import main

    root = class_tree(tmp_path / "ds", per_class=3)
    (root / "cat" / "0.png").write_bytes(b"\x89PNG broken")
    main(["data", "inspect", str(root)])
    out = capsys.readouterr().out
    assert "no problems found" not in out and "1 problem(s): truncated 1" in out
