"""The compiled kernels give exactly what the numpy path gives (and so what datasketch gives).

Tests that need numba skip without it; the rest check the fallback, which must serve the same
arrays. The whole suite is also meant to pass with numba hidden (see `test_fallback_without_numba`).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import xxhash
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import MinHasher, kernels, kernels_lines, kernels_lsh, kernels_rows, kernels_story, shingle, shingle_hash32
from dedupe.features import ParagraphFeatures, analyse, concat
from dedupe.near import document_signatures, find_near_duplicate_documents
from dedupe.normalize import line_key, normalize, tokenize
from dedupe.segment import split_paragraphs
from dedupe.shingle import word_hash
from dedupe.story import StorySettings, _Prefixes, content_terms

from .conftest import random_text

# kernels.AVAILABLE is False when numba cannot be imported or DEDUPE_NUMBA=0 switches the kernels off.
compiled = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba kernels not available")


def _numpy_path(texts: list[str], ngram: int, hasher: MinHasher) -> tuple[np.ndarray, np.ndarray]:
    tokens = [tokenize(normalize(t)) for t in texts]
    sigs = hasher.signatures(shingle(tokens, ngram))
    counts = [len(set(_shingle_strings(t, ngram))) for t in tokens]
    return sigs, np.asarray(counts, dtype=np.int64)


def _shingle_strings(tokens: list[str], ngram: int) -> list[str]:
    if 0 < len(tokens) < ngram:
        return [" ".join(tokens)]
    return [" ".join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)]


# ASCII: word-like runs with every kind of separator and case, and raw printable/control noise.
_ascii_word = st.text(alphabet="abcXYZ019_", min_size=1, max_size=12)
_ascii_sep = st.text(alphabet=" \t\n\r\x0b\x0c.,;:!?-'\"()[]{}<>/\\|@#$%^&*+=~`\x00\x1f\x7f", min_size=1, max_size=3)
_ascii_text = st.one_of(
    st.lists(st.tuples(_ascii_word, _ascii_sep), max_size=60).map(lambda ws: "".join(w + s for w, s in ws)),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=300),
)
# Non-ASCII: compatibility forms, special case folds, marks, other scripts, and anything at all.
_unicode_word = st.text(alphabet="aBéÉßẞﬁﬀİıǅＡ①²µΣσςКиї中文ا٣\u0301\u200d_9", min_size=1, max_size=8)
_unicode_text = st.one_of(
    st.lists(st.tuples(_unicode_word, _ascii_sep), max_size=40).map(lambda ws: "".join(w + s for w, s in ws)),
    st.text(max_size=200),
)
_any_text = st.one_of(_ascii_text, _unicode_text)


@compiled
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_xxh64_port_equals_xxhash(data: bytes) -> None:
    assert kernels.xxh64(data) == xxhash.xxh64_intdigest(data)


@compiled
def test_xxh64_port_every_length_to_100_and_past_stripes() -> None:
    rnd = random.Random(7)
    for n in [*range(101), 127, 128, 129, 255, 256, 1000, 4099]:
        for _ in range(8):
            data = bytes(rnd.randrange(256) for _ in range(n))
            assert kernels.xxh64(data) == xxhash.xxh64_intdigest(data), n


def test_word_hash_is_xxh64_of_utf8() -> None:
    for word in ["", "a", "straße", "中文", "x" * 40]:
        assert word_hash(word) == xxhash.xxh64_intdigest(word.encode("utf-8"))


@compiled
@settings(max_examples=150, deadline=None)
@given(st.lists(_any_text, max_size=8), st.integers(1, 6), st.sampled_from([16, 64, 128]), st.integers(0, 2**31))
def test_sign_texts_equals_numpy_path(texts: list[str], ngram: int, num_perm: int, seed: int) -> None:
    hasher = MinHasher(num_perm, seed)
    sigs, counts = kernels.sign_texts(texts, ngram, hasher)
    want_sigs, want_counts = _numpy_path(texts, ngram, hasher)
    assert sigs.dtype == np.uint32 and sigs.shape == (len(texts), num_perm)
    assert np.array_equal(sigs, want_sigs)
    assert np.array_equal(counts, want_counts)
    assert np.array_equal(kernels.text_signatures(texts, ngram, hasher), want_sigs)


@compiled
@settings(max_examples=150, deadline=None)
@given(st.lists(_any_text, max_size=10), st.integers(1, 6), st.integers(0, 8))
def test_sign_paragraphs_equals_numpy_path(texts: list[str], ngram: int, min_words: int) -> None:
    normalised = [normalize(t) for t in texts]
    hasher = MinHasher(32, 5)
    got = kernels.sign_paragraphs(normalised, ngram, hasher, min_words)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kernels, "AVAILABLE", False)
        want = kernels.sign_paragraphs(normalised, ngram, hasher, min_words)
    for field in ("words", "signed", "signatures", "shingle_hashes", "shingle_offsets"):
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field


@compiled
@settings(max_examples=100, deadline=None)
@given(st.lists(_any_text, max_size=10), st.integers(1, 6), st.integers(0, 8))
def test_signing_numbers_the_words_as_distinct_words_does(texts: list[str], ngram: int, min_words: int) -> None:
    """The words numbered in the signing pass are `distinct_words`', whether the batch comes as
    normalised strings or packed from raw text, and signing is unchanged by numbering them."""
    hasher = MinHasher(32, 5)
    texts = [*texts, "Shared words, SHARED words: 2024 and ÀB shared"]
    for batch in ([normalize(t) for t in texts], kernels.pack_paragraphs(texts)):
        plain = kernels.sign_paragraphs(batch, ngram, hasher, min_words)
        got = kernels.sign_paragraphs(batch, ngram, hasher, min_words, number_words=True)
        want = kernels.distinct_words(batch)
        assert plain.distinct_words is None and got.distinct_words is not None
        for field in ("ids", "offsets", "hashes", "starts", "lengths"):
            a, b = getattr(got.distinct_words, field), getattr(want, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field
        assert [got.distinct_words.word(w) for w in range(len(want.hashes))] == [
            want.word(w) for w in range(len(want.hashes))]
        for field in ("words", "signed", "signatures", "shingle_hashes", "shingle_offsets"):
            assert np.array_equal(getattr(got, field), getattr(plain, field)), field


@compiled
@settings(max_examples=40, deadline=None)
@given(st.lists(_any_text, min_size=1, max_size=4), st.integers(1, 5))
def test_kernel_signatures_equal_datasketch(texts: list[str], ngram: int) -> None:
    hasher = MinHasher(64, 11)
    sigs, _ = kernels.sign_texts(texts, ngram, hasher)
    for row, text in zip(sigs, texts, strict=True):
        m = MinHash(num_perm=64, seed=11, hashfunc=shingle_hash32)
        for s in _shingle_strings(tokenize(normalize(text)), ngram):
            m.update(s.encode("utf-8"))
        assert np.array_equal(row, m.hashvalues)


def _texts(rng: random.Random) -> list[str]:
    texts = [random_text(rng, rng.randint(0, 400)) for _ in range(30)]
    texts += ["Café crème: l'été À PARIS ﬁnit.\n\nShort line\n" + texts[0], "", "ＦＵＬＬＷＩＤＴＨ text ①②", texts[3]]
    return [t.replace(". ", ".\n", 3) for t in texts]


@compiled
def test_analyse_same_features_with_and_without_kernels(monkeypatch, rng: random.Random) -> None:
    texts = _texts(rng)
    hasher = MinHasher(128, 1)
    got = analyse(texts, hasher, 5, 8, key_cues=True, terms=True)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    want = analyse(texts, hasher, 5, 8, key_cues=True, terms=True)
    for field in want.__slots__:
        a, b = getattr(got, field), getattr(want, field)
        if isinstance(b, list):
            assert len(a) == len(b) == len(want.doc), field
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), field
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b), field
    assert (want.sig_row >= 0).sum() == len(want.signatures) > 0


def test_paragraph_lengths_are_their_texts_lengths_hard_wrapped_blocks_too() -> None:
    """A paragraph's `chars` is its text's length: its span's, but a hard-wrapped block's lines are
    stripped and joined by single spaces."""
    essay = ("It was the best of times, it was the worst of times, it was the age   \n"
             "   of wisdom, it was the age of foolishness, it was the epoch of belief,\t\n"
             "it was the epoch of incredulity.\n\n  Home  \nNews\n")
    texts = [essay, "", "Café crème\n\n ﬁnit. ", essay.replace("\n", "\r\n")]
    feats = analyse(texts, MinHasher(16, 1), 5, 3)
    want = [len(p.text) for t in texts for p in split_paragraphs(t)]
    assert feats.chars.tolist() == want
    assert want[0] > 150 and feats.end[0] == 3  # the first is a wrapped block


def _assert_same_features(got: ParagraphFeatures, want: ParagraphFeatures) -> None:
    for field in want.__slots__:
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field


@pytest.mark.parametrize("compiled_kernels", [True, False])
def test_repeated_lines_are_analysed_once_with_the_features_of_each(monkeypatch, rng: random.Random,
                                                                    compiled_kernels: bool) -> None:
    """Each distinct short text's features, copied to every paragraph holding it, are the features
    the paragraphs get when every one is analysed (signatures, shingles and story terms included)."""
    import dedupe.features as features

    from .conftest import site_dump

    if compiled_kernels and not kernels.AVAILABLE:
        pytest.skip("numba kernels not available")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled_kernels and kernels.AVAILABLE)
    pages = [r["text"] for r in site_dump(rng)] + _texts(rng)
    first, second = (split_paragraphs(page) for page in pages[:2])
    pages.append("\n".join([first[0].text] * 3 + [p.text for p in second[:2]]))  # a page repeating lines of its own
    hasher = MinHasher(64, 1)
    texts = [p.text for page in pages for p in split_paragraphs(page)]
    chars = np.array([len(t) for t in texts])
    distinct, place = features._distinct_texts(texts, chars)
    assert place is not None and len(distinct) < len(texts)  # lines do repeat here...
    assert [distinct[k] for k in place] == texts  # ...each paragraph's text in its place...
    short = [t for t in distinct if len(t) < features._REPEATED_CHARS]  # ...each short text once, as it first comes
    assert short == list(dict.fromkeys(t for t in texts if len(t) < features._REPEATED_CHARS))
    got = analyse(pages, hasher, 5, 8, key_cues=True, terms=True)
    plain = analyse(pages, hasher, 5, 3)  # no cues, no terms
    monkeypatch.setattr(features, "_REPEATED_CHARS", 0)  # every paragraph analysed on its own
    assert features._distinct_texts(texts, chars)[1] is None
    _assert_same_features(got, analyse(pages, hasher, 5, 8, key_cues=True, terms=True))
    _assert_same_features(plain, analyse(pages, hasher, 5, 3))


@compiled
def test_documents_same_with_and_without_kernels(monkeypatch, rng: random.Random) -> None:
    texts = [random_text(rng, rng.randint(300, 800)) for _ in range(40)]
    texts += [t.replace("the", "thé", 2) for t in texts[:5]] + [t.upper() for t in texts[5:10]] + ["", "one"]
    sigs = document_signatures(texts)
    clusters = find_near_duplicate_documents(texts)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert np.array_equal(sigs, document_signatures(texts))
    assert clusters == find_near_duplicate_documents(texts)
    assert len(clusters) == 10  # upper-cased copies are exact duplicates; accented ones near


def test_empty_inputs() -> None:
    hasher = MinHasher(16)
    sigs, counts = kernels.sign_texts([], 5, hasher)
    assert sigs.shape == (0, 16) and sigs.dtype == np.uint32 and counts.shape == (0,)
    got = kernels.sign_paragraphs([], 5, hasher, 3)
    assert got.signatures.shape == (0, 16) and got.shingle_offsets.tolist() == [0]
    with pytest.raises(ValueError):
        kernels.sign_texts(["a"], 0, hasher)


def test_fallback_without_numba() -> None:
    """With numba hidden, the kernels module still imports and serves the numpy path."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "from dedupe import kernels, MinHasher\n"
        "from dedupe.near import document_signatures\n"
        "assert not kernels.AVAILABLE\n"
        "sigs, counts = kernels.sign_texts(['one two three four five six', 'x'], 5, MinHasher(8))\n"
        "assert counts.tolist() == [2, 1] and sigs.shape == (2, 8)\n"
        "assert (kernels.text_signatures(['one two three four five six', 'x'], 5, MinHasher(8)) == sigs).all()\n"
        "assert document_signatures(['a b c']).shape == (1, 128)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_analyse_derives_chrome_keys_and_story_terms_from_the_paragraphs(rng: random.Random) -> None:
    pages = _texts(rng)
    feats = analyse(pages, MinHasher(128, 1), 5, 8, key_cues=True, terms=True)
    texts = [p.text for page in pages for p in split_paragraphs(page)]
    keys = [line_key(t) for t in texts]
    assert feats.key_chars.tolist() == [len(k) for k in keys]
    assert feats.key_hashes.tolist() == [xxhash.xxh64_intdigest(k.encode("utf-8")) for k in keys]
    stem_hashes = [[xxhash.xxh64_intdigest(s.encode()) for s in content_terms(t)] for t in texts]
    assert [feats.terms(k).tolist() for k in range(len(texts))] == stem_hashes
    bare = analyse(pages, MinHasher(128, 1), 5, 8)
    assert bare.key_hashes.size == 0 and bare.terms(0).size == 0
    joined = concat([analyse(pages[:9], MinHasher(128, 1), 5, 8, key_cues=True, terms=True),
                     analyse(pages[9:], MinHasher(128, 1), 5, 8, key_cues=True, terms=True)], [0, 9])
    assert np.array_equal(joined.key_hashes, feats.key_hashes) and np.array_equal(joined.key_chars, feats.key_chars)
    assert all(np.array_equal(joined.terms(k), feats.terms(k)) for k in range(len(texts)))


