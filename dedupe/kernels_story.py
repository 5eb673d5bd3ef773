"""The story stage's kernels, compiled (numba, the optional `fast` extra).

`story` pairs texts about the same story by the cosine of their TF-IDF rows over content terms.
Its numpy form holds several arrays per matrix entry and multiplies blocks of rows out; these
kernels take the same steps row by row: term hashes numbered by a hash table (`sorted_ranks`),
each text's term counts (`row_counts`: a text may be ranges of other texts' terms, counted where
they lie), the weighted rows with columns by rank (`tfidf_rows`, written over the counts' arrays,
which are given back in place: `shrunk`), each row's prefix/tail cut (`prefix_cut`), the candidate
pairs over an inverted index of the prefixes (`prefix_candidates`) and the pairs' dot products
(`pair_dots`). Each raises RuntimeError without numba (`kernels.AVAILABLE` false, read at call
time): `story` checks first and takes its numpy form, which gives the same results (candidates in
another order, `prefix_cut` up to rounding, `pair_dots` summed in another order: equal to 1e-15).
Built on `kernels` (`_jit`, its hash table and radix sort).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import kernels
from .arrays import value_counts
from .kernels_rows import gather_ranges

if kernels.AVAILABLE:
    from .kernels import _add, _find, _jit, _sort_u32


def prefix_candidates(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, by_column: sp.csc_matrix,
                      a: int, b: int, start: np.ndarray, tail: np.ndarray, level: np.ndarray, above: np.ndarray,
                      peak: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Story's candidates of rows [a, b): the pairs i < j whose prefix product plus Cauchy–Schwarz
    tail bound reaches τ (`story._candidates`, whose numpy form gives the same pairs, in another order).

    The prefix matrix P comes as CSR rows and as CSC columns (`by_column`, an inverted index with each
    term's rows ascending). For each row i, every prefix term's later rows j > i (the postings after
    row i's own, which a cursor per term keeps, as rows are walked in order) add x_t·y_t into a dense
    accumulator, and each j touched is bounded once. Nothing of P·Pᵀ is materialised, and P is
    transposed once for all blocks instead of once per block (which grows with the corpus times the
    number of blocks).

    Two bounds cut the walk short (L2AP's, Anastasiu and Karypis, ICDE 2014). A row first met at
    row i's entry k shares only terms from k on, so its product is at most ‖x_{≥k}‖ times the largest
    `peak` (a row's prefix norm from a term on) of those terms. Once that plus the longest tail cannot
    reach τ, rows not met yet cannot become candidates, and the last (most common) terms' postings only
    add to rows already begun. Those are then dropped as the same bound shows they cannot reach τ
    either, and once `_SETTLE_ROWS` or fewer are left they are verified whole and the rest of the
    postings are not walked. On 100k synthetic documents the document level walks 158M postings
    instead of 558M.

    The postings are walked in float32 (`by_column`'s weights are float32: half the bytes
    streamed, half the accumulator in cache), and a pair whose float32 sum comes within its
    rounding error of the bound gets its prefix product again in float64, summed in the same order
    as a float64 walk would: the pairs are exactly the float64 walk's."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    rows = by_column.indices  # unsigned: numba then reads them with no check for a negative index
    rows = rows.view(np.uint32 if rows.itemsize == 4 else np.uint64)
    found_i, found_j, _ = _prefix_candidates(indptr, indices, data, by_column.indptr, rows,
                                             by_column.data.astype(np.float32, copy=False), a, b, start, tail,
                                             level, above, peak, tau)
    return found_i, found_j


def prefix_cut(indptr: np.ndarray, ranks: np.ndarray, data: np.ndarray, sorted_df: np.ndarray,
               checkpoints: np.ndarray, limit: float, max_df: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                          np.ndarray]:
    """Story's prefix/tail cut of every row (`story._prefixes`, whose numpy form it equals up to
    rounding), in one pass per row with no array per matrix entry: on a dump's paragraphs the
    numpy form held about ten such arrays at once, the story stage's peak of memory.

    The rows come with columns numbered by global rank (rarest first) and sorted. Returns the
    prefix matrix (indptr, indices, data: the entries outside the tail whose term is in two texts
    or more), per row `start`, `tail`, `level` and `above`, and per rank `peak`, as `story._Prefixes`
    defines them."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    return _prefix_cut(indptr, ranks, data, sorted_df, checkpoints, limit * limit, max_df)


