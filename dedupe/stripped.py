"""The paragraphs a scan strips as chrome: held as numbers, read back as `StrippedParagraph`s.

A scraped page strips about a hundred lines (the syndication set: 1.4M of 1.6M paragraphs over
10k pages), and an object per stripped line with a copy of its text cost more than the rest of
the scan's result. So the scan keeps, per stripped paragraph, where it lies in its document and
which of a few reasons applies (`StrippedStore`); each outcome's `stripped` is a view of its
document's rows (`StrippedParagraphs`) that makes the `StrippedParagraph`s when they are read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from .model import Document
from .normalize import utf8
from .segment import paragraph_text


@dataclass(frozen=True, slots=True)
class StrippedParagraph:
    """A paragraph chrome detection removed from a document, and why."""

    index: int
    line: int
    end: int
    text: str
    reason: str


class StrippedStore:
    """Every stripped paragraph of a scan, rows in document order: the paragraph's index in its
    document, its lines, [start, stop) in the document text (`segment.split_spans`), its length in
    characters, and its reason as a number into `reasons` (a site's chrome shares a handful)."""

    def __init__(self, docs: Sequence[Document], doc: np.ndarray, columns: dict[str, np.ndarray],
                 reason_ids: np.ndarray, reasons: Sequence[str]) -> None:
        self.docs = docs
        self.bounds = np.searchsorted(doc, np.arange(len(docs) + 1)).tolist()
        stop = columns["stop"]
        # 4 bytes a number unless a document is longer than that counts (a 2 GB record)
        width = np.int32 if not len(stop) or int(stop.max()) < 2**31 else np.int64
        self.doc = np.asarray(doc, dtype=width)
        self.index, self.line, self.end, self.start, self.stop, self.chars = (
            np.asarray(columns[name], dtype=width) for name in ("index", "line", "end", "start", "stop", "chars"))
        self.reason_ids = np.asarray(reason_ids, dtype=np.int32)
        self.reasons = list(reasons)
        self._chars_before: list[int] | None = None  # running total of `chars`, made when first asked

    @classmethod
    def empty(cls, docs: Sequence[Document]) -> StrippedStore:
        none = np.zeros(0, dtype=np.int64)
        return cls(docs, none, dict.fromkeys(("index", "line", "end", "start", "stop", "chars"), none), none, [])

    def __len__(self) -> int:
        return len(self.index)

    def of(self, d: int) -> StrippedParagraphs:
        """Document d's stripped paragraphs."""
        return StrippedParagraphs(self, d, self.bounds[d], self.bounds[d + 1])

    def text(self, row: int, d: int) -> str:
        return paragraph_text(self.docs[d].text, int(self.start[row]), int(self.stop[row]),
                              bool(self.end[row] != self.line[row]))

    def texts_at(self, rows: np.ndarray) -> list[str]:
        """The texts of rows `rows` (of any documents), where they lie read for all at once."""
        where = zip(self.doc[rows].tolist(), self.start[rows].tolist(), self.stop[rows].tolist(),
                    (self.end[rows] != self.line[rows]).tolist(), strict=True)
        return [paragraph_text(self.docs[d].text, start, stop, wrapped) for d, start, stop, wrapped in where]

    def texts(self, d: int) -> list[str]:
        """Document d's stripped paragraphs' texts, all at once (a page strips a hundred lines)."""
        lo, hi = self.bounds[d], self.bounds[d + 1]
        text = self.docs[d].text
        starts, stops = self.start[lo:hi].tolist(), self.stop[lo:hi].tolist()
        wrapped = np.flatnonzero(self.end[lo:hi] != self.line[lo:hi]).tolist()
        out = [text[a:b] for a, b in zip(starts, stops, strict=True)]
        for k in wrapped:  # hard-wrapped blocks: their lines joined
            out[k] = paragraph_text(text, starts[k], stops[k], wrapped=True)
        return out

    def paragraphs(self, d: int) -> list[StrippedParagraph]:
        """Document d's `StrippedParagraph`s."""
        lo, hi = self.bounds[d], self.bounds[d + 1]
        reasons = self.reasons
        return [StrippedParagraph(k, line, end, text, reasons[r]) for k, line, end, text, r in zip(
            self.index[lo:hi].tolist(), self.line[lo:hi].tolist(), self.end[lo:hi].tolist(), self.texts(d),
            self.reason_ids[lo:hi].tolist(), strict=True)]

    def doc_chars(self, d: int) -> int:
        """Document d's stripped paragraphs' length in characters."""
        before = self._running_chars()
        return before[self.bounds[d + 1]] - before[self.bounds[d]]

    def _running_chars(self) -> list[int]:
        """The running total of `chars`, from 0 (a list: read an item at a time, its ints are cheaper)."""
        if self._chars_before is None:
            self._chars_before = np.concatenate([[0], np.cumsum(self.chars, dtype=np.int64)]).tolist()
        return self._chars_before

    def utf8_bytes(self, d: int) -> int:
        """Document d's stripped paragraphs' length in UTF-8 (their characters, in ASCII text)."""
        if self.docs[d].text.isascii():
            return self.doc_chars(d)
        return sum(len(utf8(text)) for text in self.texts(d))

    def utf8_bytes_of(self, docs: np.ndarray) -> int:
        """`utf8_bytes` summed over documents `docs`: the ASCII ones' from their characters, all at
        once (a call per document was a third of a scan's last serial step)."""
        ascii_text = np.fromiter((self.docs[d].text.isascii() for d in docs.tolist()), dtype=bool, count=len(docs))
        bounds = np.asarray(self.bounds, dtype=np.int64)
        chars_before = np.asarray(self._running_chars(), dtype=np.int64)
        plain = docs[ascii_text]
        total = int((chars_before[bounds[plain + 1]] - chars_before[bounds[plain]]).sum())
        return total + sum(self.utf8_bytes(d) for d in docs[~ascii_text].tolist())

    def paragraph(self, row: int, d: int) -> StrippedParagraph:
        return StrippedParagraph(int(self.index[row]), int(self.line[row]), int(self.end[row]), self.text(row, d),
                                 self.reasons[int(self.reason_ids[row])])


class StrippedParagraphs(Sequence[StrippedParagraph]):
    """One document's stripped paragraphs, in order, made when read; equal to any sequence of the
    same `StrippedParagraph`s (a tuple of them included)."""

    __slots__ = ("_doc", "_hi", "_lo", "_store")

    def __init__(self, store: StrippedStore, doc: int, lo: int, hi: int) -> None:
        self._store, self._doc, self._lo, self._hi = store, doc, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    @overload
    def __getitem__(self, k: int) -> StrippedParagraph: ...

    @overload
    def __getitem__(self, k: slice) -> tuple[StrippedParagraph, ...]: ...

    def __getitem__(self, k: int | slice) -> StrippedParagraph | tuple[StrippedParagraph, ...]:
        if isinstance(k, slice):
            return tuple(self[i] for i in range(*k.indices(len(self))))
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError("stripped paragraph index out of range")
        return self._store.paragraph(self._lo + k, self._doc)

    def __iter__(self) -> Iterator[StrippedParagraph]:
        return iter(self._store.paragraphs(self._doc)) if self._hi > self._lo else iter(())

    @property
    def chars(self) -> int:
        """The stripped paragraphs' length in characters, without making them."""
        return self._store.doc_chars(self._doc)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"StrippedParagraphs({list(self)!r})"


def stripped_chars(paragraphs: Sequence[StrippedParagraph]) -> int:
    """The paragraphs' length in characters (without making them, when they are a scan's)."""
    if isinstance(paragraphs, StrippedParagraphs):
        return paragraphs.chars
    return sum(len(p.text) for p in paragraphs)