def story_weights(corpus: list[list[str]], s: StorySettings) -> sp.csr_matrix:
    """`story`'s TF-IDF rows of term lists, as `story_pairs` makes them (columns by rank)."""
    from dedupe import story

    return story._tfidf(story._count_matrix(story.TermRows.of_arrays(
        [np.array([story.term_hash(t) for t in terms], dtype=np.uint64) for terms in corpus])), s)


@compiled
def test_story_candidate_filter_same_with_and_without_kernels(monkeypatch) -> None:
    from dedupe import story

    rng = random.Random(11)
    vocab = [f"w{k}" for k in range(300)]
    corpus = [rng.choices(vocab, [1 / (k + 1) for k in range(300)], k=rng.randint(20, 80)) for _ in range(400)]
    s = story.StorySettings(min_similarity=0.2, block_rows=64)
    weights = story_weights(corpus, s)
    pre = story._prefixes(weights, story.TAIL_FRACTION * s.min_similarity, s.candidate_df)
    starts = story._row_blocks(pre.matrix, s.block_rows, s.block_entries)
    assert len(starts) > 3
    got = [story._candidates(pre, s.min_similarity, a, b) for a, b in starts]
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    want = [story._candidates(pre, s.min_similarity, a, b) for a, b in starts]
    assert sum(len(i) for i, _ in want) > 100
    for (gi, gj), (wi, wj) in zip(got, want, strict=True):  # the same pairs, found in another order
        assert sorted(zip(gi.tolist(), gj.tolist(), strict=True)) == sorted(zip(wi.tolist(), wj.tolist(), strict=True))


