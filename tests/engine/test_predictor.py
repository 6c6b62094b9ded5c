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
