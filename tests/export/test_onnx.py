"""export/onnx.py + check.py + runtime.py through the CLI: export --check passes for each task, and
`cnnkit eval model.onnx` reports the checkpoint's metric."""
from __future__ import annotations

import json

import pytest

from cnnkit.cli import main


def cli_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("run, metric, tol", [("classify_run", "accuracy", 1e-4), ("detect_run", "map", 2e-3),
                                              ("segment_run", "miou", 1e-4), ("instance_run", "map", 2e-3)])
def test_export_check_and_eval_match_the_checkpoint(run, metric, tol, request, capsys, tmp_path):
    source = request.getfixturevalue(run)
    out = tmp_path / "model.onnx"
    result = cli_json(capsys, "export", source, "--out", str(out), "--check", "--dynamic-batch")
    assert result["check"]["passed"] and result["check"]["images"] > 1
    assert all(o["max_diff"] <= o["tolerance"] for o in result["check"]["outputs"])
    torch_metrics = cli_json(capsys, "eval", source)
    onnx_metrics = cli_json(capsys, "eval", str(out))
    assert onnx_metrics["images"] == torch_metrics["images"] > 0
    assert abs(onnx_metrics[metric] - torch_metrics[metric]) <= tol


def test_metadata_holds_what_a_user_needs(classify_run, tmp_path):
    import onnx

    from cnnkit.engine.checkpoint import load_checkpoint
    from cnnkit.export.api import export

    props = {p.key: p.value for p in onnx.load(export(classify_run, out=tmp_path / "m.onnx")["file"]).metadata_props}
    assert props["cnnkit.task"] == "classify" and props["cnnkit.graph"] == "logits"
    assert json.loads(props["cnnkit.classes"]) == [str(i) for i in range(10)]
    assert props["cnnkit.channels"] == "1" and json.loads(props["cnnkit.size"]) == [32, 32]
    pre = load_checkpoint(classify_run)["meta"]["preprocess"]
    assert json.loads(props["cnnkit.mean"]) == pre["mean"] and json.loads(props["cnnkit.std"]) == pre["std"]
    assert "resize to size" in props["cnnkit.resize"]


def test_an_operator_without_onnx_conversion_is_named(classify_run, tmp_path, monkeypatch, capsys):
    from torch import nn

    from cnnkit.export import onnx as onnx_export

    class Kth(nn.Module):  # aten::kthvalue has no ONNX conversion
        def forward(self, x):
            return x.flatten(1).kthvalue(2, 1).values[:, None]

    monkeypatch.setattr(onnx_export, "graph_of", lambda model, output, name: (Kth(), "logits", ["logits"]))
    assert main(["export", classify_run, "--out", str(tmp_path / "k.onnx")]) == 2
    err = capsys.readouterr().err
    assert ('Model "lenet5" cannot be exported to ONNX: the operator aten::kthvalue has no ONNX conversion at '
            "opset 17") in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "k.onnx").exists()


def test_explain_an_onnx_file_with_occlusion_only(classify_run, tmp_path):
    import torch

    import cnnkit
    from cnnkit.errors import CnnkitError
    from cnnkit.export.api import export

    out = export(classify_run, out=tmp_path / "m.onnx")["file"]
    image = torch.randint(0, 256, (1, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    ref = cnnkit.explain(classify_run, [image], method="occlusion", window=2, stride=2)[0]
    got = cnnkit.explain(out, [image], method="occlusion", window=2, stride=2)[0]
    assert torch.allclose(ref.map, got.map, atol=1e-4)
    with pytest.raises(CnnkitError, match="gradcam need.* PyTorch's gradients .* use --method occlusion"):
        cnnkit.explain(out, [image], method="gradcam,occlusion")


def test_a_model_without_an_export_graph_is_named_without_detector_advice():
    """A sequence (or other) model cnnkit cannot export yet: the sentence names it and its output, and does
    not tell the user to train a detector."""
    import torch.nn as nn

    from cnnkit.errors import CnnkitError
    from cnnkit.export.graph import graph_of

    with pytest.raises(CnnkitError, match='does not support "textcnn" \\(sequence output\\) yet') as e:
        graph_of(nn.Linear(2, 2), "sequence", "textcnn")
    assert "tinydet" not in str(e.value).split("checkpoints export")[1]
    with pytest.raises(CnnkitError, match="of the detectors only tinydet and maskrcnn export"):
        graph_of(nn.Linear(2, 2), "boxes", "fcos")
