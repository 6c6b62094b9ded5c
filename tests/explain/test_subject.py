"""Subject: inputs, baselines, task inference, image lists."""
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.explain.subject import as_images, blur, from_model

from .conftest import random_image, tiny_classifier, tiny_detector


def test_baselines():
    img = random_image(1, 16, 16)
    s = from_model(tiny_classifier(), img, preprocess=lambda ims: torch.stack(ims).float() / 255 - 0.5)
    x = s.to_input(img)
    assert torch.all(s.baseline("black", img, x) == -0.5)  # an all-black image, preprocessed
    assert torch.all(s.baseline("zero", img, x) == 0)
    assert torch.all(s.baseline(0.25, img, x) == 0.25)
    assert s.baseline("blur", img, x).std() < x.std()
    with pytest.raises(CnnkitError, match="baseline"):
        s.baseline("noise", img, x)


def test_detector_input_is_the_image_in_0_1():
    img = random_image(3, 30, 40)
    s = from_model(tiny_detector(), img)
    assert s.task == "detect" and s.output == "boxes" and s.classes == []
    torch.testing.assert_close(s.to_input(img), img.float()[None] / 255)


def test_as_images_accepts_tensors_and_rejects_junk():
    assert [n for n, _ in as_images(torch.zeros(2, 1, 4, 4), None)] == ["0", "1"]
    assert as_images(torch.zeros(4, 4), None)[0][1].shape == (1, 4, 4)
    with pytest.raises(CnnkitError, match="^Image 0 is an int; give a file path"):
        as_images([3], None)
    with pytest.raises(CnnkitError, match="No images"):
        as_images([], None)


def test_blur_keeps_shape_on_tiny_inputs():
    assert blur(torch.rand(1, 1, 3, 3)).shape == (1, 1, 3, 3)
    assert blur(torch.rand(1, 3, 64, 48)).shape == (1, 3, 64, 48)
