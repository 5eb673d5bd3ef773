"""The joined feature table that the batches of stage 1 write into, in place.

Joining finished batches (`features.concat`) writes every byte of features twice, once by its
batch and once into the table, and holds both at the peak. The second write goes to fresh memory,
and first touches are what cost most here: on the VMs measured, a page never used before took
0.8-3 s per GiB to fault in, against 0.2 s for one used and freed, so at 100k documents joining
1 GB of features took 3.2 s of a 34 s `--jobs 2` scan, in the one process while the other idled.

So the table is reserved before the batches run and each batch writes its features straight into
it. In this process the batches run one after another and each writes where the last ended. In
forked workers (the table then lives in shared memory) a batch does not know where its paragraphs,
signatures, shingles and terms will start until every earlier batch is done (the batches split
their own pages into paragraphs), so each batch gets a region of its own, sized by upper bounds
that follow from its documents' lines and characters, and `join` closes the gaps once all are in.
Reserved pages that no batch writes take no memory. A batch that outgrows its region
(normalisation can lengthen text) hands its features back whole, and the table is then joined by
`concat` as before.
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
from .forkpool import CAN_FORK, fork_beside

# One entry per paragraph, each batch's where its region begins (the chrome cues only when asked for).
_PER_PARAGRAPH = {"doc": np.int64, "index": np.int64, "line": np.int64, "end": np.int64, "start": np.int64,
                  "stop": np.int64, "words": np.int64, "chars": np.int64, "key_hi": np.uint64, "key_lo": np.uint64,
                  "sig_row": np.int64}
_CUES = {"key_chars": np.int32, "key_words": np.int32, "key_stops": np.int32, "key_hashes": np.uint64,
         "line_flags": np.uint8}


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch left in the table: how many paragraphs, signature rows, shingles and story
    terms, where they begin, and its term vocabulary (small; it is merged at the join). `whole`
    holds the batch's features instead when they did not fit its region."""

    paragraphs: int
    rows: int
    shingles: int
    terms: int
    at: tuple[int, int, int, int]
    vocabulary: np.ndarray
    whole: ParagraphFeatures | None = None


