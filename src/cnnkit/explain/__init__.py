"""Explanations of CNN decisions: attribution maps, feature maps, filters, faithfulness checks.

Kept light: the package root may bind `cnnkit.explain` to the function below, so code
here and elsewhere imports submodules by their full dotted path
(`from cnnkit.explain.api import explain`), never through that attribute. Captum and
matplotlib are imported only when a method runs or a picture is drawn.
"""
from cnnkit.explain.api import explain, explain_cli
from cnnkit.explain.explanation import Explanation

__all__ = ["explain", "explain_cli", "Explanation"]
