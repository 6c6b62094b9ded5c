"""The top-level API (src/cnnkit/__init__.py) documents itself: `help(cnnkit.x)` says what x returns."""
import inspect

import pytest

import cnnkit

FUNCTIONS = [name for name in cnnkit.__all__ if inspect.isfunction(getattr(cnnkit, name))]


def test_the_api_has_the_documented_functions():
    assert {"train", "evaluate", "load", "predict", "explain", "bench", "build_model", "list_models"} <= set(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_public_function_says_what_it_returns(name):
    doc = inspect.getdoc(getattr(cnnkit, name)) or ""
    assert len(doc) > 40, f"cnnkit.{name} has no docstring"
    assert "return" in doc.lower(), f"cnnkit.{name}'s docstring does not say what it returns"
