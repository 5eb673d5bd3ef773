"""Chrome's line keys of a batch of normalised paragraphs, compiled (numba, the optional `fast` extra).

Chrome counts how often a line recurs on a site under its line key (`line_key_of_normalised`: digit
runs as one "0", punctuation as spaces) and weighs the line by the key's words and stop words. Done
in Python, that is a new string, a split and a lookup per word for every paragraph. Here
`line_keys` makes the keys of a batch's ASCII texts in one compiled pass over its packed bytes
(`kernels.Packed`), and `line_keys_with_cues` their lengths, words, stop words and XXH64 without
making a string; other texts' keys come from `unicode_forms`, made as the batch was packed. Without
numba (`kernels.AVAILABLE` false) both run the Python functions themselves, with the same results.
Built on `kernels` (its packing, `_jit` and `_xxh64`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import xxhash

from . import kernels
from .kernels import _RAW_ASCII, Packed, _packed
from .normalize import line_key_of_normalised
from .stopwords import ENGLISH_STOPWORDS

if kernels.AVAILABLE:
    from .kernels import _U64, _jit, _xxh64


def line_keys(normalised: Sequence[str]) -> list[str]:
    """`line_key_of_normalised` of every text: ASCII texts in one compiled pass over the batch, others
    (and all of them without numba) by the Python function."""
    if not kernels.AVAILABLE:
        return [line_key_of_normalised(norm) for norm in normalised]
    p = _packed(normalised)
    buf, offsets = _ascii_line_keys(p.buf, p.offsets, p.modes, _KEY_CLASS, *_STOP_TABLE)
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
    """The `LineKeys` of every text, counted in one compiled pass over the batch (each ASCII key
    made in a small scratch buffer, still in cache when its words are counted, each short token
    looked up in a small hash table of the stop words' bytes); no string is made for an ASCII key."""
    if not kernels.AVAILABLE:
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
    chars, words, stops, hashes = _ascii_key_cues(p.buf, p.offsets, p.modes, _KEY_CLASS, *_STOP_TABLE)
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

if kernels.AVAILABLE:
    @_jit
    def _is_stop(buf: np.ndarray, i: int, end: int, spelt: np.ndarray, starts: np.ndarray,
                 table: np.ndarray) -> bool:  # pragma: no cover - compiled
        """Whether the word buf[i:end] is a stop word (no longer than the longest, the caller checks)."""
        h = _U64(0xCBF29CE484222325)
        for j in range(i, end):
            h = (h ^ _U64(buf[j])) * _U64(0x100000001B3)
        mask = _U64(len(table) - 1)
        slot = h & mask
        while table[slot] != -1:
            w = table[slot]
            if starts[w + 1] - starts[w] == end - i:
                same = True
                for q in range(end - i):
                    if spelt[starts[w] + q] != buf[i + q]:
                        same = False
                        break
                if same:
                    return True
            slot = (slot + _U64(1)) & mask
        return False

    @_jit
    def _cues(buf: np.ndarray, i: int, end: int, spelt: np.ndarray, starts: np.ndarray, table: np.ndarray,
              longest: int) -> tuple[int, int]:  # pragma: no cover - compiled
        """Words and stop words of the key buf[i:end] (space-separated tokens)."""
        words = stops = 0
        while i < end:
            while i < end and buf[i] == 32:
                i += 1
            if i == end:
                break
            j = i
            while j < end and buf[j] != 32:
                j += 1
            words += 1
            if j - i <= longest and _is_stop(buf, i, j, spelt, starts, table):
                stops += 1
            i = j
        return words, stops

    @_jit
    def _key_cues(buf: np.ndarray, offsets: np.ndarray, spelt: np.ndarray, starts: np.ndarray,
                  table: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        """Words, stop words and XXH64 of each key of a packed buffer of keys."""
        n_keys = len(offsets) - 1
        words = np.zeros(n_keys, dtype=np.int32)
        stops = np.zeros(n_keys, dtype=np.int32)
        hashes = np.empty(n_keys, dtype=np.uint64)
        for k in range(n_keys):
            hashes[k] = _xxh64(buf, offsets[k], offsets[k + 1])
            words[k], stops[k] = _cues(buf, offsets[k], offsets[k + 1], spelt, starts, table, longest)
        return words, stops, hashes


_KEY_CLASS = np.zeros(256, dtype=np.uint8)  # each byte's part in a line key: 0 kept as it is,
_KEY_CLASS[np.frombuffer(b"!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~", dtype=np.uint8)] = 1  # 1 a space (punctuation...
_KEY_CLASS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1  # ...and the ASCII whitespace `str.split` splits on),
_KEY_CLASS[48:58] = 2  # 2 a digit (a run of them is one "0")

if kernels.AVAILABLE:
    @_jit
    def _ascii_key(buf: np.ndarray, i: int, end: int, key_class: np.ndarray, out: np.ndarray, n: int,
                   spelt: np.ndarray, starts: np.ndarray, table: np.ndarray,
                   longest: int) -> tuple[int, int, int]:  # pragma: no cover - compiled
        """The key of the raw ASCII text buf[i:end] written at out[n:]: each run of digits becomes one
        "0", punctuation a space, spaces collapsed and trimmed (the ASCII branch of
        `line_key_of_normalised`, whose whitespace is single spaces). Returns where it ends, and its
        words and stop words, each word counted as it is finished (still in cache) instead of in a
        second pass over the key."""
        begin = n
        word = n  # where the word being written began
        words = stops = 0
        state = 0  # after a kept character (or at the start), 1 after spaces, 2 in a run of digits
        for k in range(i, end):
            c = buf[k]
            part = key_class[c]
            if part == 1:
                state = 1
                continue
            if part == 2 and state == 2:
                continue
            if state == 1 and n > begin:
                words += 1
                if n - word <= longest and _is_stop(out, word, n, spelt, starts, table):
                    stops += 1
                out[n] = 32
                n += 1
                word = n
            out[n] = c if part == 0 else np.uint8(48)
            n += 1
            state = part
        if n > begin:
            words += 1
            if n - word <= longest and _is_stop(out, word, n, spelt, starts, table):
                stops += 1
        return n, words, stops

    @_jit
    def _ascii_line_keys(buf: np.ndarray, offsets: np.ndarray, modes: np.ndarray, key_class: np.ndarray,
                         spelt: np.ndarray, starts: np.ndarray, table: np.ndarray,
                         longest: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
        """The key of each raw ASCII text (`_ascii_key`), packed; other texts get an empty range."""
        out = np.empty(len(buf), dtype=np.uint8)
        out_offsets = np.zeros(len(offsets), dtype=np.int64)
        n = 0
        for t in range(len(offsets) - 1):
            if modes[t] == _RAW_ASCII:
                n = _ascii_key(buf, offsets[t], offsets[t + 1], key_class, out, n, spelt, starts, table, longest)[0]
            out_offsets[t + 1] = n
        return out[:n].copy(), out_offsets

    @_jit
    def _ascii_key_cues(buf: np.ndarray, offsets: np.ndarray, modes: np.ndarray, key_class: np.ndarray,
                        spelt: np.ndarray, starts: np.ndarray, table: np.ndarray,
                        longest: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        """`LineKeys`' four numbers of each raw ASCII text's key, made one at a time in a scratch
        buffer (ASCII: a character a byte); other texts get zeros."""
        n_texts = len(offsets) - 1
        chars = np.zeros(n_texts, dtype=np.int32)
        words = np.zeros(n_texts, dtype=np.int32)
        stops = np.zeros(n_texts, dtype=np.int32)
        hashes = np.zeros(n_texts, dtype=np.uint64)
        scratch = np.empty(4096, dtype=np.uint8)
        for t in range(n_texts):
            if modes[t] != _RAW_ASCII:
                continue
            if offsets[t + 1] - offsets[t] > len(scratch):  # a key is never longer than its text
                scratch = np.empty(2 * (offsets[t + 1] - offsets[t]), dtype=np.uint8)
            n, words[t], stops[t] = _ascii_key(buf, offsets[t], offsets[t + 1], key_class, scratch, 0, spelt,
                                               starts, table, longest)
            chars[t] = n
            hashes[t] = _xxh64(scratch, 0, n)
        return chars, words, stops, hashes