def pair_bounds(pre: _Prefixes) -> np.ndarray:
    """The bound of every pair sharing a prefix term, as story._candidates works it out."""
    prod = sp.triu(pre.matrix @ pre.matrix.T, k=1).tocoo()
    i, j = prod.row, prod.col
    first, other = np.where(pre.start[i] <= pre.start[j], i, j), np.where(pre.start[i] <= pre.start[j], j, i)
    return prod.data + pre.tail[first] * pre.above[other, np.minimum(pre.level[i], pre.level[j])]


def flat_story_corpus(seed: int, exponent: float, share: float) -> list[list[str]]:
    """600 texts of 30-120 terms over a flat vocabulary, a third of them rewrites keeping `share`
    of an earlier text's terms: most rows' candidate walks end early there."""
    rng = random.Random(seed)
    vocab = [f"w{k}" for k in range(3000)]
    weights_of_terms = [1 / (k + 1) ** exponent for k in range(len(vocab))]
    corpus: list[list[str]] = []
    for _ in range(600):
        terms = rng.choices(vocab, weights_of_terms, k=rng.randint(30, 120))
        if corpus and rng.random() < 0.3:
            base = rng.choice(corpus)
            terms = [b if rng.random() < share else t for b, t in zip(base, terms, strict=False)] + terms[len(base):]
        corpus.append(terms)
    return corpus


