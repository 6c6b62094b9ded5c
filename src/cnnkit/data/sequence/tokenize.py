"""Tokenisers and the vocabulary: a string -> tokens -> ids, and the padded id batch a model takes.

Two tokenisers: `char` (every Unicode character is a token) and `smiles`, the regular expression of
Schwaller et al. (2019, Molecular Transformer) that keeps multi-character SMILES atoms whole: `Cl`,
`Br`, bracket atoms (`[nH]`, `[C@@H]`, `[O-]`), `@@` and two-digit ring closures (`%10`). Both
round-trip: `"".join(tokens) == text` (a character the SMILES pattern does not know is its own token).

The vocabulary is built on the training split only and stored in the checkpoint as a plain list;
id 0 is `<pad>` and id 1 is `<unk>`, which every token not seen in training maps to, so an unseen
character at predict time is never a crash.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from cnnkit.errors import CnnkitError

PAD, UNK = "<pad>", "<unk>"
TOKENIZERS = ("char", "smiles")
# Schwaller et al. 2019 (rxn), with `@@` before `@` and a catch-all last so the split always round-trips.
SMILES_PATTERN = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@@|@|\?|>|\*|\$|%[0-9]{2}|[0-9]|.)",
    re.DOTALL)


def tokenize(text: str, kind: str = "char") -> list[str]:
    """`text` -> its tokens (`kind`: "char" or "smiles"); `"".join(tokens) == text` always."""
    if kind == "char":
        return list(text)
    if kind == "smiles":
        return SMILES_PATTERN.findall(text)
    raise CnnkitError(f'Unknown tokenizer "{kind}": set data.tokenizer to one of {", ".join(TOKENIZERS)}.')


def build_vocab(texts: Iterable[str], kind: str, min_count: int = 1, max_size: int = 5000) -> list[str]:
    """The vocabulary of `texts` (the training split): [<pad>, <unk>, tokens by count (ties: by token)],
    keeping tokens seen at least `min_count` times, at most `max_size` entries in all."""
    counts = Counter(tok for t in texts for tok in tokenize(t, kind))
    kept = sorted((tok for tok, c in counts.items() if c >= min_count), key=lambda tok: (-counts[tok], tok))
    return [PAD, UNK] + kept[:max_size - 2]


class Encoder:
    """Strings -> padded id batches for a fixed vocabulary (a plain list, as stored in checkpoints)."""

    def __init__(self, vocab: Sequence[str], kind: str, max_length: int):
        if list(vocab[:2]) != [PAD, UNK]:
            raise CnnkitError("The vocabulary must start with <pad>, <unk>; rebuild it with build_vocab.")
        self.vocab, self.kind, self.max_length = list(vocab), kind, int(max_length)
        self.index = {tok: i for i, tok in enumerate(self.vocab)}

    def ids(self, text: str) -> list[int]:
        """The ids of `text`'s tokens (unknown ones -> 1), cut to `max_length` tokens."""
        unk = self.index[UNK]
        return [self.index.get(tok, unk) for tok in tokenize(text, self.kind)[:self.max_length]]

    def batch(self, texts: Sequence[str]) -> torch.Tensor:
        """int64 N x L ids, L the longest sequence of the batch (at least 1), padded with 0 (<pad>)."""
        rows = [self.ids(t) for t in texts]
        out = torch.zeros(len(rows), max([1] + [len(r) for r in rows]), dtype=torch.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r, dtype=torch.int64)
        return out

    def tokens(self, text: str) -> list[str]:
        """The tokens of `text` the model sees (cut to `max_length`), as written in the string."""
        return tokenize(text, self.kind)[:self.max_length]
