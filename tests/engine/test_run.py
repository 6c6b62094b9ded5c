"""The run resolver: a Config resolves to data, task, defaults and a seeded model; a checkpoint to the
same model with its weights, in eval mode, without reading data; predict/info go through it."""
import json

import torch
import yaml

import cnnkit
from cnnkit.cli import main
from cnnkit.config import Config
from cnnkit.engine.run import resolve_run


def _cfg(**keys) -> Config:
    cfg = Config()
    cfg.update({"data.name": "digits", "model.name": "lenet5", "train.threads": 1, **keys})
    return cfg


def test_config_resolves_task_defaults_and_a_seeded_model():
    a, b = resolve_run(_cfg(), device="cpu"), resolve_run(_cfg(), device="cpu")
    assert a.task.name == a.cfg.task == "classify" and a.checkpoint is None
    assert a.cfg.train.lr is not None and a.cfg.train.epochs is not None  # the task's defaults filled in
    assert len(a.bundle.train) + len(a.bundle.val) + len(a.bundle.test) == 1797  # sklearn's digits
    assert a.info.classes == [str(i) for i in range(10)] and a.info.channels == 1
    assert sum(p.numel() for p in a.model.parameters()) == 61706  # LeNet-5 on 1x32x32, 10 classes
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k  # same seed, same weights
    other = resolve_run(_cfg(**{"train.seed": 1}), device="cpu")
    assert not torch.equal(next(other.model.parameters()), next(a.model.parameters()))


def test_layer_list_file_becomes_plain_kwargs(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"layers": [{"type": "conv", "out": 4}, "flatten", {"type": "linear"}]}))
    run = resolve_run(_cfg(**{"model.name": str(path)}), device="cpu")
    assert run.cfg.model.name == "spec" and run.cfg.model.kwargs["layers"][0]["out"] == 4
    assert run.model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_checkpoint_resolves_its_weights_without_data(digits_run):
    ckpt = torch.load(digits_run.best, weights_only=True)
    run = resolve_run(digits_run.dir, device="cpu")
    assert run.bundle is None and not run.model.training and run.device == torch.device("cpu")
    assert run.task.name == "classify" and run.info.classes == ckpt["meta"]["classes"]
    assert run.cfg.to_dict() == ckpt["meta"]["config"]
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, ckpt["model"][k]), k
    predictor = cnnkit.load(digits_run.dir, device="cpu")  # the API's loader is the same path
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(predictor.model(x), run.model(x))


def test_info_builds_through_the_resolver(capsys, tmp_path):
    path = tmp_path / "net.yaml"  # a layer-list file now works with `info` too, as with `train`
    path.write_text(yaml.safe_dump({"layers": [{"type": "conv", "out": 4}, "flatten", {"type": "linear"}]}))
    assert main(["info", str(path), "--data", "digits", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["params"] == (1 * 9 + 1) * 4 + (4 * 32 * 32 + 1) * 10  # 3x3 conv (same padding), linear