def cut_short_candidates(pre: _Prefixes, tau: float) -> tuple[set[tuple[int, int]], int]:
    """The compiled search's pairs over all rows, and how many rows' walks it ended early."""
    from dedupe import kernels_story

    m, by_column = pre.matrix, pre.by_column
    got_i, got_j, early = kernels_story._prefix_candidates(
        m.indptr, m.indices, m.data, by_column.indptr, by_column.indices.view(np.uint32),
        by_column.data.astype(np.float32), 0, m.shape[0], pre.start, pre.tail, pre.level, pre.above, pre.peak, tau)
    return set(zip(got_i.tolist(), got_j.tolist(), strict=True)), early


@compiled
@pytest.mark.parametrize(("seed", "exponent", "tau"), [(1, 0.8, 0.35), (2, 0.9, 0.35), (3, 0.7, 0.3)])
def test_story_candidates_cut_short_are_the_numpy_ones(monkeypatch, seed: int, exponent: float, tau: float) -> None:
    """Most rows' walks end early (rows begun pruned by the bound of their remaining terms, the few
    left verified whole), and the pairs are still exactly the numpy path's."""
    from dedupe import story

    s = story.StorySettings(min_similarity=tau, candidate_df=60)
    weights = story_weights(flat_story_corpus(seed, exponent, 0.5), s)
    pre = story._prefixes(weights, story.TAIL_FRACTION * tau, s.candidate_df)
    got, early = cut_short_candidates(pre, tau)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    want_i, want_j = story._candidates(pre, tau, 0, pre.matrix.shape[0])
    assert early > 60 and len(want_i) > 100
    assert got == set(zip(want_i.tolist(), want_j.tolist(), strict=True))


@compiled
def test_story_candidates_cut_short_keep_the_pairs_right_at_the_bound(monkeypatch) -> None:
    """Close rewrites (90% of terms kept), with τ put 1e-10 under the 40 highest pairs' bounds: a
    pair whose product lies mostly in its later terms meets τ only if the bound that prunes rows
    begun is tight (taking 0.8 of it loses pairs here), and none is lost."""
    from dedupe import story

    s = story.StorySettings(min_similarity=0.3, candidate_df=60)
    weights = story_weights(flat_story_corpus(1, 0.8, 0.9), s)
    pre = story._prefixes(weights, story.TAIL_FRACTION * s.min_similarity, s.candidate_df)
    bounds = pair_bounds(pre)
    for bound in np.sort(bounds)[-40:]:
        tau = bound - 1e-10 + 1e-6  # the searches keep bounds ≥ τ − 1e-6
        got, early = cut_short_candidates(pre, tau)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(kernels, "AVAILABLE", False)
            want_i, want_j = story._candidates(pre, tau, 0, pre.matrix.shape[0])
        assert early > 0 and got == set(zip(want_i.tolist(), want_j.tolist(), strict=True))


@compiled
def test_story_candidates_right_at_the_bound_are_the_float64_ones(monkeypatch) -> None:
    """The compiled search walks in float32: with τ put 1e-10 above or below pairs' float64 bounds
    (far under float32's rounding, far over float64's), it still keeps exactly the pairs the numpy
    path keeps, so each near pair's product is worked out again in float64."""
    from dedupe import story

    rng = random.Random(12)
    vocab = [f"w{k}" for k in range(300)]
    corpus = [rng.choices(vocab, [1 / (k + 1) for k in range(300)], k=rng.randint(20, 80)) for _ in range(300)]
    s = story.StorySettings(min_similarity=0.2)
    weights = story_weights(corpus, s)
    pre = story._prefixes(weights, story.TAIL_FRACTION * s.min_similarity, s.candidate_df)
    bounds = pair_bounds(pre)
    n = len(corpus)
    for bound in np.random.default_rng(0).choice(bounds[bounds > 0.05], 12, replace=False):
        for offset in (1e-10, -1e-10):
            tau = bound + offset + 1e-6  # the searches keep bounds ≥ τ − 1e-6
            got = set(zip(*story._candidates(pre, tau, 0, n), strict=True))
            with pytest.MonkeyPatch.context() as m:
                m.setattr(kernels, "AVAILABLE", False)
                want = set(zip(*story._candidates(pre, tau, 0, n), strict=True))
            assert got == want


