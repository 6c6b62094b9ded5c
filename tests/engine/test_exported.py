"""engine/exported.py: bad .onnx inputs end in one sentence; a plain ONNX classifier predicts with
--size/--channels/--classes."""
from __future__ import annotations

import io
import json

import pytest
import torch
from torch import nn

import cnnkit
from cnnkit.cli import main
from cnnkit.errors import CnnkitError


def test_a_corrupt_onnx_file_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf at all")
    assert main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnnkit: error: Cannot read ONNX file {bad}") and len(err.strip().splitlines()) == 1
    with pytest.raises(CnnkitError, match="does not exist"):
        cnnkit.load(tmp_path / "missing.onnx")


def plain_onnx(path, dynamic: bool) -> None:
    """A 3-class classifier of 1 x 8 x 8 images, exported by plain torch.onnx (no cnnkit metadata)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    buf = io.BytesIO()
    axes = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}} if dynamic else None
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes=axes, dynamo=False)
    path.write_bytes(buf.getvalue())
    return model


def test_onnx_without_metadata_says_what_is_missing_and_predicts_when_given(tmp_path, capsys):
    path = tmp_path / "plain.onnx"
    model = plain_onnx(path, dynamic=True)
    image = tmp_path / "img.png"
    from PIL import Image

    Image.fromarray((torch.arange(64).reshape(8, 8) * 4).to(torch.uint8).numpy()).save(image)
    assert main(["predict", str(path), str(image)]) == 2
    assert "has no cnnkit metadata and its shapes do not say its size: give --size H[,W]" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["predict", str(path), str(image), "--size", "8", "--classes", "a,b,c", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    x = (torch.arange(64).reshape(1, 1, 8, 8) * 4).float() / 255  # mean 0, std 1 without metadata
    prob = model(x).softmax(1)[0]
    assert record["label"] == "abc"[int(prob.argmax())] and abs(record["score"] - float(prob.max())) < 1e-5


def test_static_shapes_fill_in_what_they_can(tmp_path):
    path = tmp_path / "static.onnx"
    plain_onnx(path, dynamic=False)
    predictor = cnnkit.load(path)
    assert predictor.classes == ["0", "1", "2"] and predictor.meta["preprocess"]["size"] == [8, 8]
