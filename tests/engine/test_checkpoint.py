"""Checkpoints: safe to load (weights_only), atomic, self-describing, refuse foreign files."""
import pickle

import pytest
import torch

from cnnkit.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnkit.errors import CnnkitError


def test_round_trip_with_rng_state_loads_weights_only(tmp_path):
    state = {"rng": rng_state(), "epoch": 3}
    path = save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(2)}, {"task": "classify"}, state)
    raw = torch.load(path, weights_only=True)  # would raise on any pickled object
    assert raw["meta"]["task"] == "classify"
    ckpt = load_checkpoint(tmp_path)  # a run dir resolves to last.pt when best.pt is absent
    set_rng_state(ckpt["state"]["rng"])
    x = torch.rand(4)
    torch.manual_seed(123)  # disturb, then restore from the loaded checkpoint
    set_rng_state(ckpt["state"]["rng"])
    assert torch.equal(x, torch.rand(4))
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_foreign_or_malicious_files_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": "cnnkit-checkpoint/1", "x": Evil()}))
    with pytest.raises(CnnkitError, match="Cannot read checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CnnkitError, match="not a cnnkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CnnkitError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnkitError, match="No checkpoint in"):
        load_checkpoint(tmp_path / "empty")
