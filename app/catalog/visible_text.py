"""Warehouse text as a reader sees it: what the metadata guard checks and the LM reads.

Checking the raw bytes of a comment misses what a model reads past: ``Ig\\u200bnore`` (a
zero-width space inside the word), fullwidth ``\\uff30\\uff49\\uff43\\uff4b``, a
Cyrillic ``\\u0405\\u0435l\\u0435\\u0441t`` that looks Latin.
So the guard, the cards and the simulator's gullible judge all read the same normal form:

- ``normalised``: Unicode NFKC (fullwidth and compatibility forms become plain ones), control
  and format characters (zero-width, bidi overrides and isolates, soft hyphen) removed,
  whitespace runs collapsed to one space.
- ``skeleton``: the normalised text case-folded, each word made only of Latin letters and
  Cyrillic/Greek look-alikes spelled in Latin, and accents dropped (``wähle`` → ``wahle``):
  the form detection patterns are written against.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["normalised", "obfuscated", "skeleton"]

_INVISIBLE = frozenset(("Cc", "Cf"))
# Cyrillic and Greek letters drawn like Latin ones (lower case: the skeleton is case-folded).
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m",
        "н": "h", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "υ": "u", "ѵ": "v", "ԝ": "w",
        "х": "x", "у": "y", "ɡ": "g", "ӏ": "l", "ԁ": "d", "ո": "n",
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "χ": "x", "γ": "y",
    }
)  # fmt: skip
_WORD = re.compile(r"\w+")
_LATIN = re.compile(r"[a-z0-9_]+")


@lru_cache(maxsize=65536)  # comments and names repeat across a warehouse
def normalised(text: str) -> str:
    """``text`` in NFKC, without control or format characters, whitespace runs as one space."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():
        text = "".join(
            " " if ch.isspace() else ch
            for ch in text
            if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE
        )
    return " ".join(text.split())


def _latin_word(match: re.Match[str]) -> str:
    word = match.group(0)
    folded = word.translate(_LOOKALIKES)
    # Only a word that is all Latin once its look-alikes are read as Latin is a disguise;
    # a Russian word keeps its letters (and stays readable to the multi-language patterns).
    return folded if _LATIN.fullmatch(folded) else word


@lru_cache(maxsize=65536)
def skeleton(text: str) -> str:
    """The normalised text case-folded, look-alike words in Latin letters, accents dropped."""
    text = _WORD.sub(_latin_word, normalised(text).casefold())
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def obfuscated(text: str) -> bool:
    """Whether ``text`` hides its words: invisible characters, compatibility forms or look-alikes."""
    plain = " ".join(text.split())
    if normalised(text) != plain:
        return True
    folded = plain.casefold()
    return _WORD.sub(_latin_word, folded) != folded
