"""RDKit helpers: enumeration keeps the molecule, the scaffold split keeps each scaffold in one split."""
import numpy as np
import pytest

pytest.importorskip("rdkit")

from cnnkit.data.sequence.chem import atom_token_index, parse, randomized_smiles, scaffold, scaffold_split  # noqa: E402
from cnnkit.data.sequence.tokenize import tokenize  # noqa: E402


def canonical(smiles):
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def test_randomized_smiles_is_the_same_molecule_written_differently():
    smiles = "Cc1cnc(NS(=O)(=O)c2ccc(Oc3ccccc3c4ccccc4)c(c2)C#N)s1"
    rng = np.random.default_rng(0)
    variants = {randomized_smiles(smiles, rng) for _ in range(10)}
    assert len(variants) > 5
    assert {canonical(v) for v in variants} == {canonical(smiles)}
    again = np.random.default_rng(0)
    assert randomized_smiles(smiles, again) == randomized_smiles(smiles, np.random.default_rng(0))


def test_scaffold_split_never_shares_a_scaffold():
    rings = ["c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCOC1", "c1ccc2ccccc2c1"]
    smiles = [f"{r}{tail}" for r in rings for tail in ("C", "CC", "O", "N", "CO", "Cl")[: 6 - rings.index(r)]]
    train, val, test = scaffold_split(smiles, 0.2, 0.2)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(smiles)))
    groups = [{scaffold(smiles[i]) for i in part} for part in (train, val, test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert scaffold(smiles[train[0]]) == "c1ccccc1"  # the largest scaffold group is in train


def test_atoms_map_to_their_tokens():
    smiles = "OC(=O)c1cc(Cl)c[nH]1"
    tokens = tokenize(smiles, "smiles")
    where = atom_token_index(smiles, tokens)
    mol = parse(smiles)
    assert [tokens[i] for i in where][:3] == ["O", "C", "O"]
    assert [mol.GetAtomWithIdx(a).GetSymbol() for a in range(mol.GetNumAtoms())] == [
        tokens[i].strip("[]").replace("H", "").capitalize() for i in where]
    assert parse("C1CC") is None and parse("") is None
