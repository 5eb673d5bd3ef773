"""LSH's kernels, compiled (numba, the optional `fast` extra).

`lsh` finds candidate pairs as rows whose keys are equal in some band. `band_keys` folds each band's
signature slots into its key reading every signature once in memory order, and `bucket_pairs`
finds each band's runs of equal keys by hashing them instead of sorting them, each pair kept as one
8-byte code; `lsh` calls them when `kernels.AVAILABLE` and otherwise takes its numpy form, which
gives the same keys and pairs. `equal_slots` is `minhash.estimate_jaccard`'s, which the candidates
are verified with. Without numba each raises RuntimeError (`kernels.AVAILABLE` is read
at call time). Built on `kernels` (`_jit`, its hash table).
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .arrays import distinct_of_sorted, pairs_of_codes
from .minhash import EMPTY

if kernels.AVAILABLE:
    from .kernels import _M, _U64, _find, _jit


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """`lsh.band_keys` row by row: each band's slots folded into one key, reading every signature
    once in memory order (the numpy form reads one column of all signatures at a time)."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    return _band_keys(np.ascontiguousarray(signatures, dtype=np.uint32), bands, rows)


if kernels.AVAILABLE:
    @_jit
    def _band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:  # pragma: no cover - compiled
        keys = np.empty((signatures.shape[0], bands), dtype=np.uint64)
        for i in range(signatures.shape[0]):
            for band in range(bands):
                acc = _U64(band + 1)
                for col in range(band * rows, (band + 1) * rows):
                    acc = (acc ^ _U64(signatures[i, col])) * _M
                    acc ^= acc >> _U64(29)
                keys[i, band] = acc
        return keys


