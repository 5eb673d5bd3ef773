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
NFKC itself does too wherever no code point can compose with or reorder around its neighbours
(`_tables` says when), which covers most text, compatibility characters ('…', no-break spaces)
included. So the forms are table lookups over the first two planes of Unicode (the Basic
Multilingual Plane, and the next: emoji, historic scripts), built once from those very functions.
A text with a code point whose NFKC depends on its neighbours (a combining mark, for instance) is
put in NFKC by `unicodedata` first; one the tables do not cover at all takes the Python path as
before: a code point past them (CJK extensions past B, tags, private use), or an ASCII control
character (`line_key_of_normalised` keeps those in the keys of all-ASCII text and drops them from
others).
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
from .normalize import line_key_of_normalised, normalize, tokenize, utf8

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
    Without `full`, only the spaced forms (what signing reads); the others are left empty.

    Raw texts go through the tables that fold NFKC in (`_Tables.raw`); those holding a code point
    whose NFKC depends on its neighbours are put in NFKC by `unicodedata` and go through the case
    folding alone (`_Tables.folded`), as normalised texts do; what neither covers, the Python path."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    tables = _tables()
    forms, covered = _run(texts, tables.folded if normalised else tables.raw, tables, full)
    if covered.all():
        return forms
    redo = np.flatnonzero(~covered).tolist()
    replaced: dict[int, tuple[bytes, bytes, bytes, int]] = {}
    if not normalised:
        # `is_normalized` first: for text already in NFKC about 8x cheaper than `normalize`
        is_nfkc, nfkc_of = unicodedata.is_normalized, unicodedata.normalize
        nfkc = [t if is_nfkc("NFKC", t) else nfkc_of("NFKC", t) for t in (texts[k] for k in redo)]
        again, covered_again = _run(nfkc, tables.folded, tables, full)
        for k, ok, row in zip(redo, covered_again.tolist(), _rows(again), strict=True):
            if ok:
                replaced[k] = row
    for k in redo:
        if k not in replaced:
            replaced[k] = _python_forms(texts[k] if normalised else normalize(texts[k]), full)
    return _patched(forms, replaced)


def _run(texts: Sequence[str], fold: tuple[np.ndarray, np.ndarray], tables: _Tables,
         full: bool) -> tuple[UnicodeForms, np.ndarray]:
    """The compiled pass over `texts` with one of the fold tables; the forms and which texts it covered."""
    buf, offsets = _joined([utf8(t) for t in texts])  # a lone surrogate: a code point no table covers
    *arrays, covered = _forms(buf, offsets, fold[0], fold[1], tables.classes, full)
    return UnicodeForms(*arrays), covered


def _python_forms(norm: str, full: bool) -> tuple[bytes, bytes, bytes, int]:
    """The forms of one normalised text by the Python functions (the empty ones without `full`)."""
    spaced = " ".join(tokenize(norm)).encode("utf-8")
    if not full:
        return b"", spaced, b"", 0
    key = line_key_of_normalised(norm)
    return utf8(norm), spaced, key.encode("utf-8"), len(key)


def _patched(forms: UnicodeForms, replaced: dict[int, tuple[bytes, bytes, bytes, int]]) -> UnicodeForms:
    """`forms` with the texts in `replaced` given those forms instead."""
    rows = _rows(forms)
    for k, row in replaced.items():
        rows[k] = row
    normal, spaced, keys, chars = (list(field) for field in zip(*rows, strict=True))  # rows: never empty here
    return UnicodeForms(*_joined(normal), *_joined(spaced), *_joined(keys), np.array(chars, dtype=np.int64))


def _rows(forms: UnicodeForms) -> list[tuple[bytes, bytes, bytes, int]]:
    """Each text's (normal, spaced, key, key length)."""
    return list(zip(_pieces(forms.normal, forms.normal_offsets), _pieces(forms.spaced, forms.spaced_offsets),
                    _pieces(forms.keys, forms.key_offsets), forms.key_chars.tolist(), strict=True))