class FeatureTable:
    """Arrays sized for every paragraph of the corpus, written batch by batch, joined once.

    `shared` puts them in anonymous shared memory mapped now, before any fork, so that forked
    workers write into this process's pages; batches then write at regions of their own (`write`
    may run in any order). Otherwise a batch writes where the previous one ended (`write` must be
    called in batch order) and nothing is moved at the join.
    """

    def __init__(self, texts: Sequence[str], spans: Sequence[tuple[int, int]], num_perm: int,
                 key_cues: bool, terms: bool, shared: bool, slack: int = 64) -> None:
        # A text of L lines has at most L paragraphs, holding at most its characters; a paragraph of
        # c characters has at most (c + 1) // 2 space-separated words, so at most that many distinct
        # shingles and story terms (text that normalisation lengthens may overflow).
        lines = np.fromiter((len(text.splitlines()) for text in texts), dtype=np.int64, count=len(texts))
        chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        lines_before, chars_before = (np.concatenate([[0], np.cumsum(x)]) for x in (lines, chars))
        lo, hi = (np.array([span[end] for span in spans], dtype=np.int64) for end in (0, 1))
        batch_lines = lines_before[hi] - lines_before[lo]
        words = (chars_before[hi] - chars_before[lo] + batch_lines) // 2 + slack
        self.spans = list(spans)
        self.paragraphs = np.concatenate([[0], np.cumsum(batch_lines)])  # each batch's paragraph region
        self.reserved = np.concatenate([[0], np.cumsum(words)])  # each batch's shingle (and term) region
        self.shared, self.key_cues, self.terms = shared, key_cues, terms
        n, room = int(self.paragraphs[-1]), int(self.reserved[-1])
        layout: dict[str, tuple[tuple[int, ...], Any]] = {
            name: ((n,), dtype) for name, dtype in self._per_paragraph().items()}
        layout["signatures"] = ((n, num_perm), np.uint32)
        layout["shingle_offsets"] = ((n + 1,), np.int64)
        layout["shingle_hashes"] = ((room,), np.uint32)
        if terms:
            layout["term_offsets"] = ((n + 1,), np.int64)
            layout["term_ids"] = ((room,), np.int32)
        self.arrays, self._mappings = _allocate(layout, shared)
        self._next = (0, 0, 0, 0)  # where the next batch writes, when batches write one after another

    def _per_paragraph(self) -> dict[str, Any]:
        return _PER_PARAGRAPH | (_CUES if self.key_cues else {})

    def write(self, batch: int, feats: ParagraphFeatures) -> Written:
        """Copy batch `batch`'s features into the table; the caller can drop them afterwards."""
        count, rows, shingles = len(feats.doc), len(feats.signatures), len(feats.shingle_hashes)
        terms = len(feats.term_ids) if self.terms else 0
        if self.shared:
            region, words = int(self.paragraphs[batch]), int(self.reserved[batch])
            at, ends = (region, region, words, words), (self.paragraphs[batch + 1], self.reserved[batch + 1])
        else:
            at, ends = self._next, (self.paragraphs[-1], self.reserved[-1])
        if at[0] + count > ends[0] or at[2] + shingles > ends[1] or at[3] + terms > ends[1]:
            return Written(count, rows, shingles, terms, at, feats.term_vocabulary, whole=feats)
        t, p = self.arrays, at[0]
        for name in self._per_paragraph():
            t[name][p : p + count] = getattr(feats, name)
        t["signatures"][at[1] : at[1] + rows] = feats.signatures
        t["shingle_offsets"][at[1] + 1 : at[1] + rows + 1] = feats.shingle_offsets[1:]
        t["shingle_hashes"][at[2] : at[2] + shingles] = feats.shingle_hashes
        if self.terms:
            t["term_offsets"][p + 1 : p + count + 1] = feats.term_offsets[1:]
            t["term_ids"][at[3] : at[3] + terms] = feats.term_ids
        if not self.shared:
            self._next = (p + count, at[1] + rows, at[2] + shingles, at[3] + terms)
        return Written(count, rows, shingles, terms, at, feats.term_vocabulary)

    def join(self, written: Sequence[Written], jobs: int = 1) -> ParagraphFeatures:
        """The whole table, from every batch's `Written` in batch order: regions moved together,
        batch-local numbers (documents, signature rows, offsets, term ids) made corpus-wide. In
        shared memory with `jobs` > 1, a forked process moves about half of the arrays (by bytes)
        while this one moves the rest: each array's moves are independent of the others'."""
        if any(w.whole is not None for w in written):
            return concat([self._batch(w) for w in written], [lo for lo, _ in self.spans])
        t = self.arrays
        totals = {f: np.concatenate([[0], np.cumsum([getattr(w, f) for w in written])]).astype(np.int64)
                  for f in ("paragraphs", "rows", "shingles", "terms")}
        vocabulary = unique_sorted(np.concatenate([w.vocabulary for w in written] or [np.zeros(0, np.uint64)]))
        names = [*self._per_paragraph(), "signatures", "shingle_offsets", "shingle_hashes"]
        names += ["term_offsets", "term_ids"] if self.terms else []
        plan = _Join(self, list(written), totals, vocabulary)
        if self.shared and jobs > 1 and CAN_FORK:
            mine, theirs = _halves(names, {name: _RENUMBERED.get(name, 1) * t[name].itemsize * int(
                np.prod(t[name].shape[1:])) * int(totals[_COUNTED_BY.get(name, "paragraphs")][-1]) for name in names})
            fork_beside(_join_arrays, plan, theirs, lambda: _join_arrays(plan, mine), jobs)
        else:
            _join_arrays(plan, names)
        paras, rows, shingles, terms = (totals[f] for f in ("paragraphs", "rows", "shingles", "terms"))
        joined = {name: self._used(name, paras[-1]) for name in self._per_paragraph()}
        joined["signatures"] = self._used("signatures", rows[-1])
        t["shingle_offsets"][0] = 0
        joined["shingle_offsets"] = self._used("shingle_offsets", rows[-1] + 1)
        joined["shingle_hashes"] = self._used("shingle_hashes", shingles[-1])
        if self.terms:
            t["term_offsets"][0] = 0
            joined.update(term_offsets=self._used("term_offsets", paras[-1] + 1),
                          term_ids=self._used("term_ids", terms[-1]), term_vocabulary=vocabulary)
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

    def _batch(self, w: Written) -> ParagraphFeatures:
        """A batch's features as `analyse` gave them: views of where it wrote them, or as handed back."""
        if w.whole is not None:
            return w.whole
        t, (p, r, s, m) = self.arrays, w.at
        given = {name: t[name][p : p + w.paragraphs] for name in self._per_paragraph()}
        given["signatures"] = t["signatures"][r : r + w.rows]
        given["shingle_offsets"] = np.concatenate([[0], t["shingle_offsets"][r + 1 : r + w.rows + 1]])
        given["shingle_hashes"] = t["shingle_hashes"][s : s + w.shingles]
        if self.terms:
            given.update(term_offsets=np.concatenate([[0], t["term_offsets"][p + 1 : p + w.paragraphs + 1]]),
                         term_ids=t["term_ids"][m : m + w.terms], term_vocabulary=w.vocabulary)
        return ParagraphFeatures(**given)


