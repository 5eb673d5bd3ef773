"""Gathers and merges over flat rows, compiled (numba, the optional `fast` extra).

Stages keep ragged data flat: row r of `values` is `values[offsets[r]:offsets[r + 1]]`, or the
concatenation of some ranges of it. These kernels read such rows where they lie, where numpy would
go through an index array over every value or a copy of the rows chosen (the scan's peaks of
memory): `gather_rows` and `gather_ranges` (rows or ranges copied out: features' repeated lines,
archive rows, story's joined texts), `mapped_kept` (a batch's words mapped to story terms, dropped
words left out), `merged_signatures` (pages' and documents' signatures from their paragraphs'
rows), `distinct_of_ranges` (documents' shingle sets from their paragraphs') and `shared_counts`
(exact shared-shingle counts of pairs, for verification). Without numba (`kernels.AVAILABLE`
false, read at call time) the gathers, `mapped_kept` and `merged_signatures` take their numpy form
themselves; `distinct_of_ranges` and `shared_counts` raise RuntimeError and their callers take
theirs. The results are the same. Built on `kernels` (`_jit`, its radix sort).
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .arrays import range_indices
from .minhash import EMPTY, merge_signatures

if kernels.AVAILABLE:
    from .kernels import _jit, _sort_u32


def shared_counts(hashes: np.ndarray, offsets: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each pair k, how many values sets `first[k]` and `second[k]` share; set r is the sorted
    distinct `hashes[offsets[r]:offsets[r + 1]]`. One merge per pair, compiled (see `exact.py` for
    the numpy form)."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    return _shared_counts(hashes, offsets, first, second)


if kernels.AVAILABLE:
    @_jit
    def _shared_counts(hashes: np.ndarray, offsets: np.ndarray, first: np.ndarray,
                       second: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.zeros(first.size, dtype=np.int64)
        for k in range(first.size):
            i, i_end = offsets[first[k]], offsets[first[k] + 1]
            j, j_end = offsets[second[k]], offsets[second[k] + 1]
            shared = 0
            while i < i_end and j < j_end:
                x, y = hashes[i], hashes[j]
                if x == y:
                    shared += 1
                    i += 1
                    j += 1
                elif x < y:
                    i += 1
                else:
                    j += 1
            out[k] = shared
        return out


def merged_signatures(signatures: np.ndarray, rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """`minhash.merge_signatures(signatures[rows], groups, n_groups)`: each group's signature of the
    union of its rows' shingle sets (a page's from its paragraphs'), read in place rather than
    through a copy of the chosen rows and `np.minimum.at` (at 30k documents 0.6 s and 130 MB)."""
    if not kernels.AVAILABLE:
        return merge_signatures(signatures[rows], groups, n_groups)
    return _merged_signatures(np.ascontiguousarray(signatures), np.ascontiguousarray(rows, dtype=np.int64),
                              np.ascontiguousarray(groups, dtype=np.int64), n_groups)


if kernels.AVAILABLE:
    @_jit
    def _merged_signatures(signatures: np.ndarray, rows: np.ndarray, groups: np.ndarray,
                           n_groups: int) -> np.ndarray:  # pragma: no cover - compiled
        out = np.full((n_groups, signatures.shape[1]), EMPTY, dtype=np.uint32)
        for k in range(len(rows)):
            target, source = out[groups[k]], signatures[rows[k]]
            for c in range(signatures.shape[1]):
                if source[c] < target[c]:
                    target[c] = source[c]
        return out


def gather_rows(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows `rows` (in that order) of a ragged array, row k being `values[offsets[k]:offsets[k + 1]]`:
    their values in one flat array, and its offsets."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    return gather_ranges(values, starts, lengths), new_offsets


def gather_ranges(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """values[starts[k]:starts[k] + lengths[k]] for every k, concatenated: `values[range_indices(...)]`
    without the index array (with numba), which holds 8 bytes per value gathered, three times over
    while it is made."""
    if not kernels.AVAILABLE:
        return values[range_indices(starts, lengths)]
    return _gather_ranges(np.ascontiguousarray(values), np.ascontiguousarray(starts, dtype=np.int64),
                          np.ascontiguousarray(lengths, dtype=np.int64))


if kernels.AVAILABLE:
    @_jit
    def _gather_ranges(values: np.ndarray, starts: np.ndarray,
                       lengths: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.empty(lengths.sum(), dtype=values.dtype)
        m = 0
        for k in range(len(starts)):
            out[m : m + lengths[k]] = values[starts[k] : starts[k] + lengths[k]]
            m += lengths[k]
        return out


def mapped_kept(mapping: np.ndarray, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`mapping[ids]` without its negative entries, and the rows' new offsets: row r is
    ids[offsets[r]:offsets[r + 1]]. One pass where numpy takes five (two gathers, a mask, its
    positions and a search of them): a batch's words to story terms, dropped words left out."""
    if not kernels.AVAILABLE:
        mapped = mapping[ids]
        kept = np.flatnonzero(mapped >= 0)
        return mapped[kept], np.searchsorted(kept, offsets)
    return _mapped_kept(mapping, np.ascontiguousarray(ids), np.ascontiguousarray(offsets, dtype=np.int64))


