"""Sequence batches: the order and SMILES enumeration are a function of (seed, epoch), so a resumed run
replays them; test-time augmentation adds K randomised SMILES per string."""
import pytest
import torch

from cnnkit.data.sequence.data import SequenceSplit
from cnnkit.data.sequence.loader import SequenceLoader
from cnnkit.data.sequence.tokenize import Encoder, build_vocab

pytest.importorskip("rdkit")

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "OC(=O)c1ccccc1Cl", "C1CCNCC1", "CCOC(=O)C", "c1ccncc1"]


def loader(train=True, augment="strong", tta=0, seed=0):
    split = SequenceSplit(SMILES, torch.arange(8, dtype=torch.float32), [str(i) for i in range(8)])
    enc = Encoder(build_vocab(SMILES, "smiles"), "smiles", 64)
    return SequenceLoader(split, enc, 3, train, seed, augment, tta)


def epoch(ld, e):
    ld.set_epoch(e)
    return [tuple(t.clone() for t in b) for b in ld]


def test_same_seed_and_epoch_same_batches_other_epoch_differs():
    a, b = epoch(loader(), 1), epoch(loader(), 1)
    assert len(a) == 2  # 8 strings, batch 3, the short last batch dropped in training
    assert all(torch.equal(x, y) for ba, bb in zip(a, b) for x, y in zip(ba, bb))
    c = epoch(loader(), 2)
    assert not all(torch.equal(ba[0], bc[0]) for ba, bc in zip(a, c))


def test_eval_batches_in_order_unaugmented_with_tta_variants():
    plain = epoch(loader(train=False, augment="strong"), 0)
    assert [float(v) for b in plain for v in b[1]] == list(range(8))
    assert torch.equal(plain[0][0], loader(train=False).encoder.batch(SMILES[:3]))  # no augmentation at eval
    tta = epoch(loader(train=False, tta=4), 0)
    assert len(tta[0]) == 3 and tta[0][2].shape[0] == 4 * 3