@compiled
@pytest.mark.parametrize("candidate_df", [500, 12])
def test_story_prefix_cut_same_with_and_without_kernels(monkeypatch, candidate_df: int) -> None:
    from dedupe import story

    rng = random.Random(5)
    vocab = [f"w{k}" for k in range(3000)]
    corpus = [rng.choices(vocab, [1 / (k + 1) ** 0.8 for k in range(3000)], k=rng.randint(0, 120)) for _ in range(500)]
    s = story.StorySettings(min_similarity=0.8)
    weights = story_weights(corpus, s)
    got = story._prefixes(weights, story.TAIL_FRACTION * s.min_similarity, candidate_df)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    want = story._prefixes(weights, story.TAIL_FRACTION * s.min_similarity, candidate_df)
    assert 0 < got.matrix.nnz < weights.nnz and (got.start < weights.shape[1]).sum() > 300  # rows with tails
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(got.matrix, name), getattr(want.matrix, name)), name
    assert np.array_equal(got.start, want.start) and np.array_equal(got.level, want.level)
    assert np.allclose(got.tail, want.tail, rtol=1e-12, atol=1e-12)
    assert np.allclose(got.above, want.above, rtol=1e-6) and got.above.dtype == want.above.dtype
    assert np.array_equal(got.by_column.toarray(), want.by_column.toarray())
    assert np.allclose(got.peak, want.peak, rtol=1e-9) and got.peak.max() > 0.5


@compiled
@settings(max_examples=30, deadline=None)
@given(st.lists(st.sets(st.integers(0, 60), max_size=40), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_exact_jaccard_kernel_equals_the_numpy_merge(sets: list[set[int]], rnd: random.Random) -> None:
    from dedupe.exact import ShingleSets

    docs = np.arange(0, 3 * len(sets), 3, dtype=np.int64)  # text indices need not be 0..n-1
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sets], out=offsets[1:])
    hashes = np.array([h for s in sets for h in sorted(s)], dtype=np.uint32)
    table = ShingleSets(docs, hashes, offsets)
    first = np.array([rnd.choice(docs) for _ in range(20)], dtype=np.int64)
    second = np.array([rnd.choice(docs) for _ in range(20)], dtype=np.int64)
    compiled_result = table.jaccard(first, second)
    expected = [len(sets[a // 3] & sets[b // 3]) / max(1, len(sets[a // 3] | sets[b // 3]))
                for a, b in zip(first.tolist(), second.tolist(), strict=True)]
    assert np.allclose(compiled_result, expected)
    try:
        kernels.AVAILABLE = False
        assert np.array_equal(table.jaccard(first, second), compiled_result)
    finally:
        kernels.AVAILABLE = True


def test_text_shingle_sets_are_the_hashes_signatures_are_made_of() -> None:
    texts = ["One two three four five six seven.", "", "Ünïcode wörds, here and there again!", "a b"]
    hashes, offsets = kernels.text_shingle_sets(texts, 5)
    batch = shingle([tokenize(normalize(t)) for t in texts], 5)
    for k in range(len(texts)):
        expected = np.unique(batch.hashes[batch.offsets[k] : batch.offsets[k + 1]])
        assert np.array_equal(hashes[offsets[k] : offsets[k + 1]], expected)


@compiled
@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_ascii_text, _unicode_text), max_size=8))
def test_story_terms_of_a_batch_equal_the_per_text_path(texts: list[str]) -> None:
    from dedupe.story import term_hashes_of_batch, term_hashes_of_normalised, term_ids_of_batch

    normalised = [normalize(t) for t in texts] + ["the the 1999 a negotiations Negotiators"]
    hashes, offsets = term_hashes_of_batch(normalised)
    assert len(offsets) == len(normalised) + 1
    for k, norm in enumerate(normalised):
        assert np.array_equal(hashes[offsets[k] : offsets[k + 1]], term_hashes_of_normalised(norm))
    words = kernels.distinct_words(normalised)
    for k, norm in enumerate(normalised):
        spelt = [words.word(w) for w in words.ids[words.offsets[k] : words.offsets[k + 1]]]
        assert spelt == tokenize(norm)
    ids, vocabulary, id_offsets = term_ids_of_batch(normalised)  # ids into the batch's sorted distinct hashes
    assert ids.dtype == np.int32 and np.array_equal(id_offsets, offsets)
    assert np.array_equal(vocabulary, np.unique(hashes)) and np.array_equal(vocabulary[ids], hashes)


