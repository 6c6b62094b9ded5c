"""RDKit for SMILES data: parsing, randomised SMILES (enumeration), Bemis-Murcko scaffolds, depictions.

RDKit is optional (`pip install 'cnnkit[chem]'`); every entry point calls `require_rdkit`, which
says which extra to install when it is missing. RDKit's own warnings (a bad SMILES) are silenced:
cnnkit reports those itself, one sentence per input.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnkit.errors import CnnkitError


def require_rdkit(what: str) -> Any:
    """The `rdkit.Chem` module; CnnkitError naming `what` and the extra when RDKit is not installed."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise CnnkitError(f"{what} needs RDKit, which is not installed: pip install 'cnnkit[chem]'.") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def parse(smiles: str) -> Any | None:
    """The RDKit molecule of `smiles`, or None when it does not parse (or is empty). Do not modify it:
    molecules are cached (enumeration re-reads the same SMILES every epoch; parsing was ~half its cost)."""
    require_rdkit("Reading SMILES")
    return _parse(smiles) if smiles.strip() else None


@functools.lru_cache(maxsize=200_000)
def _parse(smiles: str) -> Any | None:
    from rdkit import Chem

    return Chem.MolFromSmiles(smiles)


def randomized_smiles(smiles: str, rng: np.random.Generator) -> str:
    """An equivalent SMILES with the atoms in a random order drawn from `rng` (the molecule is the same;
    Bjerrum 2017's enumeration). A SMILES RDKit cannot parse is returned as it is."""
    Chem = require_rdkit("SMILES enumeration")
    mol = parse(smiles)
    if mol is None or mol.GetNumAtoms() < 2:
        return smiles
    order = rng.permutation(mol.GetNumAtoms()).tolist()
    return Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)


def scaffold(smiles: str) -> str:
    """The Bemis-Murcko scaffold SMILES of a molecule ("" for acyclic or unparsable molecules)."""
    require_rdkit("The scaffold split")
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = parse(smiles)
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol) if mol is not None else ""


def scaffold_split(smiles: Sequence[str], val_fraction: float,
                   test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) sorted index arrays with no Bemis-Murcko scaffold in two splits.

    As DeepChem's ScaffoldSplitter: scaffold groups largest first (ties: first occurrence) fill train
    up to 1 - val - test of the molecules, then val, then test, so the held-out splits hold the rarer
    scaffolds — the harder, more honest estimate of how a model does on new chemistry. Deterministic.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[scaffold(s)].append(i)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    n = len(smiles)
    train_cut, val_cut = (1 - val_fraction - test_fraction) * n, (1 - test_fraction) * n
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for g in ordered:
        if len(parts[0]) + len(g) <= train_cut:
            parts[0].extend(g)
        elif len(parts[0]) + len(parts[1]) + len(g) <= val_cut:
            parts[1].extend(g)
        else:
            parts[2].extend(g)
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def atom_token_index(smiles: str, tokens: Sequence[str]) -> list[int] | None:
    """For each atom of the molecule (RDKit's atom order of `parse(smiles)`), the index of its token in
    `tokens` (a SMILES tokenisation of `smiles`); None when the SMILES does not parse. RDKit numbers
    atoms in the order they are written, which is the order of the atom tokens."""
    mol = parse(smiles)
    if mol is None:
        return None
    atoms = [i for i, t in enumerate(tokens) if t[0] == "[" or t[0].isalpha()]
    return atoms[:mol.GetNumAtoms()] if len(atoms) >= mol.GetNumAtoms() else None
