"""Integrated gradients per token: completeness (scores add up to f(x) - f(baseline)) within 1 %."""
import pytest
import torch

from cnnkit.explain.sequence import rgb, token_attributions
from cnnkit.models import build_model


@pytest.mark.parametrize("name", ["textcnn", "rescnn1d"])
def test_ig_completeness_gap_under_one_percent(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, in_channels=12, image_size=20, channels=8, embed_dim=8).eval()
    ids = torch.tensor([[3, 5, 2, 7, 7, 9, 4, 11]])
    scores, gap, diff = token_attributions(model, ids, target=1, steps=256)
    assert scores.shape == (8,) and abs(diff) > 1e-4
    assert gap < 0.01
    assert float(scores.sum()) == pytest.approx(diff, rel=0.01)


def test_colours_scale_from_white():
    assert rgb(0.0, 1.0) == (255, 255, 255)
    assert rgb(1.0, 1.0) == (214, 39, 40) and rgb(-2.0, 1.0) == (31, 119, 180)
