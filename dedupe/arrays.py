"""Array helpers the stages share.

`np.unique` on large integer arrays takes a hash-based path in recent numpy that is tens of times
slower than sorting for the sizes seen here (5M uint64: 15.7 s against 0.2 s measured), so the
stages use these sort-based equivalents.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D array."""
    return distinct_of_sorted(np.sort(values, kind="stable"))


def distinct_of_sorted(ordered: np.ndarray) -> np.ndarray:
    """Each value of a sorted 1-D array once (a caller that owns a large array sorts it in place,
    with no sorted copy, and then takes this)."""
    if len(ordered) == 0:
        return ordered.copy()
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def unique_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Distinct (first, second) rows of two non-negative int arrays, sorted, as an (n, 2) int64 array."""
    if len(first) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    first = first.astype(np.int64)
    second = second.astype(np.int64)
    width = int(second.max()) + 1
    return pairs_of_codes(unique_sorted(first * width + second), width)


def distinct_rows(keys: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (key, owner) rows, sorted by key then owner, as two arrays: for keys that cannot be
    coded with their owner in one int64, as `unique_pairs` codes them (64-bit hashes)."""
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    return keys[keep], owners[keep]


def shared_key_pairs(new_keys: np.ndarray, new_owners: np.ndarray, old_keys: np.ndarray, old_owners: np.ndarray,
                     most: int, hub: bool) -> np.ndarray:
    """(new owner, old owner) rows of every pair holding the same key, once per key. A key that
    would pair more than `most` is left out, or with `hub` pairs only its first new owner with its
    old owners (a key shared that widely stands for a recurring text, not for one copy). Built for
    all keys at once: an archive lookup can share hundreds of thousands of keys with a night."""
    new, new_at = distinct_rows(new_keys, new_owners.astype(np.int64))
    old, old_at = distinct_rows(old_keys, old_owners.astype(np.int64))
    keys = new[np.concatenate([[True], new[1:] != new[:-1]])] if len(new) else new  # sorted: distinct by a pass
    at = np.searchsorted(old, keys)
    shared = keys[old[np.minimum(at, len(old) - 1)] == keys] if len(old) else keys[:0]
    a, b = np.searchsorted(new, shared), np.searchsorted(new, shared, side="right")
    c, d = np.searchsorted(old, shared), np.searchsorted(old, shared, side="right")
    per_new, per_old = b - a, d - c
    wide = per_new * per_old > most
    per_new = np.where(wide, 1 if hub else 0, per_new)
    count = per_new * per_old  # pairs of each key: its (first) new owners x its old owners
    first = np.cumsum(count) - count
    key = np.repeat(np.arange(len(shared)), count)
    j = np.arange(int(count.sum()), dtype=np.int64) - first[key]  # each pair's place within its key
    return np.stack([new_at[a[key] + j // per_old[key]], old_at[c[key] + j % per_old[key]]], axis=1)


def pairs_of_codes(codes: np.ndarray, width: int) -> np.ndarray:
    """The (first, second) rows, int64, of pairs coded as first * width + second."""
    return np.stack([(codes // width).astype(np.int64), (codes % width).astype(np.int64)], axis=1)


def range_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices starts[k], ..., starts[k] + lengths[k] - 1 of every range k, concatenated: the
    gather that reads many slices of a flat array (per-text hashes, per-document keys) at once."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))


def pieces(values: np.ndarray, cuts: np.ndarray) -> list[np.ndarray]:
    """`np.split(values, cuts)` (views of `values` between ascending `cuts`), for many small pieces:
    numpy's split makes each view through a transpose and back, about three times the cost of a slice."""
    bounds = [0, *cuts.tolist(), len(values)]
    return [values[a:b] for a, b in pairwise(bounds)]


_COUNT_CHUNK = 1 << 20


def value_counts(values: np.ndarray, minlength: int = 0) -> np.ndarray:
    """`np.bincount(values, minlength=minlength)`, a slice at a time when `values` is large:
    bincount first converts its input to intp, a copy at 8 bytes per value (about 250 MB for the
    story stage's 32M int32 column numbers at 100k documents, its peak of memory)."""
    if values.size <= _COUNT_CHUNK or values.dtype == np.intp:
        return np.bincount(values, minlength=minlength)
    length = max(minlength, int(values.max()) + 1)
    out = np.zeros(length, dtype=np.intp)
    for lo in range(0, values.size, _COUNT_CHUNK):
        out += np.bincount(values[lo : lo + _COUNT_CHUNK], minlength=length)
    return out