if kernels.AVAILABLE:
    @_jit
    def _prefix_cut(indptr: np.ndarray, ranks: np.ndarray, data: np.ndarray, sorted_df: np.ndarray,
                    checkpoints: np.ndarray, limit2: float,
                    max_df: int) -> tuple[np.ndarray, ...]:  # pragma: no cover - compiled
        n = len(indptr) - 1
        v = len(sorted_df)
        n_check = len(checkpoints)
        bucket_of = np.empty(v + 1, dtype=np.int64)  # index of the last checkpoint at or before each rank
        c = 0
        for rank in range(v + 1):  # v too: the start of a row with no tail
            while c + 1 < n_check and checkpoints[c + 1] <= rank:
                c += 1
            bucket_of[rank] = c
        start = np.full(n, v, dtype=np.int64)
        tail = np.zeros(n)
        level = np.empty(n, dtype=np.int64)
        above = np.zeros((n, n_check), dtype=np.float32)
        mass = np.zeros(n_check)
        peak = np.zeros(v)
        out_ptr = np.zeros(n + 1, dtype=np.int64)
        out_idx = np.empty(len(ranks), dtype=ranks.dtype)
        out_data = np.empty(len(data))
        m = 0
        for i in range(n):
            lo, hi = indptr[i], indptr[i + 1]
            # The tail is the longest suffix whose squares sum below limit², and every term in more
            # than max_df texts (the most common, so also at the row's end).
            cut = hi
            suffix = 0.0
            for e in range(hi - 1, lo - 1, -1):
                suffix += data[e] * data[e]
                if suffix < limit2 or sorted_df[ranks[e]] > max_df:
                    cut = e
                else:
                    break
            if cut < hi:
                start[i] = ranks[cut]
            mass[:] = 0.0
            norm = 0.0
            for e in range(lo, hi):
                if sorted_df[ranks[e]] > max_df:  # left out of the bounds
                    continue
                sq = data[e] * data[e]
                mass[bucket_of[ranks[e]]] += sq
                if e >= cut:
                    norm += sq
            tail[i] = np.sqrt(norm)
            acc = 0.0
            for k in range(n_check - 1, -1, -1):
                acc += mass[k]
                above[i, k] = np.float32(np.sqrt(acc))
            level[i] = bucket_of[start[i]]
            for e in range(lo, cut):
                if sorted_df[ranks[e]] >= 2 and data[e] != 0.0:
                    out_idx[m] = ranks[e]
                    out_data[m] = data[e]
                    m += 1
            out_ptr[i + 1] = m
            from_here = 0.0  # squares of the row's prefix from entry e on
            for e in range(m - 1, out_ptr[i] - 1, -1):
                from_here += out_data[e] * out_data[e]
                peak[out_idx[e]] = max(peak[out_idx[e]], np.sqrt(from_here))
        # Views, not copies: the buffers' pages past m were never written, so they hold no memory,
        # while a copy would write every entry once more into fresh pages.
        return out_ptr, out_idx[:m], out_data[:m], start, tail, level, above, peak


_SETTLE_ROWS = 4
"""Rows begun that `prefix_candidates` verifies whole (a merge of two rows each) rather than walk
the rest of the row's postings for: on 100k synthetic documents 4 beat 32 and 128 (more merges)."""