@dataclass(frozen=True, slots=True)
class _Join:
    """What moving the batches' regions together needs: the table, each batch's `Written`, the
    running totals of paragraphs, signature rows, shingles and terms, and the merged vocabulary."""

    table: FeatureTable
    written: list[Written]
    totals: dict[str, np.ndarray]
    vocabulary: np.ndarray


_COUNTED_BY = {"signatures": "rows", "shingle_offsets": "rows", "shingle_hashes": "shingles", "term_ids": "terms"}
_RENUMBERED = {"term_ids": 3}
"""Arrays whose join costs more than their bytes' move: term ids are also renumbered into the merged
vocabulary (a gather each), about three moves' worth."""


def _halves(names: list[str], sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """The arrays split in two parts of about equal bytes (largest first, each to the lighter part)."""
    parts: tuple[list[str], list[str]] = ([], [])
    load = [0, 0]
    for name in sorted(names, key=lambda n: -sizes[n]):
        lighter = 0 if load[0] <= load[1] else 1
        parts[lighter].append(name)
        load[lighter] += sizes[name]
    return parts


def _join_arrays(plan: _Join, names: Sequence[str]) -> None:
    """Move each named array's batch regions down to where the previous batch's end, in batch
    order, and make its batch-local numbers corpus-wide (a top-level function, so a forked process
    can do some arrays while this one does the rest)."""
    t, spans = plan.table.arrays, plan.table.spans
    paras, rows, shingles, terms = (plan.totals[f] for f in ("paragraphs", "rows", "shingles", "terms"))
    for name in names:
        array = t[name]
        for k, w in enumerate(plan.written):
            a, b = paras[k], paras[k + 1]
            if name == "signatures":
                _move(array, w.at[1], rows[k], w.rows)
            elif name == "shingle_offsets":
                _move(array, w.at[1] + 1, rows[k] + 1, w.rows)
                array[rows[k] + 1 : rows[k + 1] + 1] += shingles[k]
            elif name == "shingle_hashes":
                _move(array, w.at[2], shingles[k], w.shingles)
            elif name == "term_offsets":
                _move(array, w.at[0] + 1, a + 1, w.paragraphs)
                array[a + 1 : b + 1] += terms[k]
            elif name == "term_ids":
                _move(array, w.at[3], terms[k], w.terms)
                ids = array[terms[k] : terms[k + 1]]
                ids[:] = np.searchsorted(plan.vocabulary, w.vocabulary).astype(np.int32)[ids]
            else:  # one entry per paragraph
                _move(array, w.at[0], a, w.paragraphs)
                if name == "doc":
                    array[a:b] += spans[k][0]
                elif name == "sig_row":
                    sig_row = array[a:b]
                    sig_row[sig_row >= 0] += rows[k]


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
