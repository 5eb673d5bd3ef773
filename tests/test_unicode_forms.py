"""The compiled forms of non-ASCII text are exactly what `normalize`, `tokenize` and `line_key` give."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import kernels
from dedupe.normalize import line_key_of_normalised, normalize, tokenize

from .test_kernels import _any_text

compiled = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba kernels not available")


def _decoded(buf: np.ndarray, offsets: np.ndarray) -> list[str]:
    data = buf.tobytes()
    return [data[a:b].decode("utf-8") for a, b in pairwise(offsets.tolist())]


def _assert_python_forms(texts: list[str], normalised: bool) -> None:
    from dedupe.unicode_forms import unicode_forms

    forms = unicode_forms(texts, normalised)
    norms = texts if normalised else [normalize(t) for t in texts]
    keys = [line_key_of_normalised(n) for n in norms]
    spaced = [" ".join(tokenize(n)) for n in norms]
    assert _decoded(forms.normal, forms.normal_offsets) == norms
    assert _decoded(forms.spaced, forms.spaced_offsets) == spaced
    assert _decoded(forms.keys, forms.key_offsets) == keys
    assert forms.key_chars.tolist() == [len(k) for k in keys]
    alone = unicode_forms(texts, normalised, full=False)  # what signing alone needs
    assert _decoded(alone.spaced, alone.spaced_offsets) == spaced


@compiled
@settings(max_examples=300, deadline=None)
@given(st.lists(_any_text, max_size=12), st.booleans())
def test_forms_equal_the_python_functions(texts: list[str], already_normalised: bool) -> None:
    texts = [*texts, "“Akazawa’s” talks — 12,5 km…", "ΣΊΣΥΦΟΣ ﬁnal ẞ İstanbul", "emoji 😀 📹 𐐀𐐨 𝐀𝟏 𠀀 \U000e0041",
             "bell\x07 and DEL\x7f ﬁ", "\u00a0no-break\u2003em\u3000ideographic space", "",
             "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8", "\u0b47\u0b3e", "e\u0301", "\u2026\u0301",
             "\u3316" * 300, "ok"]  # a text that grows sixfold, past the buffers' room, then one after it
    _assert_python_forms([normalize(t) for t in texts] if already_normalised else texts, already_normalised)


@compiled
def test_every_code_point_of_the_first_two_planes_alone_and_between_words() -> None:
    """Each table entry is checked: a code point on its own, and inside a word with digits (folds
    that grow, change class or split a word); and a few past the tables."""
    points = [chr(cp) for cp in [*range(0x20000), 0x20000, 0x2A6DF, 0xE0041, 0xF0000, 0x10FFFF]
              if not 0xD800 <= cp < 0xE000]
    _assert_python_forms(points, False)
    _assert_python_forms([f"Ab{c}9x {c}Z1" for c in points], False)


@compiled
def test_texts_the_tables_do_not_cover_are_left_to_python_and_the_rest_are_not() -> None:
    from dedupe.kernels import _joined
    from dedupe.unicode_forms import _forms, _tables

    texts = ["plain “quotes” — and é", "emoji 😀", "bell\x07", "Ünïcödé ß", "CJK extension B 𠀀", "𐐀 Deseret"]
    buf, offsets = _joined([t.encode("utf-8") for t in texts])
    t = _tables()
    covered = _forms(buf, offsets, *t.raw, t.classes, True)[-1]
    assert covered.tolist() == [True, True, False, True, False, True]
    _assert_python_forms(texts, False)


@compiled
def test_code_points_put_in_nfkc_one_at_a_time_agree_with_nfkc_of_the_whole_text() -> None:
    """The raw table applies NFKC per code point only where it does not depend on the neighbours:
    every code point it maps is checked beside letters, combining marks, Hangul jamo and itself."""
    from dedupe.unicode_forms import _tables

    count, points = _tables().raw
    mapped = [chr(cp) for cp in np.flatnonzero(count).tolist() if count[cp] != 1 or points[cp, 0] != cp]
    assert len(mapped) > 1000 and "…" in mapped and "\u00a0" in mapped
    texts = [t for c in mapped for t in (f"x{c}y", f"{c}\u0301", f"\u1100{c}\u1161", f"{c}{c}", f"e{c}\u0308")]
    _assert_python_forms(texts, False)


@compiled
def test_every_canonical_composition_pair_is_composed_as_nfkc_composes_it() -> None:
    """Each pair of code points that NFC composes (a letter and its mark, Oriya or Hangul parts),
    alone and behind a letter: what makes NFKC depend on a code point's neighbours."""
    import unicodedata

    pairs = []
    for cp in range(0x20000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            pairs.append("".join(chr(int(x, 16)) for x in parts))
    pairs += ["\u1100\u1161", "\uac00\u11a8", "\u1100\u1161\u11a8"]
    assert len(pairs) > 900
    _assert_python_forms([*pairs, *(f"a{p}b" for p in pairs)], False)
