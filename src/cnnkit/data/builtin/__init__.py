"""The built-in sets (`BUILTINS` in `data/registry.py`): `classification` (digits, fashion-mnist),
`canvas` (digits-detect, fashion-detect), `seg_canvas` (digits-seg, fashion-seg), `chembl`
(chembl2321810: SMILES and activity from the RDKit wheel), `fortunes` (fortunes-langid: text language).
Importing the package registers them; the import order is the order `--help` lists them in."""
from cnnkit.data.builtin import classification, canvas, seg_canvas, chembl, fortunes  # noqa: F401  registers

__all__ = ["classification", "canvas", "seg_canvas", "chembl", "fortunes"]
