"""DetectTask: defaults, epoch-seeded box-aware loading, one training step, metrics, plots, the predict loop's records."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cnnkit.config import Config
from cnnkit.data.base import DataBundle, DatasetInfo
from cnnkit.data.builtin.canvas import digit_canvases
from cnnkit.engine.predictor import predict_files
from cnnkit.errors import CnnkitError
from cnnkit.tasks import get_task

SIZE = 64


@pytest.fixture(scope="module")
def bundle():
    splits = [digit_canvases(s, size=SIZE, seed=5, n=n).to_split(s) for s, n in (("train", 8), ("val", 4),
                                                                                  ("test", 4))]
    info = DatasetInfo("detect", [str(i) for i in range(10)], 1, SIZE, name="tiny-canvases", hflip_ok=False)
    return DataBundle(*splits, info)


@pytest.fixture()
def task_cfg(bundle):
    task = get_task("detect")
    cfg = Config()
    cfg.task = "detect"
    cfg.train.batch_size = 4
    cfg.fill_defaults(task.defaults(cfg, bundle.info))
    task.setup(cfg, bundle.info)
    return task, cfg


def test_defaults_and_interface(task_cfg, bundle):
    task, cfg = task_cfg
    assert task.name == "detect" and task.monitor == ("map", "max") and task.headline == ("map", "map_50")
    assert cfg.model.name == "tinydet" and cfg.data.image_size == SIZE and cfg.data.augment == "light"
    assert cfg.train.batch_size == 4 and cfg.train.epochs > 0 and cfg.train.lr > 0
    pre = task.preprocessing(cfg, bundle.info)
    assert pre["size"] == [SIZE, SIZE] and pre["channels"] == 1 and pre["category_ids"][:2] == [1, 2]


@pytest.mark.parametrize("native", [True, False])
def test_tinydet_trains_in_bfloat16_by_default_only_where_the_cpu_computes_it(monkeypatch, native):
    """The measured short schedule (11 epochs, lr 0.06) everywhere; bf16 autocast only where it is native,
    decided for the device the run resolves to (not the one recorded); what ran is recorded."""
    from cnnkit.engine.run import resolve_run

    monkeypatch.setattr("cnnkit.engine.run.cpu_has_bf16", lambda: native)

    def resolved(**keys):
        cfg = Config()
        cfg.data.name, cfg.train.threads, cfg.train.device = "digits-detect", 1, "cuda"  # overridden below
        for k, v in keys.items():
            cfg.set(k, v)
        return resolve_run(cfg, device="cpu")

    run = resolved()
    assert run.cfg.train.amp is native and run.picked["train.amp"] is native
    assert run.cfg.train.epochs == 11 and run.cfg.train.lr == 0.06 and run.model.center_radius == 1.0
    assert run.cfg.model.kwargs["center_radius"] == 1.0  # recorded: a later default cannot change a resume
    asked = resolved(**{"train.amp": not native})
    assert asked.cfg.train.amp is (not native) and "train.amp" not in asked.picked
    fcos = resolved(**{"model.name": "fcos"})  # mixed precision measured for tinydet only
    assert fcos.cfg.train.amp is False and "train.amp" not in fcos.picked and fcos.cfg.train.lr == 0.02


def test_a_tinydet_run_recorded_before_its_radius_was_resumes_with_the_radius_it_trained_with():
    task = get_task("detect")
    cfg = Config()
    cfg.task, cfg.train.resume = "detect", "runs/old"
    info = DatasetInfo("detect", ["0"], 1, 96, name="d")
    assert task.defaults(cfg, info)["model.kwargs.center_radius"] == 1.5
    cfg.train.resume = None
    assert task.defaults(cfg, info)["model.kwargs.center_radius"] == 1.0


def test_loader_is_a_function_of_seed_and_epoch(task_cfg, bundle):
    task, cfg = task_cfg
    a, b = task.loader(bundle.train, cfg, bundle.info, True), task.loader(bundle.train, cfg, bundle.info, True)
    assert len(a) == 2
    a.set_epoch(3)
    b.set_epoch(3)
    first, again = list(a), list(b)
    for (ia, ta), (ib, tb) in zip(first, again):
        assert all(torch.equal(x, y) for x, y in zip(ia, ib))
        assert all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(ta, tb))
    b.set_epoch(4)
    assert not all(torch.equal(x, y) for x, y in zip(first[0][0], next(iter(b))[0]))
    images, targets = first[0]
    assert images[0].dtype == torch.uint8 and images[0].shape == (1, SIZE, SIZE)
    assert set(targets[0]) >= {"boxes", "labels", "iscrowd", "image_id"}
    val = list(task.loader(bundle.val, cfg, bundle.info, False))
    assert [int(t["image_id"]) for _, ts in val for t in ts] == [0, 1, 2, 3]
    assert torch.equal(val[0][0][0], bundle.val.images[0])  # evaluation sees the images untouched


def test_one_step_predict_metric_plots_and_predict_files(task_cfg, bundle, tmp_path):
    task, cfg = task_cfg
    torch.manual_seed(0)
    model = task.build_model(cfg, bundle.info)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = task.to_device(next(iter(task.loader(bundle.train, cfg, bundle.info, True))), torch.device("cpu"))
    assert batch[0][0].dtype == torch.float32 and batch[0][0].max() <= 1.0 and task.batch_size_of(batch) == 4
    model.train()
    loss, parts = task.loss(model, batch)
    assert set(parts) == {"cls", "box", "iou"} and loss.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    loss.backward()
    opt.step()
    model.eval()
    metric = task.new_metric(bundle.info)
    for b in task.loader(bundle.val, cfg, bundle.info, False):
        b = task.to_device(b, torch.device("cpu"))
        metric.update(task.predict(model, b), b)
    m = metric.compute()
    assert {"map", "map_50", "map_75", "mar_100", "per_class_ap"} <= set(m) and 0 <= m["map"] <= 1
    paths = task.plots(tmp_path, model, bundle, torch.device("cpu"), m)
    assert {p.name for p in paths} == {"predictions_val.png", "predictions_test.png", "per_class_ap.png"}
    assert all(p.stat().st_size > 0 for p in paths)

    files = []
    for i in range(2):
        Image.fromarray(bundle.test.images[i][0].numpy()).save(tmp_path / f"t{i}.png")
        files.append(str(tmp_path / f"t{i}.png"))
    (tmp_path / "broken.png").write_bytes(b"nope")
    meta = {"preprocess": task.preprocessing(cfg, bundle.info), "classes": bundle.info.classes}
    records = predict_files(task, model, meta, files + [str(tmp_path / "broken.png")], tmp_path / "out",
                            conf=0.0, iou=0.5)
    assert len(records) == 3 and "error" in records[2]
    dets = records[0]["detections"]
    assert records[0]["width"] == SIZE and len(dets) <= 100
    if dets:
        d = dets[0]
        assert set(d) >= {"image_id", "category_id", "bbox", "score"} and len(d["bbox"]) == 4
    flat = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert len(flat) == len(dets) + len(records[1]["detections"])
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["0001_t0.png", "0002_t1.png"]
    high = predict_files(task, model, meta, files[:1], None, conf=1.01)
    assert high[0]["detections"] == []


def test_cli_predict_table_names_the_best_boxes(task_cfg, bundle, tmp_path, capsys, monkeypatch):
    """`cnnkit predict` prints one readable line per image (how many boxes, then the best-scoring ones'
    classes and scores) where it printed a raw dict; --json stays the record."""
    from cnnkit.cli import main
    from cnnkit.engine.checkpoint import save_checkpoint
    from cnnkit.engine.trainer import checkpoint_meta
    from cnnkit.report import console as show

    task, cfg = task_cfg
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "det.pt", task.build_model(cfg, bundle.info).state_dict(),
                           checkpoint_meta(task, cfg, bundle.info, 1, {"map": 0.5}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(show.console, "width", 200)  # one table row per image, unwrapped
    Image.fromarray(bundle.test.images[0][0].numpy()).save("c.png")
    for conf in ("0", "1"):
        assert main(["predict", str(ckpt), "c.png", "--conf", conf, "--json"]) == 0
        dets = json.loads(capsys.readouterr().out)[0]["detections"]
        assert main(["predict", str(ckpt), "c.png", "--conf", conf]) == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if "c.png" in line)
        assert "{" not in out and "image_id" not in out
        if conf == "1":
            assert not dets and row.split("│")[2].strip() == "no boxes"
            continue
        best = sorted(dets, key=lambda d: -d["score"])[:4]
        named = ", ".join(f"{d['category']} ({d['score']:.2f})" for d in best)
        assert len(dets) > 4 and row.split("│")[2].strip() == f"{len(dets)} boxes: {named}, +{len(dets) - 4} more"


def test_build_model_rejects_classifiers_and_unknown_options(task_cfg, bundle):
    task, cfg = task_cfg
    cfg = cfg.copy()
    cfg.model.name = "resnet18"
    with pytest.raises(CnnkitError, match="not a detector"):
        task.build_model(cfg, bundle.info)
    cfg.model.name = "tinydet"
    cfg.model.kwargs = {"head_widht": 32}
    with pytest.raises(CnnkitError, match="head_width"):
        task.build_model(cfg, bundle.info)

