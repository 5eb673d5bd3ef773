"""Word n-gram shingles, hashed in bulk.

Each distinct word of a batch is hashed once with xxhash (XXH64, seed 0); a shingle's hash is then
built from its words' hashes with array arithmetic, a polynomial rolling hash modulo 2^64:

    H(w_1 .. w_k) = fmix64( sum_i h(w_i) * M^(k-i) )        (wrapping uint64 arithmetic)

folded to 32 bits (the high half), the width datasketch's default MinHash scheme takes.
`shingle_hash32` computes the same value for one shingle given as bytes, so it can be handed to
`datasketch.MinHash(hashfunc=...)` and the signatures agree exactly. XXH64 rather than the faster
xxh3 because it is short enough to port exactly: `kernels` computes the same word hashes in compiled
code (signatures made before that switch, with xxh3 word hashes, are not comparable with these).

A paragraph with fewer words than the shingle size yields one shingle made of all its words, so
short lines still get a signature (and two equal short lines the same one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

# Version of the shingle hash: 1 hashed words with xxh3_64, 2 with XXH64. Signatures of one version never
# match those of another for the same text, so anything that stores signatures should record it.
HASH_VERSION = 2

_M = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier (golden ratio), spreads each word across all bits
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: a bijection that avalanches every input bit."""
    h = h ^ (h >> _S33)
    h = h * _FMIX1
    h = h ^ (h >> _S33)
    h = h * _FMIX2
    return h ^ (h >> _S33)


def word_hash(word: str) -> int:
    """64-bit hash of one word (XXH64, seed 0, of its UTF-8 bytes)."""
    return xxhash.xxh64_intdigest(word.encode("utf-8"))


def shingle_hash32(shingle: bytes) -> int:
    """Hash of one shingle given as its words joined by single spaces; the datasketch `hashfunc`."""
    acc = np.zeros(1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for word in shingle.split(b" "):
            acc = acc * _M + np.uint64(xxhash.xxh64_intdigest(word))
        return int((_fmix64(acc) >> _S32)[0])


@dataclass(frozen=True, slots=True)
class ShingleBatch:
    """Shingle hashes of many texts in one flat array: text `k` owns `hashes[offsets[k]:offsets[k+1]]`."""

    hashes: np.ndarray  # uint32
    offsets: np.ndarray  # int64, length = number of texts + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def hash_words(token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Flat uint64 word hashes of all texts and the offsets of each text; each distinct word hashed once."""
    vocab: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.empty(len(token_lists), dtype=np.int64)
    setdefault = vocab.setdefault
    for k, tokens in enumerate(token_lists):
        lengths[k] = len(tokens)
        ids.extend([setdefault(t, len(vocab)) for t in tokens])
    table = np.fromiter((word_hash(w) for w in vocab), dtype=np.uint64, count=len(vocab))
    offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return table[np.asarray(ids, dtype=np.int64)], offsets


def shingle(token_lists: Sequence[Sequence[str]], ngram: int = 5) -> ShingleBatch:
    """Hashes of the word `ngram`-shingles of each text, computed for the whole batch at once."""
    if ngram < 1:
        raise ValueError("ngram must be at least 1")
    words, word_offsets = hash_words(token_lists)
    lengths = np.diff(word_offsets)
    total = len(words)
    # acc_k[i] = polynomial hash of words i..i+k; built one word at a time over the flat array.
    acc = words.copy()
    short_hash = np.zeros(len(lengths), dtype=np.uint64)
    short_mask = (lengths > 0) & (lengths < ngram)
    starts = word_offsets[:-1]
    with np.errstate(over="ignore"):
        for k in range(1, ngram):
            done = short_mask & (lengths == k)
            short_hash[done] = acc[starts[done]]
            acc = acc[: total - k] * _M + words[k:]
        # Windows starting at i are valid when they end inside the same text.
        n_windows = np.maximum(lengths - ngram + 1, 0)
        window_owner = np.repeat(np.arange(len(lengths)), n_windows)
        position = np.arange(n_windows.sum()) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
        full = acc[starts[window_owner] + position] if len(window_owner) else np.zeros(0, np.uint64)
    counts = np.where(short_mask, 1, n_windows)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    hashes = np.empty(offsets[-1], dtype=np.uint64)
    is_full = np.repeat(~short_mask, counts)
    hashes[is_full] = full
    hashes[~is_full] = short_hash[short_mask]
    return ShingleBatch((_fmix64(hashes) >> _S32).astype(np.uint32), offsets)
