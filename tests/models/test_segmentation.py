"""Segmentation models: logits at the input size for every registered segmenter; Mask R-CNN's contract."""
import pytest
import torch

import cnnkit.models.segmentation  # noqa: F401  registers the segmenters
from cnnkit.errors import CnnkitError
from cnnkit.models import MODELS, build_model

SEGMENTERS = MODELS.list(task="segment")


def test_segmenters_are_registered():
    assert {"unet", "fcn", "deeplabv3"} <= set(SEGMENTERS)
    assert "maskrcnn" in MODELS.list(task="instance")


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("channels,size", [(1, (48, 48)), (3, (40, 56))])
def test_logits_at_input_size_and_gradients_flow(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, in_channels=channels, image_size=size[0])
    x = torch.randn(2, channels, *size)
    out = model(x)
    assert out.shape == (2, 5, *size)
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unet_on_a_resnet_encoder_with_stride_4_stem_gets_a_full_resolution_branch():
    model = build_model("unet", num_classes=3, in_channels=3, image_size=64, backbone="resnet18")
    assert model.encoder.strides[0] > 1 and model.input_skip is not None
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert build_model("unet", num_classes=3, in_channels=3, image_size=64).input_skip is None  # tiny: stride 2
    forced = build_model("unet", num_classes=3, in_channels=3, image_size=64, full_res=8)
    assert forced.input_skip is not None and forced(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    none = build_model("unet", num_classes=3, in_channels=3, image_size=64, backbone="resnet18", full_res=0)
    assert none.input_skip is None and none(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_unet_add_fusion_decoder_is_lighter_and_keeps_the_concat_layout_loadable():
    torch.manual_seed(0)
    concat = build_model("unet", num_classes=4, in_channels=1, image_size=48)
    add = build_model("unet", num_classes=4, in_channels=1, image_size=48, fuse="add", decoder_convs=1)
    out = add(torch.randn(2, 1, 48, 48))
    assert out.shape == (2, 4, 48, 48) and concat.lateral is None
    # 1x1 projection + one 3x3 conv per step instead of a 3x3 conv over the concatenation and a second 3x3
    assert sum(p.numel() for p in add.decoder.parameters()) < sum(p.numel() for p in concat.decoder.parameters()) / 2
    two = build_model("unet", num_classes=4, in_channels=1, image_size=48, decoder_convs=2)
    two.load_state_dict(concat.state_dict())  # the defaults' state dict layout (old checkpoints) is unchanged
    with pytest.raises(CnnkitError, match="fuse"):
        build_model("unet", num_classes=4, in_channels=1, image_size=48, fuse="sum")


def test_deeplab_rates_fit_the_feature_map_and_can_be_given():
    model = build_model("deeplabv3", num_classes=3, in_channels=1, image_size=96)
    aspp = model.head[0]
    rates = [m[0].dilation[0] for m in list(aspp.convs)[1:4]]
    assert max(rates) <= 96 // model.backbone.strides[-1]
    custom = build_model("deeplabv3", num_classes=3, in_channels=1, image_size=96, atrous_rates=[1, 2, 3])
    assert [m[0].dilation[0] for m in list(custom.head[0].convs)[1:4]] == [1, 2, 3]


def test_unknown_option_is_one_sentence():
    with pytest.raises(CnnkitError, match="no option"):
        build_model("unet", num_classes=3, in_channels=1, image_size=32, widht=3)


def test_maskrcnn_keeps_torchvisions_contract():
    torch.manual_seed(0)
    model = build_model("maskrcnn", num_classes=3, in_channels=1, image_size=64)
    masks = torch.zeros((1, 64, 64), dtype=torch.uint8)
    masks[0, 10:30, 12:28] = 1
    target = {"boxes": torch.tensor([[12.0, 10.0, 28.0, 30.0]]), "labels": torch.tensor([2]), "masks": masks}
    model.train()
    losses = model([torch.rand(1, 64, 64)], [target])
    assert {"loss_mask", "loss_classifier", "loss_box_reg", "loss_objectness"} <= set(losses)
    model.eval()
    model.set_thresholds(score=0.0)
    with torch.no_grad():
        out = model([torch.rand(1, 64, 64)])[0]
    assert set(out) >= {"boxes", "labels", "scores", "masks"}
    assert out["masks"].shape[1:] == (1, 64, 64)
    assert (out["labels"] >= 0).all() and (out["labels"] < 3).all()  # 0-based, background removed
