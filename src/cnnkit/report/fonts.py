"""Fonts for text drawn into pictures, so class names with accents, CJK or emoji come out as
written rather than as empty boxes and "Glyph ... missing" warnings.

matplotlib's default font (DejaVu Sans) has Latin accents but no CJK or emoji. `fonts_for`
finds, among the fonts matplotlib's font manager knows (the system's too, e.g. Debian's
`fonts-noto-cjk`), families that have the missing glyphs and adds them as fallbacks for the
figure it wraps. A character no installed font has is not drawn: `class_labels` shows such a
class by its index (`#2`) and `note_for` gives the one-line note that says so. Placeholder
fonts that draw every character as a box (Last Resort) do not count as having a glyph.
`font_file_for` gives one font file for drawing with PIL (which has no fallback chain).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import matplotlib
from matplotlib import font_manager

_PLACEHOLDER_FONTS = ("Last Resort",)  # a box for every code point: not a glyph


@lru_cache(maxsize=None)
def _charmap(fname: str) -> frozenset[int]:
    """The code points a font file has glyphs for (face 0 of a collection: faces of one .ttc
    share their character set)."""
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(fname).get_charmap())
    except (OSError, RuntimeError, ValueError):  # an unreadable font file is a font without glyphs
        return frozenset()


def _candidates() -> list[font_manager.FontEntry]:
    """Installed fonts, regular upright sans faces first, one entry per file."""
    seen, out = set(), []
    rank = (lambda f: (f.weight not in (400, "normal", "regular"), f.style != "normal", "Sans" not in f.name,
                       "Mono" in f.name, f.name))
    for f in sorted(font_manager.fontManager.ttflist, key=rank):
        if f.fname not in seen and not f.name.startswith(_PLACEHOLDER_FONTS):
            seen.add(f.fname)
            out.append(f)
    return out


def _chars(texts: Iterable[str]) -> set[str]:
    return {c for t in texts for c in str(t) if not c.isspace() and ord(c) >= 32}


def _default_font() -> str:
    return font_manager.findfont(font_manager.FontProperties())


@lru_cache(maxsize=256)
def _fallbacks(chars: frozenset[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """Families that have the characters the default font lacks, and the characters none has."""
    missing = {c for c in chars if ord(c) not in _charmap(_default_font())}
    families: list[str] = []
    for entry in _candidates():
        if not missing:
            break
        have = {c for c in missing if ord(c) in _charmap(entry.fname)}
        if have:
            families.append(entry.name)
            missing -= have
    return tuple(families), frozenset(missing)


def missing_glyphs(texts: Iterable[str]) -> set[str]:
    """The characters of `texts` that no installed font can draw."""
    return set(_fallbacks(frozenset(_chars(texts)))[1])


@contextmanager
def fonts_for(texts: Iterable[str]) -> Iterator[set[str]]:
    """Within the block (build and save the figure inside it: matplotlib picks glyphs when it
    draws), fonts that have `texts`' characters back up the default one. Yields the characters
    that no installed font has; draw those texts otherwise (see `class_labels`)."""
    families, missing = _fallbacks(frozenset(_chars(texts)))
    if not families:
        yield set(missing)
        return
    with matplotlib.rc_context({"font.family": [*matplotlib.rcParams["font.family"], *families]}):
        yield set(missing)


def class_labels(classes: Sequence[str]) -> list[str]:
    """`classes` as they can be drawn: a name with a character no installed font has becomes its
    index (`#2`)."""
    missing = missing_glyphs(classes)
    return [f"#{i}" if missing & set(str(c)) else str(c) for i, c in enumerate(classes)]


def note_for(classes: Sequence[str]) -> str | None:
    """One line naming the classes `class_labels` shows by index (None when there are none)."""
    missing = missing_glyphs(classes)
    shown = [f"#{i}" for i, c in enumerate(classes) if missing & set(str(c))]
    if not shown:
        return None
    return (f"{', '.join(shown)}: class names shown by index, no installed font has "
            f"{' '.join(_code_point(c) for c in sorted(missing))} (fonts-noto-cjk covers CJK)")


def _code_point(c: str) -> str:
    return f"U+{ord(c):04X}"


def drawable(text: str) -> str:
    """`text` with each character no installed font has written as its code point (U+1F436)."""
    missing = missing_glyphs([text])
    return "".join(_code_point(c) if c in missing else c for c in str(text))


@lru_cache(maxsize=256)
def _single_file(chars: frozenset[str]) -> str | None:
    if all(ord(c) in _charmap(_default_font()) for c in chars):
        return _default_font()
    return next((f.fname for f in _candidates() if all(ord(c) in _charmap(f.fname) for c in chars)), None)


def font_file_for(texts: Iterable[str]) -> str | None:
    """One font file that has every character of `texts` (the default font when it does), for
    drawing with PIL; None when no single installed font has them all."""
    return _single_file(frozenset(_chars(texts)))
