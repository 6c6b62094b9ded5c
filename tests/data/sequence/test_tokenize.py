"""Tokenisers round-trip and keep SMILES atoms whole; unknown tokens map to <unk>; padding is id 0."""
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.data.sequence.tokenize import PAD, UNK, Encoder, build_vocab, tokenize


@pytest.mark.parametrize("smiles, expected", [
    ("CCl", ["C", "Cl"]),
    ("BrC(Br)Cl", ["Br", "C", "(", "Br", ")", "Cl"]),
    ("c1cc[nH]c1", ["c", "1", "c", "c", "[nH]", "c", "1"]),
    ("C[C@@H](N)C(=O)O", ["C", "[C@@H]", "(", "N", ")", "C", "(", "=", "O", ")", "O"]),
    ("F/C=C/F", ["F", "/", "C", "=", "C", "/", "F"]),
    ("C%10CCC%10", ["C", "%10", "C", "C", "C", "%10"]),
    ("[O-][N+](=O)c1ccccc1", ["[O-]", "[N+]", "(", "=", "O", ")", "c", "1", "c", "c", "c", "c", "c", "1"]),
])
def test_smiles_tokens_keep_atoms_whole_and_round_trip(smiles, expected):
    tokens = tokenize(smiles, "smiles")
    assert tokens == expected
    assert "".join(tokens) == smiles


def test_at_at_outside_brackets_and_unknown_characters_round_trip():
    assert "@@" in tokenize("C@@C", "smiles")
    text = "C€C Ω"
    assert "".join(tokenize(text, "smiles")) == text
    assert tokenize("héllo", "char") == ["h", "é", "l", "l", "o"]


def test_vocab_from_training_strings_unknown_to_unk_and_padding():
    vocab = build_vocab(["CCO", "CCl"], "smiles")
    assert vocab[:2] == [PAD, UNK] and vocab[2] == "C" and "Cl" in vocab and "l" not in vocab
    enc = Encoder(vocab, "smiles", max_length=3)
    ids = enc.batch(["CBr", "CCOC"])
    assert ids.tolist() == [[vocab.index("C"), 1, 0], [vocab.index("C"), vocab.index("C"), vocab.index("O")]]
    assert enc.batch([""]).shape == (1, 1) and int(enc.batch([""])[0, 0]) == 0


def test_unknown_tokenizer_is_one_sentence():
    with pytest.raises(CnnkitError, match="data.tokenizer"):
        tokenize("abc", "words")
