"""`explain(...)` on bare models and `explain_cli(...)` end to end on the suite's digits run."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.explain import explain as package_explain
from cnnkit.explain.api import explain, explain_cli

from .conftest import assert_png, random_image, tiny_classifier, tiny_detector


def test_package_exports_the_api():
    assert package_explain is explain


def test_float_images_and_explicit_layer():
    model = tiny_classifier()
    img = torch.rand(1, 12, 12)
    (e,) = explain(model, img, "gradcam", layer="conv1")
    assert e.layer == "conv1" and e.image.dtype == torch.uint8 and e.map.shape == (12, 12)
    with pytest.raises(CnnkitError, match="Unknown layer"):
        explain(model, img, "gradcam", layer="conv9")
    with pytest.raises(CnnkitError, match='Did you mean "steps"'):
        explain(model, img, "ig", step=200)


def test_detection_grid_and_overlay_pngs(tmp_path):
    from cnnkit.explain.api import save_all

    out = explain(tiny_detector(), random_image(3, 48, 64), "gradcam,saliency", target="0;1")
    files = save_all(out, tmp_path)
    assert len(list(tmp_path.glob("0_*_t*.png"))) == 4
    assert_png(files["grids"]["0"])
    for e in out:
        assert_png(e.extra["png"])


def _digit_pngs(tmp_path: Path) -> list[str]:
    from sklearn.datasets import load_digits

    d = load_digits()
    paths = []
    for i in (0, 1):
        p = tmp_path / f"digit{i}.png"
        Image.fromarray((d.images[i] * 255 / 16).round().astype("uint8")).save(p)
        paths.append(str(p))
    return paths


def test_cli_end_to_end_on_a_trained_lenet(digits_run, tmp_path, capsys):
    images = _digit_pngs(tmp_path)
    out_dir = tmp_path / "explain"
    summary = explain_cli(str(digits_run.dir), images, ["gradcam", "ig", "occlusion", "featuremaps", "filters"],
                          None, None, str(out_dir), evaluate=True, worst=3, as_json=True, steps=32, window=8,
                          stride=4)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(summary))  # --json: one object
    expl = [e for e in summary["explanations"] if e["method"] in ("gradcam", "ig", "occlusion")]
    assert len(expl) == 6 and all(e["image"] in images for e in expl)
    ig = [e for e in expl if e["method"] == "ig"]
    assert all(e["completeness_gap"] < 0.2 for e in ig)  # 32 steps: a rough integral, reported as such
    for e in summary["explanations"]:
        assert_png(e["png"])
    for grid in summary["files"]["grids"].values():
        assert_png(grid)
    faith = summary["faithfulness"]
    assert set(faith["methods"]) == {"gradcam", "ig", "occlusion"}
    assert_png(faith["curves_png"])
    worst = summary["worst"]
    assert len(worst["images"]) == min(3, worst["wrong"]) and worst["test_images"] > 100
    if worst["images"]:
        assert_png(worst["png"])
        confs = [w["confidence"] for w in worst["images"]]
        assert confs == sorted(confs, reverse=True) and all(w["true"] != w["predicted"] for w in worst["images"])


def test_cli_prints_tables_and_defaults_to_the_run_directory(digits_run, tmp_path, capsys):
    images = _digit_pngs(tmp_path)[:1]
    summary = explain_cli(str(digits_run.dir / "best.pt"), images, "gradcam,saliency", "3", None, None,
                          evaluate=False, worst=None, as_json=False)
    assert Path(summary["save_dir"]) == Path(digits_run.dir) / "explain"
    assert summary["explanations"][0]["target"]["name"] == "3"
    printed = capsys.readouterr().out
    assert "explanations" in printed and "gradcam" in printed


def test_cli_errors(digits_run, tmp_path):
    with pytest.raises(CnnkitError, match="at least one IMAGE"):
        explain_cli(str(digits_run.dir), [], "gradcam", None, None, None, False, None, True)
    with pytest.raises(CnnkitError, match="does not exist"):
        explain_cli(str(digits_run.dir), [str(tmp_path / "nope.png")], "gradcam", None, None, None, False, None, True)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(CnnkitError, match="bad.png"):
        explain_cli(str(digits_run.dir), [str(bad)], "gradcam", None, None, None, False, None, True)
    with pytest.raises(CnnkitError, match="Unknown class"):
        explain_cli(str(digits_run.dir), _digit_pngs(tmp_path)[:1], "gradcam", "cat", None, str(tmp_path), False,
                    None, True)


def test_api_converts_an_rgb_file_for_a_grayscale_run_like_the_cli(digits_run, tmp_path):
    """`cnnkit.explain(run_dir, ["rgb.png"])` on a 1-channel model: the file is decoded to gray,
    the same way as `cnnkit explain` does it, so both give the same map."""
    import cnnkit

    gray = np.array(Image.open(_digit_pngs(tmp_path)[0]))
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.stack([gray] * 3, -1)).save(rgb)
    (api,) = cnnkit.explain(digits_run.dir, [str(rgb)], method="gradcam")
    assert torch.equal(api.image, torch.from_numpy(gray)[None])  # decoded to the model's one channel
    cli = explain_cli(str(digits_run.dir), [str(rgb)], "gradcam", None, None, str(tmp_path / "cli"), False, None, True)
    assert cli["explanations"][0]["target"] == api.target
    torch.testing.assert_close(api.map, explain(digits_run.dir, [torch.from_numpy(gray)[None]], "gradcam")[0].map)
    rgb_tensor = torch.from_numpy(np.stack([gray] * 3))  # a uint8 RGB tensor is converted the same way
    torch.testing.assert_close(api.map, explain(digits_run.dir, rgb_tensor, "gradcam")[0].map)
