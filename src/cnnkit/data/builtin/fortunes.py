"""`fortunes-langid`: language identification of human-written quotations, from Debian's fortune files.

Read offline from the installed packages (`/usr/share/games/fortunes`): English (`fortunes`,
`fortunes-min`), German (`fortunes-de`), Spanish (`-es`), Italian (`-it`), Brazilian Portuguese
(`-br`), Polish (`-pl`), Czech (`-cs`), Russian (`-ru`) and Esperanto (`-eo`); the languages whose
package is installed are used (at least two). A text classification task (`seq_classify`).

Each fortune is whitespace-normalised; ones under 20 or over 400 characters, or less than half
letters (ASCII art), are left out; a text found in two languages is dropped, and every text is kept
once. The split is fixed by a hash of the text (SHA-1: 70 % train, 10 % val, 20 % test), so the same
text is always in the same split and no duplicate crosses splits; at most 2,000 texts per language
(the lowest hashes) are kept.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cnnkit.config import Config
from cnnkit.data.base import DataBundle
from cnnkit.data.registry import BUILTINS
from cnnkit.errors import CnnkitError

NAME = "fortunes-langid"
ROOT = Path("/usr/share/games/fortunes")
PER_LANGUAGE = 2000
SEPARATOR = re.compile(r"^%[ \t\r]*$", re.M)
ENGLISH = ("fortunes", "literature", "riddles", "art", "computers", "cookie", "definitions", "drugs", "education",
           "ethnic", "food", "goedel", "humorists", "kids", "law", "linux", "love", "magic", "medicine", "men-women",
           "miscellaneous", "news", "people", "pets", "platitudes", "politics", "science", "songs-poems", "sports",
           "wisdom", "work", "zippy")
# language code -> (Debian package, files or folders under ROOT)
SOURCES = {"en": ("fortunes-min", ENGLISH), "de": ("fortunes-de", ("de",)), "es": ("fortunes-es", ("es",)),
           "it": ("fortunes-it", ("it",)), "pt": ("fortunes-br", ("brasil",)), "pl": ("fortunes-pl", ("pl",)),
           "cs": ("fortunes-cs", ("cs",)), "ru": ("fortunes-ru", ("ru",)), "eo": ("fortunes-eo", ("eo",))}


def _files(entries: tuple[str, ...], root: Path) -> list[Path]:
    out: list[Path] = []
    for e in entries:
        p = root / e
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix not in (".dat", ".u8"))
        elif p.is_file():
            out.append(p)
    return out


def read_fortunes(path: Path) -> list[str]:
    """The fortunes of one file (separated by lines holding `%`), whitespace-normalised."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # a few older files are ISO-8859-1
    return [" ".join(part.split()) for part in SEPARATOR.split(text)]


def _usable(text: str) -> bool:
    return 20 <= len(text) <= 400 and sum(map(str.isalpha, text)) >= 0.5 * len(text)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def fortune_texts(root: Path | None = None) -> dict[str, list[str]]:
    """language -> its kept texts, lowest hash first (see the module docstring); `root`: default ROOT."""
    root = ROOT if root is None else root
    found: dict[str, set[str]] = {}
    for lang, (_, entries) in SOURCES.items():
        texts = {t for f in _files(entries, root) for t in read_fortunes(f) if _usable(t)}
        if texts:
            found[lang] = texts
    if len(found) < 2:
        packages = " ".join(pkg for pkg, _ in SOURCES.values())
        raise CnnkitError(f"The built-in set {NAME} reads Debian's fortune files under {root}, and fewer than two "
                          f"languages are installed: sudo apt-get install {packages}.")
    seen: dict[str, int] = {}
    for texts in found.values():
        for t in texts:
            seen[t] = seen.get(t, 0) + 1
    return {lang: sorted((t for t in texts if seen[t] == 1), key=_hash)[:PER_LANGUAGE]
            for lang, texts in found.items()}


@BUILTINS.register(NAME)
def load_fortunes(cfg: Config) -> DataBundle:
    from cnnkit.data.sequence.data import Table, sequence_bundle

    tables = {s: Table([], [], [], "text") for s in ("train", "val", "test")}
    for lang, texts in fortune_texts().items():
        for t in texts:
            bucket = _hash(t) % 10
            split = "test" if bucket < 2 else "val" if bucket < 3 else "train"
            tables[split].texts.append(t)
            tables[split].targets.append(lang)
            tables[split].names.append(f"{lang}:{_hash(t):016x}")
    return sequence_bundle(tables, cfg, NAME, smiles=False)
