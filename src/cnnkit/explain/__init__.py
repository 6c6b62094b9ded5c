"""Explanations of CNN decisions: attribution maps, feature maps, filters, faithfulness checks.

Importing this package costs nothing: the package root imports it early (so that the
function `cnnkit.explain` is not shadowed by it), and `explain`, `explain_cli` and
`Explanation` load torch, Captum and matplotlib only when first used. Code here and
elsewhere imports submodules by their full dotted path (`from cnnkit.explain.api import
explain`), never through the `cnnkit.explain` attribute.
"""
from __future__ import annotations

from typing import Any

__all__ = ["explain", "explain_cli", "Explanation"]


def __getattr__(name: str) -> Any:  # PEP 562: the public names, imported on first use
    if name in ("explain", "explain_cli"):
        from cnnkit.explain.api import explain, explain_cli

        return explain if name == "explain" else explain_cli
    if name == "Explanation":
        from cnnkit.explain.explanation import Explanation

        return Explanation
    raise AttributeError(f"module 'cnnkit.explain' has no attribute {name!r}")
