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


Besides signing, this module packs a batch once for every per-batch kernel (`pack_paragraphs`) and
numbers its distinct words (`distinct_words`, so story stems are looked up once per distinct word).
The other kernels take per-token or per-pair Python loops off the later stages, each with a
Python/numpy path that gives the same result, in a module per stage built on this one:

- `kernels_segment`: a batch's documents split into paragraphs.
- `kernels_lines`: chrome's line keys of ASCII text and their words, stop words and hashes.
- `kernels_story`: the story stage's term numbering and counts, TF-IDF rows, prefix/tail cut,
  candidates and cosines.
- `kernels_rows`: gathers and merges over flat rows (exact shingle overlaps, merged signatures,
  documents' shingle sets from their paragraphs', range gathers, words mapped to story terms).
- `kernels_lsh`: LSH band keys row by row, and candidates by hashing each band's keys.

`chrome_compiled` (chrome's page classification over many pages at once) and `unicode_forms` build
on this module too.

Without numba, the signing and line-key functions run the numpy/Python path themselves and the
callers of the others take theirs (`kernels.AVAILABLE` says which: the sibling modules read it here
at call time); the results are the same (`kernels_story.pair_dots` sums in another order: equal to
1e-15). `DEDUPE_NUMBA=0` in the environment turns the kernels off (for comparisons and debugging).
Call `warm_up` before forking workers. numba invalidates a cached kernel only when its own file
changes: after changing a helper here that sibling modules' kernels call (`_xxh64`, `_find`,
`_add`, `_sort_u32`), clear numba's cache (`dedupe/__pycache__/*.nb[ic]`) or they keep the old one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .arrays import unique_sorted
from .minhash import MinHasher
from .normalize import normalize, tokenize
from .shingle import shingle

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
    buf, offsets = _normalised_ascii(joined, offsets, modes, _SPACE_TABLE, _LOWER_TABLE)
    return Packed(buf, offsets, modes, np.flatnonzero(modes).astype(np.int64), forms)


def _packed(texts: Sequence[str] | Packed) -> Packed:
    return texts if isinstance(texts, Packed) else pack_normalised(texts)


