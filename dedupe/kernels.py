"""Compiled tokenise + shingle + MinHash kernels (numba, the optional `fast` extra).

The numpy path (`normalize` -> `tokenize` -> `shingle.shingle` -> `MinHasher.signatures`) spends its
time in per-token Python work (a dict lookup per token to hash each distinct word once) and in a
(shingles x permutations) uint32 matrix reduced with `np.minimum.reduceat`. Here one compiled pass
per text does all of it, with no per-token Python objects and no matrix:

- Tokens. For ASCII text, `tokenize(normalize(text))` is the runs of `[A-Za-z0-9_]` (what `\\w`
  matches among ASCII characters), lower-cased: NFKC leaves ASCII unchanged, case folding is
  lower-casing there, and collapsing whitespace moves no token boundary. The kernel scans the
  UTF-8 bytes with that rule. Any other text is normalised and tokenised by `unicode_forms` (a
  compiled pass of its own, or the Python functions for text past its tables) and handed over as
  its tokens joined by single spaces (a `\\w` token never holds a space, and no byte of a
  multi-byte UTF-8 sequence is 0x20), which the kernel splits on spaces.
- Word hashes: XXH64 (seed 0) of each token's UTF-8 bytes, a port of the reference algorithm,
  equal to `xxhash.xxh64_intdigest` and so to `shingle.word_hash`.
- Shingle hashes: `fmix64(sum_j h(w_{i+j}) * M^(n-1-j)) >> 32`, the polynomial of `shingle.shingle`,
  updated as the window rolls (remove the oldest word's term, multiply by M, add the newest word):
  every step is exact in wrapping uint64 arithmetic, so it equals the sum recomputed per window. A
  text shorter than n words is one shingle of all its words.
- MinHash, fused: slot k of a signature is `min_s (a_k * fmix32(s) + b_k mod 2^32)` over the text's
  shingle hashes s, the datasketch "affine32" update applied to every shingle in turn. Taking the
  minimum as each shingle arrives gives the same value as building the (shingles x permutations)
  matrix and reducing it (min is associative and commutative, and every product and sum is taken
  mod 2^32 exactly as numpy's wrapping uint32 arithmetic takes it), so signatures are bit-identical
  to `MinHasher.signatures` and hence to `datasketch.MinHash(hashfunc=shingle_hash32)`. The inner
  loop runs over the permutations with the signature row in cache, which the compiler vectorises.

The other kernels take per-token or per-pair Python loops off the later stages, each with a
Python/numpy path that gives the same result: `distinct_words` (each batch's words numbered, so
story stems are looked up once per distinct word), `line_keys` (chrome's recurrence keys of ASCII
text), `line_keys_with_cues` (their words, stop words and hashes), `shared_counts` (exact shingle
overlaps for verification), `band_keys` (LSH keys row by row), `bucket_pairs` (LSH candidates by
hashing each band's keys instead of sorting them), `prefix_candidates` and `pair_dots`
(story's candidates and cosines), `prefix_cut` (story's prefix/tail cut of each row), `sorted_ranks`
(hash-table numbering of term hashes), `row_counts` (story's term counts per text),
`distinct_of_ranges` (documents' shingle sets from their paragraphs'). `chrome_compiled` builds on
this module: chrome's page classification over many pages at once.

Without numba, the signing and line-key functions run the numpy/Python path themselves and the
callers of the others take theirs (`kernels.AVAILABLE` says which); the results are the same
(`pair_dots` sums in another order: equal to 1e-15). `DEDUPE_NUMBA=0` in the environment turns the
kernels off (for comparisons and debugging). Call `warm_up` before forking workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import xxhash

from .arrays import distinct_of_sorted, pairs_of_codes, range_indices, unique_sorted
from .minhash import EMPTY, MinHasher, merge_signatures
from .normalize import line_key_of_normalised, normalize, tokenize
from .shingle import shingle
from .stopwords import ENGLISH_STOPWORDS

if TYPE_CHECKING:
    from .unicode_forms import UnicodeForms

try:
    import numba

    _HAVE_NUMBA = True
except ImportError:  # the optional `fast` extra is not installed: the numpy path serves
    _HAVE_NUMBA = False

AVAILABLE: bool = _HAVE_NUMBA and os.environ.get("DEDUPE_NUMBA", "1") != "0"

_RAW_ASCII = 0  # a text's bytes are raw ASCII: tokens are [A-Za-z0-9_] runs, lower-cased
_SPACED = 1  # a text's bytes are its tokens joined by single spaces (UTF-8)
_SIGNATURES, _COUNT, _HASHES = 0, 1, 2  # what `_sign` works out besides signatures: nothing, distinct counts, hashes


@dataclass(frozen=True, slots=True)
class SignedParagraphs:
    """What `features.analyse` needs of a batch of normalised paragraphs.

    `words` counts every paragraph's tokens; paragraphs with at least `min_words` of them are signed,
    in input order: `signatures[r]` and their distinct shingle hashes, sorted,
    `shingle_hashes[shingle_offsets[r]:shingle_offsets[r + 1]]`.
    """

    words: np.ndarray  # int64, one per paragraph
    signed: np.ndarray  # bool, one per paragraph
    signatures: np.ndarray  # (signed paragraphs x num_perm) uint32
    shingle_hashes: np.ndarray  # uint32
    shingle_offsets: np.ndarray  # int64, signed paragraphs + 1
    distinct_words: DistinctWords | None = None  # every paragraph's words numbered, when asked for


def sign_texts(texts: Sequence[str], ngram: int, hasher: MinHasher) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures of raw texts' word `ngram`-shingles and each text's distinct shingle count.

    Equal to `hasher.signatures(shingle([tokenize(normalize(t)) for t in texts], ngram))` and the
    number of distinct hashes in each text's row of that batch; compiled when numba is available.
    """
    if ngram < 1:
        raise ValueError("ngram must be at least 1")
    if not AVAILABLE:
        batch = shingle([tokenize(normalize(t)) for t in texts], ngram)
        _, offsets = _distinct_per_text(batch.hashes, batch.offsets)
        return hasher.signatures(batch), np.diff(offsets)
    buf, offsets, modes = _pack(texts, normalised=False)
    _, sigs, _, distinct_offsets, _ = _sign(buf, offsets, modes, ngram, *hasher.permutations, 0, _COUNT, False)
    return sigs, np.diff(distinct_offsets)


def text_signatures(texts: Sequence[str], ngram: int, hasher: MinHasher) -> np.ndarray:
    """The signatures of `sign_texts` alone, a little faster: the distinct counts need a sort per text."""
    if ngram < 1:
        raise ValueError("ngram must be at least 1")
    if not AVAILABLE:
        return hasher.signatures(shingle([tokenize(normalize(t)) for t in texts], ngram))
    buf, offsets, modes = _pack(texts, normalised=False)
    return _sign(buf, offsets, modes, ngram, *hasher.permutations, 0, _SIGNATURES, False)[1]


