"""Tiny untrained checkpoints for every image task (built in well under a second each, no data read),
sample PNGs (a handwritten digit, a digits canvas), and a TestClient factory for the serve tests."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.engine.checkpoint import save_checkpoint
from cnnkit.engine.trainer import checkpoint_meta
from cnnkit.tasks import get_task

DIGITS = [str(i) for i in range(10)]
TASKS = {  # task -> (model, classes, image side)
    "classify": ("lenet5", DIGITS, 8),
    "detect": (None, DIGITS, 64),
    "segment": (None, ["background", *DIGITS], 64),
    "instance": (None, DIGITS, 64),
}
TOKEN = "test-token-0123456789"


def make_checkpoint(path, task_name: str, model: str | None, classes: list[str], size: int,
                    metrics: dict | None = None):
    cfg = Config()
    cfg.task = task_name
    cfg.model.name = model
    cfg.train.threads = 1
    info = DatasetInfo(task_name, classes, 1, size, name="tiny")
    task = get_task(task_name)
    cfg.fill_defaults(task.defaults(cfg, info))
    task.setup(cfg, info)
    torch.manual_seed(0)
    net = task.build_model(cfg, info)
    return save_checkpoint(path, net.state_dict(), checkpoint_meta(task, cfg, info, 1, metrics or {"accuracy": 0.25}))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("serve-ckpts")
    return {t: make_checkpoint(root / f"{t}.pt", t, m, c, s) for t, (m, c, s) in TASKS.items()}


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def digit_png() -> bytes:
    from sklearn.datasets import load_digits

    img = load_digits().images[0]  # 8 x 8, values 0..16
    return png_bytes((img * 255 / 16).astype(np.uint8))


@pytest.fixture(scope="session")
def canvas_png() -> bytes:
    from cnnkit.data.builtin.canvas import digit_canvases

    return png_bytes(digit_canvases("test", size=64, seed=0, n=1).images[0, 0].numpy())


@pytest.fixture(scope="session")
def apps(checkpoints):
    """task -> a started TestClient (token required), shared by the module's tests."""
    from fastapi.testclient import TestClient

    from cnnkit.serve import ServeSettings, create_app

    clients, opened = {}, []
    for task, path in checkpoints.items():
        client = TestClient(create_app(path, ServeSettings(token=TOKEN, max_wait_ms=1), device="cpu"))
        opened.append(client.__enter__())
        clients[task] = client
    yield clients
    for client in opened:
        client.__exit__(None, None, None)


AUTH = {"Authorization": f"Bearer {TOKEN}"}