if kernels.AVAILABLE:
    @_jit
    def _prefix_candidates(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, col_ptr: np.ndarray,
                           col_rows: np.ndarray, col_data: np.ndarray, a: int, b: int, start: np.ndarray,
                           tail: np.ndarray, level: np.ndarray, above: np.ndarray, peak: np.ndarray,
                           tau: float) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover - compiled
        n = start.size
        acc = np.zeros(n, dtype=np.float32)
        touched = np.empty(n + 1, dtype=np.uint32)  # one spare slot: a row met before is written past the count
        # Each term's posting of the row being walked. Not cleared (a vocabulary of millions of terms
        # would be written whole for every block): a cursor counts only where it holds that row.
        cursor = np.empty(col_ptr.size - 1, dtype=np.int64)
        out_i = np.empty(1024, dtype=np.int64)
        out_j = np.empty(1024, dtype=np.int64)
        found = 0
        early = 0
        limit = tau - 1e-6
        reach = tail.max() if n else 0.0  # no bound adds more than the longest tail (above ≤ 1)
        slack = reach * (1.0 + 1e-6) + 1e-9  # above is a norm of part of a unit row, float32: ≤ 1 + rounding
        reach32 = np.float32(reach)
        longest = 0
        for i in range(a, b):
            longest = max(longest, indptr[i + 1] - indptr[i])
        later = np.empty(longest + 1)  # per entry k of row i: the bound of a product's terms from k on
        postings = np.empty(longest + 1)  # per entry k of row i: its terms' postings from k on (at most)
        for i in range(a, b):
            lo_i, hi_i = indptr[i], indptr[i + 1]
            # A row j sharing with row i only terms from entry k on has a prefix product of at most
            # ‖x_{≥k}‖·‖y_{≥t}‖, t the first term shared, and ‖y_{≥t}‖ ≤ peak[t] ≤ the largest peak
            # of row i's terms from k on (Cauchy–Schwarz).
            norm2, top, walk = 0.0, 0.0, 0.0
            for k in range(hi_i - 1, lo_i - 1, -1):
                t = indices[k]
                norm2 += data[k] * data[k]
                top = max(top, peak[t])
                later[k - lo_i] = np.sqrt(norm2) * top * (1.0 + 1e-9) + slack
                walk += col_ptr[t + 1] - col_ptr[t]
                postings[k - lo_i] = walk
            # A float32 sum of m products of unit rows' entries is within (m + 3)·2⁻²⁴ of the float64
            # one (each product rounded three times, each addition once; the products sum to ≤ 1):
            # four times that is the margin below which a pair is surely not a candidate.
            loose = np.float32(limit - (hi_i - lo_i + 4) * 2.0**-22)
            count = 0
            fresh = True  # rows first met from here on can still reach τ
            pruned_at = 2.0
            settled = False  # the rows left are few: verified whole, the rest of the walk skipped
            for k in range(lo_i, hi_i):
                t, x = indices[k], np.float32(data[k])
                here = cursor[t]
                if not (col_ptr[t] <= here < col_ptr[t + 1] and col_rows[here] == i):
                    # the term's first use in this block: row i's own posting, by bisection
                    lo, hi = np.int64(col_ptr[t]), np.int64(col_ptr[t + 1])
                    while lo < hi:
                        mid = (lo + hi) >> 1
                        if col_rows[mid] < i:
                            lo = mid + 1
                        else:
                            hi = mid
                    here = lo
                cursor[t] = here + 1  # rows come in order, so the term's next row is its next posting
                if settled:
                    continue
                bound = later[k - lo_i]
                fresh = fresh and bound >= limit
                if not fresh and bound < 0.9 * pruned_at and postings[k - lo_i] > 2 * count:
                    # Drop the rows begun whose partial product plus the bound of the rest cannot
                    # reach τ (cheaper than the postings left to walk); once few are left, verify those.
                    pruned_at = bound
                    rest32 = np.float32(bound)
                    live = 0
                    for q in range(count):
                        j = touched[q]
                        if acc[j] + rest32 < loose:
                            acc[j] = 0.0
                        else:
                            touched[live] = j
                            live += 1
                    count = live
                    if count <= _SETTLE_ROWS:
                        settled = True
                        early += 1
                        continue
                lo, end = here + 1, np.int64(col_ptr[t + 1])
                if fresh:  # branch-free: every row is noted, and kept (counted) when it is new
                    for p in range(lo, end):
                        j = col_rows[p]
                        old = acc[j]
                        touched[count] = j
                        count += old == 0.0
                        acc[j] = old + x * col_data[p]
                else:  # only rows begun are added to
                    for p in range(lo, end):
                        j = col_rows[p]
                        old = acc[j]
                        acc[j] = old + (x * col_data[p] if old != 0.0 else np.float32(0.0))
            start_i, level_i, tail_i = start[i], level[i], tail[i]
            for q in range(count):
                j = touched[q]
                rough = acc[j]
                acc[j] = 0.0
                if not settled and rough + reach32 < loose:  # settled without reading row j (most pairs)
                    continue
                pp = 0.0  # the float64 prefix product, summed in row i's order as a float64 walk sums it
                u, u_end, w, w_end = lo_i, hi_i, indptr[j], indptr[j + 1]
                while u < u_end and w < w_end:
                    if indices[u] == indices[w]:
                        pp += data[u] * data[w]
                        u += 1
                        w += 1
                    elif indices[u] < indices[w]:
                        u += 1
                    else:
                        w += 1
                if pp + reach < limit:
                    continue
                lvl = min(level_i, level[j])
                if start_i <= start[j]:
                    bound = pp + tail_i * np.float64(above[j, lvl])
                else:
                    bound = pp + tail[j] * np.float64(above[i, lvl])
                if bound >= limit:
                    if found == out_i.size:
                        out_i = np.concatenate((out_i, np.empty(found, dtype=np.int64)))
                        out_j = np.concatenate((out_j, np.empty(found, dtype=np.int64)))
                    out_i[found] = i
                    out_j[found] = j
                    found += 1
        return out_i[:found].copy(), out_j[:found].copy(), early