@compiled
@settings(max_examples=200, deadline=None)
@given(st.lists(_any_text, max_size=8))
def test_packed_paragraphs_are_normalised_and_keyed_as_in_python(texts: list[str]) -> None:
    """The compiled normalisation of ASCII text is `normalize`'s, whitespace `str.split` splits on
    and upper case included; the exact keys read from the buffer are `exact_key`'s."""
    from dedupe.features import _exact_keys, exact_key

    texts = [*texts, "  Mixed CASE\t\tand\x0bodd\x1c\x1fspaces \r\n", "", "\x1f", "ÀB  c", "A\x00B"]
    packed = kernels.pack_paragraphs(texts)
    hi, lo = _exact_keys(packed)
    for k, text in enumerate(texts):
        norm = normalize(text)
        if text.isascii():
            assert packed.buf[packed.offsets[k] : packed.offsets[k + 1]].tobytes() == norm.encode("ascii")
        else:
            assert packed.forms is not None
            j = packed.unicode.tolist().index(k)
            normal = packed.forms.normal[packed.forms.normal_offsets[j] : packed.forms.normal_offsets[j + 1]]
            assert normal.tobytes().decode("utf-8") == norm
            spaced = packed.buf[packed.offsets[k] : packed.offsets[k + 1]].tobytes()
            assert spaced.decode("utf-8") == " ".join(tokenize(norm))
        assert (int(hi[k]), int(lo[k])) == exact_key(norm)


@settings(max_examples=200, deadline=None)
@given(st.lists(_any_text, max_size=8))
def test_line_keys_of_a_batch_equal_the_python_function(texts: list[str]) -> None:
    from dedupe.normalize import line_key_of_normalised

    normalised = [normalize(t) for t in texts] + ["Page 1,000 of 12 -- 5 hours ago", "a\x1fb\x00c", ""]
    normalised.append("\t".join(normalised[-3:]))  # raw whitespace too: the same keys as `str.split` makes
    assert kernels_lines.line_keys(normalised) == [line_key_of_normalised(n) for n in normalised]


@compiled
@settings(max_examples=200, deadline=None)
@given(st.lists(_any_text | st.lists(st.sampled_from(["the", "of", "themselves", "thé", "a", "b0", "Über"]))
                .map(" ".join), max_size=8))
def test_line_key_cues_equal_splitting_looking_up_stop_words_and_hashing(texts: list[str]) -> None:
    from dedupe.normalize import line_key_of_normalised
    from dedupe.stopwords import ENGLISH_STOPWORDS

    normalised = [normalize(t) for t in texts] + ["", "the the", "a b c", "ça the 12", "Page 1,000 of 12 -- 5 hours",
                                                  " ".join(["of the 2026, (nine)"] * 400)]  # past the scratch buffer
    got = kernels_lines.line_keys_with_cues(normalised)
    keys = [line_key_of_normalised(n) for n in normalised]
    assert got.chars.tolist() == [len(k) for k in keys]
    assert got.words.tolist() == [len(k.split()) for k in keys]
    assert got.stops.tolist() == [sum(w in ENGLISH_STOPWORDS for w in k.split()) for k in keys]
    assert got.hashes.tolist() == [xxhash.xxh64_intdigest(k.encode("utf-8")) for k in keys]


@compiled
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1200), st.sampled_from([2**32, 2**16, 700, 3]), st.integers(0, 2**32 - 1), st.integers(0, 2**31))
def test_the_u32_sort_sorts_every_size_and_spread(n: int, spread: int, base: int, seed: int) -> None:
    """Sizes across the three ways of `_sort_u32` (insertion, one bucket pass, radix), values random
    over 32 bits, small ids, a narrow band or a few repeated values, some offset so that only low
    bits vary: the result is np.sort's."""
    values = (base + np.random.default_rng(seed).integers(0, spread, size=n, dtype=np.uint64)) % 2**32
    a = np.concatenate([values.astype(np.uint32), np.full(3, 7, dtype=np.uint32)])  # past n: left alone
    kernels._sort_u32(a, n, np.empty(n + 1, dtype=np.uint32), np.zeros((4, 256), dtype=np.int64))
    assert np.array_equal(a[:n], np.sort(values.astype(np.uint32))) and a[n:].tolist() == [7, 7, 7]


@compiled
@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 40), max_size=3000))
def test_sorted_ranks_equal_searchsorted_of_the_sorted_distinct_values(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    ranks, count = kernels_story.sorted_ranks(array)
    distinct = np.unique(array)
    assert count == len(distinct)
    assert np.array_equal(ranks, np.searchsorted(distinct, array))


@compiled
@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30) | st.integers(0, 2**31 - 1), max_size=60), max_size=40),
       st.sampled_from([np.int32, np.int64]))
