"""fortunes-langid from fortune files: cleaning, cross-language duplicates dropped, a hash-fixed split."""
import pytest

from cnnkit.config import Config
from cnnkit.data.builtin import fortunes
from cnnkit.errors import CnnkitError


def write(path, texts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n%\n".join(texts) + "\n%\n", encoding="utf-8")


def test_texts_cleaned_deduplicated_and_split_by_hash(tmp_path, monkeypatch):
    shared = "Carpe diem, quam minimum credula postero."
    write(tmp_path / "fortunes", [f"An English saying number {i} about   life." for i in range(30)] + [shared, "short"])
    write(tmp_path / "de" / "sprueche", [f"Ein deutscher Spruch Nummer {i} über das Leben." for i in range(30)]
          + [shared, "#### ### ## #### ### ## ####"])
    monkeypatch.setattr(fortunes, "ROOT", tmp_path)
    texts = fortunes.fortune_texts(tmp_path)
    assert set(texts) == {"en", "de"} and len(texts["en"]) == 30 and len(texts["de"]) == 30
    assert "An English saying number 0 about life." in texts["en"]  # whitespace normalised
    assert shared not in texts["en"] + texts["de"]  # in two languages: dropped
    cfg = Config()
    cfg.data.name = "fortunes-langid"
    b = fortunes.load_fortunes(cfg)
    splits = [set(s.texts) for s in (b.train, b.val, b.test)]
    assert sum(map(len, splits)) == 60 and not (splits[0] & splits[2]) and not (splits[0] & splits[1])
    again = fortunes.load_fortunes(cfg)
    assert again.test.texts == b.test.texts and b.info.classes == ["de", "en"]


def test_fewer_than_two_languages_names_the_packages(tmp_path):
    write(tmp_path / "fortunes", ["Only English here, nothing else at all."])
    with pytest.raises(CnnkitError, match="apt-get install fortunes-min"):
        fortunes.fortune_texts(tmp_path)
