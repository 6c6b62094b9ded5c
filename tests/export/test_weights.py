"""export/weights.py: safetensors weights with the meta as JSON, loadable by cnnkit.load."""
from __future__ import annotations

import pytest
import torch

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.export.api import export


def test_safetensors_loads_and_predicts_like_the_checkpoint(detect_run, tmp_path):
    out = export(detect_run, format="safetensors", out=tmp_path / "w.safetensors")["file"]
    ref, got = cnnkit.load(detect_run), cnnkit.load(out)
    assert got.meta["model"] == ref.meta["model"] and got.classes == ref.classes
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, got.model.state_dict()[k]), k
    image = torch.randint(0, 256, (1, 48, 48), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert ref.predict([image]) == got.predict([image])


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CnnkitError, match="has no cnnkit metadata"):
        cnnkit.load(tmp_path / "x.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(CnnkitError, match="Cannot read weights file"):
        cnnkit.load(tmp_path / "bad.safetensors")
