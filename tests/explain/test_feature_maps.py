"""Feature-map grids and filter tiles."""
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.explain.api import explain
from cnnkit.explain.feature_maps import conv_weights, save_feature_grid, save_filters

from .conftest import assert_png, random_image, tiny_classifier


def test_feature_maps_of_the_first_conv_by_default(tmp_path):
    model = tiny_classifier()
    img = random_image(1, 16, 16)
    (e,) = explain(model, img, "featuremaps")
    assert e.layer == "conv1" and e.extra["features"].shape == (8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(e.extra["features"], model.conv1(img.float()[None] / 255)[0])
    assert_png(e.save(tmp_path / "fm.png"))
    (e,) = explain(model, img, "featuremaps", layer="relu2")
    assert e.extra["features"].shape == (16, 8, 8)


def test_filter_tiles_gray_rgb_and_deep(tmp_path):
    out = explain(tiny_classifier(), random_image(1, 16, 16), "filters")
    assert [e.layer for e in out] == ["conv1", "conv2"]
    assert_png(out[0].save(tmp_path / "f1.png"))
    assert_png(out[1].save(tmp_path / "f2.png"))  # 16 x 8 kernels as a grid
    assert_png(save_filters(torch.randn(12, 3, 5, 5), tmp_path / "rgb.png", "rgb"))
    assert_png(save_feature_grid(torch.randn(70, 6, 6), tmp_path / "many.png", "capped at 64"))


def test_filters_need_a_conv_layer():
    with pytest.raises(CnnkitError, match="not a Conv2d"):
        conv_weights(tiny_classifier(), "fc")
