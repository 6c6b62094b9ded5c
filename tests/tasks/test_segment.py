"""The segment task: losses against references, class weights, the epoch-seeded loader, a training
step end to end (model, predict, metric, plots) and the predict loop's outputs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.segmentation import IGNORE_INDEX, SegSplit, read_mask
from cnnkit.engine.predictor import predict_files
from cnnkit.errors import CnnkitError
from cnnkit.tasks import get_task
from cnnkit.tasks.segment import dice_loss, focal_loss, median_frequency_weights

CLASSES = ["background", "a", "b"]


def tiny_split(n: int = 8, size: int = 32, seed: int = 0) -> SegSplit:
    """Squares of class a (bright) and b (mid-gray) on black; masks follow the pixels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros((n, 1, size, size), dtype=torch.uint8)
    masks = torch.zeros((n, size, size), dtype=torch.uint8)
    for i in range(n):
        for cls, value in ((1, 250), (2, 120)):
            y, x = torch.randint(0, size - 10, (2,), generator=g).tolist()
            images[i, 0, y:y + 8, x:x + 8] = value
            masks[i, y:y + 8, x:x + 8] = cls
    masks[:, 0, :] = IGNORE_INDEX
    return SegSplit(images, masks, [f"s{i}.png" for i in range(n)])


def setup_task(**overrides):
    info = DatasetInfo("segment", list(CLASSES), 1, 32, name="tiny", hflip_ok=False,
                       extra={"mean": [0.1], "std": [0.3], "n_train": 8})
    cfg = Config.from_dict({"task": "segment", "data": {"name": "tiny"}})
    cfg.update(overrides)
    task = get_task("segment")
    cfg.fill_defaults(task.defaults(cfg, info))
    cfg.train.batch_size = 4
    cfg.model.kwargs.setdefault("backbone_kwargs", {"widths": [8, 16, 16, 16]})
    task.setup(cfg, info)
    return task, cfg, info


def test_focal_with_gamma_zero_is_cross_entropy_and_ignores_void():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 5, generator=g)
    target = torch.randint(0, 3, (2, 5, 5), generator=g)
    target[0, 0] = IGNORE_INDEX
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    assert focal_loss(logits, target, gamma=0.0) == pytest.approx(float(ce), abs=1e-6)
    assert focal_loss(logits, target, gamma=2.0) < ce
    w = torch.tensor([0.2, 1.0, 3.0])
    weighted = F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE_INDEX)
    assert focal_loss(logits, target, w, gamma=0.0) == pytest.approx(float(weighted), abs=1e-6)


def test_dice_loss_matches_a_float64_reference_and_ignores_void():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 6, 6), generator=g)
    target[1, :2] = IGNORE_INDEX
    p = logits.softmax(1).numpy()
    t = target.numpy()
    valid = t != IGNORE_INDEX
    ref = []
    for c in range(4):
        pc, tc = p[:, c][valid], (t[valid] == c).astype(np.float64)
        ref.append(1 - (2 * (pc * tc).sum() + 1) / (pc.sum() + tc.sum() + 1))
    assert float(dice_loss(logits, target)) == pytest.approx(np.mean(ref), abs=1e-6)
    logits.requires_grad_(True)
    dice_loss(logits, target).backward()
    assert logits.grad[1, :, :2].abs().max() == 0  # ignored pixels get no gradient


def test_median_frequency_weights():
    w = median_frequency_weights(torch.tensor([900, 50, 50, 0]))
    freq = np.array([0.9, 0.05, 0.05])
    np.testing.assert_allclose(w[:3].numpy(), np.median(freq) / freq, rtol=1e-6)
    assert w[3] == 1.0


def test_unknown_loss_and_class_weights_are_one_sentence():
    with pytest.raises(CnnkitError, match="ce, dice, focal, ce\\+dice"):
        setup_task(**{"model.kwargs.loss": "lovasz"})
    with pytest.raises(CnnkitError, match="class_weights"):
        setup_task(**{"data.class_weights": "inverse"})


def test_loader_is_epoch_seeded_and_masks_stay_class_values():
    task, cfg, info = setup_task(**{"data.augment": "strong"})
    split = tiny_split()
    loader = task.loader(split, cfg, info, train=True)

    def epoch(e):
        loader.set_epoch(e)
        return [(x.clone(), y.clone()) for x, y in loader]

    a, b, c = epoch(0), epoch(0), epoch(1)
    assert len(a) == len(loader) == 2
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, c))
    for _, y in a + c:
        assert y.dtype == torch.int64 and set(y.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}
    rng_before = torch.get_rng_state()
    epoch(2)
    assert torch.equal(rng_before, torch.get_rng_state())  # augmentation leaves the trainer's RNG alone


def test_out_of_range_mask_values_are_skipped_and_reported():
    task, cfg, info = setup_task()
    split = tiny_split(4)
    split.masks[2, 5, 5] = 9
    loader = task.loader(split, cfg, info, train=False)
    n = sum(len(y) for _, y in loader)
    assert n == 3 and [b.path for b in loader.bad_files] == ["s2.png"]
    assert "outside the 3 classes" in loader.bad_files[0].reason


