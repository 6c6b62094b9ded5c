"""tasks/base.py: the defaults a `Task` gives every task (input preparation, batch moving, the registered
model) and the steps it leaves to each task."""
from __future__ import annotations

import pytest
import torch

from cnnkit.config import Config
from cnnkit.data.base import DatasetInfo
from cnnkit.tasks.base import Task, image_side

INFO = DatasetInfo("classify", ["a", "b", "c"], 1, 28, name="tiny")


def test_image_side_accepts_an_int_or_a_pair():
    assert image_side(28) == [28, 28]
    assert image_side((24, "32")) == [24, 32] and image_side([5, 7]) == [5, 7]


def test_default_model_input_resizes_and_normalises_each_image():
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (1, 10, 14), generator=g, dtype=torch.uint8),
              torch.randint(0, 256, (1, 8, 8), generator=g, dtype=torch.uint8)]
    pre = {"size": [8, 8], "mean": [0.25], "std": [0.5]}
    x = Task().model_input(images, pre)
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.float32
    ref = (images[1].double() / 255 - 0.25) / 0.5  # already at the size: normalisation only
    torch.testing.assert_close(x[1].double(), ref)


def test_default_batch_moving_and_size():
    batch = (torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2]))
    moved = Task().to_device(batch, torch.device("cpu"))
    assert isinstance(moved, tuple) and all(torch.equal(a, b) for a, b in zip(moved, batch))
    assert Task().batch_size_of(batch) == 3


def test_default_build_model_is_the_registered_model_with_the_datas_classes():
    cfg = Config()
    cfg.model.name, cfg.model.kwargs = "lenet5", {}
    task = Task()
    task.setup(cfg, INFO)
    assert task.cfg is cfg and task.info is INFO
    model = task.build_model(cfg, INFO).eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    kwargs = task.model_kwargs(cfg)
    kwargs["x"] = 1
    assert cfg.model.kwargs == {}  # a task gets a copy it may edit


def test_steps_are_left_to_each_task_and_outputs_default_to_none():
    task = Task()
    for call in (lambda: task.preprocessing(Config(), INFO), lambda: task.loader(None, Config(), INFO, True),
                 lambda: task.loss(None, None), lambda: task.predict(None, None), lambda: task.new_metric(INFO),
                 lambda: task.predict_one(None, None, None), lambda: task.record(None, None, {}, 1)):
        with pytest.raises(NotImplementedError):
            call()
    assert task.draw(torch.zeros(1, 2, 2), None, {}, "x.png") == [] and task.result_files([]) == {}
    assert task.monitor == ("loss", "min")