def text_shingle_sets(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Each raw text's distinct word `ngram`-shingle hashes, sorted: `hashes[offsets[t]:offsets[t + 1]]`.

    The hashes the signatures of `sign_texts` are made of, so exact Jaccard over them checks an
    estimate. Equal to `_distinct_per_text` of `shingle([tokenize(normalize(t)) for t in texts], ngram)`.
    The kernel runs with no permutations: shingles are hashed and sorted, not signed.
    """
    if ngram < 1:
        raise ValueError("ngram must be at least 1")
    if not AVAILABLE:
        batch = shingle([tokenize(normalize(t)) for t in texts], ngram)
        return _distinct_per_text(batch.hashes, batch.offsets)
    buf, offsets, modes = _pack(texts, normalised=False)
    _, _, hashes, distinct_offsets, _ = _sign(buf, offsets, modes, ngram, _NO_PERMUTATIONS, _NO_PERMUTATIONS, 0,
                                              _HASHES, False)
    return hashes, distinct_offsets


_NO_PERMUTATIONS = np.zeros(0, dtype=np.uint32)  # the dtype of MinHasher.permutations, so the same compiled code


def sign_paragraphs(normalised: Sequence[str] | Packed, ngram: int, hasher: MinHasher,
                    min_words: int, *, number_words: bool = False) -> SignedParagraphs:
    """Word counts of already normalised paragraphs (or of a batch packed by `pack_paragraphs`);
    signatures and distinct shingle hashes of the long ones.

    Equal to tokenising each with `tokenize`, then `shingle` + `MinHasher.signatures` over the
    paragraphs with at least `min_words` tokens, and their hashes deduplicated and sorted per paragraph.
    With `number_words` (and the compiled kernels) also `distinct_words` of the batch, from the same
    pass: the tokens are found and hashed once for both.
    """
    if ngram < 1:
        raise ValueError("ngram must be at least 1")
    if not AVAILABLE:
        assert not isinstance(normalised, Packed), "texts are packed only for the compiled kernels"
        tokens = [tokenize(p) for p in normalised]
        words = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        signed = words >= min_words
        batch = shingle([t for t, s in zip(tokens, signed.tolist(), strict=True) if s], ngram)
        hashes, offsets = _distinct_per_text(batch.hashes, batch.offsets)
        return SignedParagraphs(words, signed, hasher.signatures(batch), hashes, offsets)
    p = _packed(normalised)
    buf, offsets, modes = p.buf, p.offsets, p.modes
    words, sigs, hashes, distinct_offsets, numbered = _sign(buf, offsets, modes, ngram, *hasher.permutations,
                                                            min_words, _HASHES, number_words)
    found = DistinctWords(*numbered, buf) if number_words else None  # type: ignore[call-arg]  # (a kernel's tuple)
    return SignedParagraphs(words, words >= min_words, sigs, hashes, distinct_offsets, found)


def _pack(texts: Sequence[str], normalised: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All texts' bytes in one buffer, their byte offsets and how the kernel must read each one.

    ASCII texts go in as they are. Others are normalised (unless they already are) and tokenised
    (`unicode_forms`), and go in as their tokens joined by spaces.
    """
    buf, offsets, modes, _ = _packed_parts(texts, normalised, full=False)
    return buf, offsets, modes


def _packed_parts(texts: Sequence[str], normalised: bool,
                  full: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, UnicodeForms | None]:
    """`_pack`, and the `UnicodeForms` of the non-ASCII texts (None when there are none; with
    `full`, their normal forms and line keys too)."""
    from .unicode_forms import unicode_forms  # it builds on this module

    parts: list[bytes] = []
    modes = np.zeros(len(texts), dtype=np.uint8)
    other: list[int] = []
    for k, text in enumerate(texts):
        if text.isascii():
            parts.append(text.encode("ascii"))
        else:
            other.append(k)
            parts.append(b"")
    forms = None
    if other:
        forms = unicode_forms([texts[k] for k in other], normalised, full)
        for k, spaced in zip(other, forms.spaced_bytes(), strict=True):
            parts[k] = spaced
        modes[other] = _SPACED
    buf, offsets = _joined(parts)
    return buf, offsets, modes, forms


@dataclass(frozen=True, slots=True)
class Packed:
    """A batch of texts as the kernels read them, normalised (`_pack`): made once per batch and read
    by signing, story's word numbering and chrome's line keys alike, instead of once by each.
    ASCII texts are their own normalised bytes; each other text k (`unicode`, in order) is packed as
    its tokens, and its normalised form and line key, which the exact keys and chrome need, are in
    `forms` (`unicode_forms.UnicodeForms`)."""

    buf: np.ndarray
    offsets: np.ndarray
    modes: np.ndarray
    unicode: np.ndarray  # int64: the texts packed as their tokens
    forms: UnicodeForms | None  # those texts' forms (None when there are none)


def pack_normalised(normalised: Sequence[str]) -> Packed:
    """Already normalised texts, packed."""
    buf, offsets, modes, forms = _packed_parts(normalised, normalised=True)
    return Packed(buf, offsets, modes, np.flatnonzero(modes).astype(np.int64), forms)


def pack_paragraphs(texts: Sequence[str]) -> Packed:
    """Raw texts, normalised as they are packed: ASCII ones by a compiled pass over the batch's
    bytes (`normalize`'s ASCII branch: lower-cased, whitespace runs collapsed to one space, trimmed),
    the others by `unicode_forms`."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    joined, offsets, modes, forms = _packed_parts(texts, normalised=False)
    buf, offsets = _normalised_ascii(joined, offsets, modes, _SPACE_TABLE)
    return Packed(buf, offsets, modes, np.flatnonzero(modes).astype(np.int64), forms)


def _packed(texts: Sequence[str] | Packed) -> Packed:
    return texts if isinstance(texts, Packed) else pack_normalised(texts)


_SPACE_TABLE = np.zeros(256, dtype=np.uint8)  # the ASCII whitespace `str.split` splits on
_SPACE_TABLE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1

def _joined(parts: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one buffer the kernels read, with each one's offsets into it."""
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)), out=offsets[1:])
    return np.frombuffer(b"".join(parts), dtype=np.uint8), offsets


