"""InstanceTask: a Mask R-CNN smoke run — one step, the metric, and the predict loop's RLE JSON and drawing."""
import json
from pathlib import Path

import torch
from PIL import Image
from pycocotools import mask as mask_utils

from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.data.builtin.canvas import make_canvases
from cnnkit.engine.predictor import predict_files
from cnnkit.tasks import get_task


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
    rec = predict_files(task, model, meta, [str(path)], tmp_path / "out", conf=0.0)[0]
    json.dumps(rec)
    for obj in rec["instances"][:3]:
        rle = {"size": obj["segmentation"]["size"], "counts": obj["segmentation"]["counts"].encode()}
        assert mask_utils.decode(rle).shape == (64, 64)
    assert Path(rec["drawing"]).name == "0001_c_instances.png" and Path(rec["drawing"]).is_file()


def test_predict_table_line_names_the_best_objects():
    """`cnnkit predict`'s line for an instance record: how many objects, the best-scoring four with
    their class and score, then how many more (the record itself is what --json prints)."""
    task = get_task("instance")
    objects = [{"category": str(i % 10), "score": s, "bbox": [0, 0, 1, 1], "segmentation": {}}
               for i, s in enumerate([0.2, 0.9, 0.5, 0.7, 0.3, 0.8, 0.1])]
    record = {"file": "a.png", "image_id": 1, "height": 64, "width": 64, "instances": objects}
    assert task.describe(record) == "7 objects: 1 (0.90), 5 (0.80), 3 (0.70), 2 (0.50), +3 more"
    assert task.describe({**record, "instances": objects[1:2]}) == "1 object: 1 (0.90)"
    assert task.describe({**record, "instances": []}) == "no objects"