def _pieces(buf: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    data = buf.tobytes()
    return [data[a:b] for a, b in pairwise(offsets.tolist())]


@dataclass(frozen=True, slots=True)
class _Tables:
    """`classes` of every code point of the first two planes, and two fold tables, each (count,
    code points): per code point, how many code points it becomes (0 when the table does not cover
    it) and those code points. `folded` is `str.casefold`, for text in NFKC; `raw` is casefold
    after NFKC, for the code points whose NFKC does not depend on their neighbours."""

    classes: np.ndarray
    folded: tuple[np.ndarray, np.ndarray]
    raw: tuple[np.ndarray, np.ndarray]


@cache
def _tables() -> _Tables:
    """Built once per process from the Python functions themselves, about 0.15 s (`kernels.warm_up`
    builds them before workers fork).

    A code point's NFKC does not depend on its neighbours when it and what it maps to are all
    *inert*: in NFKC on their own (quick check "yes"), of combining class 0, and never the second of
    a canonical composition (nor a Hangul vowel or trailing consonant). Decomposition is then per
    code point, nothing reorders (every class is 0) and nothing composes (no code point can be a
    composition's second), so a text of such code points is put in NFKC one code point at a time."""
    everything = "".join(map(chr, range(_COVERED)))
    classes = np.zeros(_COVERED, dtype=np.uint8)
    for pattern, bit in ((r"\s", _SPACE), (r"\w", _WORD), (r"\d", _DIGIT)):
        classes[[m.start() for m in re.finditer(pattern, everything)]] |= bit
    nfkc = unicodedata.normalize
    seconds = {0x1161 + k for k in range(21)} | {0x11A8 + k for k in range(27)}  # Hangul V and T
    for char in everything:
        parts = unicodedata.decomposition(char).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(int(parts[1], 16))
    inert = np.array([nfkc("NFKC", c) == c and not unicodedata.combining(c) for c in everything], dtype=bool)
    inert[list(seconds)] = False
    inert[0xD800:0xE000] = False  # surrogates: never in text that encodes to UTF-8
    controls = [cp for cp in range(128) if not classes[cp] and not chr(cp).isprintable()]
    inert[controls] = False  # all-ASCII text keeps them in its line key, other text does not
    changed_by_nfkc = [cp for cp, c in enumerate(everything) if not inert[cp] and nfkc("NFKC", c) != c]
    foldable = np.ones(_COVERED, dtype=bool)
    foldable[0xD800:0xE000] = False
    foldable[controls] = False
    folded = _fold_table(everything, np.flatnonzero(foldable), {})
    mapped = {}
    for cp in changed_by_nfkc:
        target = nfkc("NFKC", everything[cp])
        if not unicodedata.combining(everything[cp]) and all(ord(c) < _COVERED and inert[ord(c)] for c in target):
            mapped[cp] = target
    raw = _fold_table(everything, np.flatnonzero(inert), mapped)
    return _Tables(classes, folded, raw)


def _fold_table(everything: str, kept: np.ndarray, mapped: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """Casefold of each code point of `kept`, and of what each of `mapped` maps to; 0 for the rest."""
    count = np.zeros(_COVERED, dtype=np.uint8)
    points = np.zeros((_COVERED, _MOST), dtype=np.uint32)
    count[kept] = 1
    points[kept, 0] = kept
    sources = {int(cp): everything[cp] for cp in kept.tolist() if everything[cp].casefold() != everything[cp]}
    sources.update(mapped)
    for cp, text in sources.items():
        folded = text.casefold()
        if len(folded) > _MOST or any(ord(c) >= _COVERED for c in folded):
            count[cp] = 0
            continue
        count[cp] = len(folded)
        points[cp, : len(folded)] = [ord(c) for c in folded]
    return count, points


_MOST = 6  # code points one code point may become (past it, the Python path)
_ROOM = 4 * _MOST + 8  # the most bytes one code point's forms can add to a buffer, and some


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
               classes: np.ndarray, full: bool) -> tuple[np.ndarray, ...]:  # pragma: no cover - compiled
        """Each text's normal, spaced and key forms through one fold table (without `full`, the spaced
        ones alone), key lengths, and whether the table covered it (a text it does not cover is left
        empty, for the caller to fill). The buffers hold half as much again as the input: text seldom
        grows when normalised, and one that outgrows what is left is left to the caller too."""
        n = len(offsets) - 1
        size = len(buf) + len(buf) // 2 + _ROOM
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
                if count == 0 or max(a, b, c) + _ROOM > size:
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
