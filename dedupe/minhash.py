"""Batched MinHash signatures, bit-compatible with datasketch.

datasketch's default scheme ("affine32", datasketch >= 2.0) maps a 32-bit shingle hash `h` to
`fmix32(h)`, then applies `num_perm` affine permutations `a_k * x + b_k mod 2^32` (every `a_k` odd,
so each is a bijection) and keeps the minimum per permutation. For two sets A and B,
`P[min_k(A) == min_k(B)] = J(A, B)`, so the share of equal slots estimates Jaccard similarity
with standard error `sqrt(J (1 - J) / num_perm)` (about 0.035 at J = 0.8 with 128 permutations).

Here the same arithmetic runs over a whole batch: a (shingles x permutations) uint32 matrix per
chunk, then `np.minimum.reduceat` along the text boundaries. The permutation parameters are taken
from `datasketch.MinHash` itself, so for the same shingle hashes, seed and `num_perm` the
signatures are identical and can be handed to `LeanMinHash` / `MinHashLSH` unchanged. When numba
is installed, `kernels` computes the same signatures with the update and the minimum fused.
"""

from __future__ import annotations

import numpy as np
from datasketch import LeanMinHash, MinHash

from .shingle import ShingleBatch, shingle_hash32

EMPTY = np.uint32(0xFFFFFFFF)  # the slot value of a signature of no shingles (datasketch's too)
_CHUNK_CELLS = 1 << 22  # cells of the shingle x permutation matrix per chunk (16 MB of uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """Computes MinHash signatures of many shingle sets at once.

    `num_perm` trades accuracy for speed and memory (4 bytes a slot); `seed` picks the permutations
    and must match between runs whose signatures are compared.
    """

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        self.num_perm = num_perm
        self.seed = seed
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self._a = np.ascontiguousarray(a, dtype=np.uint32)
        self._b = np.ascontiguousarray(b, dtype=np.uint32)

    @property
    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        """The odd multipliers `a` and offsets `b` (uint32) of the affine permutations, as datasketch's."""
        return self._a, self._b

    def signatures(self, batch: ShingleBatch) -> np.ndarray:
        """A (texts x num_perm) uint32 matrix; texts with no shingles get all-EMPTY rows."""
        counts = batch.counts
        out = np.full((len(counts), self.num_perm), EMPTY, dtype=np.uint32)
        nonempty = np.flatnonzero(counts > 0)
        if len(nonempty) == 0:
            return out
        mixed = _fmix32(batch.hashes)
        rows_per_chunk = max(1, _CHUNK_CELLS // self.num_perm)
        starts = batch.offsets[nonempty]
        first = 0
        while first < len(nonempty):
            # Take whole texts until the chunk holds about rows_per_chunk shingles.
            lo = batch.offsets[nonempty[first]]
            last = int(np.searchsorted(starts, lo + rows_per_chunk, side="right"))
            last = max(last, first + 1)
            hi = batch.offsets[nonempty[last - 1] + 1]
            block = mixed[lo:hi, None] * self._a + self._b  # wraps mod 2^32, as intended
            out[nonempty[first:last]] = np.minimum.reduceat(block, starts[first:last] - lo, axis=0)
            first = last
        return out

    def to_datasketch(self, signature: np.ndarray) -> LeanMinHash:
        """The signature as a datasketch `LeanMinHash`, for use with datasketch's own indexes."""
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme="affine32")

    def datasketch_minhash(self) -> MinHash:
        """An empty datasketch MinHash that produces the same signatures as this hasher."""
        return MinHash(num_perm=self.num_perm, seed=self.seed, hashfunc=shingle_hash32, scheme="affine32")


def merge_signatures(signatures: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Row-wise minimum per group: the signature of the union of the groups' shingle sets.

    `groups` gives each row's group (0..n_groups-1); groups with no rows get EMPTY rows.
    """
    out = np.full((n_groups, signatures.shape[1]), EMPTY, dtype=np.uint32)
    if len(groups):
        np.minimum.at(out, groups, signatures)
    return out


def estimate_jaccard(signatures: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Share of equal slots for each pair (i[k], j[k]); pairs of empty signatures estimate 0."""
    from . import kernels, kernels_lsh  # here, not at the top: `kernels` imports this module

    if kernels.AVAILABLE and signatures.shape[1] and signatures.dtype == np.uint32:
        return kernels_lsh.equal_slots(signatures, i, j)
    out = np.empty(len(i), dtype=np.float64)
    step = max(1, _CHUNK_CELLS // signatures.shape[1])
    for lo in range(0, len(i), step):
        a, b = signatures[i[lo : lo + step]], signatures[j[lo : lo + step]]
        equal = (a == b) & (a != EMPTY)
        out[lo : lo + step] = equal.mean(axis=1)
    return out
