"""The feature table that the batches of stage 1 write into, each batch once, at its place.

Joining finished batches (`features.concat`) writes every byte of features twice, once by its
batch and once into the table, and holds both at the peak. The second write goes to fresh memory,
and first touches are what cost most here: on the VMs measured, a page never used before took
0.8-3 s per GiB to fault in, against 0.2 s for one used and freed, so at 100k documents joining
1 GB of features took 3.2 s of a 34 s `--jobs 2` scan, in the one process while the other idled.

So the table is reserved before the batches run, sized by upper bounds that follow from the
documents' lines and characters (in shared memory, sparse memory files, from their characters
alone: counting lines took 0.3 s at 100k documents while the workers waited; pages that no batch
writes take no memory either way), and each batch writes its features straight into it, numbered
corpus-wide: a batch's place (where its paragraphs, signature rows, shingles and terms begin) is
the sum of the counts of the batches before it. In this process the batches run one after
another, each written where the last ended. In forked workers (the table then lives in shared
memory) batches finish in any order, and a batch's counts are known only once it is analysed
(batches split their own pages into paragraphs): each publishes its counts as soon as it has them,
then waits for every earlier batch's before it writes. (A region reserved per batch and closed up
at the join moved 0.6 GB of signatures and shingles a second time: 0.6-0.9 s of a 12 s `--jobs 2`
scan.)

Only the story terms are left to the join: each batch numbers its terms by its own vocabulary,
and the corpus's is known only when all are done. A batch that does not fit (normalisation can
lengthen text) hands its features back whole, and the table is then joined by `concat`.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .features import ParagraphFeatures, concat, merged_vocabulary, renumbered
from .forkpool import CAN_FORK, fork_beside

# One entry per paragraph (the chrome cues only when asked for).
_PER_PARAGRAPH = {"doc": np.int64, "index": np.int64, "line": np.int64, "end": np.int64, "start": np.int64,
                  "stop": np.int64, "words": np.int64, "chars": np.int64, "key_hi": np.uint64, "key_lo": np.uint64,
                  "sig_row": np.int64}
_CUES = {"key_chars": np.int32, "key_words": np.int32, "key_stops": np.int32, "key_hashes": np.uint64,
         "line_flags": np.uint8}
_COUNTS = 4  # what a batch adds: paragraphs, signature rows, shingles, terms


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch left in the table: how many paragraphs, signature rows, shingles and story
    terms, where they begin, and its term vocabulary (small; it is merged at the join). `whole`
    holds the batch's features instead when they did not fit."""

    paragraphs: int
    rows: int
    shingles: int
    terms: int
    at: tuple[int, int, int, int]
    vocabulary: np.ndarray
    whole: ParagraphFeatures | None = None


