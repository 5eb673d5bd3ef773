"""A batch's documents split into paragraphs in one compiled pass (numba, the optional `fast` extra).

`segment.split_spans` runs per line in Python (a split, a strip and a find per line, a list append
per paragraph): about 1 s per 100k news-length documents. Here a batch's texts are read as code
points from one buffer (each text whose characters fit 16 bits; 8 bits when they all fit 8), and one
pass finds their lines (`str.splitlines`' breaks), strips them (`str.isspace`), groups them into
blocks and tells hard-wrapped blocks (`segment._looks_wrapped`) by a table of each code point's
classes made from Python's own `str` predicates. Texts with characters past 16 bits (or lone
surrogates) are split by `split_spans` itself; the paragraphs are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from . import kernels
from .segment import _SENTENCE_END, _WRAP_CHARS, paragraph_text, split_spans

if kernels.AVAILABLE:
    from .kernels import _jit

_BREAK, _SPACE, _LOWER, _END = 1, 2, 4, 8  # a code point's classes (bits of `_classes()`)
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # where `str.splitlines` breaks ("\r\n" is one)


@cache
def _classes() -> np.ndarray:
    """Each 16-bit code point's classes: a line break, white space (`str.isspace`), lower case
    (`str.islower`, `_looks_wrapped`'s test of a line's first character), a sentence's end. Built on
    first use (about 10 ms), not when the package is imported: without numba it is never needed."""
    chars = [chr(c) for c in range(0x10000)]
    out = np.zeros(0x10000, dtype=np.uint8)
    out[[c for c, ch in enumerate(chars) if ch.isspace()]] |= _SPACE
    out[[c for c, ch in enumerate(chars) if ch.islower()]] |= _LOWER
    out[[ord(ch) for ch in _LINE_BREAKS]] |= _BREAK
    out[[ord(ch) for ch in _SENTENCE_END]] |= _END
    return out


_CHUNK_CHARS = 1 << 23  # texts are read this many characters at a time (a buffer of at most 16 MB)


class BatchSpans(NamedTuple):
    """A batch's paragraphs in document order: `segment.Spans`' fields as arrays (int64), and the
    document of each."""

    texts: list[str]
    doc: np.ndarray
    line: np.ndarray
    end: np.ndarray
    start: np.ndarray
    stop: np.ndarray


def split_batch(texts: Sequence[str]) -> BatchSpans:
    """`segment.split_spans` of every text, as one table of the batch's paragraphs. A paragraph's
    text is the slice [start, stop) of its document, or for a hard-wrapped block (its last line after
    its first) that block's lines stripped and joined (`segment.paragraph_text`)."""
    if not kernels.AVAILABLE:
        return _split_in_python(texts, range(len(texts)))
    parts: list[tuple[np.ndarray, ...]] = []
    left_out: list[int] = []
    for lo, hi in _chunks(texts):
        buf, offsets, skipped = code_units(texts[lo:hi])
        doc, line, end, start, stop = _split(buf, offsets, _classes())
        parts.append((doc + lo, line, end, start, stop))
        left_out += [lo + k for k in skipped]
    if left_out:  # texts with characters past 16 bits: split in Python
        parts.append(_split_in_python(texts, left_out)[1:])
    doc, line, end, start, stop = (np.concatenate([p[f] for p in parts] or [np.zeros(0, np.int64)]) for f in range(5))
    if left_out:  # put in their place
        order = np.argsort(doc, kind="stable")
        doc, line, end, start, stop = doc[order], line[order], end[order], start[order], stop[order]
    held = [texts[d][a:b] for d, a, b in zip(doc.tolist(), start.tolist(), stop.tolist(), strict=True)]
    for k in np.flatnonzero(end > line).tolist():  # hard-wrapped blocks
        held[k] = paragraph_text(texts[doc[k]], int(start[k]), int(stop[k]), True)
    return BatchSpans(held, doc, line, end, start, stop)


def _split_in_python(texts: Sequence[str], which: Sequence[int]) -> BatchSpans:
    found = [split_spans(texts[d]) for d in which]
    doc = np.repeat(np.asarray(which, dtype=np.int64), [len(f.texts) for f in found])
    numbers = (np.array([x for f in found for x in getattr(f, name)], dtype=np.int64)
               for name in ("lines", "ends", "starts", "stops"))
    return BatchSpans([x for f in found for x in f.texts], doc, *numbers)


def _chunks(texts: Sequence[str]) -> list[tuple[int, int]]:
    """[lo, hi) ranges of the texts of about `_CHUNK_CHARS` characters each (at least one text)."""
    bounds = [0]
    total = 0
    for k, text in enumerate(texts):
        total += len(text)
        if total >= _CHUNK_CHARS:
            bounds.append(k + 1)
            total = 0
    if bounds[-1] != len(texts):
        bounds.append(len(texts))
    return list(pairwise(bounds))


