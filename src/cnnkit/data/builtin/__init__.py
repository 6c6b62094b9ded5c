"""The built-in sets (`BUILTINS` in `data/registry.py`): `classification` (digits, fashion-mnist),
`canvas` (digits-detect, fashion-detect), `seg_canvas` (digits-seg, fashion-seg).
Importing the package registers them; the import order is the order `--help` lists them in."""
from cnnkit.data.builtin import classification, canvas, seg_canvas  # noqa: F401  registers

__all__ = ["classification", "canvas", "seg_canvas"]