def equal_slots(signatures: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """`minhash.estimate_jaccard` pair by pair, to the last bit: each pair's two rows compared where
    they lie, not gathered into two (pairs x num_perm) copies first (3.5x faster on 457k pairs)."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    return _equal_slots(np.ascontiguousarray(signatures, dtype=np.uint32), np.ascontiguousarray(i, dtype=np.int64),
                        np.ascontiguousarray(j, dtype=np.int64))


if kernels.AVAILABLE:
    @_jit
    def _equal_slots(signatures: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.empty(i.size)
        width = signatures.shape[1]
        for k in range(i.size):
            a, b = signatures[i[k]], signatures[j[k]]
            equal = 0
            for slot in range(width):
                equal += (a[slot] == b[slot]) & (a[slot] != EMPTY)  # an empty slot is no match
            out[k] = equal / width
        return out


_PARTITION_ROWS = 2048
"""Rows per part of a band in `bucket_pairs` (on average): a part's table, four 8-byte fields a
slot for twice as many slots, is then about 128 KB, in the core's own cache."""


def bucket_pairs(keys: np.ndarray, index: np.ndarray, all_pairs_up_to: int,
                 compact_from: int = 1 << 22, partition_rows: int = _PARTITION_ROWS) -> np.ndarray:
    """`lsh.candidate_pairs`: in each band (column of `keys`), the rows of `index` (ascending) whose
    keys are equal, paired as `lsh._bucket_pairs` pairs a run of them (all pairs up to
    `all_pairs_up_to` rows, else a star and a chain in ascending order). One pass per band through
    a hash table instead of a sort. The pairs are kept as one 8-byte code each, sorted in place and
    returned once each as (low, high) rows, sorted (a pair similar enough comes up in most bands: at
    30k paragraphs 1.6M were found for 138k distinct ones, and deduplicating their (n, 2) copies
    with numpy was the scan's peak of memory). Past `compact_from` codes, the buffer is sorted and
    deduplicated in place after a band whenever it has doubled since the last time: pages that
    repeat a signed line (chrome, a site's boilerplate sentence) put the same pairs in every band
    (the syndication set eight times over: 44M codes for about 3M pairs).

    Each band's keys are first parted by their top bits into parts of about `partition_rows` rows
    (equal keys fall in the same part), and each part is hashed on its own in a table that stays
    in cache: one table for the whole band (tens of MB for a dump's paragraphs) missed the cache
    on nearly every key."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    rows = keys if len(index) == len(keys) else keys[index]  # index is ascending: all rows, or some
    by_band = np.ascontiguousarray(rows.T)  # one band's keys side by side
    del rows
    index = np.ascontiguousarray(index, dtype=np.int64)
    m = len(index)
    bits = 1
    while (m >> bits) > partition_rows and bits < 24:
        bits += 1
    parted = np.empty(max(m, 1), dtype=np.uint64), np.empty((4, max(m, 1)), dtype=np.int64)
    width = np.uint64(index[-1] + 1) if m else np.uint64(1)  # a pair's code: low * width + high
    codes = np.empty(1024, dtype=np.uint64)
    found = distinct = 0
    for band in by_band:
        codes, found = _band_pairs(band, index, all_pairs_up_to, bits, *parted, width, codes, found)
        if found > compact_from and found > 2 * distinct:
            head = codes[:found]
            head.sort()  # in place (numpy's sort: several times numba's here)
            found = distinct = _distinct_in_place(head)
    del by_band, parted
    head = codes[:found]
    head.sort()
    return pairs_of_codes(distinct_of_sorted(head), int(width))


if kernels.AVAILABLE:
    @_jit
    def _distinct_in_place(ordered: np.ndarray) -> int:  # pragma: no cover - compiled
        """Each value of a sorted array once, at its front; how many there are."""
        kept = 1 if ordered.size else 0
        for i in range(1, ordered.size):
            if ordered[i] != ordered[kept - 1]:
                ordered[kept] = ordered[i]
                kept += 1
        return kept

    @_jit
    def _band_pairs(keys: np.ndarray, index: np.ndarray, small: int, bits: int, part_keys: np.ndarray,
                    scratch: np.ndarray, width: np.uint64, codes: np.ndarray, found: int
                    ) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
        """One band's pairs appended to codes[found:] (grown when full); the codes and their count."""
        m = keys.size
        parts = 1 << bits
        shift = _U64(64 - bits)
        place, used, after, members = scratch[0], scratch[1], scratch[2], scratch[3]
        bounds = np.zeros(parts + 1, dtype=np.int64)
        for p in range(m):
            bounds[(keys[p] >> shift) + _U64(1)] += 1
        largest = 0
        for q in range(parts):
            largest = max(largest, bounds[q + 1])
            bounds[q + 1] += bounds[q]
        fill = bounds[:-1].copy()
        for p in range(m):  # each part's keys, rows ascending
            q = keys[p] >> shift
            part_keys[fill[q]] = keys[p]
            place[fill[q]] = p
            fill[q] += 1
        cap = 2
        while cap < 2 * largest:
            cap <<= 1
        # A slot: key, first row + 1 (0: empty), last row, run size; side by side, so one probe reads
        # one cache line, and its first two as in a numbering table, so `_find` probes it. Only the
        # slots a part used are emptied for the next. Rows are numbered within their part.
        table = np.zeros((cap, 4), dtype=np.uint64)
        for q in range(parts):
            lo = bounds[q]
            n_used = 0
            for e in range(bounds[q + 1] - lo):
                v = part_keys[lo + e]
                s = _find(table, v)
                if table[s, 1] == 0:
                    table[s, 0] = v
                    table[s, 1] = _U64(e + 1)
                    table[s, 3] = 1
                    used[n_used] = s
                    n_used += 1
                else:
                    after[table[s, 2]] = e
                    table[s, 3] += _U64(1)
                table[s, 2] = _U64(e)
            for u in range(n_used):
                s = used[u]
                k = np.int64(table[s, 3])
                at = np.int64(table[s, 1]) - 1
                table[s, 1] = 0
                if k < 2:
                    continue
                for r in range(k):  # ascending, as the rows are
                    members[r] = index[place[lo + at]]
                    if r + 1 < k:
                        at = after[at]
                need = k * (k - 1) // 2 if k <= small else 2 * (k - 1)
                if found + need > codes.size:
                    grown = np.empty(max(2 * codes.size, found + need), dtype=np.uint64)  # type: ignore[call-overload]
                    grown[:found] = codes[:found]
                    codes = grown
                if k <= small:
                    for a in range(k):
                        for b in range(a + 1, k):
                            codes[found] = _U64(members[a]) * width + _U64(members[b])
                            found += 1
                else:
                    for r in range(1, k):
                        codes[found] = _U64(members[0]) * width + _U64(members[r])
                        codes[found + 1] = _U64(members[r - 1]) * width + _U64(members[r])
                        found += 2
        return codes, found