def test_row_counts_equal_scipys_summed_duplicates(rows: list[list[int]], dtype: type) -> None:
    """int32 ids take the radix sort (insertion sort up to 40 per row), int64 ones np.sort."""
    import scipy.sparse as sp

    offsets = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
    ids = np.array([i for r in rows for i in r], dtype=dtype)
    indptr, columns, counts = kernels_story.row_counts(ids, offsets)
    assert columns.dtype == dtype
    expected = sp.csr_matrix((np.ones(len(ids)), ids.astype(np.int64), offsets), shape=(len(rows), 2**31))
    expected.sum_duplicates()
    assert np.array_equal(indptr, expected.indptr)
    assert np.array_equal(columns, expected.indices)
    assert np.array_equal(counts, expected.data)
    # Rows made of ranges, read in place: the texts backwards, two to a row, as their copies count.
    order = np.arange(len(rows))[::-1].copy()
    starts, lengths = offsets[order], np.diff(offsets)[order]
    grouped = np.append(np.arange(0, len(rows), 2), len(rows)).astype(np.int64)
    copy = kernels_rows.gather_ranges(ids, starts, lengths)
    copy_offsets = np.concatenate(([0], np.cumsum(lengths)))[grouped]
    for got, want in zip(kernels_story.row_counts(ids, grouped, starts, lengths),
                         kernels_story.row_counts(copy, copy_offsets), strict=True):
        assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 30), st.integers(1, 6), st.randoms(use_true_random=False))
def test_merged_signatures_equal_merging_a_copy_of_the_rows(n_rows: int, n_groups: int, rnd: random.Random) -> None:
    from dedupe.minhash import merge_signatures

    signatures = np.array([[rnd.choice([0, 7, 2**32 - 1, rnd.randrange(2**32)]) for _ in range(16)]
                           for _ in range(40)], dtype=np.uint32)
    rows = np.array(sorted(rnd.sample(range(40), n_rows)), dtype=np.int64)
    groups = np.array(sorted(rnd.randrange(n_groups) for _ in range(n_rows)), dtype=np.int64)
    got = kernels_rows.merged_signatures(signatures, rows, groups, n_groups)
    assert got.dtype == np.uint32
    assert np.array_equal(got, merge_signatures(signatures[rows], groups, n_groups))  # empty groups: EMPTY rows


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1, 5), min_size=1, max_size=8), st.lists(st.lists(st.integers(0, 7), max_size=6),
                                                                      max_size=6))
def test_mapped_kept_maps_rows_and_drops_negative_values(mapping: list[int], rows: list[list[int]]) -> None:
    """Words to story terms (-1: a dropped word): each row's kept terms in order, rows' new offsets."""
    table = np.array(mapping, dtype=np.int32)
    ids = np.array([w % len(mapping) for row in rows for w in row], dtype=np.int32)
    offsets = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
    kept, new_offsets = kernels_rows.mapped_kept(table, ids, offsets)
    expected = [[mapping[w % len(mapping)] for w in row if mapping[w % len(mapping)] >= 0] for row in rows]
    assert kept.dtype == np.int32 and new_offsets.dtype == np.int64
    assert [kept[a:b].tolist() for a, b in pairwise(new_offsets.tolist())] == expected
    assert new_offsets[0] == 0 and new_offsets[-1] == len(kept) == sum(map(len, expected))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 10)), max_size=8), st.sampled_from([np.int32, np.int64]))
def test_gather_ranges_equals_indexing_by_range_indices(ranges: list[tuple[int, int]], dtype: type) -> None:
    from dedupe.arrays import range_indices

    values = np.arange(100, 141).astype(dtype)
    starts = np.array([s for s, _ in ranges], dtype=np.int64)
    lengths = np.array([n for _, n in ranges], dtype=np.int64)
    got = kernels_rows.gather_ranges(values, starts, lengths)
    assert got.dtype == values.dtype and got.tolist() == [v for s, n in ranges for v in range(100 + s, 100 + s + n)]
    assert np.array_equal(got, values[range_indices(starts, lengths)])


@compiled
@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 9), max_size=12), max_size=4),
                max_size=6))
def test_distinct_of_ranges_gives_each_rows_sorted_set(rows: list[list[list[int]]]) -> None:
    """Rows of ranges laid out in a flat array out of order, with values between them no row reads."""
    chunks = [c for r in rows for c in r]
    order = list(range(len(chunks)))[::-1]  # ranges stored back to front, each after a gap value
    flat: list[int] = []
    starts = [0] * len(chunks)
    for k in order:
        flat.append(99)
        starts[k] = len(flat)
        flat.extend(chunks[k])
    offsets = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
    distinct, new_offsets = kernels_rows.distinct_of_ranges(np.array(flat, dtype=np.uint32), np.array(starts),
                                                            np.array([len(c) for c in chunks]), offsets)
    assert distinct.dtype == np.uint32
    assert [distinct[new_offsets[k] : new_offsets[k + 1]].tolist() for k in range(len(rows))] == \
        [sorted({v for c in r for v in c}) for r in rows]


@compiled
def test_story_pair_dots_equal_the_sparse_row_products(monkeypatch) -> None:
    from dedupe import story

    rng = random.Random(5)
    vocab = [f"w{k}" for k in range(500)]
    corpus = [rng.choices(vocab, [1 / (k + 1) for k in range(500)], k=rng.randint(20, 200)) for _ in range(300)]
    weights = story_weights(corpus, story.StorySettings())
    pick = np.random.default_rng(3)
    rows, cols = np.sort(pick.integers(0, 300, 5000)), pick.integers(0, 300, 5000)
    got = story._pair_cosines(weights, rows, cols)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    want = story._pair_cosines(weights, rows, cols)
    assert np.allclose(got, want, rtol=0, atol=1e-12) and want.max() > 0.99  # a row with itself


