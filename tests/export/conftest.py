"""Small runs to export: LeNet-5 on digits, tinydet on a 48 px digit-canvas COCO set, a U-Net on the same
canvases as class masks. Each is a run directory with a best.pt of an untrained model (fixed seed), written
the way the trainer writes one, so the tests time the export, not training."""
from __future__ import annotations

import pytest

from cnnkit.config import Config


def make_run(out, data: str, model: str, **keys) -> str:
    """resolve_run(Config) -> RUN_DIR/best.pt with the trainer's meta; returns the run directory."""
    from cnnkit.engine.checkpoint import save_checkpoint
    from cnnkit.engine.run import resolve_run
    from cnnkit.engine.trainer import checkpoint_meta

    cfg = Config()
    cfg.data.name, cfg.model.name, cfg.train.threads, cfg.train.seed = data, model, 1, 0
    for key, value in keys.items():
        cfg.set(key, value)
    run = resolve_run(cfg, device="cpu")
    run.model.eval()
    save_checkpoint(out / "best.pt", run.model.state_dict(), checkpoint_meta(run.task, run.cfg, run.info, 0, {}))
    return str(out)


@pytest.fixture(scope="session")
def canvases(tmp_path_factory):
    """12 / 4 / 6 digit canvases of 48 px written as COCO (boxes) and as a mask folder (classes)."""
    from cnnkit.data.base import DataBundle, DatasetInfo
    from cnnkit.data.builtin.canvas import digit_canvases
    from cnnkit.data.registry import WRITERS

    root = tmp_path_factory.mktemp("canvases")
    splits = [digit_canvases(s, size=48, seed=3, n=n).to_split(s) for s, n in (("train", 12), ("val", 4),
                                                                                ("test", 6))]
    info = DatasetInfo("detect", [str(i) for i in range(10)], 1, 48, name="tiny", hflip_ok=False)
    bundle = DataBundle(*splits, info)
    WRITERS.get("coco")(bundle, root / "coco")
    WRITERS.get("masks")(bundle, root / "masks")
    return root


@pytest.fixture(scope="session")
def classify_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("lenet"), "digits", "lenet5")


@pytest.fixture(scope="session")
def detect_run(tmp_path_factory, canvases):
    return make_run(tmp_path_factory.mktemp("tinydet"), str(canvases / "coco"), "tinydet", task="detect")


@pytest.fixture(scope="session")
def segment_run(tmp_path_factory, canvases):
    return make_run(tmp_path_factory.mktemp("unet"), str(canvases / "masks"), "unet", task="segment")


@pytest.fixture(scope="session")
def instance_run(tmp_path_factory, canvases):
    return make_run(tmp_path_factory.mktemp("maskrcnn"), str(canvases / "coco"), "maskrcnn", task="instance")