if kernels.AVAILABLE:
    @_jit
    def _mapped_kept(mapping: np.ndarray, ids: np.ndarray,
                     offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        out = np.empty(len(ids), dtype=mapping.dtype)
        new_offsets = np.empty(len(offsets), dtype=np.int64)
        m = 0
        for r in range(len(offsets) - 1):
            new_offsets[r] = m
            for k in range(offsets[r], offsets[r + 1]):
                value = mapping[ids[k]]
                out[m] = value
                m += value >= 0
        if len(offsets):
            new_offsets[len(offsets) - 1] = m
        return out[:m].copy(), new_offsets


def distinct_of_ranges(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                       offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distinct (uint32) values, ascending, and the new offsets, for rows made of ranges of
    `values`: row r is the concatenation of values[starts[k]:starts[k] + lengths[k]] for k in
    [offsets[r], offsets[r + 1]) (a document's shingle set from its paragraphs'), gathered row by
    row into a scratch buffer rather than through an index array over every value (three arrays of
    8 bytes per value at once: at 30k documents a 250 MB peak of the scan)."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    return _distinct_of_ranges(np.ascontiguousarray(values, dtype=np.uint32),
                               np.ascontiguousarray(starts, dtype=np.int64),
                               np.ascontiguousarray(lengths, dtype=np.int64),
                               np.ascontiguousarray(offsets, dtype=np.int64))


if kernels.AVAILABLE:
    @_jit
    def _distinct_of_ranges(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                            offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        n_rows = len(offsets) - 1
        longest = 0
        total = 0
        for r in range(n_rows):
            size = 0
            for k in range(offsets[r], offsets[r + 1]):
                size += lengths[k]
            longest = max(longest, size)
            total += size
        scratch = np.empty(longest, dtype=np.uint32)
        tmp = np.empty(longest, dtype=np.uint32)
        count = np.zeros((4, 256), dtype=np.int64)
        out = np.empty(total, dtype=np.uint32)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        m = 0
        for r in range(n_rows):
            size = 0
            for k in range(offsets[r], offsets[r + 1]):
                scratch[size : size + lengths[k]] = values[starts[k] : starts[k] + lengths[k]]
                size += lengths[k]
            row = scratch[:size]
            _sort_u32(scratch, size, tmp, count)  # radix: np.sort's quicksort took twice as long here
            for i in range(size):
                if i == 0 or row[i] != row[i - 1]:
                    out[m] = row[i]
                    m += 1
            indptr[r + 1] = m
        return out[:m], indptr  # a view: see kernels_story._prefix_cut
