"""cnnkit's detection metrics equal a direct pycocotools COCOeval run on the same predictions.

The reference side writes real COCO json files with its own id conventions (image ids from
100, category ids 3 + 7k, annotation ids from 1000) and runs the evaluation as a user
would, so a shared mistake in id handling cannot make both sides agree.
"""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnkit.tasks.detection_metrics import FP_SCORE, STAT_NAMES, DetectionMetric, coco_evaluate

CLASSES = ["a", "b", "c"]


def _cat(k: int) -> int:
    return 3 + 7 * k


def reference(targets, preds, tmp_path):
    images, anns, results = [], [], []
    for i, t in enumerate(targets):
        images.append({"id": 100 + i, "file_name": f"{i}.png", "width": 200, "height": 200})
        crowd = t.get("iscrowd", torch.zeros(len(t["labels"]), dtype=torch.int64))
        for b, lab, c in zip(t["boxes"].tolist(), t["labels"].tolist(), crowd.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": 1000 + len(anns), "image_id": 100 + i, "category_id": _cat(lab),
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": c})
    for i, p in enumerate(preds):
        for b, lab, s in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
            results.append({"image_id": 100 + i, "category_id": _cat(lab),
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns,
                                   "categories": [{"id": _cat(k), "name": n} for k, n in enumerate(CLASSES)]}))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        if results:
            res_file = tmp_path / "res.json"
            res_file.write_text(json.dumps(results))
            dt = gt.loadRes(str(res_file))
        else:
            dt = COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for k, name in enumerate(CLASSES):
        kk = ev.params.catIds.index(_cat(k))
        p = ev.eval["precision"][:, :, kk, 0, 2]
        per_class[name] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return dict(zip(STAT_NAMES, (float(v) for v in ev.stats))), per_class


def _boxes(g: torch.Generator, n: int, size: float = 200.0) -> torch.Tensor:
    xy = torch.rand((n, 2), generator=g) * size * 0.8
    wh = 4 + torch.rand((n, 2), generator=g) * size * 0.3
    return torch.cat([xy, (xy + wh).clamp(max=size)], 1)


def _gt(g, n_images=8, per_image=(0, 6)):
    out = []
    for _ in range(n_images):
        n = int(torch.randint(per_image[0], per_image[1] + 1, (1,), generator=g))
        out.append({"boxes": _boxes(g, n), "labels": torch.randint(0, 3, (n,), generator=g)})
    return out


def _noisy(g, targets, extra=3, jitter=6.0, flip_label=0.2):
    preds = []
    for t in targets:
        n = len(t["labels"])
        boxes = t["boxes"] + torch.randn((n, 4), generator=g) * jitter
        labels = torch.where(torch.rand(n, generator=g) < flip_label, torch.randint(0, 3, (n,), generator=g),
                             t["labels"])
        boxes = torch.cat([boxes, _boxes(g, extra)])
        labels = torch.cat([labels, torch.randint(0, 3, (extra,), generator=g)])
        boxes = torch.cat([boxes[:, :2].minimum(boxes[:, 2:] - 1), boxes[:, 2:]], 1)
        preds.append({"boxes": boxes, "labels": labels, "scores": torch.rand(n + extra, generator=g)})
    return preds


def _case(name: str):
    g = torch.Generator().manual_seed(CASES.index(name))
    if name == "noisy":
        t = _gt(g)
        return t, _noisy(g, t)
    if name == "perfect_plus_false_positives":
        t = _gt(g, per_image=(1, 5))
        p = _noisy(g, t, extra=2, jitter=0.0, flip_label=0.0)
        return t, p
    if name == "empty_predictions":
        t = _gt(g, per_image=(1, 4))
        return t, [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64),
                    "scores": torch.zeros(0)} for _ in t]
    if name == "some_empty_predictions_and_empty_gt_images":
        t = _gt(g, n_images=10, per_image=(0, 4))
        t[0] = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}
        p = _noisy(g, t)
        p[3] = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
        return t, p
    if name == "crowd_boxes":
        t = _gt(g, per_image=(2, 5))
        for x in t:
            x["iscrowd"] = (torch.rand(len(x["labels"]), generator=g) < 0.35).long()
        p = _noisy(g, t)
        for x, y in zip(p, t):  # several detections inside each crowd region: crowds absorb them
            crowd = y["boxes"][y["iscrowd"] == 1]
            if len(crowd):
                inner = crowd.repeat(3, 1) + torch.tensor([2.0, 2.0, -2.0, -2.0])
                x["boxes"] = torch.cat([x["boxes"], inner])
                x["labels"] = torch.cat([x["labels"], y["labels"][y["iscrowd"] == 1].repeat(3)])
                x["scores"] = torch.cat([x["scores"], torch.rand(len(inner), generator=g)])
        return t, p
    if name == "over_100_detections":
        t = _gt(g, n_images=4, per_image=(5, 12))
        p = _noisy(g, t, extra=140)
        return t, p
    raise KeyError(name)