@pytest.mark.parametrize("loss", ["ce+dice", "focal"])
def test_train_step_predict_metric_and_plots(tmp_path, loss):
    torch.manual_seed(0)
    task, cfg, info = setup_task(**{"model.kwargs.loss": loss, "data.class_weights": "auto"})
    split = tiny_split()
    model = task.build_model(cfg, info)
    loader = task.loader(split, cfg, info, train=True)
    assert task.class_weights is not None and task.class_weights[0] < task.class_weights[1]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for batch in loader:
        loss_value, parts = task.loss(model, task.to_device(batch, torch.device("cpu")))
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        assert torch.isfinite(loss_value)
    assert set(parts) == ({"ce", "dice"} if loss == "ce+dice" else set())
    model.eval()
    metric = task.new_metric(info)
    for batch in task.loader(split, cfg, info, train=False):
        pred = task.predict(model, batch)
        assert pred.shape == batch[1].shape
        metric.update(pred, batch)
    out = metric.compute()
    assert {"miou", "dice", "pixel_accuracy", "per_class_iou"} <= set(out)
    assert task.monitor == ("miou", "max") and set(task.headline) <= set(out)
    if loss != "ce+dice":
        return  # the pictures are drawn once
    bundle = DataBundle(split, split, split, info)
    paths = task.plots(tmp_path, model, bundle, torch.device("cpu"), out)
    assert [p.name for p in paths] == ["per_class_iou.png", "confusion_matrix.png", "predictions_val.png",
                                      "predictions_test.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_predict_files_writes_mask_overlay_and_pixel_counts(tmp_path):
    task, cfg, info = setup_task()
    model = task.build_model(cfg, info).eval()
    img = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 45), dtype=np.uint8)).save(img)
    (tmp_path / "bad.png").write_bytes(b"")
    meta = {"preprocess": task.preprocessing(cfg, info), "classes": info.classes}
    recs = predict_files(task, model, meta, [str(img), str(tmp_path / "bad.png")], tmp_path / "out")
    json.dumps(recs)
    rec = recs[0]
    assert sum(rec["pixels"].values()) == 37 * 45 and set(rec["pixels"]) == set(CLASSES)
    mask = read_mask(rec["mask_png"])
    assert mask.shape == (37, 45) and Image.open(rec["mask_png"]).mode == "P"
    for c, n in rec["pixels"].items():
        assert int((mask == CLASSES.index(c)).sum()) == n
    assert Image.open(rec["overlay_png"]).size == (45, 37)
    assert "error" in recs[1]


def test_cli_predict_table_gives_each_class_its_share(tmp_path, capsys, monkeypatch):
    """`cnnkit predict` prints one readable line per image (the predicted classes' shares of its
    pixels, largest first) where it printed a raw dict; --json stays the record."""
    from cnnkit.cli import main
    from cnnkit.engine.checkpoint import save_checkpoint
    from cnnkit.engine.trainer import checkpoint_meta
    from cnnkit.report import console as show

    task, cfg, info = setup_task()
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "seg.pt", task.build_model(cfg, info).state_dict(),
                           checkpoint_meta(task, cfg, info, 1, {"miou": 0.5}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(show.console, "width", 200)  # one table row per image, unwrapped
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 45), dtype=np.uint8)).save("in.png")
    Path("bad.png").write_bytes(b"")
    assert main(["predict", str(ckpt), "in.png", "bad.png", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert set(rec) == {"file", "height", "width", "pixels", "classes_present"}
    assert main(["predict", str(ckpt), "in.png", "bad.png"]) == 0
    out = capsys.readouterr().out
    by_share = sorted(((c, n) for c, n in rec["pixels"].items() if n), key=lambda cn: -cn[1])
    shares = ", ".join(f"{c} {100 * n / (37 * 45):.1f}%" for c, n in by_share)  # 3 classes: all named
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if ".png" in line}
    assert rows["in.png"] == shares
    assert "empty" in rows["bad.png"].lower() and "{" not in out


def test_detection_data_with_instance_masks_becomes_class_masks():
    from cnnkit.data.builtin.canvas import make_canvases

    digits = torch.zeros((10, 1, 8, 8), dtype=torch.uint8)
    digits[:, :, 1:7, 2:6] = 255
    c = make_canvases(4, 40, 0, digits, torch.arange(10), max_digits=3)
    split = c.to_split("train")
    split.iscrowd[0][:1] = 1  # a crowd object is ignored, not background
    info = DatasetInfo("detect", [str(i) for i in range(10)], 1, 40, name="coco-like", hflip_ok=False)
    cfg = Config.from_dict({"task": "segment", "data": {"name": "coco-like"}})
    task = get_task("segment")
    cfg.fill_defaults(task.defaults(cfg, info))
    task.setup(cfg, info)
    assert info.classes[0] == "background" and info.num_classes == 11 and info.task == "segment"
    task.setup(cfg, info)  # a second setup (checkpoint reload) does not prepend twice
    assert info.num_classes == 11
    _, masks = next(iter(task.loader(split, cfg, info, train=False)))
    expect = c.semantic.long().clone()
    others = c.masks[0][1:].bool().any(0)  # objects drawn over the crowd region keep their class
    expect[0][c.masks[0][0].bool() & ~others] = IGNORE_INDEX
    assert torch.equal(masks, expect)
