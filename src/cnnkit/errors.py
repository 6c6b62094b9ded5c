"""The one exception type users see: a sentence that names the file/key/value and what to do.

The CLI catches `CnnkitError` and prints its message without a traceback (DESIGN rule 9).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnkitError(Exception):
    """A problem the user can fix; `str(err)` is the whole message."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean "x"?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return f' Did you mean "{close[0]}"?' if close else ""
