"""The joined feature table that the batches of stage 1 write into, in place.

Joining finished batches (`features.concat`) writes every byte of features twice, once by its
batch and once into the table, and holds both at the peak. The second write goes to fresh memory,
and first touches are what cost most here: on the VMs measured, a page never used before took
0.8-3 s per GiB to fault in, against 0.2 s for one used and freed, so at 100k documents joining
1 GB of features took 3.2 s of a 34 s `--jobs 2` scan, in the one process while the other idled.

So the table is reserved before the batches run and each batch writes its features straight into
it. In this process the batches run one after another and each writes where the last ended. In
forked workers (the table then lives in shared memory) a batch's signatures, shingles and terms
do not know where they will start until every earlier batch is done, so each batch gets a region
of its own, sized by an upper bound that follows from its paragraphs and characters, and `join`
closes the gaps once all are in. Per-paragraph arrays need no gaps: the paragraph counts are
known before anything runs. A batch that outgrows its region (normalisation can lengthen text)
hands its features back whole, and the table is then joined by `concat` as before.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import unique_sorted
from .features import ParagraphFeatures, concat
from .segment import Paragraph

# One entry per paragraph, each batch at its paragraphs' place (the chrome cues only when asked for).
_PER_PARAGRAPH = {"doc": np.int64, "index": np.int64, "line": np.int64, "words": np.int64, "chars": np.int64,
                  "key_hi": np.uint64, "key_lo": np.uint64, "sig_row": np.int64}
_CUES = {"key_chars": np.int32, "key_words": np.int32, "key_stops": np.int32, "key_hashes": np.uint64,
         "line_flags": np.uint8}


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch left in the table: how many signature rows, shingles and story terms, where
    they begin, and its term vocabulary (small; it is merged at the join). `whole` holds the batch's
    features instead when they did not fit its region."""

    rows: int
    shingles: int
    terms: int
    at: tuple[int, int, int]
    vocabulary: np.ndarray
    whole: ParagraphFeatures | None = None


