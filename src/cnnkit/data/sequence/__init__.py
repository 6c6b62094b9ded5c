"""Sequences of tokens for 1-D CNNs: text and SMILES strings.

`tokenize` (character and SMILES tokenisers, the vocabulary stored in checkpoints, padding),
`data` (the `SequenceSplit` and the text/SMILES CSV and .smi readers), `chem` (RDKit: SMILES
enumeration, Bemis-Murcko scaffolds, depictions; optional, the `chem` extra), `loader` (batches of
token ids whose order is a function of (seed, epoch), with SMILES enumeration as augmentation).
"""
