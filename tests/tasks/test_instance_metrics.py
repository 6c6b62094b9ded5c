"""InstanceMetric: COCO segm mAP equals a direct pycocotools COCOeval on random masks."""
import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnkit.tasks.instance_metrics import InstanceMetric


def blob(h, w, y, x, r, rng):
    yy, xx = np.mgrid[:h, :w]
    m = ((yy - y) ** 2 + (xx - x) ** 2 <= r * r) & (rng.random((h, w)) < 0.9)
    return m.astype(np.uint8)


def random_case(seed, images=6, classes=3, h=40, w=48):
    rng = np.random.default_rng(seed)
    targets, preds = [], []
    for _ in range(images):
        k = int(rng.integers(0, 4))
        gm = [blob(h, w, rng.integers(8, h - 8), rng.integers(8, w - 8), rng.integers(3, 8), rng) for _ in range(k)]
        labels = rng.integers(0, classes, k)
        # predictions: jittered copies of some ground truth (sometimes the wrong class) plus false positives
        pm, pl = [], []
        for m, lab in zip(gm, labels):
            if rng.random() < 0.8:
                pm.append(np.roll(m, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1)))
                pl.append(lab if rng.random() < 0.8 else (lab + 1) % classes)
        for _ in range(int(rng.integers(0, 3))):
            pm.append(blob(h, w, rng.integers(8, h - 8), rng.integers(8, w - 8), rng.integers(2, 6), rng))
            pl.append(int(rng.integers(0, classes)))

        def boxes(ms):
            out = []
            for m in ms:
                ys, xs = np.nonzero(m)
                out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 1, 1])
            return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)

        targets.append({"boxes": boxes(gm), "labels": torch.tensor(labels, dtype=torch.int64).reshape(-1),
                        "iscrowd": torch.zeros(k, dtype=torch.int64),
                        "masks": torch.from_numpy(np.stack(gm) if gm else np.zeros((0, h, w), np.uint8))})
        preds.append({"boxes": boxes(pm), "labels": torch.tensor(pl, dtype=torch.int64).reshape(-1),
                      "scores": torch.from_numpy(rng.random(len(pm))).float(),
                      "masks": torch.from_numpy(np.stack(pm) if pm else np.zeros((0, h, w), np.uint8))[:, None].float()
                      * rng.uniform(0.6, 1.0)})
    return targets, preds


def direct_cocoeval(targets, preds, classes):
    """The reference: pycocotools straight from the masks, without cnnkit code."""
    images, anns, results = [], [], []
    for i, (t, p) in enumerate(zip(targets, preds), start=1):
        images.append({"id": i, "height": t["masks"].shape[-2], "width": t["masks"].shape[-1]})
        for m, lab in zip(t["masks"].numpy(), t["labels"].tolist()):
            rle = mask_utils.encode(np.asfortranarray(m))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": lab + 1, "segmentation": rle,
                         "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0})
        for m, lab, s in zip(p["masks"][:, 0].numpy(), p["labels"].tolist(), p["scores"].tolist()):
            rle = mask_utils.encode(np.asfortranarray((m > 0.5).astype(np.uint8)))
            results.append({"image_id": i, "category_id": lab + 1, "segmentation": rle, "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_segm_map_equals_pycocotools(seed):
    targets, preds = random_case(seed)
    metric = InstanceMetric(["a", "b", "c"])
    for j in range(0, len(targets), 4):  # in two batches
        metric.update(preds[j:j + 4], (None, targets[j:j + 4]))
    out = metric.compute()
    ref = direct_cocoeval(targets, preds, 3)
    assert out["map"] == pytest.approx(ref[0], abs=1e-4)
    assert out["map_50"] == pytest.approx(ref[1], abs=1e-4)
    assert out["map_75"] == pytest.approx(ref[2], abs=1e-4)
    assert -1 <= out["box_map"] <= 1 and out["images"] == len(targets)
