"""`chembl2321810`: 1,017 molecules (SMILES) with their measured activity, shipped in the RDKit wheel.

RDKit's Free-Wilson example data (`rdkit/Contrib/FreeWilson/data/`): `CHEMBL2321810.smi` (SMILES and
ChEMBL molecule id) and `CHEMBL2321810_act.csv` (id, `Act`: a pIC50-like value from 4.27 to 9.22, std
1.09). Found inside the installed `rdkit` package (importlib.resources), so it works offline; a
SMILES-regression task (`seq_regress`). Splits: carved as set by data.val_fraction / test_fraction /
split_seed, at random or by Bemis-Murcko scaffold (data.split_by=scaffold).
"""
from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.registry import BUILTINS
from cnnkit.errors import CnnkitError

NAME = "chembl2321810"


def chembl_files() -> tuple[Path, Path]:
    """(the .smi file, the activity CSV) inside the installed rdkit package; CnnkitError naming the extra
    when RDKit is not installed, or the files when this RDKit build lacks them."""
    try:
        root = resources.files("rdkit") / "Contrib" / "FreeWilson" / "data"
    except ModuleNotFoundError:
        raise CnnkitError(f"The built-in set {NAME} ships inside RDKit, which is not installed: "
                          "pip install 'cnnkit[chem]'.") from None
    smi, act = Path(str(root / "CHEMBL2321810.smi")), Path(str(root / "CHEMBL2321810_act.csv"))
    if not (smi.is_file() and act.is_file()):
        raise CnnkitError(f"This RDKit install has no {smi.name} / {act.name} under {smi.parent}; "
                          "reinstall it from PyPI: pip install --force-reinstall 'rdkit>=2023.3'.")
    return smi, act


def read_chembl() -> tuple[list[str], list[str], list[str]]:
    """(SMILES, activity strings, ChEMBL ids) of the molecules that have a measured activity, in file order."""
    smi, act = chembl_files()
    with open(act, newline="", encoding="utf-8") as f:
        values = {row["Name"].strip(): row["Act"].strip() for row in csv.DictReader(f)}
    texts, targets, names = [], [], []
    for line in smi.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in values:
            texts.append(parts[0])
            targets.append(values[parts[1]])
            names.append(f"CHEMBL{parts[1]}" if parts[1].isdigit() else parts[1])
    return texts, targets, names


@BUILTINS.register(NAME)
def load_chembl(cfg: Config) -> DataBundle:
    from cnnkit.data.sequence.data import Table, sequence_bundle

    texts, targets, names = read_chembl()
    return sequence_bundle({"train": Table(texts, targets, names, "smiles")}, cfg, NAME, smiles=True)
