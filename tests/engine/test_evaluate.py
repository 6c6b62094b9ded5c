"""Undefined metrics end to end: None from the metric, null in JSON, an empty cell in metrics.csv,
"n/a" with its reason on the console, and the false-positive count on an object-free test split
(the `map_no_gt` case: COCO set whose test json lists images and no annotations)."""
import csv
import json
import math
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnnkit.cli import main
from cnnkit.engine.evaluate import fmt, headline_text, scalars, undefined_as_none


def test_scalars_keep_undefined_as_none():
    metrics = {"map": 0.5, "map_large": None, "miou": math.nan, "images": 6, "note": "why",
               "per_class_ap": {"a": None}, "flag": True}
    assert scalars(metrics) == {"map": 0.5, "map_large": None, "miou": None, "images": 6.0}
    assert undefined_as_none({"a": [1.0, math.nan], "b": {"c": math.nan}}) == {"a": [1.0, None], "b": {"c": None}}


def test_headline_text():
    assert headline_text({"accuracy": 0.9, "top5": 1.0, "macro_f1": 0.8, "loss": 0.3},
                         ("accuracy", "macro_f1", "top5")) == "accuracy 0.9000, top5 1.0000, macro_f1 0.8000"
    text = headline_text({"map": None, "map_50": None, "map_75": None, "fp_per_image": 2.5, "note": "no boxes"},
                         ("map", "map_50"))
    assert text == "map n/a, map_50 n/a, fp_per_image 2.5000 (no boxes)"
    assert fmt(None) == "n/a" and fmt(0.12345, ".4g") == "0.1235"


def make_map_no_gt(out, counts=(("train", 8), ("val", 3), ("test", 4))):
    """A small copy of ../shared/cases/trust/map_no_gt/make.py: red/blue boxes on 64x64 noise; the test
    json lists its images and no annotations."""
    rng = np.random.default_rng(7)
    (out / "annotations").mkdir(parents=True)
    for split, n in counts:
        (out / "images" / split).mkdir(parents=True)
        images, anns = [], []
        for i in range(n):
            im = Image.fromarray(rng.integers(0, 50, (64, 64, 3), dtype=np.uint8))
            draw = ImageDraw.Draw(im)
            images.append({"id": i + 1, "file_name": f"{split}_{i:02d}.png", "width": 64, "height": 64})
            for k in range(2 if split != "test" else 0):
                x, y, w, h = (int(v) for v in (*rng.integers(2, 34, 2), *rng.integers(14, 28, 2)))
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=(220, 60, 60) if k == 0 else (60, 60, 220))
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": k + 1, "bbox": [x, y, w, h],
                             "area": w * h, "iscrowd": 0})
            im.save(out / "images" / split / images[-1]["file_name"])
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}))
    return out


@pytest.fixture(scope="module")
def no_gt_run(tmp_path_factory):
    import cnnkit

    data = make_map_no_gt(tmp_path_factory.mktemp("data") / "map_no_gt")
    out = tmp_path_factory.mktemp("runs") / "map_no_gt"
    return cnnkit.train(data=str(data), epochs=1, out=str(out), quiet=True, threads=1, batch_size=4)


def _no_minus_one(obj) -> bool:
    if isinstance(obj, dict):
        return all(_no_minus_one(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_no_minus_one(v) for v in obj)
    return not (isinstance(obj, (int, float)) and not isinstance(obj, bool) and obj < 0)


def test_eval_json_on_an_object_free_split_holds_nulls_and_false_positives(no_gt_run, capsys):
    assert main(["eval", str(no_gt_run.dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("map", "map_50", "map_75", "map_small", "mar_100"):
        assert key in out and out[key] is None, key
    assert set(out["per_class_ap"].values()) == {None}
    assert out["images"] == 4 and out["detections"] >= 0
    above = round(out["fp_per_image"] * 4)
    assert 0 <= above <= out["detections"]
    assert out["note"] == ("the split has no ground-truth boxes, so AP/AR are undefined; "
                           f"{out['detections']} detections on 4 images ({above} with score >= 0.5) "
                           "are all false positives")
    assert _no_minus_one(out)


def test_run_files_hold_no_minus_one(no_gt_run):
    run_dir = no_gt_run.dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test"]["map"] is None and "fp_per_image" in summary["test"]
    test_metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert test_metrics["map"] is None and test_metrics["per_class_ap"] == {"red": None, "blue": None}
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert rows[0]["val_map_large"] == ""  # 64x64 canvases: no large box, so no large AP
    assert not [v for r in rows for v in r.values() if v and float(v) < 0]
    assert _no_minus_one(summary) and _no_minus_one(test_metrics)
    assert "n/a" in (run_dir / "report.html").read_text()


def test_console_table_shows_n_a_and_one_reason(no_gt_run, capsys):
    assert main(["eval", str(no_gt_run.dir)]) == 0
    out = capsys.readouterr().out
    # pycocotools' sentinel prints as -1.0000 in a table cell; the run's temp path may hold "pytest-1..."
    assert not re.search(r"(?<![\w/.-])-1(\.0+)?\b", out) and "n/a" in out
    assert sum("the split has no ground-truth boxes" in line for line in out.splitlines()) == 1
    assert "fp_per_image" in out
