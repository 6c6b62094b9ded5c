"""Layer choice: the end of the last conv stage, unknown names, detector padding."""
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.explain.layers import auto_layer, first_convs, get_layer, layer_geometry, to_input_size, valid_fraction
from cnnkit.explain.targets import detector_outputs

from .conftest import tiny_classifier, tiny_detector, tiny_segmenter


def _auto(model, output, x):
    run = (lambda: detector_outputs(model, x)) if output == "boxes" else (lambda: model(x))
    return auto_layer(model, output, run)


def test_lenet_picks_the_second_pooling_layer():
    from cnnkit.models.lenet import LeNet5

    model = LeNet5(10, 1, 32).eval()
    assert _auto(model, "logits", torch.zeros(1, 1, 32, 32)) == "features.s4"


def test_flat_model_picks_the_last_spatial_module_after_a_conv():
    # conv2 -> relu2 (16 x 8 x 8) -> global pool (1 x 1): relu2 closes the last stage
    assert _auto(tiny_classifier(), "logits", torch.zeros(1, 1, 16, 16)) == "relu2"


def test_resnet_picks_the_last_block_not_a_layer_inside_it():
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=4).eval()
    # bn2 of the last block shares storage with the block output (in-place `out += identity`)
    assert _auto(model, "logits", torch.zeros(1, 3, 64, 64)) == "layer4.1"


def test_segmenter_skips_the_logit_head():
    assert _auto(tiny_segmenter(), "pixel_logits", torch.zeros(1, 3, 16, 16)) == "relu2"


def test_detector_searches_inside_the_backbone_body():
    det = tiny_detector()
    name = _auto(det, "boxes", torch.rand(1, 3, 48, 64))
    assert name.startswith("backbone.body.layer2")


def test_unknown_layer_names_the_closest():
    model = tiny_classifier()
    assert get_layer(model, "conv2") is model.conv2
    with pytest.raises(CnnkitError, match='Did you mean "conv2"'):
        get_layer(model, "conv_2")


def test_first_convs_in_execution_order():
    assert first_convs(tiny_classifier(), lambda: None, n=2) == ["conv1", "conv2"]


def test_to_input_size_crops_padding_before_upsampling():
    cam = torch.zeros(4, 4)
    cam[:2, :2] = 1.0  # the image covers the top-left half of the padded batch
    out = to_input_size(cam, (8, 8), (0.5, 0.5))
    assert torch.allclose(out, torch.ones(8, 8))


def test_valid_fraction_of_a_torchvision_detector():
    det = tiny_detector()
    fh, fw = valid_fraction(det, torch.rand(1, 3, 40, 64))  # resized to 40x64, padded to 64x64
    assert fw == pytest.approx(1.0) and fh == pytest.approx(40 / 64)
    assert valid_fraction(tiny_classifier(), torch.rand(1, 1, 8, 8)) == (1.0, 1.0)


def test_geometry_of_valid_convolutions():
    from cnnkit.models.lenet import LeNet5

    model = LeNet5(10, 1, 32).eval()
    x = torch.zeros(1, 1, 32, 32)
    # C3 (valid 5x5 after C1 + S2): cell i sits over input pixel 6.5 + 2 i; S4: 7.5 + 4 i
    assert layer_geometry(model.features.c3, model, x) == (2.0, 6.5, 2.0, 6.5)
    assert layer_geometry(model.features.s4, model, x) == (4.0, 7.5, 4.0, 7.5)


def test_geometry_of_same_padding_is_plain_upsampling():
    model = tiny_classifier()
    x = torch.zeros(1, 1, 16, 12)
    geo = layer_geometry(model.relu2, model, x)
    assert geo == (2.0, 0.5, 2.0, 0.5)
    cam = torch.rand(8, 6)
    torch.testing.assert_close(to_input_size(cam, (16, 12), geometry=geo), to_input_size(cam, (16, 12)))


def test_geometry_places_a_cell_on_its_receptive_field():
    cam = torch.zeros(5, 5)
    cam[0, 0] = 1.0
    out = to_input_size(cam, (32, 32), geometry=(4.0, 7.5, 4.0, 7.5))
    assert out[:8, :8].min() == 1.0 and out[12:, :].max() == 0.0  # border cells extend to the edge
    assert float(out[9, 9]) == pytest.approx(0.625 ** 2)  # pixel 9 is 3/8 of the way to the next centre