class FeatureTable:
    """Arrays sized for every paragraph of the corpus, each batch written once at its place.

    `shared` puts them in shared memory mapped now, before any fork, so that forked workers write
    into this process's pages; `write` may then be called in any order, from any process, and waits
    for the batches before its own to be counted. Otherwise `write` must be called in batch order.
    """

    def __init__(self, texts: Sequence[str], spans: Sequence[tuple[int, int]], num_perm: int,
                 key_cues: bool, terms: bool, shared: bool, slack: int = 64, min_words: int = 1) -> None:
        # A text of L lines has at most L paragraphs, holding at most its characters; a paragraph of
        # c characters has at most (c + 1) // 2 space-separated words, so at most that many distinct
        # shingles and story terms (text that normalisation lengthens may overflow). In shared
        # memory the table is a sparse file (`_allocate`), so no line is counted (0.3 s at 100k
        # documents, serial): a paragraph takes a character and a line break at least, and a
        # signed one `min_words` words, so 2 * min_words characters. Where that much address space
        # is refused (`ulimit -v`), the lines are counted after all.
        n, chars = len(texts), sum(map(len, texts))
        self.spans = list(spans)
        self.shared, self.key_cues, self.terms = shared, key_cues, terms
        paragraphs, rows = (chars + n) // 2, (chars + n) // (2 * max(1, min_words))
        reserved = False
        if shared and _sparse_file_fits(rows * num_perm * 4):
            with contextlib.suppress(OSError, ValueError, MemoryError):
                self._reserve(paragraphs, rows, chars, slack * len(spans), num_perm)
                reserved = True
        if not reserved:
            lines = sum(len(text.splitlines()) for text in texts)
            self._reserve(lines, lines, chars, slack * len(spans), num_perm)
        self._published = multiprocessing.get_context("fork").Condition() if shared and CAN_FORK else None

    def _reserve(self, lines: int, rows: int, chars: int, slack: int, num_perm: int) -> None:
        """The arrays for at most `lines` paragraphs, `rows` of them signed, over `chars` characters."""
        words = (chars + lines) // 2 + slack
        self.capacity = (lines, rows, words, words if self.terms else 0)
        layout: dict[str, tuple[tuple[int, ...], Any]] = {
            name: ((lines,), dtype) for name, dtype in self._per_paragraph().items()}
        layout["signatures"] = ((rows, num_perm), np.uint32)
        layout["shingle_offsets"] = ((rows + 1,), np.int64)
        layout["shingle_hashes"] = ((words,), np.uint32)
        if self.terms:
            layout["term_offsets"] = ((lines + 1,), np.int64)
            layout["term_ids"] = ((words,), np.int32)
        # Each batch's counts, and whether they are in (1); the condition tells waiting batches.
        layout["counts"] = ((len(self.spans), _COUNTS), np.int64)
        layout["counted"] = ((len(self.spans),), np.int8)
        self.arrays, self._mappings = _allocate(layout, self.shared)
        self.arrays["counted"][:] = 0

    def _per_paragraph(self) -> dict[str, Any]:
        return _PER_PARAGRAPH | (_CUES if self.key_cues else {})

    def write(self, batch: int, feats: ParagraphFeatures) -> Written:
        """Copy batch `batch`'s features into the table at their place; the caller can drop them
        afterwards. In shared memory this first waits until every earlier batch is counted: under
        `fork_map` each of them is with a worker already (items are handed out in order), and is
        counted as soon as it is analysed, so the wait is short and never circular."""
        counts = (len(feats.doc), len(feats.signatures), len(feats.shingle_hashes),
                  len(feats.term_ids) if self.terms else 0)
        at = self._place(batch, counts)
        if any(a + c > cap for a, c, cap in zip(at, counts, self.capacity, strict=True)):
            return Written(*counts, at, feats.term_vocabulary, whole=feats)
        t, (p, r, s, m), (count, rows, shingles, terms) = self.arrays, at, counts
        for name in self._per_paragraph():
            if name not in ("doc", "sig_row"):
                t[name][p : p + count] = getattr(feats, name)
        np.add(feats.doc, self.spans[batch][0], out=t["doc"][p : p + count])
        sig_row = np.add(feats.sig_row, r, out=t["sig_row"][p : p + count])
        sig_row[feats.sig_row < 0] = -1
        t["signatures"][r : r + rows] = feats.signatures
        np.add(feats.shingle_offsets[1:], s, out=t["shingle_offsets"][r + 1 : r + rows + 1])
        t["shingle_hashes"][s : s + shingles] = feats.shingle_hashes
        if self.terms:
            np.add(feats.term_offsets[1:], m, out=t["term_offsets"][p + 1 : p + count + 1])
            t["term_ids"][m : m + terms] = feats.term_ids  # numbered by the batch's vocabulary until `join`
        return Written(*counts, at, feats.term_vocabulary)

    def _place(self, batch: int, counts: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """Where batch `batch` begins: the sums of the earlier batches' counts, once all are in."""
        counted, table = self.arrays["counted"], self.arrays["counts"]
        if self._published is None:
            assert counted[:batch].all(), "one after another, batches are written in order"
            table[batch], counted[batch] = counts, 1
        else:
            with self._published:
                table[batch], counted[batch] = counts, 1
                self._published.notify_all()
                self._published.wait_for(lambda: bool(counted[:batch].all()))
        p, r, s, m = (int(x) for x in table[:batch].sum(axis=0))
        return p, r, s, m

    def join(self, written: Sequence[Written], jobs: int = 1) -> ParagraphFeatures:
        """The whole table, from every batch's `Written` in batch order: its term ids renumbered
        into the merged vocabulary (in shared memory with `jobs` > 1, a forked process renumbers
        the later batches' while this one does the earlier ones')."""
        if any(w.whole is not None for w in written):
            return concat([self._batch(k, w) for k, w in enumerate(written)], [lo for lo, _ in self.spans])
        t = self.arrays
        paragraphs, rows, shingles, terms = (sum(getattr(w, f) for w in written)
                                             for f in ("paragraphs", "rows", "shingles", "terms"))
        t["shingle_offsets"][0] = 0
        joined = {name: self._used(name, paragraphs) for name in self._per_paragraph()}
        joined.update(signatures=self._used("signatures", rows), shingle_hashes=self._used("shingle_hashes", shingles),
                      shingle_offsets=self._used("shingle_offsets", rows + 1))
        if self.terms:
            vocabulary = merged_vocabulary([w.vocabulary for w in written])
            plan = _Renumbering(t["term_ids"], list(written), vocabulary)
            if self.shared and jobs > 1 and CAN_FORK and len(written) > 1:
                cut = int(np.searchsorted(np.cumsum([w.terms for w in written]), terms / 2)) + 1
                fork_beside(_renumber, plan, range(cut, len(written)), lambda: _renumber(plan, range(cut)), jobs)
            else:
                _renumber(plan, range(len(written)))
            t["term_offsets"][0] = 0
            joined.update(term_offsets=self._used("term_offsets", paragraphs + 1),
                          term_ids=self._used("term_ids", terms), term_vocabulary=vocabulary)
        return ParagraphFeatures(**joined)

    def _used(self, name: str, count: int) -> np.ndarray:
        """The first `count` rows of a table array. In shared memory, the pages past them are given
        back (none was written, unless a batch that came back whole wrote there)."""
        array = self.arrays[name]
        mapping = self._mappings.get(name)
        if mapping is not None:
            start = -(-count * (array.nbytes // max(1, len(array))) // mmap.PAGESIZE) * mmap.PAGESIZE
            if start < len(mapping):
                with contextlib.suppress(OSError):  # a kernel that will not: they stay until the table goes
                    mapping.madvise(mmap.MADV_REMOVE, start, len(mapping) - start)
        return array[:count]

    def _batch(self, batch: int, w: Written) -> ParagraphFeatures:
        """A batch's features as `analyse` gave them: taken from where it wrote them, numbered
        within the batch again, or as handed back."""
        if w.whole is not None:
            return w.whole
        t, (p, r, s, m), doc0 = self.arrays, w.at, self.spans[batch][0]
        given = {name: t[name][p : p + w.paragraphs] for name in self._per_paragraph()}
        given["doc"] = given["doc"] - doc0
        given["sig_row"] = np.where(given["sig_row"] >= 0, given["sig_row"] - r, -1)
        given["signatures"] = t["signatures"][r : r + w.rows]
        given["shingle_offsets"] = np.concatenate([[0], t["shingle_offsets"][r + 1 : r + w.rows + 1] - s])
        given["shingle_hashes"] = t["shingle_hashes"][s : s + w.shingles]
        if self.terms:
            given.update(term_offsets=np.concatenate([[0], t["term_offsets"][p + 1 : p + w.paragraphs + 1] - m]),
                         term_ids=t["term_ids"][m : m + w.terms], term_vocabulary=w.vocabulary)
        return ParagraphFeatures(**given)


@dataclass(frozen=True, slots=True)
class _Renumbering:
    """What renumbering the batches' term ids needs: the table's term ids, each batch's `Written`
    and the merged vocabulary."""

    ids: np.ndarray
    written: list[Written]
    vocabulary: np.ndarray


def _renumber(plan: _Renumbering, batches: Sequence[int]) -> None:
    """Batches `batches`' term ids, numbered by their own vocabularies, numbered by the merged one
    (a top-level function, so a forked process can do some batches while this one does the rest)."""
    for k in batches:
        w = plan.written[k]
        ids = plan.ids[w.at[3] : w.at[3] + w.terms]
        ids[:] = renumbered(ids, w.vocabulary, plan.vocabulary)


def _allocate(layout: dict[str, tuple[tuple[int, ...], Any]], shared: bool
              ) -> tuple[dict[str, np.ndarray], dict[str, mmap.mmap]]:
    """Empty arrays of the given shapes: private, or each a view of a shared mapping of a memory
    file of its own (`memfd_create`; one array's pages go back as soon as it is dropped). Pages,
    like `np.empty`'s, take memory only once written; a memory file's are not even charged
    against the system's commit limit until then (an anonymous shared mapping's all are at once,
    which refuses the tables sized by characters)."""
    if not shared:
        return {name: np.empty(shape, dtype=dtype) for name, (shape, dtype) in layout.items()}, {}
    arrays: dict[str, np.ndarray] = {}
    mappings: dict[str, mmap.mmap] = {}
    for name, (shape, dtype) in layout.items():
        count = int(np.prod(shape))
        size = max(mmap.PAGESIZE, count * np.dtype(dtype).itemsize)
        fd = os.memfd_create(f"dedupe-{name}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            mappings[name] = _TableFile(fd, size)
        finally:
            os.close(fd)
        arrays[name] = np.frombuffer(mappings[name], dtype=dtype, count=count).reshape(shape)
    return arrays, mappings


def _sparse_file_fits(size: int) -> bool:
    """Whether a memory file of `size` bytes may be made: a limit on file sizes (`ulimit -f`)
    would end the process (SIGXFSZ), and the sparse tables' largest file is a few GB per 10k
    documents of virtual size."""
    if not hasattr(os, "memfd_create"):
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return soft == resource.RLIM_INFINITY or size <= soft


class _TableFile(mmap.mmap):
    """A shared table array's mapping of its memory file (what `give_back` may empty)."""


def give_back(array: np.ndarray) -> None:
    """Free the pages of a table array in shared memory now, though a forked process still maps
    them (its mapping would keep them until it ends). Only for an array that no process reads any
    more: it reads as zeros after. Any other array is left to its references."""
    base: Any = array
    while base is not None and not isinstance(base, _TableFile):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    if base is not None:
        with contextlib.suppress(OSError, ValueError):  # a kernel that will not: they go with the last mapping
            base.madvise(mmap.MADV_REMOVE)