CASES = ["noisy", "perfect_plus_false_positives", "empty_predictions", "some_empty_predictions_and_empty_gt_images",
         "crowd_boxes", "over_100_detections"]


@pytest.mark.parametrize("name", CASES)
def test_equals_pycocotools(name, tmp_path):
    targets, preds = _case(name)
    if name == "over_100_detections":
        assert all(len(p["scores"]) > 100 for p in preds)
    ref, ref_per_class = reference(targets, preds, tmp_path)
    metric = DetectionMetric(CLASSES)
    for j in range(0, len(targets), 3):  # in batches, as the engine feeds it
        metric.update(preds[j:j + 3], (None, targets[j:j + 3]))
    ours = metric.compute()
    for key, value in ref.items():  # pycocotools' -1 ("undefined") is None here, never a number
        assert ours[key] is None if value == -1 else ours[key] == pytest.approx(value, abs=1e-4), key
    for key, value in ref_per_class.items():
        assert (ours["per_class_ap"][key] is None if value == -1
                else ours["per_class_ap"][key] == pytest.approx(value, abs=1e-4)), key
    assert ours["map"] >= 0 or name == "empty_predictions"
    assert -1 not in [v for v in ours.values() if isinstance(v, float)] + list(ours["per_class_ap"].values())
    assert "fp_per_image" not in ours and (("note" in ours) == (None in ours.values()))


def test_perfect_predictions_score_one():
    g = torch.Generator().manual_seed(0)
    t = _gt(g, per_image=(1, 4))
    p = [{"boxes": x["boxes"], "labels": x["labels"], "scores": torch.ones(len(x["labels"]))} for x in t]
    out = coco_evaluate(t, p, CLASSES)
    assert out["map"] == pytest.approx(1.0) and out["map_50"] == pytest.approx(1.0)


def test_empty_metric_is_undefined():
    assert DetectionMetric(CLASSES).compute()["map"] is None


def test_split_without_ground_truth_reports_false_positives():
    """No GT box anywhere: every AP/AR is None (pycocotools says -1), the detections are counted
    and `fp_per_image` counts those scoring >= FP_SCORE per image."""
    g = torch.Generator().manual_seed(3)
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)}
    scores = [torch.tensor([0.9, 0.5, 0.49, 0.1]), torch.tensor([0.7]), torch.zeros(0)]
    preds = [{"boxes": _boxes(g, len(s)), "labels": torch.randint(0, 3, (len(s),), generator=g), "scores": s}
             for s in scores]
    metric = DetectionMetric(CLASSES)
    metric.update(preds, (None, [dict(empty) for _ in preds]))
    out = metric.compute()
    assert FP_SCORE == 0.5
    assert all(out[k] is None for k in STAT_NAMES) and set(out["per_class_ap"].values()) == {None}
    assert out["detections"] == 5 and out["images"] == 3
    assert out["fp_per_image"] == pytest.approx(3 / 3)  # 0.9, 0.5 and 0.7
    assert out["note"] == ("the split has no ground-truth boxes, so AP/AR are undefined; 5 detections on 3 images "
                           "(3 with score >= 0.5) are all false positives")
    silent = DetectionMetric(CLASSES)  # a model that detects nothing: no false positives to count
    silent.update([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                    "scores": torch.zeros(0)} for _ in range(2)], (None, [dict(empty) for _ in range(2)]))
    assert silent.compute()["note"] == ("the split has no ground-truth boxes, so AP/AR are undefined; no detections "
                                        "on its 2 images, so no false positives either")


def test_note_names_undefined_size_ranges_and_classes():
    """Only small boxes of class a and b: medium/large AP and class c's AP are undefined, and said so."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 28.0]])
    t = [{"boxes": boxes, "labels": torch.tensor([0, 1])}]
    p = [{"boxes": boxes, "labels": torch.tensor([0, 1]), "scores": torch.tensor([0.9, 0.8])}]
    metric = DetectionMetric(CLASSES)
    metric.update(p, (None, t))
    out = metric.compute()
    assert out["map"] == pytest.approx(1.0) and out["map_small"] == pytest.approx(1.0)
    assert out["map_medium"] is None and out["mar_large"] is None and out["per_class_ap"]["c"] is None
    assert "fp_per_image" not in out
    assert "medium" in out["note"] and "large" in out["note"] and "class c" in out["note"]