def code_units(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The texts' characters as code points in one buffer (uint8 when every one fits 8 bits, else
    uint16) and each text's offsets into it; and the indices of the texts left out (a character past
    16 bits, or a lone surrogate), which get an empty range."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    left_out: list[int] = []
    try:
        buf = np.frombuffer(b"".join([text.encode("latin-1") for text in texts]), dtype=np.uint8)
    except UnicodeEncodeError:
        parts = []
        for k, text in enumerate(texts):
            try:
                data = text.encode("utf-16-le")
            except UnicodeEncodeError:  # a lone surrogate
                data = b""
            if len(data) != 2 * len(text):  # (or surrogate pairs: characters past 16 bits)
                data = b""
                left_out.append(k)
            parts.append(data)
        buf = np.frombuffer(b"".join(parts), dtype=np.uint16)
        lengths[left_out] = 0
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return buf, offsets, left_out


if kernels.AVAILABLE:
    @_jit
    def _line_end(buf: np.ndarray, i: int, end: int, classes: np.ndarray) -> int:  # pragma: no cover - compiled
        """Where the line starting at buf[i] ends (its break, or the text's end)."""
        while i < end and not classes[buf[i]] & _BREAK:
            i += 1
        return i

    @_jit
    def _mid_sentence(buf: np.ndarray, cur: int, cur_end: int, cur_last: int, nxt: int, nxt_end: int,
                      classes: np.ndarray) -> bool:  # pragma: no cover - compiled
        """`_looks_wrapped`'s test of one break: the line buf[cur:cur_end] (its last non-space
        character at cur_last) breaks mid-sentence before the line at buf[nxt:nxt_end]."""
        long_or_lower = cur_end - cur >= _WRAP_CHARS or (nxt < nxt_end and classes[buf[nxt]] & _LOWER)
        return bool(long_or_lower) and not classes[buf[cur_last]] & _END

    @_jit
    def _split(buf: np.ndarray, offsets: np.ndarray, classes: np.ndarray
               ) -> tuple[np.ndarray, ...]:  # pragma: no cover - compiled
        """`split_spans` of every text of the buffer: each paragraph's text (its index among them),
        first and last line, start and stop; a line's break and stripped bounds found by the classes
        table."""
        cap = len(offsets) + len(buf) // 64 + 16
        out = np.empty((5, cap), dtype=np.int64)  # doc, line, end, start, stop
        # each line of the block being read: start, end (its break), first and last non-space
        block = np.empty((4, 64), dtype=np.int64)
        m = 0
        for t in range(len(offsets) - 1):
            base, end = offsets[t], offsets[t + 1]
            i = base
            line = 0  # lines read before the one at i
            held = 0  # lines in the block being read
            while True:
                at_end = i >= end
                blank = True
                if not at_end:
                    stop = _line_end(buf, i, end, classes)
                    first = i
                    while first < stop and classes[buf[first]] & _SPACE:
                        first += 1
                    blank = first == stop
                if blank and held:  # the block ends: lines line-held+1 .. line (1-based)
                    wrapped = False
                    if held > 1:
                        mid, need = 0, (held - 1) // 2 + 1
                        for q in range(held - 1):
                            if _mid_sentence(buf, block[0, q], block[1, q], block[3, q], block[0, q + 1],
                                             block[1, q + 1], classes):
                                mid += 1
                        wrapped = mid >= need
                    count = 1 if wrapped else held
                    if m + count > cap:
                        cap = 2 * (m + count)
                        grown = np.empty((5, cap), dtype=np.int64)
                        grown[:, :m] = out[:, :m]
                        out = grown
                    first_line = line - held + 1
                    for q in range(count):
                        out[0, m] = t
                        out[1, m] = first_line + q
                        out[2, m] = line if wrapped else first_line + q
                        out[3, m] = block[2, q] - base
                        out[4, m] = (block[3, held - 1] if wrapped else block[3, q]) + 1 - base
                        m += 1
                    held = 0
                if at_end:
                    break
                if not blank:
                    if held == block.shape[1]:
                        grown = np.empty((4, 2 * held), dtype=np.int64)
                        grown[:, :held] = block
                        block = grown
                    last = stop - 1
                    while classes[buf[last]] & _SPACE:
                        last -= 1
                    block[0, held], block[1, held], block[2, held], block[3, held] = i, stop, first, last
                    held += 1
                line += 1
                if stop >= end:
                    i = end
                    continue
                i = stop + 1
                if buf[stop] == 13 and i < end and buf[i] == 10:  # "\r\n" is one break
                    i += 1
        return out[0, :m].copy(), out[1, :m].copy(), out[2, :m].copy(), out[3, :m].copy(), out[4, :m].copy()
