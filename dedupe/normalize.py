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

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """NFKC, case-fold and collapse whitespace; the canonical form for exact comparison."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def words(text: str) -> list[str]:
    """Word tokens of the normalised text (letters, digits and underscore runs)."""
    return tokenize(normalize(text))


def tokenize(normalised: str) -> list[str]:
    """Word tokens of text that is already normalised."""
    return _WORD.findall(normalised)


def line_key(text: str) -> str:
    """Recurrence key: normalised, digits masked to `0`, punctuation dropped."""
    masked = _DIGITS.sub("0", normalize(text))
    return _SPACE.sub(" ", _NON_WORD.sub(" ", masked)).strip()