class FeatureTable:
    """Arrays sized for every paragraph of the corpus, written batch by batch, joined once.

    `shared` puts them in anonymous shared memory mapped now, before any fork, so that forked
    workers write into this process's pages; batches then write at regions of their own (`write`
    may run in any order). Otherwise a batch writes where the previous one ended (`write` must be
    called in batch order) and nothing is moved at the join.
    """

    def __init__(self, pages: Sequence[Sequence[Paragraph]], spans: Sequence[tuple[int, int]], num_perm: int,
                 key_cues: bool, terms: bool, shared: bool, slack: int = 64) -> None:
        per_doc = np.fromiter(map(len, pages), dtype=np.int64, count=len(pages))
        chars = np.fromiter((len(p.text) for page in pages for p in page), dtype=np.int64, count=int(per_doc.sum()))
        doc_start = np.concatenate([[0], np.cumsum(per_doc)])
        self.spans = list(spans)
        self.paragraphs = np.array([doc_start[lo] for lo, _ in spans] + [doc_start[-1]], dtype=np.int64)
        # A paragraph of c characters has at most (c + 1) // 2 space-separated words, so at most that
        # many distinct shingles and story terms (text that normalisation lengthens may overflow).
        words = np.concatenate([[0], np.cumsum((chars + 1) // 2)])
        bound = words[self.paragraphs[1:]] - words[self.paragraphs[:-1]] + slack
        self.reserved = np.concatenate([[0], np.cumsum(bound)])  # each batch's shingle (and term) region
        self.shared, self.key_cues, self.terms = shared, key_cues, terms
        n, room = int(self.paragraphs[-1]), int(self.reserved[-1])
        layout: dict[str, tuple[tuple[int, ...], Any]] = {
            name: ((n,), dtype) for name, dtype in _PER_PARAGRAPH.items()}
        if key_cues:
            layout.update({name: ((n,), dtype) for name, dtype in _CUES.items()})
        layout["signatures"] = ((n, num_perm), np.uint32)
        layout["shingle_offsets"] = ((n + 1,), np.int64)
        layout["shingle_hashes"] = ((room,), np.uint32)
        if terms:
            layout["term_offsets"] = ((n + 1,), np.int64)
            layout["term_ids"] = ((room,), np.int32)
        self.arrays, self._mappings = _allocate(layout, shared)
        self._next = (0, 0, 0)  # where the next batch writes, when batches write one after another

    def write(self, batch: int, feats: ParagraphFeatures) -> Written:
        """Copy batch `batch`'s features into the table; the caller can drop them afterwards."""
        a, b = self.paragraphs[batch], self.paragraphs[batch + 1]
        rows, shingles = len(feats.signatures), len(feats.shingle_hashes)
        terms = len(feats.term_ids) if self.terms else 0
        at = (int(a), int(self.reserved[batch]), int(self.reserved[batch])) if self.shared else self._next
        end = self.reserved[batch + 1] if self.shared else self.reserved[-1]
        if at[1] + shingles > end or at[2] + terms > end:
            return Written(rows, shingles, terms, at, feats.term_vocabulary, whole=feats)
        t = self.arrays
        for name in _PER_PARAGRAPH | (_CUES if self.key_cues else {}):
            t[name][a:b] = getattr(feats, name)
        t["signatures"][at[0] : at[0] + rows] = feats.signatures
        t["shingle_offsets"][at[0] + 1 : at[0] + rows + 1] = feats.shingle_offsets[1:]
        t["shingle_hashes"][at[1] : at[1] + shingles] = feats.shingle_hashes
        if self.terms:
            t["term_offsets"][a + 1 : b + 1] = feats.term_offsets[1:]
            t["term_ids"][at[2] : at[2] + terms] = feats.term_ids
        if not self.shared:
            self._next = (at[0] + rows, at[1] + shingles, at[2] + terms)
        return Written(rows, shingles, terms, at, feats.term_vocabulary)

    def join(self, written: Sequence[Written]) -> ParagraphFeatures:
        """The whole table, from every batch's `Written` in batch order: regions moved together,
        batch-local numbers (documents, signature rows, offsets, term ids) made corpus-wide."""
        if any(w.whole is not None for w in written):
            return concat([self._batch(k, w) for k, w in enumerate(written)], [lo for lo, _ in self.spans])
        t = self.arrays
        rows, shingles, terms = (np.concatenate([[0], np.cumsum([getattr(w, f) for w in written])]).astype(np.int64)
                                 for f in ("rows", "shingles", "terms"))
        vocabulary = unique_sorted(np.concatenate([w.vocabulary for w in written] or [np.zeros(0, np.uint64)]))
        for k, w in enumerate(written):
            a, b = self.paragraphs[k], self.paragraphs[k + 1]
            t["doc"][a:b] += self.spans[k][0]
            sig_row = t["sig_row"][a:b]
            sig_row[sig_row >= 0] += rows[k]
            _move(t["signatures"], w.at[0], rows[k], w.rows)
            _move(t["shingle_offsets"], w.at[0] + 1, rows[k] + 1, w.rows)
            t["shingle_offsets"][rows[k] + 1 : rows[k + 1] + 1] += shingles[k]
            _move(t["shingle_hashes"], w.at[1], shingles[k], w.shingles)
            if self.terms:
                t["term_offsets"][a + 1 : b + 1] += terms[k]
                _move(t["term_ids"], w.at[2], terms[k], w.terms)
                ids = t["term_ids"][terms[k] : terms[k + 1]]
                ids[:] = np.searchsorted(vocabulary, w.vocabulary).astype(np.int32)[ids]
        joined = {name: t[name] for name in _PER_PARAGRAPH | (_CUES if self.key_cues else {})}
        joined["signatures"] = self._used("signatures", rows[-1])
        t["shingle_offsets"][0] = 0
        joined["shingle_offsets"] = self._used("shingle_offsets", rows[-1] + 1)
        joined["shingle_hashes"] = self._used("shingle_hashes", shingles[-1])
        if self.terms:
            t["term_offsets"][0] = 0
            joined.update(term_offsets=t["term_offsets"], term_ids=self._used("term_ids", terms[-1]),
                          term_vocabulary=vocabulary)
        return ParagraphFeatures(**joined)

    def _used(self, name: str, count: int) -> np.ndarray:
        """The first `count` rows of a table array. In shared memory, the pages past them (where
        batches wrote before the join moved their regions down) are given back."""
        array = self.arrays[name]
        mapping = self._mappings.get(name)
        if mapping is not None:
            start = -(-count * (array.nbytes // max(1, len(array))) // mmap.PAGESIZE) * mmap.PAGESIZE
            if start < len(mapping):
                with contextlib.suppress(OSError):  # a kernel that will not: they stay until the table goes
                    mapping.madvise(mmap.MADV_REMOVE, start, len(mapping) - start)
        return array[:count]

    def _batch(self, k: int, w: Written) -> ParagraphFeatures:
        """Batch k's features as `analyse` gave them: views of where it wrote them, or as handed back."""
        if w.whole is not None:
            return w.whole
        t, (r, s, m) = self.arrays, w.at
        a, b = self.paragraphs[k], self.paragraphs[k + 1]
        given = {name: t[name][a:b] for name in _PER_PARAGRAPH | (_CUES if self.key_cues else {})}
        given["signatures"] = t["signatures"][r : r + w.rows]
        given["shingle_offsets"] = np.concatenate([[0], t["shingle_offsets"][r + 1 : r + w.rows + 1]])
        given["shingle_hashes"] = t["shingle_hashes"][s : s + w.shingles]
        if self.terms:
            given.update(term_offsets=np.concatenate([[0], t["term_offsets"][a + 1 : b + 1]]),
                         term_ids=t["term_ids"][m : m + w.terms], term_vocabulary=w.vocabulary)
        return ParagraphFeatures(**given)


def _allocate(layout: dict[str, tuple[tuple[int, ...], Any]], shared: bool
              ) -> tuple[dict[str, np.ndarray], dict[str, mmap.mmap]]:
    """Empty arrays of the given shapes: private, or each a view of its own shared anonymous mapping
    (so that one array's pages go back as soon as it is dropped). Pages, like `np.empty`'s, take
    memory only once written."""
    if not shared:
        return {name: np.empty(shape, dtype=dtype) for name, (shape, dtype) in layout.items()}, {}
    arrays, mappings = {}, {}
    for name, (shape, dtype) in layout.items():
        count = int(np.prod(shape))
        mappings[name] = mmap.mmap(-1, max(mmap.PAGESIZE, count * np.dtype(dtype).itemsize))
        arrays[name] = np.frombuffer(mappings[name], dtype=dtype, count=count).reshape(shape)
    return arrays, mappings


def _move(array: np.ndarray, source: int, target: int, count: int) -> None:
    """array[target:target+count] = array[source:source+count], for target <= source (a batch's
    region moves down to where the previous batch's ends; numpy copies through a buffer when the
    two overlap)."""
    if source != target and count:
        array[target : target + count] = array[source : source + count]
