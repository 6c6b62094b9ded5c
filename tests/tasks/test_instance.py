"""Instance segmentation: COCO segm mAP equals a direct pycocotools COCOeval; a Mask R-CNN smoke run."""
import contextlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.data.builtin.canvas import make_canvases
from cnnkit.tasks import get_task
from cnnkit.tasks.instance import InstanceMetric


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


def test_mask_rcnn_smoke_step_metric_and_rle_json(tmp_path):
    torch.manual_seed(0)
    digits = torch.zeros((10, 1, 8, 8), dtype=torch.uint8)
    digits[:, :, 1:7, 2:6] = 255
    c = make_canvases(4, 64, 0, digits, torch.arange(10), max_digits=2)
    split = c.to_split("train")
    info = DatasetInfo("detect", [str(i) for i in range(10)], 1, 64, name="mini", hflip_ok=False)
    cfg = Config.from_dict({"task": "instance", "data": {"name": "mini"}, "train": {"batch_size": 2},
                            "model": {"kwargs": {"detections_per_img": 5}}})
    task = get_task("instance")
    cfg.fill_defaults(task.defaults(cfg, info))
    task.setup(cfg, info)
    model = task.build_model(cfg, info)
    batch = task.to_device(next(iter(task.loader(split, cfg, info, train=True))), torch.device("cpu"))
    model.train()
    loss, parts = task.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and "loss_mask" in parts
    model.eval()
    model.set_thresholds(score=0.0)
    metric = task.new_metric(info)
    for b in task.loader(split, cfg, info, train=False):
        b = task.to_device(b, torch.device("cpu"))
        metric.update(task.predict(model, b), b)
    out = metric.compute()
    assert {"map", "map_50", "box_map"} <= set(out)
    path = tmp_path / "c.png"
    Image.fromarray(c.images[0, 0].numpy()).save(path)
    meta = {"preprocess": task.preprocessing(cfg, info), "classes": info.classes}
    rec = task.predict_files(model, meta, [str(path)], tmp_path / "out", conf=0.0)[0]
    json.dumps(rec)
    for obj in rec["instances"][:3]:
        rle = {"size": obj["segmentation"]["size"], "counts": obj["segmentation"]["counts"].encode()}
        assert mask_utils.decode(rle).shape == (64, 64)
    assert (tmp_path / "out").is_dir()


def test_drawing_paints_each_mask_in_its_class_colour():
    """Every object's mask is visibly tinted with its box's class colour (torchvision's default
    palette starts at black, which hid the top-scoring mask); the tag keeps the caption legible."""
    from cnnkit.tasks.detect import class_colors
    from cnnkit.tasks.instance import InstanceTask

    img = torch.full((1, 32, 32), 200, dtype=torch.uint8)
    masks = torch.zeros(2, 1, 32, 32)
    masks[0, 0, 4:12, 4:12] = 0.9
    masks[1, 0, 18:30, 18:30] = 0.9
    det = {"boxes": torch.tensor([[4.0, 4, 12, 12], [18, 18, 30, 30]]), "labels": torch.tensor([0, 3]),
           "scores": torch.tensor([0.9, 0.8]), "masks": masks}
    drawn = InstanceTask._draw(img, det, [str(i) for i in range(10)], conf=0.5)
    f = drawn.shape[-1] // 32
    assert f >= 2 and drawn.shape[0] == 3
    for (y, x), colour in zip([(9, 8), (26, 26)], class_colors([0, 3])):
        pixel = drawn[:, y * f, x * f].float()
        expected = 0.5 * 200 + 0.5 * torch.tensor(colour, dtype=torch.float)
        assert torch.allclose(pixel, expected, atol=2), (pixel, expected)
    assert class_colors([0])[0] != class_colors([3])[0]
    untouched = drawn[:, 15 * f, 2 * f]
    assert untouched.tolist() == [200, 200, 200]
