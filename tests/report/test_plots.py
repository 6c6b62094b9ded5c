"""Plots: class names in any script draw without glyph warnings; undefined metrics are gaps, not points."""
import math
import warnings

import pytest

from cnnkit.report import fonts
from cnnkit.report.plots import _series, image_grid, plot_confusion, plot_history

NAMES = ["café", "猫", "🐶"]


@pytest.fixture()
def strict_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    assert [str(w.message) for w in caught] == []


def test_confusion_matrix_with_accents_cjk_and_emoji_warns_nothing(tmp_path, strict_warnings):
    path = plot_confusion([[3, 1, 0], [0, 2, 1], [1, 0, 4]], NAMES, tmp_path / "cm.png")
    assert path.exists() and path.stat().st_size > 1000


def test_without_fonts_the_index_is_drawn_and_nothing_warns(tmp_path, monkeypatch, strict_warnings):
    fonts._fallbacks.cache_clear()
    monkeypatch.setattr(fonts, "_candidates", lambda: [])
    try:
        assert plot_confusion([[1, 0, 0], [0, 1, 0], [0, 0, 1]], NAMES, tmp_path / "cm.png").exists()
    finally:
        fonts._fallbacks.cache_clear()


def test_image_grid_captions_warn_nothing(tmp_path, strict_warnings):
    import torch

    images = [torch.zeros((1, 8, 8), dtype=torch.uint8), torch.full((3, 8, 8), 200, dtype=torch.uint8)]
    assert image_grid(images, ["猫 0.91", "🐶 0.40"], tmp_path / "grid.png", title="café").exists()


def test_history_leaves_a_gap_where_a_metric_is_undefined(tmp_path, strict_warnings):
    rows = [{"epoch": 1, "lr": 0.1, "train_loss": 2.0, "val_map": 0.1, "val_map_large": None, "val_images": 6.0},
            {"epoch": 2, "lr": 0.05, "train_loss": 1.5, "val_map": None, "val_map_large": None},
            {"epoch": 3, "lr": 0.01, "train_loss": 1.0, "val_map": 0.3, "val_map_large": None}]
    pts = _series(rows, "val_map")
    assert [e for e, _ in pts] == [1, 2, 3] and math.isnan(pts[1][1]) and pts[2][1] == 0.3
    paths = plot_history(rows, tmp_path, headline=("map",))
    assert sorted(p.name for p in paths) == ["loss.png", "lr.png", "metrics.png"]
