"""bench/step.py: a training step moves the weights and counts its images; training FLOPs against a hand count."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.bench.backends import prepare
from cnnkit.bench.step import TrainStep, endless, train_flops_per_image
from cnnkit.config import Config


class StubTask:
    """The three Task calls a step needs, for a plain (x, y) batch."""

    def to_device(self, batch, device):
        return tuple(t.to(device) for t in batch)

    def loss(self, model, batch):
        return F.cross_entropy(model(batch[0]), batch[1]), {}

    def batch_size_of(self, batch):
        return len(batch[0])


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def test_train_flops_per_image_match_a_hand_count():
    conv = 2 * 1 * 4 * 9 * 6 * 6  # 2 * Cin * Cout * k * k * Hout * Wout
    fc = 2 * 144 * 5
    # backward: the conv's weight gradient only (its input is data), the linear layer's input and weight gradients
    expected = conv + fc + conv + 2 * fc
    batch = (torch.zeros(3, 1, 8, 8), torch.zeros(3, dtype=torch.long))
    assert train_flops_per_image(StubTask(), net(), batch) == pytest.approx(expected)


def test_a_step_trains_its_backend_and_returns_the_images():
    cfg = Config()
    cfg.train.lr, cfg.train.weight_decay, cfg.train.grad_clip = 0.1, 0.0, 1.0
    model = net()
    backend = prepare("eager", model)
    step = TrainStep(StubTask(), cfg, backend, torch.device("cpu"))
    stream = itertools.repeat((torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])))
    before = backend.model[2].weight.detach().clone()
    assert step(stream) == 4
    assert not torch.equal(backend.model[2].weight, before)
    assert torch.equal(model[2].weight, before)  # the caller's model is untouched
    assert all(p.grad is None for p in backend.model.parameters())  # cleared after the optimiser step


def test_endless_walks_epochs_in_turn():
    class Loader:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, e):
            self.epochs.append(e)

        def __iter__(self):
            return iter([self.epochs[-1]] * 2)

    loader = Loader()
    assert list(itertools.islice(endless(loader), 5)) == [0, 0, 1, 1, 2]
    assert loader.epochs == [0, 1, 2]
