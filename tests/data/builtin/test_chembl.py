"""chembl2321810: read from the installed RDKit wheel; without RDKit one sentence naming the extra."""
import builtins

import pytest

from cnnkit.config import Config
from cnnkit.data import build_data
from cnnkit.data.builtin import chembl
from cnnkit.errors import CnnkitError


def test_molecules_and_activities_from_the_rdkit_wheel():
    pytest.importorskip("rdkit")
    texts, values, names = chembl.read_chembl()
    acts = [float(v) for v in values]
    assert len(texts) == 1017 and names[0].startswith("CHEMBL")
    assert min(acts) == pytest.approx(4.27) and max(acts) == pytest.approx(9.22)
    cfg = Config()
    cfg.data.name, cfg.data.split_by = "chembl2321810", "scaffold"
    b = build_data(cfg)
    assert b.info.task == "seq_regress" and len(b.train) + len(b.val) + len(b.test) == 1017


def test_without_rdkit_the_error_names_the_extra(monkeypatch):
    real = builtins.__import__
    monkeypatch.setattr(chembl.resources, "files", lambda name: (_ for _ in ()).throw(ModuleNotFoundError(name)))

    def no_rdkit(name, *args, **kwargs):
        if name.startswith("rdkit"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rdkit)
    with pytest.raises(CnnkitError, match=r"pip install 'cnnkit\[chem\]'"):
        chembl.read_chembl()
