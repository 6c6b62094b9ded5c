"""engine/inputs: every accepted in-memory form gives the pixels `read_image` gives for the same picture
saved as a PNG; paths expand in place; anything else is one sentence."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.decode import read_image
from cnnkit.engine.inputs import InMemory, collect_inputs, to_image
from cnnkit.errors import CnnkitError


def _rgba(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_every_form_matches_the_png_reader(tmp_path, channels):
    rgba = _rgba()
    png = tmp_path / "a.png"
    Image.fromarray(rgba).save(png)
    reference = read_image(png, channels)  # alpha composited on white, then gray/RGB as asked
    assert torch.equal(to_image(Image.fromarray(rgba), channels), reference)
    assert torch.equal(to_image(rgba, channels), reference)
    rgb = reference if reference.shape[0] == 3 else read_image(png, 3)
    assert torch.equal(to_image(rgb.float() / 255, 3), rgb)  # floats in [0, 1] round back to the same uint8
    gray = read_image(png, 1)
    assert torch.equal(to_image(gray[0].numpy().astype(np.int64), 3), gray.repeat(3, 1, 1))  # gray -> RGB


def test_floats_are_scaled_by_255_and_rounded():
    t = torch.tensor([[[0.0, 0.5, 1.0, 0.3]]])
    assert to_image(t, None).tolist() == [[[0, 128, 255, 76]]]


def test_lists_batches_folders_and_globs_keep_input_order(tmp_path):
    for name in ("b.png", "a.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    out = collect_inputs([torch.zeros(2, 1, 4, 4), str(tmp_path), str(tmp_path / "*.png"), np.zeros((4, 4))], 1)
    assert [o.label if isinstance(o, InMemory) else o for o in out] == [
        "0.0", "0.1", str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "a.png"),
        str(tmp_path / "b.png"), "3"]
    assert [o.label for o in collect_inputs(torch.zeros(2, 3, 4, 4), 3)] == ["0", "1"]  # a batch alone


def test_missing_paths_and_nothing_at_all_are_one_sentence(tmp_path):
    with pytest.raises(CnnkitError, match=r"^Input .*nope.png does not exist and matches no file: give an image "
                                          r"file, a folder or a glob\.$"):
        collect_inputs([str(tmp_path / "nope.png")], 1)
    with pytest.raises(CnnkitError, match=rf"^No images were found in {tmp_path}: "):
        collect_inputs([tmp_path], 1)
    with pytest.raises(CnnkitError, match="^No images were given: give a file path"):
        collect_inputs([], 1)


def test_a_channel_count_the_model_cannot_take_is_named():
    with pytest.raises(CnnkitError, match="^Image 0 has 2 channels and the model takes 3"):
        to_image(torch.zeros(2, 5, 5, dtype=torch.uint8), 3)
    assert to_image(torch.zeros(2, 5, 5, dtype=torch.uint8), None).shape == (2, 5, 5)  # a bare model: as given
