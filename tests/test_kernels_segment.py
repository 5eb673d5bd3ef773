"""The compiled segmenter splits a batch exactly as `segment.split_spans` splits each text."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import kernels, kernels_segment
from dedupe.kernels_segment import BatchSpans, split_batch
from dedupe.segment import split_spans

compiled = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba kernels not available")

_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\n\n", "\n \t\n"]
_SPACES = " \t\x1f\xa0\u2003\u3000"
_word = st.text(alphabet="abcXYZ019éßÀ’ŁΩ", min_size=1, max_size=12)
_line = st.one_of(
    st.just(""),
    st.text(alphabet=_SPACES, min_size=1, max_size=3),
    # a line of words, long or short, starting in upper or lower case or a space, ending a sentence or not
    st.tuples(st.sampled_from(["", " ", "\t", "\xa0", "a", "B", "é", "Ł"]),
              st.lists(_word, min_size=1, max_size=18).map(" ".join),
              st.sampled_from(["", ".", "?", "”", "’", "…", ")", ",", " ", ". \t", "-"]))
    .map("".join),
)
_text = st.one_of(
    st.lists(st.tuples(_line, st.sampled_from(_BREAKS)), max_size=14).map(lambda ls: "".join(a + b for a, b in ls)),
    st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=80),
    st.text(max_size=40),  # astral characters and lone surrogates too
)


def _expected(texts: list[str]) -> list[list[object]]:
    """`split_spans` of each text, its fields joined over the texts, then each paragraph's text."""
    spans = [split_spans(t) for t in texts]
    fields = [[x for s in spans for x in getattr(s, name)] for name in ("texts", "lines", "ends", "starts", "stops")]
    return [*fields, [d for d, s in enumerate(spans) for _ in s.texts]]


def _fields(got: BatchSpans) -> list[list[object]]:
    return [got.texts, *(x.tolist() for x in (got.line, got.end, got.start, got.stop, got.doc))]


@compiled
@settings(max_examples=400, deadline=None)
@given(st.lists(_text, max_size=6))
def test_a_batch_is_split_as_each_text_is(texts: list[str]) -> None:
    got = split_batch(texts)
    assert _fields(got) == _expected(texts)


@compiled
def test_hard_wrapped_blocks_are_joined_and_page_lines_kept_apart() -> None:
    essay = ("It was the best of times, it was the worst of times, it was the age\n"
             "of wisdom, it was the age of foolishness, it was the epoch of belief,\n"
             "it was the epoch of incredulity.\n\n"
             "Short line\nAnother short line.\n")
    page = "Home\nNews\nSport\n\n  Related Articles  \r\n5 hours ago"
    got = split_batch([essay, page])
    assert got.texts == [" ".join(essay.split("\n\n")[0].splitlines()), "Short line", "Another short line.",
                         "Home", "News", "Sport", "Related Articles", "5 hours ago"]
    assert got.line.tolist() == [1, 5, 6, 1, 2, 3, 5, 6] and got.end.tolist() == [3, 5, 6, 1, 2, 3, 5, 6]
    assert got.doc.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    # a line of 60 characters or more breaks mid-sentence even before a capital
    assert split_batch(["w" * 59 + "\nNext", "w" * 60 + "\nNext"]).texts == ["w" * 59, "Next", "w" * 60 + " Next"]


@compiled
def test_batches_past_a_chunk_and_blocks_past_the_buffers_give_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many chunks; blocks of hundreds of lines and pages of thousands of paragraphs (both buffers grow);
    a wide text among narrow ones and one past 16 bits among them."""
    monkeypatch.setattr(kernels_segment, "_CHUNK_CHARS", 50)
    texts = ["line\n" * 300, "para\n\n" * 2000, "x", "", "caf\u00e9 \u2014 ok\nnext", "emoji \U0001f600\n\nafter",
             "one long block that ends mid sentence and goes on\nand on " * 40]
    got = split_batch(texts)
    assert _fields(got) == _expected(texts)
    assert np.bincount(got.doc).tolist() == [1, 2000, 1, 0, 1, 2, 1]


def test_without_the_kernels_the_python_splitter_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    texts = ["a\n\nb", "", "c d\ne"]
    got = split_batch(texts)
    assert _fields(got) == _expected(texts)
    assert got.doc.tolist() == [0, 0, 2]