@compiled
def test_band_keys_kernel_equals_the_numpy_fold(monkeypatch) -> None:
    from dedupe.lsh import band_keys

    sigs = np.random.default_rng(4).integers(0, 2**32, size=(300, 128), dtype=np.uint64).astype(np.uint32)
    compiled_keys = band_keys(sigs, 16, 8)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    assert np.array_equal(compiled_keys, band_keys(sigs, 16, 8))
    assert np.array_equal(band_keys(sigs[:, :12], 3, 4), band_keys(sigs, 3, 4))  # only the first bands x rows slots


@compiled
@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 300), st.integers(1, 6), st.integers(1, 40))
def test_lsh_candidates_by_hashing_equal_the_sorted_runs(seed: int, n: int, bands: int, distinct: int) -> None:
    """`candidate_pairs` gives the same pairs from `kernels_lsh.bucket_pairs` as from its per-band
    sorts: keys drawn from few values make runs of every size, past the all-pairs limit too."""
    from dedupe import lsh

    rng = np.random.default_rng(seed)
    keys = rng.integers(0, distinct, size=(n, bands)).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    active = rng.random(n) < 0.8
    for mask in (None, active):
        got = lsh.candidate_pairs(keys, mask)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(kernels, "AVAILABLE", False)
            want = lsh.candidate_pairs(keys, mask)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        index = np.arange(n) if mask is None else np.flatnonzero(mask)  # each pair once, (low, high), sorted
        assert np.array_equal(kernels_lsh.bucket_pairs(keys, index, lsh._MAX_ALL_PAIRS), want)
        # the buffer sorted and deduplicated in place whenever it fills, from the first code on
        assert np.array_equal(kernels_lsh.bucket_pairs(keys, index, lsh._MAX_ALL_PAIRS, compact_from=1), want)
        # each band parted by its keys' top bits into parts of a few rows, each hashed on its own
        assert np.array_equal(kernels_lsh.bucket_pairs(keys, index, lsh._MAX_ALL_PAIRS, partition_rows=2), want)


@compiled
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 50), st.integers(1, 130))
def test_estimated_jaccard_by_the_kernel_equals_numpys(seed: int, rows: int, num_perm: int) -> None:
    """`estimate_jaccard` gives the same floats from `kernels_lsh.equal_slots` as from its numpy
    form: slots drawn from few values, some empty (an empty slot never counts as a match)."""
    from dedupe.minhash import EMPTY, estimate_jaccard

    rng = np.random.default_rng(seed)
    sigs = rng.integers(0, 3, size=(rows, num_perm)).astype(np.uint32)
    sigs[rng.random(sigs.shape) < 0.2] = EMPTY
    sigs[rng.random(rows) < 0.2] = EMPTY  # whole signatures of no shingles
    i, j = rng.integers(0, rows, size=200), rng.integers(0, rows, size=200)
    got = estimate_jaccard(sigs, i, j)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(kernels, "AVAILABLE", False)
        want = estimate_jaccard(sigs, i, j)
    assert np.array_equal(got, want)
    assert np.array_equal(kernels_lsh.equal_slots(sigs[:, ::-1], i, j), want)  # rows read as they lie


@compiled
def test_tfidf_rows_equal_numpys_to_the_last_bit() -> None:
    from dedupe import story

    rng = np.random.default_rng(5)
    lengths = [0, 1, 3, 7, 8, 9, 15, 16, 17, 127, 128, 129, 130, 255, 256, 300, 1000, 2049]
    vocabulary = 5000
    rows = [np.sort(rng.choice(vocabulary, size=k, replace=False)) for k in lengths]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32)
    counts = rng.integers(1, 40, size=indices.size).astype(np.float64)
    matrix = sp.csr_matrix((counts, indices, indptr), shape=(len(lengths), vocabulary))
    idf = rng.uniform(1.0, 9.0, size=vocabulary)
    idf[rng.choice(vocabulary, size=500, replace=False)] = 0.0  # corpus stop words
    log_tf = np.concatenate([[0.0], 1.0 + np.log(np.arange(1.0, 40.0))])
    used_up = indices.copy(), counts.copy()  # the kernel writes the weights over the counts
    got = kernels_story.tfidf_rows(indptr, *used_up, idf, log_tf, 8)
    indptr, terms, data = story._tfidf_rows(matrix, idf, 8)
    ranked = story._ranks(np.bincount(terms, minlength=vocabulary))[terms]  # the kernel renumbers as it fills...
    want = sp.csr_matrix((data, ranked, indptr), shape=matrix.shape)
    want.sort_indices()  # ...and sorts each row by rank
    assert all(np.array_equal(g, w) for g, w in zip(got, (want.indptr, want.indices, want.data), strict=True))
    assert got[1] is used_up[0] and got[2] is used_up[1]  # the same memory, shrunk to the entries kept
    as_ints = counts.astype(np.int64)  # counts of another type are copied, not written over
    again = kernels_story.tfidf_rows(matrix.indptr, indices.copy(), as_ints, idf, log_tf, 8)
    assert np.array_equal(again[2], data) and np.array_equal(as_ints, counts.astype(np.int64))
    assert got[0][-1] > 3000 and np.diff(got[0])[:4].tolist() == [0, 0, 0, 0]  # short rows dropped
