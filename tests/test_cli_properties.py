"""Property-based hostile input (issue 15): random and mutated YAML configs, layer-list specs and checkpoints
either work or raise CnnkitError; never another exception, a hang or a runaway allocation.

The properties run in a child pytest under an address-space limit (resource.RLIMIT_AS) and a time limit,
so an input that tried a huge allocation fails the test instead of the machine. Example counts are fixed
and derandomized: the same examples on every run, about half a minute in all.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = os.environ.get("CNNKIT_PROPERTY_CHILD") == "1"
MEMORY_LIMIT = 6 << 30  # importing torch alone reserves ~3.7 GB of address space


@pytest.mark.skipif(CHILD, reason="the child runs the properties themselves")
@pytest.mark.timeout(420)
def test_properties_hold_under_memory_and_time_limits():
    pytest.importorskip("hypothesis")
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "CNNKIT_PROPERTY_CHILD": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", __file__],
                         env=env, preexec_fn=limit, capture_output=True, text=True, timeout=360,
                         cwd=Path(__file__).parent.parent)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and " failed" not in res.stdout


if CHILD:
    import math

    import torch
    import yaml
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from cnnkit.errors import CnnkitError

    SETTINGS = settings(max_examples=int(os.environ.get("CNNKIT_PROPERTY_EXAMPLES", "40")), deadline=None,
                        derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    numbers = st.one_of(st.integers(-3, 70), st.integers(-(10 ** 12), 10 ** 12), st.sampled_from(
        [0, 1, 3000, 10 ** 11, 2 ** 63, -1]), st.floats(allow_nan=True, allow_infinity=True))
    scalars = st.one_of(numbers, st.none(), st.booleans(), st.text(max_size=8),
                        st.sampled_from(["relu", "max", "avg", "num_classes", "conv", "flatten"]))
    values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                          max_leaves=12)

    def mutate(text: str, data) -> str:
        """Cut, duplicate or overwrite a random stretch of `text`."""
        if not text:
            return text
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i, min(len(text), i + 40)))
        how = data.draw(st.sampled_from(["cut", "dup", "junk"]))
        if how == "cut":
            return text[:i] + text[j:]
        if how == "dup":
            return text[:j] + text[i:j] * data.draw(st.integers(1, 50)) + text[j:]
        return text[:i] + data.draw(st.text(max_size=20)) + text[j:]

    # ---- YAML configs (--config) -----------------------------------------------------------------
    from cnnkit.config import Config, config_fields

    KEYS = list(config_fields())
    config_docs = st.dictionaries(
        st.one_of(st.sampled_from(KEYS + ["data", "model", "train", "epochs", "lr"]), st.text(max_size=6)),
        st.one_of(values, st.dictionaries(st.sampled_from([k.split(".")[-1] for k in KEYS]), values, max_size=5)),
        max_size=6)

    @SETTINGS
    @given(doc=config_docs, data=st.data())
    def test_yaml_configs_load_or_raise_cnnkit_error(tmp_path_factory, doc, data):
        from cnnkit.engine.resume import given_keys

        text = yaml.safe_dump(doc, allow_unicode=True)
        if data.draw(st.booleans()):
            text = mutate(text, data)
        path = tmp_path_factory.mktemp("cfg") / "recipe.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            cfg = Config.load(path)
            given_keys(cfg, [], recipe=path)
            Config.from_dict(cfg.to_dict())  # what a checkpoint stores must load again
        except CnnkitError:
            pass

    # ---- layer-list specs (--model net.yaml, cnnkit info) ----------------------------------------
    from cnnkit.models.spec import SpecNet, load_layers

    layer_types = st.sampled_from(["conv", "pool", "batchnorm", "relu", "dropout", "flatten", "linear",
                                   "adaptive_avgpool", "activation", "residual", "bogus"])
    field_names = st.sampled_from(["out", "k", "stride", "padding", "bn", "act", "mode", "p", "size", "fn"])
    layers = st.recursive(
        st.one_of(layer_types, st.builds(lambda t, f: {"type": t, **f}, layer_types,
                                         st.dictionaries(field_names, scalars, max_size=3))),
        lambda inner: st.builds(lambda body: {"type": "residual", "layers": body}, st.lists(inner, max_size=3)),
        max_leaves=8)

    @SETTINGS
    @given(spec=st.lists(layers, max_size=7), size=st.integers(1, 40), channels=st.integers(1, 3),
           data=st.data())
    def test_layer_lists_build_or_raise_cnnkit_error(tmp_path_factory, spec, size, channels, data):
        path = tmp_path_factory.mktemp("spec") / "net.yaml"
        text = yaml.safe_dump({"layers": spec})
        path.write_text(mutate(text, data) if data.draw(st.booleans()) else text, encoding="utf-8")
        try:
            model = SpecNet(load_layers(path), 10, channels, size)
            assert model(torch.zeros(2, channels, size, size)).shape == (2, 10)
        except CnnkitError:
            pass

    # ---- checkpoints (eval, predict, explain, export, serve) -------------------------------------
    import cnnkit
    from cnnkit.engine.checkpoint import save_checkpoint
    from cnnkit.engine.run import resolve_run
    from cnnkit.engine.trainer import checkpoint_meta

    def _valid_payload():
        cfg = Config.from_dict({"data": {"name": "digits"}, "model": {"name": "lenet5"}, "train": {"threads": 1}})
        run = resolve_run(cfg, device="cpu")
        meta = checkpoint_meta(run.task, run.cfg, run.info, 1, {})
        return {"model": run.model.state_dict(), "meta": meta}

    VALID = _valid_payload()
    META_KEYS = list(VALID["meta"])

    def _edit(payload, data):
        """One structural change to a checkpoint's meta or weights."""
        meta, weights = payload["meta"], payload["model"]
        what = data.draw(st.sampled_from(["drop_meta", "meta_value", "config", "preprocess", "tensor", "dtype",
                                          "drop_weight"]))
        if what == "drop_meta":
            meta.pop(data.draw(st.sampled_from(META_KEYS)), None)
        elif what == "meta_value":
            meta[data.draw(st.sampled_from(META_KEYS))] = data.draw(values)
        elif what == "config":
            section = data.draw(st.sampled_from(["data", "model", "train"]))
            meta["config"][section][data.draw(st.sampled_from(list(meta["config"][section])))] = data.draw(values)
        elif what == "preprocess":
            key = data.draw(st.sampled_from(list(meta["preprocess"]) + ["size"]))
            meta["preprocess"][key] = data.draw(values)
        else:
            key = data.draw(st.sampled_from(sorted(weights)))
            if what == "drop_weight":
                del weights[key]
            elif what == "dtype":
                weights[key] = weights[key].to(data.draw(st.sampled_from([torch.int64, torch.float16, torch.uint8,
                                                                          torch.bool, torch.float64])))
            else:
                shape = data.draw(st.lists(st.integers(0, 7), max_size=3))
                fill = data.draw(st.sampled_from([0.0, math.nan, math.inf, 1e30]))
                weights[key] = torch.full(shape, fill)

    @SETTINGS
    @given(data=st.data())
    def test_mutated_checkpoints_load_or_raise_cnnkit_error(tmp_path_factory, data):
        import copy

        torch.set_num_threads(1)  # a mutated config may have asked loading for more threads
        payload = copy.deepcopy(VALID)
        for _ in range(data.draw(st.integers(1, 3))):
            _edit(payload, data)
        path = tmp_path_factory.mktemp("ckpt") / "best.pt"
        save_checkpoint(path, payload["model"], payload["meta"])
        if data.draw(st.booleans()):  # damage the bytes too
            raw = path.read_bytes()
            i = data.draw(st.integers(0, len(raw) - 1))
            path.write_bytes(raw[:i] + data.draw(st.binary(max_size=16)) + raw[i + data.draw(st.integers(0, 64)):])
        try:
            predictor = cnnkit.load(path, device="cpu")
            records = predictor.predict([torch.zeros(1, 8, 8, dtype=torch.uint8)])
            assert len(records) == 1
        except CnnkitError:
            pass