_SPACE_TABLE = np.zeros(256, dtype=np.uint8)  # the ASCII whitespace `str.split` splits on
_SPACE_TABLE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1
_LOWER_TABLE = np.arange(256, dtype=np.uint8)  # each byte lower-cased (ASCII letters only)
_LOWER_TABLE[65:91] += 32

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

    _BUCKETED = 320  # the most values `_sort_u32` sorts by one bucket pass and an insertion sort

    @_jit
    def _insertion_sort(src: np.ndarray, dst: np.ndarray, n: int) -> None:
        """src[:n] into dst[:n] in order (src and dst may be the same array); quick when nearly sorted."""
        for i in range(n):
            x = src[i]
            j = i - 1
            while j >= 0 and dst[j] > x:
                dst[j + 1] = dst[j]
                j -= 1
            dst[j + 1] = x

    @_jit
    def _scatter_by_byte(src: np.ndarray, dst: np.ndarray, n: int, c: np.ndarray, shift: int) -> None:
        """src[:n] into dst[:n] stably by the byte at `shift`, given each byte's count in `c` (256
        entries, used up as the running positions): one pass of a radix sort."""
        total = 0
        for d in range(256):
            k = c[d]
            c[d] = total
            total += k
        for i in range(n):
            x = src[i]
            d = (x >> shift) & 0xFF
            dst[c[d]] = x
            c[d] += 1

    @_jit
    def _sort_u32(a: np.ndarray, n: int, tmp: np.ndarray, count: np.ndarray) -> None:
        """Sort a[:n] in place: insertion sort when short; up to `_BUCKETED` values, one pass into
        256 buckets by their highest 8 varying bits, then insertion sort of the nearly sorted result;
        else an LSD radix sort (4 passes of 8 bits, less a pass on a byte every value shares: term
        ids below 2^16 take two).

        np.sort (a quicksort) took as long as all the hashing on document-sized inputs. On random
        32-bit values the bucketed form takes 3.5-3.9 ns a value at 60-200 values against the radix
        sort's 4.8-9.3 (its four passes clear and sum 1,024 counts whatever n is), and loses above
        about 300.
        """
        if n <= 40:
            _insertion_sort(a, a, n)
            return
        if n <= _BUCKETED:
            varying = _U64(0)
            first = _U64(a[0])
            for i in range(n):
                varying |= _U64(a[i]) ^ first
            shift = 0
            while (varying >> _U64(shift + 8)) != 0:
                shift += 1
            c = count[0]
            c[:] = 0
            for i in range(n):
                c[(a[i] >> shift) & 0xFF] += 1
            _scatter_by_byte(a, tmp, n, c, shift)
            _insertion_sort(tmp, a, n)
            return
        count[:] = 0
        for i in range(n):
            x = a[i]
            count[0, x & 0xFF] += 1
            count[1, (x >> 8) & 0xFF] += 1
            count[2, (x >> 16) & 0xFF] += 1
            count[3, x >> 24] += 1
        src, dst = a, tmp
        moved = 0
        for p in range(4):
            c = count[p]
            shift = 8 * p
            if c[(src[0] >> shift) & 0xFF] == n:  # every value has this byte alike (small ids' high
                continue  # bytes): the pass would leave the order as it is
            _scatter_by_byte(src, dst, n, c, shift)
            src, dst = dst, src
            moved += 1
        if moved % 2:  # after an odd number of passes the result is in `tmp`
            a[:n] = tmp[:n]

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
    def _fold_min(sig: np.ndarray, shingles: np.ndarray, ns: int, a: np.ndarray, b: np.ndarray) -> None:
        """Each permutation's minimum over shingles[:ns] folded into `sig`. Four shingles a pass:
        each slot is then read and written once per four, not once per shingle (3x faster)."""
        s = 0
        while s + 4 <= ns:
            x1, x2 = _fmix32(shingles[s]), _fmix32(shingles[s + 1])
            x3, x4 = _fmix32(shingles[s + 2]), _fmix32(shingles[s + 3])
            for k in range(len(a)):
                ak, bk = _U64(a[k]), _U64(b[k])
                low = min(np.uint32((ak * x1 + bk) & _MASK32), np.uint32((ak * x2 + bk) & _MASK32))
                high = min(np.uint32((ak * x3 + bk) & _MASK32), np.uint32((ak * x4 + bk) & _MASK32))
                sig[k] = min(sig[k], min(low, high))
            s += 4
        while s < ns:
            x = _fmix32(shingles[s])
            for k in range(len(a)):
                sig[k] = min(sig[k], np.uint32((_U64(a[k]) * x + _U64(b[k])) & _MASK32))
            s += 1

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
            _fold_min(sigs[row], shingles, ns, a, b)
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


