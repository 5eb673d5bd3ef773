"""Text normalisation: the one place that decides when two strings count as "the same".

Three views of a paragraph are used downstream:
- `normalize`: NFKC, case-folded, whitespace collapsed. Exact clusters compare these.
- `words`: the word tokens of the normalised text. Shingles are built from these.
- `line_key`: `normalize` with every run of digits masked and punctuation dropped, so that
  "4 hours ago" and "5 hours ago", or "Page 2 of 9" and "Page 3 of 12", give one key. Chrome
  detection counts recurrence of these keys.
"""

from __future__ import annotations

import re
import unicodedata

_ASCII_PUNCT_TO_SPACE = str.maketrans({c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"})
_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """NFKC, case-fold and collapse whitespace; the canonical form for exact comparison.

    ASCII text (most of any dump) takes a fast path: NFKC leaves it unchanged and case folding is
    lower-casing there; `str.split` collapses the same whitespace as the general path.
    """
    if text.isascii():
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def utf8(text: str) -> bytes:
    """`text` as UTF-8, a lone surrogate included (encoded as its code point is, "surrogatepass").

    JSON can spell one ("\\ud800" outside a pair) and the readers keep such records so that
    they round-trip; it is no character, never part of a word, but hashing and counting a text
    that holds one must not fail. Identical to `str.encode("utf-8")` for every other text."""
    return text.encode("utf-8", "surrogatepass")


def words(text: str) -> list[str]:
    """Word tokens of the normalised text (letters, digits and underscore runs)."""
    return tokenize(normalize(text))


def tokenize(normalised: str) -> list[str]:
    """Word tokens of text that is already normalised."""
    return _WORD.findall(normalised)


def line_key(text: str) -> str:
    """Recurrence key: normalised, digits masked to `0`, punctuation dropped."""
    return line_key_of_normalised(normalize(text))


def line_key_of_normalised(norm: str) -> str:
    """`line_key` of text that is already normalised (the features stage has it at hand)."""
    if norm.isascii():
        return " ".join(_DIGITS.sub("0", norm).translate(_ASCII_PUNCT_TO_SPACE).split())
    return " ".join(_NON_WORD.sub(" ", _DIGITS.sub("0", norm)).split())
