"""mIoU / Dice / pixel accuracy against a float64 numpy confusion-matrix reference."""
import numpy as np
import pytest
import torch

from cnnkit.tasks.segmentation_metrics import IGNORE_INDEX, SegmentationMetric, confusion_matrix


def numpy_reference(preds: list[np.ndarray], targets: list[np.ndarray], k: int) -> dict:
    cm = np.zeros((k, k), dtype=np.float64)
    for p, t in zip(preds, targets):
        p, t = p.reshape(-1).astype(np.int64), t.reshape(-1).astype(np.int64)
        keep = t != IGNORE_INDEX
        np.add.at(cm, (t[keep], p[keep]), 1.0)
    tp = np.diag(cm)
    gt, pr = cm.sum(1), cm.sum(0)
    union = gt + pr - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(union > 0, 2 * tp / (gt + pr), np.nan)
    return {"miou": np.nanmean(iou), "dice": np.nanmean(dice), "pixel_accuracy": tp.sum() / cm.sum(),
            "iou": iou, "cm": cm}


def random_batches(seed: int, k: int, absent: tuple[int, ...], batches: int = 3):
    g = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(batches):
        n, h, w = int(g.integers(1, 4)), int(g.integers(5, 17)), int(g.integers(5, 17))
        t = g.integers(0, k, (n, h, w))
        p = np.where(g.random((n, h, w)) < 0.6, t, g.integers(0, k, (n, h, w)))  # 60 % right, rest random
        for c in absent:  # a class nobody has: in neither ground truth nor prediction
            t[t == c] = 0
            p[p == c] = 0
        t[g.random((n, h, w)) < 0.15] = IGNORE_INDEX
        preds.append(p)
        targets.append(t)
    return preds, targets


@pytest.mark.parametrize("seed,k,absent", [(0, 2, ()), (1, 5, (3,)), (2, 11, (4, 7, 10)), (3, 21, (1,))])
def test_metrics_equal_float64_numpy_reference(seed, k, absent):
    preds, targets = random_batches(seed, k, absent)
    metric = SegmentationMetric([f"c{i}" for i in range(k)])
    for p, t in zip(preds, targets):
        metric.update(torch.from_numpy(p), (None, torch.from_numpy(t).to(torch.uint8)))
    out, ref = metric.compute(), numpy_reference(preds, targets, k)
    assert out["miou"] == pytest.approx(ref["miou"], abs=1e-12)
    assert out["dice"] == pytest.approx(ref["dice"], abs=1e-12)
    assert out["pixel_accuracy"] == pytest.approx(ref["pixel_accuracy"], abs=1e-12)
    np.testing.assert_array_equal(np.array(out["confusion_matrix"]), ref["cm"])
    for i, v in enumerate(out["per_class_iou"].values()):
        if np.isnan(ref["iou"][i]):
            assert v is None and i in absent
        else:
            assert v == pytest.approx(ref["iou"][i], abs=1e-12)


def test_ignored_pixels_never_count():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 9, 9), generator=g)
    target[:, :3] = IGNORE_INDEX
    pred = torch.randint(0, 4, (2, 9, 9), generator=g)
    other = pred.clone()
    other[:, :3] = (other[:, :3] + 1) % 4  # change predictions only where the target is ignored
    a, b = SegmentationMetric(list("abcd")), SegmentationMetric(list("abcd"))
    a.update(pred, (None, target))
    b.update(other, (None, target))
    assert a.compute()["confusion_matrix"] == b.compute()["confusion_matrix"]
    assert int(confusion_matrix(pred, target, 4).sum()) == 2 * 6 * 9


def test_batching_does_not_change_the_result():
    preds, targets = random_batches(5, 6, (2,), batches=1)
    p, t = torch.from_numpy(preds[0]), torch.from_numpy(targets[0])
    whole, split = SegmentationMetric(list("abcdef")), SegmentationMetric(list("abcdef"))
    whole.update(p, (None, t))
    for i in range(len(p)):
        split.update(p[i:i + 1], (None, t[i:i + 1]))
    assert whole.compute()["miou"] == split.compute()["miou"]


def test_perfect_and_empty():
    t = torch.tensor([[[0, 1], [2, 255]]])
    m = SegmentationMetric(["bg", "a", "b", "c"])
    m.update(t.clone().clamp(max=3), (None, t))
    out = m.compute()
    assert out["miou"] == out["dice"] == out["pixel_accuracy"] == 1.0
    assert out["per_class_iou"]["c"] is None
    assert "c" in out["note"]
    empty = SegmentationMetric(["bg", "a"]).compute()
    assert empty["miou"] is None and empty["dice"] is None and empty["pixel_accuracy"] is None
    assert set(empty["per_class_iou"].values()) == {None} and "no pixel" in empty["note"]


def test_labels_outside_the_classes_are_left_out():
    """A target value that is neither a class nor the ignore index (e.g. 7 with 3 classes) counts nowhere."""
    target = torch.tensor([[[0, 1, 2, 7]]])
    pred = torch.tensor([[[0, 1, 2, 2]]])
    assert confusion_matrix(pred, target, 3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