def sorted_ranks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each value's position among the sorted distinct values, and their number: what
    `np.searchsorted(unique_sorted(values), values)` gives, with one hash-table pass over the values
    and a sort of the distinct ones only (a term occurs many times; tens of times fewer distinct)."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    local, distinct = _first_use_numbers(np.ascontiguousarray(values, dtype=np.uint64))
    rank = np.empty(len(distinct), dtype=np.int32 if len(distinct) < 2**31 else np.int64)  # int32: half the memory
    rank[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
    return rank[local], len(distinct)


if kernels.AVAILABLE:
    @_jit
    def _first_use_numbers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """Number each distinct value in order of first use."""
        table = np.zeros((1 << 12, 2), dtype=np.uint64)
        distinct = np.empty(1 << 11, dtype=np.uint64)
        local = np.empty(values.size, dtype=np.int64)
        n_distinct = 0
        for k in range(values.size):
            v = values[k]
            s = _find(table, v)
            if table[s, 1] != 0:
                local[k] = np.int64(table[s, 1]) - 1
                continue
            table, distinct = _add(table, distinct, n_distinct, v)
            local[k] = n_distinct
            n_distinct += 1
        return local, distinct[:n_distinct].copy()


def row_counts(ids: np.ndarray, offsets: np.ndarray, starts: np.ndarray | None = None,
               lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ids (row k is `ids[offsets[k]:offsets[k + 1]]`) as a CSR count matrix: indptr, each
    row's distinct ids ascending, and how often each occurs. What scipy's `sum_duplicates` gives for
    a CSR of ones, sorting each row on its own (short rows sort in cache; no per-entry index array).

    With `starts` and `lengths`, row k is made of ranges instead: the concatenation of
    ids[starts[j]:starts[j] + lengths[j]] for j in [offsets[k], offsets[k + 1]) (a document of its
    paragraphs' terms, or some of the paragraphs), read where they are rather than gathered first."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    ids, offsets = np.ascontiguousarray(ids), np.ascontiguousarray(offsets, dtype=np.int64)
    if starts is None or lengths is None:
        starts, lengths, offsets = offsets[:-1], np.diff(offsets), np.arange(len(offsets), dtype=np.int64)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    longest, total = _longest_row(lengths, offsets)
    distinct, counts = np.empty(total, dtype=ids.dtype), np.empty(total, dtype=np.float64)
    if ids.dtype == np.int32:  # ids are never negative, so as uint32 they sort the same: radix sort
        indptr, n = _row_counts_u32(ids.view(np.uint32), starts, lengths, offsets, longest,
                                    distinct.view(np.uint32), counts)
    else:
        indptr, n = _row_counts(ids, starts, lengths, offsets, longest, distinct, counts)
    return indptr, shrunk(distinct, n), shrunk(counts, n)


def shrunk(array: np.ndarray, size: int) -> np.ndarray:
    """`array[:size]`, made in place when `array` owns its memory: it is reallocated smaller, which
    gives a large array's pages past `size` back (a view would hold them while it lives)."""
    if array.flags.owndata and array.base is None and array.ndim == 1 and size <= array.size:
        array.resize(size, refcheck=False)  # (no view of it is left: the caller hands it over)
        return array
    return array[:size]


if kernels.AVAILABLE:
    @_jit
    def _append_runs(row: np.ndarray, size: int, distinct: np.ndarray, counts: np.ndarray,
                     n: int) -> int:  # pragma: no cover - compiled
        """Each run of equal values in sorted row[:size] as its value and length, written from
        position n of `distinct` and `counts`; returns the position after the last."""
        k = 0
        while k < size:
            value = row[k]
            run = 1
            while k + run < size and row[k + run] == value:
                run += 1
            distinct[n] = value
            counts[n] = run
            n += 1
            k += run
        return n

    @_jit
    def _gathered_row(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, first: int, last: int,
                      row: np.ndarray) -> int:  # pragma: no cover - compiled
        """Ranges first..last-1 of `values` copied one after another into `row`; returns their length."""
        size = 0
        for j in range(first, last):
            row[size : size + lengths[j]] = values[starts[j] : starts[j] + lengths[j]]
            size += lengths[j]
        return size

    @_jit
    def _longest_row(lengths: np.ndarray, offsets: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
        """The length of the longest row of ranges, and of all rows together."""
        longest, total = 0, 0
        for r in range(len(offsets) - 1):
            size = 0
            for j in range(offsets[r], offsets[r + 1]):
                size += lengths[j]
            longest = max(longest, size)
            total += size
        return longest, total

    @_jit
    def _row_counts(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray,
                    longest: int, distinct: np.ndarray,
                    counts: np.ndarray) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
        """Fills `distinct` and `counts` (room for every id); returns indptr and the entries written."""
        n_rows = len(offsets) - 1
        row = np.empty(longest, dtype=values.dtype)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        n = 0
        for r in range(n_rows):
            size = _gathered_row(values, starts, lengths, offsets[r], offsets[r + 1], row)
            n = _append_runs(np.sort(row[:size]), size, distinct, counts, n)
            indptr[r + 1] = n
        return indptr, n

    @_jit
    def _row_counts_u32(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray,
                        longest: int, distinct: np.ndarray,
                        counts: np.ndarray) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
        """`_row_counts` of uint32 values, each row sorted in a scratch buffer by `_sort_u32` (insertion
        sort for short rows, radix sort for long ones; `np.sort` allocated a new array per row)."""
        n_rows = len(offsets) - 1
        row = np.empty(longest, dtype=np.uint32)
        tmp = np.empty(longest, dtype=np.uint32)
        count = np.zeros((4, 256), dtype=np.int64)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        n = 0
        for r in range(n_rows):
            size = _gathered_row(values, starts, lengths, offsets[r], offsets[r + 1], row)
            _sort_u32(row, size, tmp, count)
            n = _append_runs(row, size, distinct, counts, n)
            indptr[r + 1] = n
        return indptr, n


if kernels.AVAILABLE:
    @_jit
    def _pairwise_squares(data: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
        """Sum of data[lo:lo+n]², added in the order of numpy's pairwise summation (its
        `pairwise_sum`: plain below 8 terms, eight running sums up to 128, else halves), so the
        result is numpy's to the last bit."""
        if n < 8:
            res = 0.0
            for k in range(lo, lo + n):
                res += data[k] * data[k]
            return res
        if n <= 128:
            r = np.empty(8)
            for j in range(8):
                r[j] = data[lo + j] * data[lo + j]
            k = 8
            while k < n - (n % 8):
                for j in range(8):
                    r[j] += data[lo + k + j] * data[lo + k + j]
                k += 8
            res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while k < n:
                res += data[lo + k] * data[lo + k]
                k += 1
            return res
        half = n // 2
        half -= half % 8
        return _pairwise_squares(data, lo, half) + _pairwise_squares(data, lo + half, n - half)


def tfidf_rows(indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray, idf: np.ndarray, log_tf: np.ndarray,
               min_terms: int, df: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Story's L2-normalised TF-IDF rows of a CSR count matrix (`story._tfidf`, whose numpy form
    gives the same values): entry weight `log_tf[count] * idf[term]`, rows of fewer than `min_terms`
    distinct terms and terms of idf 0 left out, and columns renumbered by `story._ranks` of the
    kept entries' document frequencies (rarest first, ties by term), which the prefix cut needs.
    Those frequencies are every row's (`df`, which the caller has for the idf; else counted here)
    less the short rows' (few entries), so one pass over the rows fills them. The weights are
    written over `indices` and `counts` (each entry at or before where it was read), which come
    back shrunk to the entries kept (`shrunk`; about half of a dump's are): the counts are used up,
    and the matrix is never held twice, where numpy's form holds about five arrays as long as it at
    once, the story stage's peak of memory. Counts that are not float64 are copied first, and so are
    left as they were. `log_tf` is 1 + ln(c) for each count c, worked out by numpy so that both forms
    use the same logarithms. Each row is then sorted by rank (its norm taken in term order first, as
    numpy's form takes it), by a sort of its ranks alone (`_sort_u32`), which scipy's sort of (index,
    weight) pairs took 2-3 times as long to do."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    if len(idf) >= 2**32:
        raise ValueError("more than 2^32 distinct terms")  # (ranks are sorted as uint32)
    kept_df = value_counts(indices, minlength=len(idf)) if df is None else np.array(df, dtype=np.int64)
    lengths = np.diff(indptr)
    short = np.flatnonzero(lengths < min_terms)
    if short.size:
        kept_df -= value_counts(gather_ranges(indices, indptr[short], lengths[short]), minlength=len(idf))
    kept_df[idf == 0.0] = 0
    out_ptr = _tfidf_rows(indptr, indices, counts, idf, log_tf, min_terms, kept_df)
    kept = int(out_ptr[-1])
    return out_ptr, shrunk(indices, kept), shrunk(counts, kept)


if kernels.AVAILABLE:
    @_jit
    def _tfidf_rows(indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray, idf: np.ndarray, log_tf: np.ndarray,
                    min_terms: int, df: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        n = len(indptr) - 1
        out_ptr = np.zeros(n + 1, dtype=np.int64)
        rank = np.empty(len(idf), dtype=indices.dtype)
        rank[np.argsort(df, kind="mergesort")] = np.arange(len(idf))  # stable: ties by term
        out_idx, out_data = indices, counts  # in place: entry m is written once entries up to m are read
        longest = 0
        for i in range(n):
            longest = max(longest, indptr[i + 1] - indptr[i])
        keys = np.empty(longest, dtype=np.uint32)  # a row's ranks, sorted (`_sort_u32`'s scratch beside)
        tmp = np.empty(longest, dtype=np.uint32)
        count = np.zeros((4, 256), dtype=np.int64)
        by_rank = np.empty(len(idf))  # a row's weights where its ranks put them
        m = 0
        for i in range(n):
            first = m
            if indptr[i + 1] - indptr[i] < min_terms:
                out_ptr[i + 1] = m
                continue
            for e in range(indptr[i], indptr[i + 1]):  # branch-free: a zero weight is written over next
                w = log_tf[np.int64(counts[e])] * idf[indices[e]]
                out_idx[m] = rank[indices[e]]
                out_data[m] = w
                m += w != 0.0
            out_ptr[i + 1] = m
            if first == m:
                continue
            # numpy's reduceat: the first square, plus numpy's pairwise sum of the others.
            norm = np.sqrt(out_data[first] * out_data[first] + _pairwise_squares(out_data, first + 1, m - first - 1))
            # Each row sorted by rank as the prefix cut reads it: its ranks sorted on their own, its
            # weights put back from where each rank placed them (ranks are distinct in a row).
            size = m - first
            for q in range(size):
                keys[q] = out_idx[first + q]
                by_rank[out_idx[first + q]] = out_data[first + q] / norm
            _sort_u32(keys, size, tmp, count)
            for q in range(size):
                out_idx[first + q] = keys[q]
                out_data[first + q] = by_rank[keys[q]]
        return out_ptr


def pair_dots(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, columns: int, rows: np.ndarray,
              others: np.ndarray) -> np.ndarray:
    """Dot product of CSR rows `rows[k]` and `others[k]` (sorted indices) for each k.

    Row `rows[k]` is spread into a dense scratch row (once for a run of equal `rows`, as candidate
    pairs come grouped) and the other row's entries gather from it, in column order, without a
    sparse row copy per pair. The products are scipy's elementwise ones; their sum is sequential
    where numpy's row sum is pairwise, so the two differ in the last bits (below 1e-15)."""
    if not kernels.AVAILABLE:
        raise RuntimeError("numba is not available")
    return _pair_dots(indptr, indices, data, columns, rows, others)


if kernels.AVAILABLE:
    @_jit
    def _pair_dots(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, columns: int, rows: np.ndarray,
                   others: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        dense = np.zeros(columns, dtype=np.float64)
        out = np.empty(rows.size, dtype=np.float64)
        current = -1
        for k in range(rows.size):
            i = rows[k]
            if i != current:
                if current >= 0:
                    for q in range(indptr[current], indptr[current + 1]):
                        dense[indices[q]] = 0.0
                for q in range(indptr[i], indptr[i + 1]):
                    dense[indices[q]] = data[q]
                current = i
            j = others[k]
            total = 0.0
            for q in range(indptr[j], indptr[j + 1]):
                x = dense[indices[q]]
                if x != 0.0:
                    total += x * data[q]
            out[k] = total
        return out
