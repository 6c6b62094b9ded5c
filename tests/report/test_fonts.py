"""Fonts for class names: a font with the glyphs when one is installed, the class index with a note otherwise."""
import pytest
from matplotlib import font_manager

from cnnkit.report import fonts

NAMES = ["café", "猫", "🐶"]


@pytest.fixture()
def no_extra_fonts(monkeypatch):
    """As on a machine with only matplotlib's DejaVu Sans."""
    fonts._fallbacks.cache_clear()
    fonts._single_file.cache_clear()
    monkeypatch.setattr(fonts, "_candidates", lambda: [])
    yield
    fonts._fallbacks.cache_clear()
    fonts._single_file.cache_clear()


def test_without_a_font_names_fall_back_to_the_index(no_extra_fonts):
    assert fonts.missing_glyphs(NAMES) == {"猫", "🐶"}
    assert fonts.class_labels(NAMES) == ["café", "#1", "#2"]
    note = fonts.note_for(NAMES)
    assert note.startswith("#1, #2: class names shown by index") and "U+732B" in note and "U+1F436" in note
    assert fonts.note_for(["café", "cat"]) is None
    assert fonts.drawable("a 猫") == "a U+732B"
    assert fonts.font_file_for(["café"]).endswith("DejaVuSans.ttf") and fonts.font_file_for(["猫"]) is None


def _installed_cjk() -> list[str]:
    return [f.fname for f in font_manager.fontManager.ttflist if "CJK" in f.name]


@pytest.mark.skipif(not _installed_cjk(), reason="no CJK font installed (Debian: fonts-noto-cjk)")
def test_an_installed_cjk_font_is_found():
    with fonts.fonts_for(["猫"]) as missing:
        import matplotlib

        family = matplotlib.rcParams["font.family"]
    assert missing == set() and "CJK" in family[-1]
    assert fonts.class_labels(NAMES)[:2] == ["café", "猫"]
    path = fonts.font_file_for(["café", "猫"])
    assert path in _installed_cjk() and {ord("猫"), ord("é")} <= fonts._charmap(path)


def test_placeholder_fonts_do_not_count_as_having_glyphs():
    """matplotlib ships Last Resort, which draws every code point as a box: that is no glyph."""
    assert not [f for f in fonts._candidates() if f.name.startswith("Last Resort")]
    emoji = [f for f in fonts._candidates() if ord("🐶") in fonts._charmap(f.fname)]
    assert fonts.class_labels(NAMES)[2] == ("🐶" if emoji else "#2")