def _distinct_per_text(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each text's shingle hashes, deduplicated and sorted, with new offsets (the numpy path)."""
    owner = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
    combined = unique_sorted((owner << np.uint64(32)) | hashes.astype(np.uint64))
    counts = np.bincount((combined >> np.uint64(32)).astype(np.int64), minlength=len(offsets) - 1)
    new_offsets = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    return (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32), new_offsets


def xxh64(data: bytes) -> int:
    """XXH64 (seed 0) of `data` by the compiled port; for tests against `xxhash.xxh64_intdigest`."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return int(_xxh64(np.frombuffer(bytearray(data), dtype=np.uint8), 0, len(data)))  # writable, as in _sign


if AVAILABLE:
    def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return numba.njit(cache=True, nogil=True)(fn)
        except RuntimeError:  # no writable cache directory anywhere: compile in each process instead
            return numba.njit(nogil=True)(fn)

    _U64 = np.uint64
    _P1 = _U64(0x9E3779B185EBCA87)
    _P2 = _U64(0xC2B2AE3D27D4EB4F)
    _P3 = _U64(0x165667B19E3779F9)
    _P4 = _U64(0x85EBCA77C2B2AE63)
    _P5 = _U64(0x27D4EB2F165667C5)
    _M = _U64(0x9E3779B97F4A7C15)  # shingle.py's polynomial multiplier
    _FMIX1 = _U64(0xFF51AFD7ED558CCD)
    _FMIX2 = _U64(0xC4CEB9FE1A85EC53)
    _MASK32 = _U64(0xFFFFFFFF)

    @_jit
    def _rotl(x: np.uint64, r: np.uint64) -> np.uint64:
        return (x << r) | (x >> (_U64(64) - r))

    @_jit
    def _read64(b: np.ndarray, i: int) -> np.uint64:
        return (_U64(b[i]) | (_U64(b[i + 1]) << _U64(8)) | (_U64(b[i + 2]) << _U64(16))
                | (_U64(b[i + 3]) << _U64(24)) | (_U64(b[i + 4]) << _U64(32)) | (_U64(b[i + 5]) << _U64(40))
                | (_U64(b[i + 6]) << _U64(48)) | (_U64(b[i + 7]) << _U64(56)))

    @_jit
    def _read32(b: np.ndarray, i: int) -> np.uint64:
        return _U64(b[i]) | (_U64(b[i + 1]) << _U64(8)) | (_U64(b[i + 2]) << _U64(16)) | (_U64(b[i + 3]) << _U64(24))

    @_jit
    def _round(acc: np.uint64, lane: np.uint64) -> np.uint64:
        return _rotl(acc + lane * _P2, _U64(31)) * _P1

    @_jit
    def _xxh64(b: np.ndarray, start: int, end: int) -> np.uint64:
        """XXH64 with seed 0 of b[start:end], following the reference implementation step by step."""
        n = end - start
        i = start
        if n >= 32:
            v1 = _P1 + _P2
            v2 = _P2
            v3 = _U64(0)
            v4 = _U64(0) - _P1
            while i + 32 <= end:
                v1 = _round(v1, _read64(b, i))
                v2 = _round(v2, _read64(b, i + 8))
                v3 = _round(v3, _read64(b, i + 16))
                v4 = _round(v4, _read64(b, i + 24))
                i += 32
            h = _rotl(v1, _U64(1)) + _rotl(v2, _U64(7)) + _rotl(v3, _U64(12)) + _rotl(v4, _U64(18))
            h = (h ^ _round(_U64(0), v1)) * _P1 + _P4
            h = (h ^ _round(_U64(0), v2)) * _P1 + _P4
            h = (h ^ _round(_U64(0), v3)) * _P1 + _P4
            h = (h ^ _round(_U64(0), v4)) * _P1 + _P4
        else:
            h = _P5
        h += _U64(n)
        while i + 8 <= end:
            h ^= _round(_U64(0), _read64(b, i))
            h = _rotl(h, _U64(27)) * _P1 + _P4
            i += 8
        if i + 4 <= end:
            h ^= _read32(b, i) * _P1
            h = _rotl(h, _U64(23)) * _P2 + _P3
            i += 4
        while i < end:
            h ^= _U64(b[i]) * _P5
            h = _rotl(h, _U64(11)) * _P1
            i += 1
        h ^= h >> _U64(33)
        h *= _P2
        h ^= h >> _U64(29)
        h *= _P3
        h ^= h >> _U64(32)
        return h

    @_jit
    def _fold(acc: np.uint64) -> np.uint32:
        """fmix64 then the high half: shingle.py's 64 -> 32 bit fold of a shingle's polynomial hash."""
        acc ^= acc >> _U64(33)
        acc *= _FMIX1
        acc ^= acc >> _U64(33)
        acc *= _FMIX2
        acc ^= acc >> _U64(33)
        return np.uint32(acc >> _U64(32))

    @_jit
    def _fmix32(h: np.uint32) -> np.uint64:
        """MurmurHash3's 32-bit finaliser (datasketch's pre-mix), in 64-bit registers masked to 32 bits."""
        x = _U64(h)
        x ^= x >> _U64(16)
        x = (x * _U64(0x85EBCA6B)) & _MASK32
        x ^= x >> _U64(13)
        x = (x * _U64(0xC2B2AE35)) & _MASK32
        x ^= x >> _U64(16)
        return x

    @_jit
    def _sort_u32(a: np.ndarray, n: int, tmp: np.ndarray, count: np.ndarray) -> None:
        """Sort a[:n] in place: insertion sort when short, else an LSD radix sort (4 passes of 8 bits).

        np.sort (a quicksort) took as long as all the hashing on document-sized inputs.
        """
        if n <= 40:
            for i in range(1, n):
                x = a[i]
                j = i - 1
                while j >= 0 and a[j] > x:
                    a[j + 1] = a[j]
                    j -= 1
                a[j + 1] = x
            return
        count[:] = 0
        for i in range(n):
            x = a[i]
            count[0, x & 0xFF] += 1
            count[1, (x >> 8) & 0xFF] += 1
            count[2, (x >> 16) & 0xFF] += 1
            count[3, x >> 24] += 1
        src, dst = a, tmp
        for p in range(4):
            c = count[p]
            total = 0
            for d in range(256):
                k = c[d]
                c[d] = total
                total += k
            shift = 8 * p
            for i in range(n):
                x = src[i]
                d = (x >> shift) & 0xFF
                dst[c[d]] = x
                c[d] += 1
            src, dst = dst, src  # after an even number of passes the result is back in `a`

    @_jit
    def _word_hashes(buf: np.ndarray, lo: int, hi: int, mode: int, fold_case: int, low: np.ndarray,
                     is_word: np.ndarray, out: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> int:
        """Hash the tokens of buf[lo:hi] into `out` (and, when `starts` is not empty, each token's
        byte bounds into `starts` and `ends`); returns their number.

        A first branch-free pass classifies every byte and, in raw ASCII mode with `fold_case`,
        lower-cases it, which the compiler vectorises; the second finds the token runs and hashes each
        in place. Without `fold_case` an ASCII token is hashed as it is spelt.
        """
        n = hi - lo
        if mode == _RAW_ASCII:
            fold = np.uint8(fold_case != 0)
            for i in range(n):
                c = buf[lo + i]
                upper = np.uint8(np.uint8(c - np.uint8(65)) < np.uint8(26))
                low[i] = c + np.uint8(32) * upper * fold
                is_word[i] = np.uint8(upper | (np.uint8(c - np.uint8(97)) < np.uint8(26))
                                      | (np.uint8(c - np.uint8(48)) < np.uint8(10)) | (c == np.uint8(95)))
        else:
            for i in range(n):
                c = buf[lo + i]
                low[i] = c
                is_word[i] = np.uint8(c != np.uint8(32))
        is_word[n] = 0  # sentinel: every run ends inside the array
        record = starts.size > 0
        nw = 0
        i = 0
        while i < n:
            if is_word[i] == 0:
                i += 1
                continue
            j = i + 1
            while is_word[j] != 0:
                j += 1
            out[nw] = _xxh64(low, i, j)
            if record:
                starts[nw] = lo + i
                ends[nw] = lo + j
            nw += 1
            i = j
        return nw

    @_jit
    def _sign(buf: np.ndarray, offsets: np.ndarray, modes: np.ndarray, ngram: int, a: np.ndarray, b: np.ndarray,
              min_words: int, distinct: int, number_words: bool) -> tuple[Any, ...]:
        """Word counts of all texts; signatures of texts with >= min_words, and their distinct shingles;
        with `number_words`, every text's words numbered as `_distinct_words` does (else empty arrays).

        `distinct` is _SIGNATURES (distinct offsets all 0), _COUNT (offsets from distinct counts) or
        _HASHES (also the distinct hashes, sorted, per signed text).

        One pass over the texts with reused scratch arrays. Outputs are sized for the worst case (every
        text signed; a text of L bytes has at most L // 2 + 1 tokens) and trimmed at the end.
        """
        n_texts = len(offsets) - 1
        num_perm = len(a)
        longest = 0
        for t in range(n_texts):
            longest = max(longest, offsets[t + 1] - offsets[t])
        words = np.zeros(n_texts, dtype=np.int64)
        sigs = np.full((n_texts, num_perm), np.uint32(0xFFFFFFFF), dtype=np.uint32)
        distinct_offsets = np.zeros(n_texts + 1, dtype=np.int64)
        keep_hashes = distinct == _HASHES
        kept = np.empty(len(buf) // 2 + n_texts if keep_hashes else 0, dtype=np.uint32)
        low = np.empty(longest, dtype=np.uint8)
        is_word = np.empty(longest + 1, dtype=np.uint8)
        word_hashes = np.empty(longest // 2 + 1, dtype=np.uint64)
        shingles = np.empty(longest // 2 + 1, dtype=np.uint32)
        tmp = np.empty(longest // 2 + 1, dtype=np.uint32)
        count = np.zeros((4, 256), dtype=np.int64)
        bound = longest // 2 + 1 if number_words else 0
        starts = np.empty(bound, dtype=np.int64)
        ends = np.empty(bound, dtype=np.int64)
        numbering = _new_numbering(len(buf) // 2 + n_texts if number_words else 0, n_texts + 1 if number_words else 1)
        power = _U64(1)  # M^(ngram-1): the weight of the word leaving a window
        for _ in range(ngram - 1):
            power *= _M
        row = 0
        for t in range(n_texts):
            nw = _word_hashes(buf, offsets[t], offsets[t + 1], modes[t], 1, low, is_word, word_hashes, starts, ends)
            words[t] = nw
            if number_words:
                numbering = _number_words(numbering, word_hashes, starts, ends, nw, t)
            if nw < min_words:
                continue
            ns = 0
            if 0 < nw < ngram:
                acc = _U64(0)
                for k in range(nw):
                    acc = acc * _M + word_hashes[k]
                shingles[0] = _fold(acc)
                ns = 1
            elif nw >= ngram:
                # Rolling form of sum_j h(w_{i+j}) M^(n-1-j): drop the oldest word, shift, add the newest.
                acc = _U64(0)
                for k in range(ngram):
                    acc = acc * _M + word_hashes[k]
                shingles[0] = _fold(acc)
                for k in range(ngram, nw):
                    acc = (acc - word_hashes[k - ngram] * power) * _M + word_hashes[k]
                    shingles[k - ngram + 1] = _fold(acc)
                ns = nw - ngram + 1
            sig = sigs[row]
            for s in range(ns):
                x = _fmix32(shingles[s])
                for k in range(num_perm):
                    sig[k] = min(sig[k], np.uint32((_U64(a[k]) * x + _U64(b[k])) & _MASK32))
            n_distinct = 0
            if ns and distinct != _SIGNATURES:
                _sort_u32(shingles, ns, tmp, count)
                base = distinct_offsets[row]
                prev = shingles[0]
                if keep_hashes:
                    kept[base] = prev
                n_distinct = 1
                for s in range(1, ns):
                    if shingles[s] != prev:
                        prev = shingles[s]
                        if keep_hashes:
                            kept[base + n_distinct] = prev
                        n_distinct += 1
            distinct_offsets[row + 1] = distinct_offsets[row] + n_distinct
            row += 1
        if row < n_texts:
            sigs = sigs[:row].copy()
            distinct_offsets = distinct_offsets[: row + 1].copy()
        return words, sigs, kept[: distinct_offsets[row]].copy(), distinct_offsets, _numbered(numbering)


def prefix_candidates(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, by_column: sp.csc_matrix,
                      a: int, b: int, start: np.ndarray, tail: np.ndarray, level: np.ndarray, above: np.ndarray,
                      tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Story's candidates of rows [a, b): the pairs i < j whose prefix product plus Cauchy–Schwarz
    tail bound reaches τ (`story._candidates`, whose numpy form gives the same pairs, in another order).

    The prefix matrix P comes as CSR rows and as CSC columns (`by_column`, an inverted index with each
    term's rows ascending). For each row i, every prefix term's later rows j > i (a suffix of its
    postings, found by bisection) add x_t·y_t into a dense accumulator, and each j touched is bounded
    once. Nothing of P·Pᵀ is materialised, and P is transposed once for all blocks instead of once per
    block (which grows with the corpus times the number of blocks). Once row i's remaining prefix
    norm plus the longest tail cannot reach τ, a row not met yet cannot become a candidate, so the
    last (most common) prefix terms' postings only add to pairs already begun.

    The postings are walked in float32 (`by_column`'s weights are float32: half the bytes
    streamed, half the accumulator in cache), and a pair whose float32 sum comes within its
    rounding error of the bound gets its prefix product again in float64, summed in the same order
    as a float64 walk would: the pairs are exactly the float64 walk's."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return _prefix_candidates(indptr, indices, data, by_column.indptr, by_column.indices,
                              by_column.data.astype(np.float32, copy=False), a, b, start, tail, level, above, tau)


def prefix_cut(indptr: np.ndarray, ranks: np.ndarray, data: np.ndarray, sorted_df: np.ndarray,
               checkpoints: np.ndarray, limit: float, max_df: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Story's prefix/tail cut of every row (`story._prefixes`, whose numpy form it equals up to
    rounding), in one pass per row with no array per matrix entry: on a dump's paragraphs the
    numpy form held about ten such arrays at once, the story stage's peak of memory.

    The rows come with columns numbered by global rank (rarest first) and sorted. Returns the
    prefix matrix (indptr, indices, data: the entries outside the tail whose term is in two texts
    or more), and per row: `start`, `tail`, `level` and `above` as `story._Prefixes` defines them."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return _prefix_cut(indptr, ranks, data, sorted_df, checkpoints, limit * limit, max_df)


if AVAILABLE:
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
        # Views, not copies: the buffers' pages past m were never written, so they hold no memory,
        # while a copy would write every entry once more into fresh pages.
        return out_ptr, out_idx[:m], out_data[:m], start, tail, level, above


if AVAILABLE:
    @_jit
    def _prefix_candidates(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, col_ptr: np.ndarray,
                           col_rows: np.ndarray, col_data: np.ndarray, a: int, b: int, start: np.ndarray,
                           tail: np.ndarray, level: np.ndarray, above: np.ndarray,
                           tau: float) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        n = start.size
        acc = np.zeros(n, dtype=np.float32)
        touched = np.empty(n + 1, dtype=np.int64)  # one spare slot: a row met before is written past the count
        out_i = np.empty(1024, dtype=np.int64)
        out_j = np.empty(1024, dtype=np.int64)
        found = 0
        limit = tau - 1e-6
        reach = tail.max() if n else 0.0  # no bound adds more than the longest tail (above ≤ 1)
        slack = reach * (1.0 + 1e-6) + 1e-9  # above is a norm of part of a unit row, float32: ≤ 1 + rounding
        reach32 = np.float32(reach)
        for i in range(a, b):
            count = 0
            rest = 0.0  # squares of row i's prefix entries from the current one on
            for k in range(indptr[i], indptr[i + 1]):
                rest += data[k] * data[k]
            # A float32 sum of m products of unit rows' entries is within (m + 3)·2⁻²⁴ of the float64
            # one (each product rounded three times, each addition once; the products sum to ≤ 1):
            # four times that is the margin below which a pair is surely not a candidate.
            loose = np.float32(limit - (indptr[i + 1] - indptr[i] + 4) * 2.0**-22)
            for k in range(indptr[i], indptr[i + 1]):
                t, x, x64 = indices[k], np.float32(data[k]), data[k]
                # A row j first met at this term shares only this and later prefix terms with row i,
                # so its bound is at most ‖x_{≥k}‖ + reach (Cauchy–Schwarz, ‖y‖ ≤ 1): when that cannot
                # reach τ, later rows only add to pairs already started (the high-df postings, last).
                fresh = np.sqrt(max(rest, 0.0)) + slack >= limit
                rest -= x64 * x64
                lo, hi = np.int64(col_ptr[t]), np.int64(col_ptr[t + 1])
                end = hi
                while lo < hi:  # first posting with a row after i
                    mid = (lo + hi) >> 1
                    if col_rows[mid] <= i:
                        lo = mid + 1
                    else:
                        hi = mid
                if fresh:  # branch-free: every row is noted, and kept (counted) when it is new
                    for p in range(lo, end):
                        j = col_rows[p]
                        old = acc[j]
                        touched[count] = j
                        count += old == 0.0
                        acc[j] = old + x * col_data[p]
                else:
                    for p in range(lo, end):
                        j = col_rows[p]
                        old = acc[j]
                        acc[j] = old + (x * col_data[p] if old != 0.0 else np.float32(0.0))
            start_i, level_i, tail_i = start[i], level[i], tail[i]
            for q in range(count):
                j = touched[q]
                rough = acc[j]
                acc[j] = 0.0
                if rough + reach32 < loose:  # settled without reading row j (most pairs)
                    continue
                pp = 0.0  # the float64 prefix product, summed in row i's order as a float64 walk sums it
                u, u_end, w, w_end = indptr[i], indptr[i + 1], indptr[j], indptr[j + 1]
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
        return out_i[:found].copy(), out_j[:found].copy()


def shared_counts(hashes: np.ndarray, offsets: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each pair k, how many values sets `first[k]` and `second[k]` share; set r is the sorted
    distinct `hashes[offsets[r]:offsets[r + 1]]`. One merge per pair, compiled (see `exact.py` for
    the numpy form)."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return _shared_counts(hashes, offsets, first, second)


if AVAILABLE:
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


if AVAILABLE:
    @_jit
    def _normalised_ascii(buf: np.ndarray, offsets: np.ndarray, modes: np.ndarray,
                          space: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """Raw ASCII texts lower-cased, their whitespace runs one space, trimmed; other texts as they are."""
        out = np.empty(len(buf), dtype=np.uint8)
        out_offsets = np.zeros(len(offsets), dtype=np.int64)
        m = 0
        for t in range(len(offsets) - 1):
            begin = m
            if modes[t] != _RAW_ASCII:
                for i in range(offsets[t], offsets[t + 1]):
                    out[m] = buf[i]
                    m += 1
                out_offsets[t + 1] = m
                continue
            pending = False
            for i in range(offsets[t], offsets[t + 1]):
                c = buf[i]
                if space[c]:
                    pending = True
                    continue
                if pending and m > begin:
                    out[m] = 32
                    m += 1
                pending = False
                out[m] = c + np.uint8(32) if np.uint8(c - np.uint8(65)) < np.uint8(26) else c
                m += 1
            out_offsets[t + 1] = m
        return out[:m], out_offsets  # a view: see _prefix_cut


@dataclass(frozen=True, slots=True)
class DistinctWords:
    """The tokens of a batch of normalised texts, each as the number of its distinct word.

    Text t's tokens are `ids[offsets[t]:offsets[t + 1]]`; distinct word w has XXH64 hash `hashes[w]`
    and is spelt `buf[starts[w] : starts[w] + lengths[w]]` (UTF-8), numbered in order of first use.
    """

    ids: np.ndarray  # int32, one per token
    offsets: np.ndarray  # int64, texts + 1
    hashes: np.ndarray  # uint64, one per distinct word
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64
    buf: np.ndarray  # uint8

    def word(self, w: int) -> str:
        return self.buf[self.starts[w] : self.starts[w] + self.lengths[w]].tobytes().decode("utf-8")


def distinct_words(normalised: Sequence[str] | Packed) -> DistinctWords:
    """Tokenise already normalised texts (as `tokenize` does) and number their distinct words, so
    that per-word work (stemming, stop words) runs once per distinct word, not once per token."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    p = _packed(normalised)
    ids, token_offsets, hashes, starts, lengths = _distinct_words(p.buf, p.offsets, p.modes)
    return DistinctWords(ids, token_offsets, hashes, starts, lengths, p.buf)


if AVAILABLE:
    @_jit
    def _distinct_words(buf: np.ndarray, offsets: np.ndarray,
                        modes: np.ndarray) -> tuple[np.ndarray, ...]:  # pragma: no cover - compiled
        """One pass: each text's tokens hashed, each hash numbered on the spot (`_find`/`_add`), and
        only a new word's bytes noted: no array per token but the numbers."""
        n_texts = len(offsets) - 1
        longest = 0
        for t in range(n_texts):
            longest = max(longest, offsets[t + 1] - offsets[t])
        low = np.empty(longest, dtype=np.uint8)
        is_word = np.empty(longest + 1, dtype=np.uint8)
        hashes = np.empty(longest // 2 + 1, dtype=np.uint64)
        starts = np.empty(longest // 2 + 1, dtype=np.int64)
        ends = np.empty(longest // 2 + 1, dtype=np.int64)
        numbering = _new_numbering(len(buf) // 2 + n_texts, n_texts + 1)
        for t in range(n_texts):
            count = _word_hashes(buf, offsets[t], offsets[t + 1], modes[t], 0, low, is_word, hashes, starts, ends)
            numbering = _number_words(numbering, hashes, starts, ends, count, t)
        return _numbered(numbering)

    @_jit
    def _new_numbering(tokens: int, offsets: int) -> tuple[Any, ...]:  # pragma: no cover - compiled
        """An empty numbering of up to `tokens` tokens in `offsets` - 1 texts: (ids, token offsets,
        table, distinct hashes, first spellings' starts and lengths, distinct count, token count)."""
        return (np.empty(tokens, dtype=np.int32), np.zeros(offsets, dtype=np.int64),
                np.zeros((1 << 12, 2), dtype=np.uint64), np.empty(1 << 11, dtype=np.uint64),
                np.empty(1 << 11, dtype=np.int64), np.empty(1 << 11, dtype=np.int64), 0, 0)

    @_jit
    def _number_words(numbering: tuple[Any, ...], hashes: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                      count: int, t: int) -> tuple[Any, ...]:  # pragma: no cover - compiled
        """Text t's `count` token hashes numbered on the spot (`_find`/`_add`), noting only a new
        word's bounds; returns the numbering, whose arrays may be new (grown)."""
        ids, token_offsets, table, distinct, word_start, word_length, n_distinct, n = numbering
        for k in range(count):
            v = hashes[k]
            s = _find(table, v)
            if table[s, 1] != 0:
                ids[n] = np.int32(table[s, 1] - _U64(1))
            else:
                table, distinct = _add(table, distinct, n_distinct, v)
                if n_distinct == len(word_start):
                    word_start = np.concatenate((word_start, np.empty(n_distinct, dtype=np.int64)))
                    word_length = np.concatenate((word_length, np.empty(n_distinct, dtype=np.int64)))
                word_start[n_distinct] = starts[k]
                word_length[n_distinct] = ends[k] - starts[k]
                ids[n] = n_distinct
                n_distinct += 1
            n += 1
        token_offsets[t + 1] = n
        return ids, token_offsets, table, distinct, word_start, word_length, n_distinct, n

    @_jit
    def _numbered(numbering: tuple[Any, ...]) -> tuple[Any, ...]:  # pragma: no cover - compiled
        """The `DistinctWords` arrays of a numbering (ids, token offsets, hashes, starts, lengths)."""
        ids, token_offsets, _, distinct, word_start, word_length, n_distinct, n = numbering
        return (ids[:n], token_offsets, distinct[:n_distinct].copy(), word_start[:n_distinct].copy(),
                word_length[:n_distinct].copy())


def line_keys(normalised: Sequence[str]) -> list[str]:
    """`line_key_of_normalised` of every text: ASCII texts in one compiled pass over the batch, others
    (and all of them without numba) by the Python function."""
    if not AVAILABLE:
        return [line_key_of_normalised(norm) for norm in normalised]
    p = _packed(normalised)
    buf, offsets = _ascii_line_keys(p.buf, p.offsets, p.modes, _PUNCT_TABLE)
    bounds = offsets.tolist()
    keys = [buf[a:b].tobytes() for a, b in pairwise(bounds)]
    if p.forms is not None:  # the other texts' keys were made as they were packed
        ends = p.forms.key_offsets.tolist()
        for k, (a, b) in zip(p.unicode.tolist(), pairwise(ends), strict=True):
            keys[k] = p.forms.keys[a:b].tobytes()
    return [key.decode("utf-8") for key in keys]


@dataclass(frozen=True, slots=True)
class LineKeys:
    """What chrome needs of each paragraph's line key, without the key itself: its length in
    characters (`ChromeStats` tracks keys up to a length), its words and stop words
    (`ENGLISH_STOPWORDS`; words are its space-separated tokens) and its XXH64 (the key
    `chrome.ChromeStats` counts recurrence under). Keys are as long as their paragraphs, so
    holding these four numbers instead of the strings saves about a text's worth of memory."""

    chars: np.ndarray  # int32
    words: np.ndarray  # int32
    stops: np.ndarray  # int32
    hashes: np.ndarray  # uint64


def line_keys_with_cues(normalised: Sequence[str] | Packed) -> LineKeys:
    """The `LineKeys` of every text, counted in one compiled pass over the ASCII keys' bytes (each
    short token looked up in a small hash table of the stop words' bytes); no string is made
    for an ASCII key."""
    if not AVAILABLE:
        assert not isinstance(normalised, Packed), "texts are packed only for the compiled kernels"
        keys = [line_key_of_normalised(norm) for norm in normalised]
        split = [key.split() for key in keys]
        return LineKeys(np.fromiter(map(len, keys), dtype=np.int32, count=len(keys)),
                        np.fromiter(map(len, split), dtype=np.int32, count=len(keys)),
                        np.fromiter((sum(map(ENGLISH_STOPWORDS.__contains__, t)) for t in split), dtype=np.int32,
                                    count=len(keys)),
                        np.fromiter((xxhash.xxh64_intdigest(key.encode("utf-8")) for key in keys), dtype=np.uint64,
                                    count=len(keys)))
    p = _packed(normalised)
    buf, offsets = _ascii_line_keys(p.buf, p.offsets, p.modes, _PUNCT_TABLE)
    chars = np.diff(offsets).astype(np.int32)  # ASCII: one byte per character
    words, stops, hashes = _key_cues(buf, offsets, *_STOP_TABLE)
    if p.forms is not None:  # the other texts' keys were made as they were packed
        f = p.forms
        chars[p.unicode] = f.key_chars
        words[p.unicode], stops[p.unicode], hashes[p.unicode] = _key_cues(f.keys, f.key_offsets, *_STOP_TABLE)
    return LineKeys(chars, words, stops, hashes)


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _stop_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The stop words' bytes and an open-addressing table of them by FNV-1a hash (a quarter full)."""
    spelt = sorted(w.encode("utf-8") for w in ENGLISH_STOPWORDS)
    starts = np.zeros(len(spelt) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in spelt], out=starts[1:])
    slots = 1 << max(4, (4 * len(spelt) - 1).bit_length())
    table = np.full(slots, -1, dtype=np.int64)
    for k, w in enumerate(spelt):
        slot = _fnv1a(w) & (slots - 1)
        while table[slot] != -1:
            slot = (slot + 1) & (slots - 1)
        table[slot] = k
    return np.frombuffer(b"".join(spelt), dtype=np.uint8), starts, table, max(map(len, spelt))


_STOP_TABLE = _stop_table()

if AVAILABLE:
    @_jit
    def _key_cues(buf: np.ndarray, offsets: np.ndarray, spelt: np.ndarray, starts: np.ndarray,
                  table: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        n_keys = len(offsets) - 1
        words = np.zeros(n_keys, dtype=np.int32)
        stops = np.zeros(n_keys, dtype=np.int32)
        hashes = np.empty(n_keys, dtype=np.uint64)
        mask = len(table) - 1
        for k in range(n_keys):
            i, end = offsets[k], offsets[k + 1]
            hashes[k] = _xxh64(buf, i, end)
            while i < end:
                while i < end and buf[i] == 32:
                    i += 1
                if i == end:
                    break
                j = i
                h = _U64(0xCBF29CE484222325)
                while j < end and buf[j] != 32:
                    h = (h ^ _U64(buf[j])) * _U64(0x100000001B3)
                    j += 1
                words[k] += 1
                if j - i > longest:
                    i = j
                    continue
                slot = h & _U64(mask)
                while table[slot] != -1:
                    w = table[slot]
                    if starts[w + 1] - starts[w] == j - i:
                        same = True
                        for q in range(j - i):
                            if spelt[starts[w] + q] != buf[i + q]:
                                same = False
                                break
                        if same:
                            stops[k] += 1
                            break
                    slot = (slot + _U64(1)) & _U64(mask)
                i = j
        return words, stops, hashes


_PUNCT_TABLE = np.zeros(256, dtype=np.uint8)  # 1 for what `line_key` turns into spaces: ASCII punctuation...
_PUNCT_TABLE[np.frombuffer(b"!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~", dtype=np.uint8)] = 1
_PUNCT_TABLE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1  # ...and the ASCII whitespace `str.split` splits on

if AVAILABLE:
    @_jit
    def _ascii_line_keys(buf: np.ndarray, offsets: np.ndarray, modes: np.ndarray,
                         punct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """Per raw ASCII text: each run of digits becomes one "0", punctuation a space, spaces
        collapsed and trimmed (the ASCII branch of `line_key_of_normalised`, whose whitespace is
        single spaces). Other texts get an empty range."""
        out = np.empty(len(buf), dtype=np.uint8)
        out_offsets = np.zeros(len(offsets), dtype=np.int64)
        n = 0
        for t in range(len(offsets) - 1):
            begin = n
            if modes[t] != _RAW_ASCII:
                out_offsets[t + 1] = n
                continue
            pending_space = False
            in_digits = False
            for i in range(offsets[t], offsets[t + 1]):
                c = buf[i]
                if punct[c]:  # punctuation, or whitespace as `str.split` sees it
                    pending_space = True
                    in_digits = False
                    continue
                is_digit = bool(np.uint8(c - np.uint8(48)) < np.uint8(10))
                if is_digit and in_digits:
                    continue
                if pending_space and n > begin:
                    out[n] = 32
                    n += 1
                pending_space = False
                out[n] = np.uint8(48) if is_digit else c
                n += 1
                in_digits = is_digit
            out_offsets[t + 1] = n
        return out[:n].copy(), out_offsets


def sorted_ranks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each value's position among the sorted distinct values, and their number: what
    `np.searchsorted(unique_sorted(values), values)` gives, with one hash-table pass over the values
    and a sort of the distinct ones only (a term occurs many times; tens of times fewer distinct)."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    local, distinct = _first_use_numbers(np.ascontiguousarray(values, dtype=np.uint64))
    rank = np.empty(len(distinct), dtype=np.int32 if len(distinct) < 2**31 else np.int64)  # int32: half the memory
    rank[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
    return rank[local], len(distinct)


if AVAILABLE:
    @_jit
    def _slot(value: np.uint64, mask: np.uint64) -> np.uint64:
        """Home slot of a value in a power-of-two open-addressing table (high bits mixed down)."""
        return (value ^ (value >> _U64(31))) * _M & mask

    @_jit
    def _find(table: np.ndarray, v: np.uint64) -> np.uint64:  # pragma: no cover - compiled
        """The slot of value v in a numbering table, or the empty slot where it goes.

        A table is open addressing over (value, number + 1) slots, 0 marking an empty one; value and
        number side by side, so a probe reads one cache line (as two arrays, each probe missed the
        cache twice: five times slower)."""
        mask = _U64(len(table) - 1)
        s = _slot(v, mask)
        while table[s, 1] != 0 and table[s, 0] != v:
            s = (s + _U64(1)) & mask
        return s

    @_jit
    def _add(table: np.ndarray, distinct: np.ndarray, n_distinct: int,
             v: np.uint64) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """Number a value not in the table n_distinct, growing the table (kept at most half full)
        and the list of distinct values as needed; returns both, maybe new."""
        if 2 * (n_distinct + 1) > len(table):
            table = np.zeros((2 * len(table), 2), dtype=np.uint64)
            grown = np.empty(len(table) // 2, dtype=np.uint64)
            grown[:n_distinct] = distinct[:n_distinct]
            distinct = grown
            for d in range(n_distinct):
                r = _find(table, distinct[d])
                table[r, 0] = distinct[d]
                table[r, 1] = _U64(d + 1)
        s = _find(table, v)
        table[s, 0] = v
        table[s, 1] = _U64(n_distinct + 1)
        distinct[n_distinct] = v
        return table, distinct

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
    if not AVAILABLE:
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


if AVAILABLE:
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


def merged_signatures(signatures: np.ndarray, rows: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """`minhash.merge_signatures(signatures[rows], groups, n_groups)`: each group's signature of the
    union of its rows' shingle sets (a page's from its paragraphs'), read in place rather than
    through a copy of the chosen rows and `np.minimum.at` (at 30k documents 0.6 s and 130 MB)."""
    if not AVAILABLE:
        return merge_signatures(signatures[rows], groups, n_groups)
    return _merged_signatures(np.ascontiguousarray(signatures), np.ascontiguousarray(rows, dtype=np.int64),
                              np.ascontiguousarray(groups, dtype=np.int64), n_groups)


if AVAILABLE:
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
    if not AVAILABLE:
        return values[range_indices(starts, lengths)]
    return _gather_ranges(np.ascontiguousarray(values), np.ascontiguousarray(starts, dtype=np.int64),
                          np.ascontiguousarray(lengths, dtype=np.int64))


if AVAILABLE:
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
    if not AVAILABLE:
        mapped = mapping[ids]
        kept = np.flatnonzero(mapped >= 0)
        return mapped[kept], np.searchsorted(kept, offsets)
    return _mapped_kept(mapping, np.ascontiguousarray(ids), np.ascontiguousarray(offsets, dtype=np.int64))


if AVAILABLE:
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
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return _distinct_of_ranges(np.ascontiguousarray(values, dtype=np.uint32),
                               np.ascontiguousarray(starts, dtype=np.int64),
                               np.ascontiguousarray(lengths, dtype=np.int64),
                               np.ascontiguousarray(offsets, dtype=np.int64))


if AVAILABLE:
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
        return out[:m], indptr  # a view: see _prefix_cut


if AVAILABLE:
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
               min_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Story's L2-normalised TF-IDF rows of a CSR count matrix (`story._tfidf`, whose numpy form
    gives the same values): entry weight `log_tf[count] * idf[term]`, rows of fewer than `min_terms`
    distinct terms and terms of idf 0 left out, and columns renumbered by `story._ranks` of the
    kept entries' document frequencies (rarest first, ties by term), which the prefix cut needs.
    Two passes over the rows: count what is kept and each term's texts, then fill. The weights are
    written over `indices` and `counts` (each entry at or before where it was read), which come
    back shrunk to the entries kept (`shrunk`; about half of a dump's are): the counts are used up,
    and the matrix is never held twice, where numpy's form holds about five arrays as long as it at
    once, the story stage's peak of memory. Counts that are not float64 are copied first, and so are
    left as they were. `log_tf` is 1 + ln(c) for each count c, worked out by numpy so that both forms
    use the same logarithms. Each row's entries stay in term order."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    counts = np.ascontiguousarray(counts, dtype=np.float64)
    out_ptr = _tfidf_rows(indptr, indices, counts, idf, log_tf, min_terms)
    kept = int(out_ptr[-1])
    return out_ptr, shrunk(indices, kept), shrunk(counts, kept)


if AVAILABLE:
    @_jit
    def _tfidf_rows(indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray, idf: np.ndarray, log_tf: np.ndarray,
                    min_terms: int) -> np.ndarray:  # pragma: no cover - compiled
        n = len(indptr) - 1
        out_ptr = np.zeros(n + 1, dtype=np.int64)
        df = np.zeros(len(idf), dtype=np.int64)
        for i in range(n):
            kept = 0
            if indptr[i + 1] - indptr[i] >= min_terms:
                for e in range(indptr[i], indptr[i + 1]):
                    if idf[indices[e]] != 0.0:
                        kept += 1
                        df[indices[e]] += 1
            out_ptr[i + 1] = out_ptr[i] + kept
        rank = np.empty(len(idf), dtype=indices.dtype)
        rank[np.argsort(df, kind="mergesort")] = np.arange(len(idf))  # stable: ties by term
        out_idx, out_data = indices, counts  # in place: entry m is written once entries up to m are read
        for i in range(n):
            first, m = out_ptr[i], out_ptr[i]
            if first == out_ptr[i + 1]:
                continue
            for e in range(indptr[i], indptr[i + 1]):
                w = log_tf[np.int64(counts[e])] * idf[indices[e]]
                if w != 0.0:
                    out_idx[m] = rank[indices[e]]
                    out_data[m] = w
                    m += 1
            # numpy's reduceat: the first square, plus numpy's pairwise sum of the others.
            norm = np.sqrt(out_data[first] * out_data[first] + _pairwise_squares(out_data, first + 1, m - first - 1))
            for q in range(first, m):
                out_data[q] /= norm
        return out_ptr


def pair_dots(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, columns: int, rows: np.ndarray,
              others: np.ndarray) -> np.ndarray:
    """Dot product of CSR rows `rows[k]` and `others[k]` (sorted indices) for each k.

    Row `rows[k]` is spread into a dense scratch row (once for a run of equal `rows`, as candidate
    pairs come grouped) and the other row's entries gather from it, in column order, without a
    sparse row copy per pair. The products are scipy's elementwise ones; their sum is sequential
    where numpy's row sum is pairwise, so the two differ in the last bits (below 1e-15)."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return _pair_dots(indptr, indices, data, columns, rows, others)


if AVAILABLE:
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


def warm_up() -> None:
    """Load every kernel's compiled code (from numba's cache, or compile it) in this process.

    Call it before forking workers: they inherit the loaded code instead of each loading it again
    (about half a second per worker and per pool)."""
    if not AVAILABLE:
        return
    hasher = MinHasher(2, 1)
    text_signatures(["a b c d e f"], 5, hasher)
    text_shingle_sets(["a b c d e f"], 5)
    band_keys(np.zeros((1, 4), dtype=np.uint32), 2, 2)
    bucket_pairs(np.zeros((2, 2), dtype=np.uint64), np.arange(2), 16, compact_from=0)  # with its compaction
    distinct_words(["a b"])
    line_keys_with_cues(["a 1 the", "ça"])  # "ça" also loads `unicode_forms`' kernel and builds its tables
    sorted_ranks(np.array([2, 1], dtype=np.uint64))
    for ids in (np.array([1, 0, 1], dtype=np.int32), np.array([1, 0, 1], dtype=np.int64)):
        row_counts(ids, np.array([0, 3], dtype=np.int64))
    distinct_of_ranges(np.array([1, 0, 1], dtype=np.uint32), np.array([0]), np.array([3]), np.array([0, 1]))
    mapped_kept(np.array([-1, 0], dtype=np.int32), np.array([1, 0], dtype=np.int32), np.array([0, 2]))
    merged_signatures(np.zeros((2, 4), dtype=np.uint32), np.array([1]), np.array([0]), 1)
    for dtype in (np.int32, np.int64, np.uint32):  # term ids; shingle hashes (`features` copies repeated lines')
        gather_ranges(np.array([1, 0, 1], dtype=dtype), np.array([0]), np.array([3]))
    shared_counts(np.zeros(1, dtype=np.uint32), np.array([0, 1], dtype=np.int64), np.zeros(1, dtype=np.int64),
                  np.zeros(1, dtype=np.int64))
    indptr, indices, data = np.array([0, 1], dtype=np.int32), np.zeros(1, dtype=np.int32), np.ones(1)
    one = sp.csr_matrix(np.ones((1, 1)))
    prefix_candidates(one.indptr, one.indices, one.data, one.tocsc(), 0, 1, np.zeros(1, dtype=np.int64),
                      np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros((1, 1), dtype=np.float32), 0.5)
    pair_dots(indptr, indices, data, 1, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
    tfidf_rows(indptr.astype(np.int64), indices, np.ones(1), np.ones(1), np.ones(2), 1)
    from .chrome_compiled import classify_pages  # it builds on this module

    one_line = np.ones(1, dtype=np.int64)
    classify_pages(np.zeros(1, dtype=np.uint8), one_line, one_line, one_line, one_line, np.array([0, 1]), one_line)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """`lsh.band_keys` row by row: each band's slots folded into one key, reading every signature
    once in memory order (the numpy form reads one column of all signatures at a time)."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    return _band_keys(np.ascontiguousarray(signatures, dtype=np.uint32), bands, rows)


if AVAILABLE:
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


def bucket_pairs(keys: np.ndarray, index: np.ndarray, all_pairs_up_to: int,
                 compact_from: int = 1 << 22) -> np.ndarray:
    """`lsh.candidate_pairs`: in each band (column of `keys`), the rows of `index` (ascending) whose
    keys are equal, paired as `lsh._bucket_pairs` pairs a run of them (all pairs up to
    `all_pairs_up_to` rows, else a star and a chain in ascending order). One pass per band through
    a hash table instead of a sort. The pairs are kept as one 8-byte code each, sorted in place and
    returned once each as (low, high) rows, sorted (a pair similar enough comes up in most bands: at
    30k paragraphs 1.6M were found for 138k distinct ones, and deduplicating their (n, 2) copies
    with numpy was the scan's peak of memory). Past `compact_from` codes, the buffer is sorted and
    deduplicated in place after a band whenever it has doubled since the last time: pages that
    repeat a signed line (chrome, a site's boilerplate sentence) put the same pairs in every band
    (the syndication set eight times over: 44M codes for about 3M pairs)."""
    if not AVAILABLE:
        raise RuntimeError("numba is not available")
    rows = keys if len(index) == len(keys) else keys[index]  # index is ascending: all rows, or some
    by_band = np.ascontiguousarray(rows.T)  # one band's keys side by side
    del rows
    index = np.ascontiguousarray(index, dtype=np.int64)
    m = len(index)
    cap = 2
    while cap < 2 * m:
        cap <<= 1
    # A slot: key, first row + 1 (0: empty), last row, run size; side by side, so one probe reads one
    # cache line, and its first two as in a numbering table, so `_find` probes it. Only the slots a
    # band used are emptied for the next.
    table = np.zeros((cap, 4), dtype=np.uint64)
    scratch = np.empty((3, max(m, 1)), dtype=np.int64)  # slots used, next row of a run, a run's rows
    width = np.uint64(index[-1] + 1) if m else np.uint64(1)  # a pair's code: low * width + high
    codes = np.empty(1024, dtype=np.uint64)
    found = distinct = 0
    for band in by_band:
        codes, found = _band_pairs(band, index, all_pairs_up_to, table, scratch, width, codes, found)
        if found > compact_from and found > 2 * distinct:
            head = codes[:found]
            head.sort()  # in place (numpy's sort: several times numba's here)
            found = distinct = _distinct_in_place(head)
    del by_band, table, scratch
    head = codes[:found]
    head.sort()
    return pairs_of_codes(distinct_of_sorted(head), int(width))


if AVAILABLE:
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
    def _band_pairs(keys: np.ndarray, index: np.ndarray, small: int, table: np.ndarray, scratch: np.ndarray,
                    width: np.uint64, codes: np.ndarray, found: int
                    ) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
        """One band's pairs appended to codes[found:] (grown when full); the codes and their count."""
        used, after, members = scratch[0], scratch[1], scratch[2]
        n_used = 0
        for p in range(keys.size):
            v = keys[p]
            s = _find(table, v)
            if table[s, 1] == 0:
                table[s, 0] = v
                table[s, 1] = _U64(p + 1)
                table[s, 3] = 1
                used[n_used] = s
                n_used += 1
            else:
                after[table[s, 2]] = p
                table[s, 3] += _U64(1)
            table[s, 2] = _U64(p)
        for u in range(n_used):
            s = used[u]
            k = np.int64(table[s, 3])
            at = np.int64(table[s, 1]) - 1
            table[s, 1] = 0
            if k < 2:
                continue
            for q in range(k):  # ascending, as the rows are
                members[q] = index[at]
                if q + 1 < k:
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
                for q in range(1, k):
                    codes[found] = _U64(members[0]) * width + _U64(members[q])
                    codes[found + 1] = _U64(members[q - 1]) * width + _U64(members[q])
                    found += 2
        return codes, found
