"""Locality-sensitive hashing: from signatures to candidate pairs, with arrays instead of dicts.

A signature of `b * r` slots is cut into `b` bands of `r` rows; two texts become candidates when
all `r` slots of at least one band agree, which happens with probability `1 - (1 - J^r)^b` for
Jaccard similarity J: an S-curve whose steep part sits near the chosen threshold. The band/row
choice is datasketch's own (`MinHashLSH`'s optimiser, minimising the weighted false positive and
false negative areas under that curve).

Each band's rows are folded into one 64-bit key; texts are grouped by sorting the keys of a band,
not by a Python dict per band, so memory is 8 bytes per text per band.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from datasketch.lsh import _optimal_param

from . import kernels, kernels_lsh
from .arrays import unique_pairs

_MIX = np.uint64(0x9E3779B97F4A7C15)
_MAX_ALL_PAIRS = 16  # buckets up to this size yield all their pairs; larger ones a star and a chain


# Every candidate is verified, so a false positive costs one signature comparison while a false
# negative is a copy never found: weight the optimiser accordingly. At threshold 0.8 with 128
# permutations this picks 16 bands of 8 rows, P(candidate) = 0.95 at J = 0.8 and 0.99 at J = 0.85,
# where datasketch's even weights pick 9 x 13 and find only 0.40 and 0.69 of such pairs.
FALSE_POSITIVE_WEIGHT = 0.05


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int,
               false_positive_weight: float = FALSE_POSITIVE_WEIGHT) -> tuple[int, int]:
    """(bands, rows) for a Jaccard threshold from datasketch's MinHashLSH optimiser, which minimises
    `w_fp * FP + w_fn * FN`, the areas under the candidate curve `1 - (1 - J^r)^b` below and above
    the threshold."""
    return _optimal_param(threshold, num_perm, false_positive_weight, 1.0 - false_positive_weight)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """A (texts x bands) uint64 matrix: each band's `rows` slots folded into one key."""
    if kernels.AVAILABLE and signatures.dtype == np.uint32:
        return kernels_lsh.band_keys(signatures, bands, rows)
    n = signatures.shape[0]
    keys = np.zeros((n, bands), dtype=np.uint64)
    sig = signatures.astype(np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            acc = np.full(n, np.uint64(band + 1), dtype=np.uint64)
            for col in range(band * rows, (band + 1) * rows):
                acc = (acc ^ sig[:, col]) * _MIX
                acc ^= acc >> np.uint64(29)
            keys[:, band] = acc
    return keys


def _bucket_pairs(order: np.ndarray, run_starts: np.ndarray, run_sizes: np.ndarray) -> list[np.ndarray]:
    """Pairs within each run of equal keys: all pairs in small runs, star + chain in large ones."""
    parts: list[np.ndarray] = []
    for size in sorted(set(run_sizes.tolist())):
        starts = run_starts[run_sizes == size]
        if size <= _MAX_ALL_PAIRS:
            a, b = np.triu_indices(int(size), k=1)
            parts.append(np.stack([order[starts[:, None] + a], order[starts[:, None] + b]], axis=-1))
        else:
            offsets = np.arange(1, int(size))
            star = np.stack([np.broadcast_to(order[starts][:, None], (len(starts), size - 1)),
                             order[starts[:, None] + offsets]], axis=-1)
            chain = np.stack([order[starts[:, None] + offsets - 1], order[starts[:, None] + offsets]], axis=-1)
            parts.extend([star, chain])
    return [p.reshape(-1, 2) for p in parts]


def candidate_pairs(keys: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
    """Unique candidate pairs (i < j) as an (n, 2) int64 array, sorted.

    `active` (bool per text) leaves texts out entirely, e.g. empty ones.
    """
    n = keys.shape[0]
    index = np.arange(n) if active is None else np.flatnonzero(active)
    if kernels.AVAILABLE:  # the same runs, found by hashing instead of a sort per band, each pair once
        return kernels_lsh.bucket_pairs(keys, index, _MAX_ALL_PAIRS)
    parts: list[np.ndarray] = []
    for band in range(keys.shape[1]):
        k = keys[index, band]
        order_local = np.argsort(k, kind="stable")
        sorted_keys = k[order_local]
        boundary = np.flatnonzero(np.diff(sorted_keys) != 0) + 1
        starts = np.concatenate([[0], boundary])
        sizes = np.diff(np.concatenate([starts, [len(sorted_keys)]]))
        keep = sizes >= 2
        if keep.any():
            parts.extend(_bucket_pairs(index[order_local], starts[keep], sizes[keep]))
    return normalise_pairs(np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64))


def normalise_pairs(pairs: np.ndarray) -> np.ndarray:
    """Orient each pair as (low, high), drop self pairs and duplicates, sort."""
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    lo = np.minimum(pairs[:, 0], pairs[:, 1]).astype(np.int64)
    hi = np.maximum(pairs[:, 0], pairs[:, 1]).astype(np.int64)
    keep = lo != hi
    return unique_pairs(lo[keep], hi[keep])
