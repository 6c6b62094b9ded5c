"""Explanation: scaling to the image, summary numbers, JSON."""
import json

import pytest
import torch

from cnnkit.explain.explanation import Explanation, display_image, to_image_map


def test_to_image_map_keeps_the_positive_evidence_scaled_to_one():
    raw = torch.tensor([[-2.0, 0.0], [1.0, 4.0]])
    m = to_image_map(raw, (2, 2))
    torch.testing.assert_close(m, torch.tensor([[0.0, 0.0], [0.25, 1.0]]))
    big = to_image_map(torch.rand(32, 32), (8, 8))
    assert big.shape == (8, 8) and float(big.max()) == pytest.approx(1.0)
    assert float(to_image_map(-torch.ones(3, 3), (3, 3)).max()) == 0.0


def test_display_image_scales_floats():
    out = display_image(torch.tensor([[[-1.0, 1.0]]]))
    assert out.dtype == torch.uint8 and out.tolist() == [[[0, 255]]]


def test_summary_is_json_and_peak_is_in_image_pixels():
    raw = torch.zeros(4, 6)
    raw[1, 4] = 3.0
    e = Explanation("ig", to_image_map(raw, (4, 6)), raw, torch.zeros(1, 4, 6, dtype=torch.uint8),
                    {"kind": "class", "index": 0, "name": "a", "prob": 0.5}, None, "x.png",
                    {"completeness_gap": 0.001, "features": torch.zeros(2)})
    s = e.summary()
    json.dumps(s)
    assert s["peak"] == [1, 4] and s["max"] == 3.0 and s["completeness_gap"] == 0.001 and "features" not in s
    assert "ig" in repr(e) and e.label() == "ig · a"
