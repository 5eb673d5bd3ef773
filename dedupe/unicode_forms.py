"""Compiled `normalize`, `tokenize` and `line_key` of non-ASCII text, in one pass per batch.

Real dumps are mostly not ASCII: one curly quote, dash or accented name makes a page non-ASCII,
and on scraped news pages (the syndication set built from the dev set) 99% of the pages and 12%
of the lines were. The Python path for them (NFKC, case folding, collapsing whitespace, a regex
for the words, two more for the line key) was most of the signing time on such pages.

Everything after NFKC works one code point at a time, with no context:
- `str.casefold` maps each code point to one to three others (full case folding; unlike
  `str.lower` it has no final-sigma rule);
- `str.split` splits on the code points for which `str.isspace`;
- `\\w` (`tokenize`) and `\\d` (`line_key`) each test one code point.
So NFKC is left to `unicodedata.normalize` (C code, with a quick check for text that is already
normalised) and the rest is table lookups over the first two planes of Unicode (the Basic
Multilingual Plane, and the next: emoji, historic scripts), built once from those very functions
(`_tables`). A text the tables do not cover takes the Python path as before: one with a code point
past them (CJK extensions past B, tags, private use), or with an ASCII control character
(`line_key_of_normalised` keeps those in the keys of all-ASCII text and drops them from others).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np

from .kernels import AVAILABLE, _joined
from .normalize import line_key_of_normalised, normalize, tokenize

_SPACE, _WORD, _DIGIT = 1, 2, 4  # classes of a (folded) code point: str.isspace, \w, \d
_COVERED = 0x20000  # the Basic Multilingual Plane and the next (emoji, historic scripts)


@dataclass(frozen=True, slots=True)
class UnicodeForms:
    """Three forms of each text, as UTF-8 in flat buffers, text k's at `offsets[k]:offsets[k + 1]`:
    `normal`, its `normalize`; `spaced`, its `tokenize` joined by single spaces (what the kernels
    read); `keys`, its `line_key_of_normalised`, with `key_chars`, each key's length in characters."""

    normal: np.ndarray
    normal_offsets: np.ndarray
    spaced: np.ndarray
    spaced_offsets: np.ndarray
    keys: np.ndarray
    key_offsets: np.ndarray
    key_chars: np.ndarray

    def spaced_bytes(self) -> list[bytes]:
        """Each text's spaced form, as bytes."""
        return _pieces(self.spaced, self.spaced_offsets)


