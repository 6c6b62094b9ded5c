"""Overlay, grid and curve PNGs exist and are not blank."""
import torch

from cnnkit.explain.api import explain
from cnnkit.explain.overlay import save_curves, save_grid, save_overlay

from .conftest import assert_png, random_image, tiny_classifier


def test_overlay_grid_and_curves(tmp_path):
    out = explain(tiny_classifier(channels=3), random_image(3, 16, 20), "gradcam,saliency,ig", steps=8)
    assert_png(save_overlay(out[0], tmp_path / "one.png"))
    assert_png(out[1].save(tmp_path / "sub" / "two.png"))  # creates the folder
    assert_png(save_grid([out, out[:2]], tmp_path / "grid.png", ["a", "b"]))
    curve = [1.0, 0.6, 0.3, 0.1, 0.0]
    res = {"gradcam": {"deletion_curve": curve, "deletion_curve_random": curve[::-1], "deletion_auc": 0.3,
                       "deletion_auc_random": 0.5, "insertion_curve": curve[::-1], "insertion_curve_random": curve,
                       "insertion_auc": 0.6, "insertion_auc_random": 0.4}}
    assert_png(save_curves(res, tmp_path / "curves.png"))


def test_gray_image_overlay(tmp_path):
    (e,) = explain(tiny_classifier(), torch.full((1, 10, 10), 128, dtype=torch.uint8), "saliency")
    assert_png(e.save(tmp_path / "gray.png"))
