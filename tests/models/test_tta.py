"""models/tta.py and model.flip_tta: the eval-mode mean of image and mirror logits, end to end."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnkit.cli import main
from cnnkit.models.tta import FlipTTA, without_tta


def test_flip_tta_averages_logits_in_eval_only():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.LazyLinear(4))
    x = torch.randn(5, 1, 8, 8)
    net(x)
    wrapped = FlipTTA(net)
    assert torch.equal(wrapped.train()(x), net(x))
    wrapped.eval()
    ref = (net(x).double() + net(torch.flip(x, dims=[3])).double()) / 2
    assert torch.allclose(wrapped(x).double(), ref, atol=1e-6)
    assert without_tta(wrapped) is net and without_tta(net) is net


def _folders(root):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(("left", "right")):
        for i in range(12):
            img = torch.randint(0, 60, (12, 12), generator=g, dtype=torch.uint8)
            img[:, :6] += 150 if c == 0 else 0  # bright on the left or on the right: mirror-sensitive on purpose
            img[:, 6:] += 150 if c == 1 else 0
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.numpy()).save(root / name / f"{i}.png")
    return root


def test_flip_tta_run_predicts_with_the_mirror_mean(tmp_path, capsys):
    data = _folders(tmp_path / "data")
    out = tmp_path / "run"
    main(["train", "--data", str(data), "--model", "lenet5", "--epochs", "1", "--threads", "1", "--out", str(out),
          "--augment", "flip", "--set", "model.flip_tta=true", "--json"])
    capsys.readouterr()
    from cnnkit.data.decode import read_image
    from cnnkit.engine.predictor import load

    pred = load(str(out))
    assert isinstance(pred.model, FlipTTA)  # rebuilt from the checkpoint's config
    image = data / "left" / "0.png"
    main(["predict", str(out), str(image), "--json"])
    got = json.loads(capsys.readouterr().out)
    got = got[0] if isinstance(got, list) else got["predictions"][0]
    net = without_tta(pred.model).eval()
    x = pred.preprocess([read_image(image, 1)])
    with torch.no_grad():
        logits = (net(x).double() + net(x.flip(3)).double()) / 2
    probs = logits.softmax(1)[0]
    assert got["label"] == ["left", "right"][int(probs.argmax())]
    assert got["score"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_flip_tta_is_refused_where_mirrors_change_the_class(capsys):
    assert main(["train", "--data", "digits", "--epochs", "1", "--set", "model.flip_tta=true"]) == 2
    assert "model.flip_tta=true" in capsys.readouterr().err


@pytest.mark.parametrize("data, task, setting", [
    ("digits-detect", "detect", "data.augment_start_epoch=2"),
    ("digits-detect", "detect", "data.random_erasing=0.5"),
    ("digits-seg", "segment", "data.mixup=0.2"),
    ("digits-seg", "segment", "data.cutmix=1.0"),
])
def test_classification_only_keys_are_refused_by_other_tasks(capsys, data, task, setting):
    """Whole-image mixing and erasing were silently ignored on boxes and masks: now one sentence, exit 2."""
    assert main(["train", "--data", data, "--epochs", "1", "--set", setting]) == 2
    assert f"{setting} is not supported by the {task} task; remove it (it applies to: classify)" in \
        capsys.readouterr().err
