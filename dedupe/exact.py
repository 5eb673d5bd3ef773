"""Exact Jaccard similarity of candidate pairs, from the texts' distinct shingle hashes.

A 128-permutation MinHash estimate has a standard error of about 0.035 at J = 0.8, so a pair whose
true Jaccard is 0.81 falls under a 0.8 threshold about four times in ten (and one at 0.79 passes as
often). When the texts can be read again, the candidates LSH found are settled exactly instead:
`pair_jaccard` shingles the texts of one chunk of candidate pairs at a time (in forked workers under
`jobs`, which send back only the similarities), and the intersections of many pairs are counted by
a compiled merge per pair, or without numba with one sort per chunk of pairs. `ShingleSets` also
serves the chaining guard, for the members of clusters larger than a pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import kernels, kernels_rows
from .arrays import range_indices, unique_sorted
from .forkpool import fork_map, spans
from .kernels import text_shingle_sets

_CHUNK_ENTRIES = 1 << 23  # shingle hashes gathered per chunk of pairs (64 MB of uint64 keys)
_SHINGLE_BATCH = 2048  # texts shingled per kernel call
_FORK_MIN_TEXTS = 16_384  # texts worth shingling in workers (8,192 still ran slower in two than in one)


class ShingleSets:
    """Distinct shingle hashes (sorted uint32) of some of a corpus's texts, looked up by text index."""

    def __init__(self, docs: np.ndarray, hashes: np.ndarray, offsets: np.ndarray) -> None:
        self.docs = docs  # sorted distinct text indices
        self.hashes = hashes
        self.offsets = offsets

    @classmethod
    def of(cls, texts: Sequence[str], docs: np.ndarray, ngram: int, jobs: int = 1) -> ShingleSets:
        """The sets of `texts[d]` for each `d` in `docs`, shingled batch by batch (in `jobs` forked
        workers, which inherit `texts`, when jobs > 1)."""
        docs = unique_sorted(np.asarray(docs, dtype=np.int64).ravel())
        if len(docs) < _FORK_MIN_TEXTS:  # measured: below this, forking and sending sets back cost more
            jobs = 1
        chunks = [docs[lo : lo + _SHINGLE_BATCH] for lo in range(0, len(docs), _SHINGLE_BATCH)]
        parts = fork_map(_shingle_chunk, (texts, ngram), chunks, jobs)
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        if parts:
            np.cumsum(np.concatenate([np.diff(o) for _, o in parts]), out=offsets[1:])
        hashes = np.concatenate([h for h, _ in parts]) if parts else np.zeros(0, dtype=np.uint32)
        return cls(docs, hashes, offsets)

    def jaccard(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """|A ∩ B| / |A ∪ B| of each pair of texts (both must be among `docs`); two empty sets give 0."""
        a = np.searchsorted(self.docs, np.asarray(first, dtype=np.int64))
        b = np.searchsorted(self.docs, np.asarray(second, dtype=np.int64))
        size_a = self.offsets[a + 1] - self.offsets[a]
        size_b = self.offsets[b + 1] - self.offsets[b]
        if kernels.AVAILABLE:
            shared = kernels_rows.shared_counts(self.hashes, self.offsets, a, b)
        else:
            shared = self._shared_chunked(a, b, size_a + size_b)
        union = size_a + size_b - shared
        return np.where(union > 0, shared / np.maximum(union, 1), 0.0)

    def _shared_chunked(self, a: np.ndarray, b: np.ndarray, cost_per_pair: np.ndarray) -> np.ndarray:
        """`_shared` over chunks of pairs whose gathered hashes fit in `_CHUNK_ENTRIES`."""
        shared = np.zeros(len(a), dtype=np.int64)
        lo = 0
        while lo < len(a):
            # Pairs from lo whose gathered hashes fit in one chunk (always at least one pair).
            cost = np.cumsum(cost_per_pair[lo:])
            hi = lo + max(1, int(np.searchsorted(cost, _CHUNK_ENTRIES, side="right")))
            shared[lo:hi] = self._shared(a[lo:hi], b[lo:hi])
            lo = hi
        return shared

    def _shared(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Shared hashes per pair: each side is distinct, so a key (pair, hash) seen twice is shared."""
        pair = np.arange(len(a), dtype=np.uint64)
        keys = np.concatenate([self._keyed(a, pair), self._keyed(b, pair)])
        keys.sort()
        twice = keys[1:][keys[1:] == keys[:-1]]
        return np.bincount((twice >> np.uint64(32)).astype(np.int64), minlength=len(a))

    def _keyed(self, rows: np.ndarray, pair: np.ndarray) -> np.ndarray:
        """(pair << 32) | hash for every hash of each pair's text `rows[k]`."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        idx = range_indices(starts, lengths)
        return (np.repeat(pair, lengths) << np.uint64(32)) | self.hashes[idx].astype(np.uint64)


def _shingle_chunk(context: tuple[Sequence[str], int], docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    texts, ngram = context
    return text_shingle_sets([texts[int(d)] for d in docs], ngram)


_PAIR_CHUNK = 32_768  # candidate pairs measured together: their texts are shingled once per chunk
_MIN_PAIR_CHUNK = 4_096  # smallest chunk made to share the pairs out among workers (forks cost more below)


def pair_jaccard(texts: Sequence[str], pairs: np.ndarray, ngram: int, jobs: int = 1) -> np.ndarray:
    """Exact Jaccard of each pair (rows of `pairs`, sorted as LSH gives them), chunk by chunk.

    Each chunk's texts are shingled, its pairs measured and the sets dropped, so memory holds one
    chunk's sets at a time (in each of `jobs` forked workers, which inherit `texts`) and only the
    similarities travel back. A text in pairs of two chunks is shingled twice; sorted pairs keep
    that rare, since a copy's candidates sit close together in the order.
    """
    # Under jobs, a few chunks per worker: fewer pairs than one chunk would run in one process.
    parts = fork_map(_measure_span, (texts, pairs, ngram), spans(len(pairs), jobs, _PAIR_CHUNK, _MIN_PAIR_CHUNK), jobs)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def _measure_span(context: tuple[Sequence[str], np.ndarray, int], span: tuple[int, int]) -> np.ndarray:
    texts, pairs, ngram = context
    chunk = pairs[span[0] : span[1]]
    return ShingleSets.of(texts, chunk, ngram).jaccard(chunk[:, 0], chunk[:, 1])
