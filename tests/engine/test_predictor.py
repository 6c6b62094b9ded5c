"""`Predictor.predict` through the Python API: file paths, folders and in-memory images (PIL, uint8
tensors, arrays) mixed in one list give one record each, in input order, equal to the file's record."""
import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit


def _digit_pngs(folder, n):
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True, exist_ok=True)
    images = load_digits().images
    paths = []
    for i in range(n):
        p = folder / f"digit_{i}.png"
        Image.fromarray((images[-(i + 1)] * 255 / 16).round().astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_mixed_paths_and_images_keep_input_order(digits_run, tmp_path):
    a, b, c = _digit_pngs(tmp_path / "files", 3)
    folder = _digit_pngs(tmp_path / "folder", 2)
    pil = Image.open(b).convert("RGB")  # RGB on purpose: converted to the model's one channel
    tensor = torch.from_numpy(np.array(Image.open(c)))[None]  # uint8 1 x H x W
    predictor = cnnkit.load(digits_run.dir)
    reference = {str(p): r for p, r in zip([a, b, c, *folder], predictor.predict([str(a), str(b), str(c),
                                                                                  *map(str, folder)]))}
    records = predictor.predict([str(a), pil, tmp_path / "folder", tensor])
    assert [r["file"] for r in records] == [str(a), "<image 1>", *map(str, folder), "<image 3>"]
    for record, source in zip(records, [a, b, *folder, c]):
        assert record["label"] == reference[str(source)]["label"]
        assert record["score"] == pytest.approx(reference[str(source)]["score"], abs=1e-5)


def _one_image_in_every_form(tmp_path):
    """The same RGB picture as a file, a PIL image, a numpy H x W x C array, a torch C x H x W tensor
    and a float N x C x H x W batch of two (reference for the numbers: the file's record)."""
    (path,) = _digit_pngs(tmp_path / "forms", 1)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    chw = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    return [str(path), Image.fromarray(rgb), rgb, chw, torch.stack([chw, chw]).float() / 255]


def test_predict_and_explain_take_the_same_inputs(digits_run, tmp_path):
    items = _one_image_in_every_form(tmp_path)
    records = cnnkit.load(digits_run.dir).predict(items)
    explanations = cnnkit.explain(digits_run.dir, items, method="saliency")
    assert [r["file"] for r in records] == [items[0], "<image 1>", "<image 2>", "<image 3>", "<image 4.0>",
                                            "<image 4.1>"]
    assert [e.name for e in explanations] == [items[0], "1", "2", "3", "4.0", "4.1"]
    for r in records:  # every form is the file's pixels: the same prediction to the last digit
        assert (r["label"], r["score"]) == (records[0]["label"], pytest.approx(records[0]["score"], abs=1e-6))
    for e in explanations:
        assert e.image.shape == explanations[0].image.shape and torch.equal(e.image, explanations[0].image)


@pytest.mark.parametrize("bad, found", [
    (torch.zeros(32, 32, 3, dtype=torch.uint8), "a torch.Tensor of shape (32, 32, 3) and dtype uint8 "
                                                "(torch tensors are channels first: t.permute(2, 0, 1))"),
    (np.zeros((1, 8, 8), np.uint8), "a numpy.ndarray of shape (1, 8, 8) and dtype uint8 "
                                    "(numpy arrays are channels last: np.moveaxis(a, 0, -1))"),
    (torch.full((1, 8, 8), 2.0), "a torch.Tensor of shape (1, 8, 8) and dtype float32 with values from 2 to 2 "
                                 "(floats must be in [0, 1])"),
    (3, "an int"),
])
def test_a_bad_input_is_one_sentence_naming_it_in_predict_and_explain(digits_run, tmp_path, bad, found):
    from cnnkit.errors import CnnkitError

    (path,) = _digit_pngs(tmp_path, 1)
    sentence = (f"Image 1 is {found}; give a file path, folder or glob, a PIL image, a numpy array H x W or "
                "H x W x C, or a torch tensor C x H x W or N x C x H x W, with uint8 pixels or floats in [0, 1].")
    for call in (lambda: cnnkit.load(digits_run.dir).predict([str(path), bad]),
                 lambda: cnnkit.explain(digits_run.dir, [str(path), bad])):
        with pytest.raises(CnnkitError) as err:
            call()
        assert str(err.value) == sentence