def unicode_forms(texts: Sequence[str], normalised: bool = False, full: bool = True) -> UnicodeForms:
    """The `UnicodeForms` of `texts` (raw, or already `normalize`d when `normalised`); meant for the
    non-ASCII texts of a batch, though any text gives the same forms as the Python functions.
    Without `full`, only the spaced forms (what signing reads); the others are left empty."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    # `is_normalized` first: for text already in NFKC (most of it) about 8x cheaper than `normalize`
    is_nfkc, nfkc_of = unicodedata.is_normalized, unicodedata.normalize
    nfkc = texts if normalised else [t if is_nfkc("NFKC", t) else nfkc_of("NFKC", t) for t in texts]
    fold_count, fold, classes, growth = _tables()
    buf, offsets = _joined([t.encode("utf-8") for t in nfkc])
    *arrays, covered = _forms(buf, offsets, fold_count, fold, classes, growth, full)
    forms = UnicodeForms(*arrays)
    missed = np.flatnonzero(~covered)
    return forms if missed.size == 0 else _patched(forms, texts, normalised, full, missed.tolist())


def _patched(forms: UnicodeForms, texts: Sequence[str], normalised: bool, full: bool,
             missed: list[int]) -> UnicodeForms:
    """`forms` with the texts the tables do not cover made by the Python functions."""
    normal = _pieces(forms.normal, forms.normal_offsets)
    spaced = _pieces(forms.spaced, forms.spaced_offsets)
    keys = _pieces(forms.keys, forms.key_offsets)
    key_chars = forms.key_chars.copy()
    for k in missed:
        norm = texts[k] if normalised else normalize(texts[k])
        spaced[k] = " ".join(tokenize(norm)).encode("utf-8")
        if full:
            key = line_key_of_normalised(norm)
            normal[k], keys[k], key_chars[k] = norm.encode("utf-8"), key.encode("utf-8"), len(key)
    return UnicodeForms(*_joined(normal), *_joined(spaced), *_joined(keys), key_chars)


def _pieces(buf: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    data = buf.tobytes()
    return [data[a:b] for a, b in pairwise(offsets.tolist())]


@cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For every code point of the first two planes: how many code points it case-folds to (0 when
    the tables do not cover it), those code points, and its classes; and the most UTF-8 bytes a
    text's byte can grow to when folded (so the kernel's buffers are sized once). About 60 ms, once
    per process (`kernels.warm_up` builds them before workers fork)."""
    everything = "".join(map(chr, range(_COVERED)))
    classes = np.zeros(_COVERED, dtype=np.uint8)
    for pattern, bit in ((r"\s", _SPACE), (r"\w", _WORD), (r"\d", _DIGIT)):
        classes[[m.start() for m in re.finditer(pattern, everything)]] |= bit
    fold_count = np.ones(_COVERED, dtype=np.uint8)
    fold = np.zeros((_COVERED, 3), dtype=np.uint32)
    fold[:, 0] = np.arange(_COVERED)
    growth = 1
    for cp in [cp for cp, c in enumerate(everything) if c.casefold() != c]:  # about 1,500 of them
        char = everything[cp]
        folded = char.casefold()
        points = [ord(c) for c in folded]
        if len(points) > 3 or max(points) >= _COVERED:
            fold_count[cp] = 0
            continue
        fold_count[cp] = len(points)
        fold[cp, : len(points)] = points
        growth = max(growth, -(-len(folded.encode("utf-8")) // len(char.encode("utf-8"))))
    fold_count[0xD800:0xE000] = 0  # surrogates: never in text that encodes to UTF-8
    controls = [cp for cp in range(128) if not classes[cp] and not chr(cp).isprintable()]
    fold_count[controls] = 0  # all-ASCII text keeps them in its line key, other text does not
    return fold_count, fold, classes, growth


if AVAILABLE:
    from .kernels import _jit

    @_jit
    def _put(out: np.ndarray, at: int, cp: int) -> int:  # pragma: no cover - compiled
        """Write code point `cp` as UTF-8 at `out[at]`; the next free position."""
        if cp < 0x80:
            out[at] = cp
            return at + 1
        if cp < 0x800:
            out[at] = 0xC0 | (cp >> 6)
            out[at + 1] = 0x80 | (cp & 0x3F)
            return at + 2
        if cp < 0x10000:
            out[at] = 0xE0 | (cp >> 12)
            out[at + 1] = 0x80 | ((cp >> 6) & 0x3F)
            out[at + 2] = 0x80 | (cp & 0x3F)
            return at + 3
        out[at] = 0xF0 | (cp >> 18)
        out[at + 1] = 0x80 | ((cp >> 12) & 0x3F)
        out[at + 2] = 0x80 | ((cp >> 6) & 0x3F)
        out[at + 3] = 0x80 | (cp & 0x3F)
        return at + 4

    @_jit
    def _forms(buf: np.ndarray, offsets: np.ndarray, fold_count: np.ndarray, fold: np.ndarray,
               classes: np.ndarray, growth: int, full: bool) -> tuple[np.ndarray, ...]:  # pragma: no cover - compiled
        """Each NFKC text's normal, spaced and key forms (without `full`, the spaced ones alone), key
        lengths, and whether the tables covered it (a text they do not cover is left empty, for the
        caller to fill)."""
        n = len(offsets) - 1
        size = len(buf) * growth + 1
        normal, spaced, keys = np.empty(size, np.uint8), np.empty(size, np.uint8), np.empty(size, np.uint8)
        normal_offsets = np.zeros(n + 1, np.int64)
        spaced_offsets = np.zeros(n + 1, np.int64)
        key_offsets = np.zeros(n + 1, np.int64)
        key_chars = np.zeros(n, np.int64)
        covered = np.ones(n, np.bool_)
        a = b = c = 0
        for t in range(n):
            a0, b0, c0 = a, b, c
            chars = 0
            pending = in_word = in_digits = False
            i, end = offsets[t], offsets[t + 1]
            while i < end:
                x = np.int64(buf[i])
                if x < 0x80:
                    cp = x
                    i += 1
                elif x < 0xE0:
                    cp = ((x & 0x1F) << 6) | (np.int64(buf[i + 1]) & 0x3F)
                    i += 2
                elif x < 0xF0:
                    cp = ((x & 0x0F) << 12) | ((np.int64(buf[i + 1]) & 0x3F) << 6) | (np.int64(buf[i + 2]) & 0x3F)
                    i += 3
                else:
                    cp = (((x & 0x07) << 18) | ((np.int64(buf[i + 1]) & 0x3F) << 12)
                          | ((np.int64(buf[i + 2]) & 0x3F) << 6) | (np.int64(buf[i + 3]) & 0x3F))
                    i += 4
                count = fold_count[cp] if cp < len(fold_count) else 0
                if count == 0:
                    covered[t] = False
                    break
                for j in range(count):
                    f = np.int64(fold[cp, j])
                    kind = classes[f]
                    if kind & _SPACE:
                        pending = a > a0
                        in_word = in_digits = False
                        continue
                    if full:
                        if pending:
                            normal[a] = 32
                            a += 1
                        a = _put(normal, a, f)
                    pending = False
                    if not kind & _WORD:
                        in_word = in_digits = False
                        continue
                    if not in_word:
                        if b > b0:
                            spaced[b] = 32
                            b += 1
                            if full:
                                keys[c] = 32
                                c += 1
                                chars += 1
                        in_word = True
                    b = _put(spaced, b, f)
                    if not full:
                        continue
                    if kind & _DIGIT:
                        if not in_digits:
                            keys[c] = 48  # "0": a run of digits in a key
                            c += 1
                            chars += 1
                            in_digits = True
                    else:
                        c = _put(keys, c, f)
                        chars += 1
                        in_digits = False
            if not covered[t]:
                a, b, c, chars = a0, b0, c0, 0
            normal_offsets[t + 1], spaced_offsets[t + 1], key_offsets[t + 1] = a, b, c
            key_chars[t] = chars
        return (normal[:a], normal_offsets, spaced[:b], spaced_offsets, keys[:c], key_offsets, key_chars, covered)
