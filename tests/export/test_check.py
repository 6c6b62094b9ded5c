"""export/check.py: the parity gate can fail, and says which output differs on which image."""
from __future__ import annotations

import json
import re

import onnx
import torch

import cnnkit
from cnnkit.export.api import export
from cnnkit.export.check import check_parity, failure_text


def edit_metadata(path, key: str, value) -> None:
    proto = onnx.load(str(path))
    (entry,) = [e for e in proto.metadata_props if e.key == key]
    entry.value = json.dumps(value)
    onnx.save(proto, str(path))


def test_a_wrong_mean_in_the_file_fails_the_check(classify_run, tmp_path):
    out = tmp_path / "lenet.onnx"
    assert export(classify_run, out=out, check=True)["check"]["passed"]
    edit_metadata(out, "cnnkit.mean", [0.25])  # digits' is 0.3058
    result = check_parity(out, classify_run)
    assert not result["passed"]
    (logits,) = result["outputs"]
    assert logits["output"] == "logits" and logits["max_diff"] > 1e-3 and logits["where"].startswith("test[")
    # the file is used as its metadata says, so its answers move with it
    image = torch.randint(0, 256, (1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ref, edited = cnnkit.predict(classify_run, [image])[0], cnnkit.predict(out, [image])[0]
    assert abs(ref["score"] - edited["score"]) > 1e-4


def test_the_failure_names_output_image_and_tolerance(segment_run, tmp_path):
    out = tmp_path / "unet.onnx"
    export(segment_run, out=out)
    edit_metadata(out, "cnnkit.std", [0.3])
    result = check_parity(out, segment_run, n=2)
    text = failure_text(result, out)
    assert not result["passed"]
    assert re.search(r"does not match PyTorch: logits differs by [\d.e+-]+ on (image \d of )?test\[\d", text), text
    assert "tolerance 0.0001" in text