if AVAILABLE:
    @_jit
    def _normalised_ascii(buf: np.ndarray, offsets: np.ndarray, modes: np.ndarray, space: np.ndarray,
                          lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """Raw ASCII texts lower-cased, their whitespace runs one space, trimmed; other texts as they are."""
        out = np.empty(len(buf), dtype=np.uint8)
        out_offsets = np.zeros(len(offsets), dtype=np.int64)
        m = np.int64(0)
        for t in range(len(offsets) - 1):
            begin = m
            if modes[t] != _RAW_ASCII:
                for i in range(offsets[t], offsets[t + 1]):
                    out[m] = buf[i]
                    m += 1
                out_offsets[t + 1] = m
                continue
            # Branch-free (spaces fall every few bytes, too often to predict): each byte writes a
            # space where a whitespace run ended after some text, then itself lower-cased, and
            # only what is kept moves `m` on. Neither write passes byte i (the output is never
            # longer than what has been read), so both stay inside `out`.
            after_space = np.int64(0)
            for i in range(offsets[t], offsets[t + 1]):
                c = buf[i]
                sp = np.int64(space[c])
                out[m] = 32
                m += after_space & (sp ^ 1) & np.int64(m > begin)
                out[m] = lower[c]
                m += sp ^ 1
                after_space = sp
            out_offsets[t + 1] = m
        return out[:m], out_offsets  # a view: see kernels_story._prefix_cut


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


def warm_up() -> None:
    """Load every kernel's compiled code (from numba's cache, or compile it) in this process.

    Call it before forking workers: they inherit the loaded code instead of each loading it again
    (about half a second per worker and per pool)."""
    if not AVAILABLE:
        return
    from . import kernels_lines, kernels_lsh, kernels_rows, kernels_segment, kernels_story  # they build on this module

    hasher = MinHasher(2, 1)
    text_signatures(["a b c d e f"], 5, hasher)
    text_shingle_sets(["a b c d e f"], 5)
    kernels_lsh.band_keys(np.zeros((1, 4), dtype=np.uint32), 2, 2)
    kernels_lsh.bucket_pairs(np.zeros((2, 2), dtype=np.uint64), np.arange(2), 16, compact_from=0)  # with its compaction
    kernels_lsh.equal_slots(np.zeros((2, 2), dtype=np.uint32), np.arange(2), np.arange(2))
    distinct_words(["a b"])
    kernels_lines.line_keys(["a 1 the"])
    for texts in (["a\nb"], ["a \u2014 b"]):  # code points of 8 and of 16 bits
        kernels_segment.split_batch(texts)
    # "ça" also loads `unicode_forms`' kernel and builds its tables; a text past their two planes takes
    # the Python path, whose keys come read-only (a kernel compiles once per array type)
    kernels_lines.line_keys_with_cues(["a 1 the", "ça", "a \U00020000 b"])
    kernels_story.sorted_ranks(np.array([2, 1], dtype=np.uint64))
    for ids in (np.array([1, 0, 1], dtype=np.int32), np.array([1, 0, 1], dtype=np.int64)):
        kernels_story.row_counts(ids, np.array([0, 3], dtype=np.int64))
    kernels_rows.distinct_of_ranges(np.array([1, 0, 1], dtype=np.uint32), np.array([0]), np.array([3]),
                                    np.array([0, 1]))
    kernels_rows.mapped_kept(np.array([-1, 0], dtype=np.int32), np.array([1, 0], dtype=np.int32), np.array([0, 2]))
    kernels_rows.merged_signatures(np.zeros((2, 4), dtype=np.uint32), np.array([1]), np.array([0]), 1)
    for dtype in (np.int32, np.int64, np.uint32, np.uint64):  # term ids; shingle hashes (`features`, runs in batches)
        kernels_rows.gather_ranges(np.array([1, 0, 1], dtype=dtype), np.array([0]), np.array([3]))
    kernels_rows.shared_counts(np.zeros(1, dtype=np.uint32), np.array([0, 1], dtype=np.int64),
                               np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
    indptr, indices, data = np.array([0, 1], dtype=np.int32), np.zeros(1, dtype=np.int32), np.ones(1)
    one = sp.csr_matrix(np.ones((1, 1)))
    kernels_story.prefix_candidates(one.indptr, one.indices, one.data, one.tocsc(), 0, 1, np.zeros(1, dtype=np.int64),
                                    np.zeros(1), np.zeros(1, dtype=np.int64), np.zeros((1, 1), dtype=np.float32),
                                    np.ones(1), 0.5)
    kernels_story.pair_dots(indptr, indices, data, 1, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
    kernels_story.tfidf_rows(indptr.astype(np.int64), indices, np.ones(1), np.ones(1), np.ones(2), 1)
    from .chrome_compiled import classify_pages  # it builds on this module

    one_line = np.ones(1, dtype=np.int64)
    classify_pages(np.zeros(1, dtype=np.uint8), one_line, one_line, one_line, one_line, np.array([0, 1]), one_line)
