"""export/quantize.py: int8 file with metadata, metric/size/latency before and after, and the 1-point gate."""
from __future__ import annotations

import pytest

from cnnkit.errors import CnnkitError
from cnnkit.export import quantize
from cnnkit.export.api import export


def test_int8_reports_before_and_after_and_gates_the_drop(classify_run, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize, "CALIBRATION_IMAGES", 16)
    result = export(classify_run, out=tmp_path / "m.onnx", int8=True)
    q = result["int8"]
    assert q["fp32"]["metric"] == "accuracy" and q["int8"]["file"].endswith("m.int8.onnx")
    assert q["int8"]["bytes"] < q["fp32"]["bytes"] and q["int8"]["latency_ms"] > 0
    assert q["drop_points"] == pytest.approx(100 * (q["fp32"]["value"] - q["int8"]["value"]), abs=1e-3)
    import cnnkit

    assert cnnkit.load(q["int8"]["file"]).meta["task"] == "classify"  # metadata carried over
    with pytest.raises(CnnkitError, match=r"int8 accuracy fell from .* pass --force"):
        quantize.gate({**q, "drop_points": 1.5}, force=False)
    quantize.gate({**q, "drop_points": 1.5}, force=True)
