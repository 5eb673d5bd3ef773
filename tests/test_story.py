"""Story pairs: content terms, the seed's rewritten Japan tariff story, exactness and order independence."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import story
from dedupe.segment import split_paragraphs
from dedupe.story import StorySettings, content_terms, story_pairs

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

UNRELATED = [
    "The city council approved a new budget for public libraries on Tuesday, adding funds for longer "
    "opening hours, digital lending, children's reading programmes and the repair of branch buildings "
    "damaged by flooding last winter. Librarians welcomed the decision after years of cuts.",
    "A rare migratory butterfly was spotted in the northern highlands, delighting entomologists who "
    "had feared the species vanished from the region. Volunteers counted wings along mountain meadows "
    "while botanists mapped the wildflowers the caterpillars depend on for food.",
    "The championship final went to extra time before the visiting striker curled a free kick past the "
    "goalkeeper, sending thousands of supporters into wild celebration. The coach praised defensive "
    "discipline and said injuries forced late changes to the midfield lineup.",
    "Researchers unveiled a battery chemistry using sodium instead of lithium, promising cheaper grid "
    "storage for solar farms. The prototype cells survived thousands of charging cycles in laboratory "
    "tests, though engineers cautioned that energy density still lags behind commercial packs.",
    "Bakers across the province report soaring flour prices after drought shrank the wheat harvest. "
    "Several family bakeries raised bread prices, while farmers asked regulators for emergency "
    "irrigation permits and cheaper loans to replant fields before autumn frost arrives.",
]


def seed_paragraphs() -> list[str]:
    return [p.text for f in sorted(SEEDS.glob("*.txt")) for p in split_paragraphs(f.read_text(encoding="utf-8"))]


def index_of(paragraphs: list[str], marker: str) -> int:
    (hit,) = [k for k, p in enumerate(paragraphs) if marker in p]
    return hit


def brute_force(term_lists: list[list[str]], s: StorySettings) -> list[tuple[int, int, float]]:
    """Same definition as story_pairs, by a dense all-pairs cosine (small inputs only)."""
    w, _ = dense_weights(term_lists, s)
    g = w @ w.T
    n = len(term_lists)
    return [(i, j, float(g[i, j])) for i in range(n) for j in range(i + 1, n) if g[i, j] >= s.min_similarity]


def dense_weights(term_lists: list[list[str]], s: StorySettings) -> tuple[np.ndarray, np.ndarray]:
    """The unit TF-IDF rows of story_pairs as a dense matrix, and each column's document frequency."""
    n = len(term_lists)
    vocab = sorted({t for terms in term_lists for t in terms})
    col = {t: k for k, t in enumerate(vocab)}
    tf = np.zeros((n, len(vocab)))
    for i, terms in enumerate(term_lists):
        for t in terms:
            tf[i, col[t]] += 1
    df = (tf > 0).sum(axis=0)
    idf = np.log((1 + n) / (1 + df)) + 1
    idf[df > max(s.max_df * n, s.max_df_floor)] = 0
    w = np.where(tf > 0, 1 + np.log(np.maximum(tf, 1)), 0) * idf
    w[(tf > 0).sum(axis=1) < s.min_terms] = 0
    norms = np.linalg.norm(w, axis=1)
    w /= np.where(norms > 0, norms, 1)[:, None]
    return w, df


def random_corpus(rng: random.Random, n: int) -> list[list[str]]:
    """Texts over a skewed vocabulary, a third of them partial rewrites of an earlier text."""
    vocab = [f"w{k}" for k in range(400)]
    weights = [1 / (k + 1) for k in range(len(vocab))]
    out: list[list[str]] = []
    for _ in range(n):
        terms = rng.choices(vocab, weights, k=rng.randint(10, 60))
        if out and rng.random() < 0.33:
            base = rng.choice(out)
            terms = [b if rng.random() < 0.6 else t for b, t in zip(base, terms, strict=False)] + terms[len(base):]
        out.append(terms)
    return out


def test_content_terms_drops_stop_words_numbers_and_stems() -> None:
    terms = content_terms("The negotiators were NEGOTIATING the U.S. tariffs in 2025, running COVID19 talks")
    assert terms == ["negoti", "negoti", "tariff", "run", "covid19", "talk"]
    assert content_terms("of the and to in a 12 345") == []


def test_the_compiled_stemmer_stems_as_snowballs_python_one() -> None:
    # snowballstemmer hands over to PyStemmer (the `fast` extra) when it is installed: the stems,
    # and so the story clusters, must not depend on which one ran.
    stemmer = pytest.importorskip("Stemmer")
    from snowballstemmer.english_stemmer import EnglishStemmer

    from dedupe.normalize import normalize, tokenize

    seeds = Path(__file__).resolve().parent.parent / "seeds"
    words = sorted({w for f in seeds.rglob("*") if f.is_file() for w in tokenize(normalize(f.read_text("utf-8")))})
    words += ["generously", "dying", "skies", "news", "communism", "arsenal", "generically", "succeeded",
              "proceedings", "negotiations", "négociations", "über", "tariffs'", "we're", "ya", "a"]
    assert len(words) > 500
    assert stemmer.Stemmer("english").stemWords(words) == EnglishStemmer().stemWords(words)


def test_seed_rewritten_story_pairs_at_paragraph_level() -> None:
    paragraphs = seed_paragraphs()
    jiji = index_of(paragraphs, "(Jiji Press)--Japanese chief tariff negotiator")
    nhk = index_of(paragraphs, "Japan's top negotiator for trade talks with the United States")
    summit = index_of(paragraphs, "TOKYO (Kyodo) -- The leaders of Japan and the European Union")
    pairs = story_pairs([content_terms(p) for p in paragraphs])
    linked = {(i, j) for i, j, _ in pairs}
    assert (min(jiji, nhk), max(jiji, nhk)) in linked
    assert not any(summit in pair for pair in linked)


def test_unrelated_texts_are_not_paired() -> None:
    terms = [content_terms(t) for t in UNRELATED]
    assert all(len(set(t)) >= StorySettings().min_terms for t in terms)
    assert story_pairs(terms) == []


def test_short_texts_get_no_pairs_even_when_identical() -> None:
    short = content_terms("Akazawa to visit Washington next week for tariff talks with Bessent")
    assert len(set(short)) < StorySettings().min_terms
    assert story_pairs([short, short, list(short)]) == []


def test_identical_long_texts_pair_with_similarity_one() -> None:
    terms = [content_terms(t) for t in UNRELATED]
    pairs = story_pairs([*terms, terms[2]])
    assert [(i, j) for i, j, _ in pairs] == [(2, 5)]
    assert abs(pairs[0][2] - 1.0) < 1e-9


def test_matches_dense_brute_force() -> None:
    rng = random.Random(3)
    for tau in (0.1, 0.3, 0.6):
        s = StorySettings(min_similarity=tau)
        corpus = random_corpus(rng, 120)
        got, want = story_pairs(corpus, s), brute_force(corpus, s)
        assert [p[:2] for p in got] == [p[:2] for p in want]
        assert np.allclose([p[2] for p in got], [p[2] for p in want])


def test_pairs_whose_rarer_terms_reach_tau_are_all_found_and_only_true_pairs() -> None:
    """With candidate_df low enough that most terms are common: every pair whose shared terms of
    df ≤ candidate_df alone reach τ is found, and every pair found is a true pair with its cosine."""
    corpus = random_corpus(random.Random(4), 200)
    s = StorySettings(min_similarity=0.3, candidate_df=12)
    w, df = dense_weights(corpus, s)
    rare_dot = (w * (df <= s.candidate_df)) @ w.T
    truth = {(i, j): sim for i, j, sim in brute_force(corpus, s)}
    got = {(i, j): sim for i, j, sim in story_pairs(corpus, s)}
    assert got.keys() <= truth.keys()
    assert all(abs(got[p] - truth[p]) < 1e-9 for p in got)
    must = {(i, j) for i, j in truth if rare_dot[i, j] >= s.min_similarity}
    assert must and must <= got.keys()


def test_a_pair_that_reaches_tau_only_through_common_terms_is_missed() -> None:
    """The documented approximation: two texts sharing 30 common words (in more than candidate_df
    texts) and one rare one have cosine 0.46, of which the rare term gives 0.09; no candidate."""
    rng = random.Random(4)
    common = [f"c{k}" for k in range(30)]
    filler = [rng.sample(common, 20) + [f"f{k}_{m}" for m in range(20)] for k in range(40)]
    pair = [common + ["zq"] + [f"{side}{m}" for m in range(5)] for side in "ab"]
    corpus = filler + pair
    narrow = StorySettings(min_similarity=0.3, candidate_df=12, max_df=1.0)
    assert [p[:2] for p in brute_force(corpus, narrow)] == [(40, 41)]
    assert story_pairs(corpus, narrow) == []
    assert [p[:2] for p in story_pairs(corpus, replace(narrow, candidate_df=500))] == [(40, 41)]


def test_pairs_are_sorted_in_range_and_above_threshold() -> None:
    corpus = random_corpus(random.Random(5), 150)
    s = StorySettings(min_similarity=0.2)
    pairs = story_pairs(corpus, s)
    assert pairs and pairs == sorted(pairs)
    assert all(i < j and s.min_similarity <= sim <= 1.0 + 1e-9 for i, j, sim in pairs)
    assert pairs == story_pairs(corpus, s)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_shuffling_inputs_permutes_pairs(seed: int, shuffler: random.Random) -> None:
    corpus = random_corpus(random.Random(seed), 40)
    s = StorySettings(min_similarity=0.2)
    order = list(range(len(corpus)))
    shuffler.shuffle(order)
    base = {(i, j): sim for i, j, sim in story_pairs(corpus, s)}
    moved = {}
    for a, b, sim in story_pairs([corpus[k] for k in order], s):
        i, j = sorted((order[a], order[b]))
        moved[(i, j)] = sim
    assert base == moved


def test_worker_processes_give_the_same_pairs_even_under_a_flag_only_sigterm_handler() -> None:
    """Row blocks worked in forked processes: same pairs as in-process. The child installs a SIGTERM
    handler that only sets a flag, as the CLI does during a run; the pool must still shut down."""
    script = (
        "import random, signal, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_story import random_corpus, brute_force\n"
        "from dedupe.story import StorySettings, story_pairs\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)\n"
        "corpus = random_corpus(random.Random(7), 300)\n"
        "s = StorySettings(min_similarity=0.2, block_rows=16)\n"
        "one, two = story_pairs(corpus, s, jobs=1), story_pairs(corpus, s, jobs=2)\n"
        "assert one and one == two, (len(one), len(two))\n"
        "assert [p[:2] for p in one] == [p[:2] for p in brute_force(corpus, s)]\n"
        "print('ok', len(one))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")


def test_row_blocks_cover_every_row_once_and_bound_their_product() -> None:
    from dedupe import story

    corpus = random_corpus(random.Random(9), 300)
    s = StorySettings(min_similarity=0.2)
    weights = story._tfidf(story._count_matrix(story.TermRows.of_arrays(
        [np.array([story.term_hash(t) for t in terms], dtype=np.uint64) for terms in corpus])), s)
    pre = story._prefixes(weights, story.TAIL_FRACTION * s.min_similarity, s.candidate_df)
    for rows, entries in ((2048, 10**9), (7, 10**9), (2048, 500), (2048, 1)):
        spans = story._row_blocks(pre.matrix, rows, entries)
        assert [a for a, _ in spans] == [0] + [b for _, b in spans[:-1]] and spans[-1][1] == len(corpus)
        assert all(0 < b - a <= rows for a, b in spans)
        for a, b in spans:
            if b - a > 1:
                assert (pre.matrix[a:b] @ pre.matrix[a:].T).nnz <= entries
        small = StorySettings(min_similarity=0.2, block_rows=rows, block_entries=entries)
        assert story_pairs(corpus, small) == story_pairs(corpus, s)


def test_term_rows_join_and_take_texts_in_the_order_asked() -> None:
    from dedupe.story import TermRows

    texts = [np.array(h, dtype=np.uint64) for h in ([5, 9, 5], [], [9, 1], [7], [1, 1, 2])]
    rows = TermRows.of_arrays(texts)
    vocabulary = np.unique(np.concatenate(texts))
    assert rows.vocabulary == len(vocabulary) and len(rows) == len(texts)
    ids = [np.searchsorted(vocabulary, h) for h in texts]

    def as_lists(t: TermRows) -> list[list[int]]:
        flat = t.flat()  # one array of their own, in the same order
        assert flat.starts is None and len(flat) == len(t)
        return [flat.ids[flat.offsets[k] : flat.offsets[k + 1]].tolist() for k in range(len(t))]

    assert as_lists(rows) == [i.tolist() for i in ids]
    # documents of paragraphs: (0, 1), (), (4, 2, 3); groups of no rows are empty texts
    joined = rows.unions(np.array([0, 1, 4, 2, 3]), np.array([2, 0, 3]))
    assert as_lists(joined) == [ids[0].tolist(), [], ids[4].tolist() + ids[2].tolist() + ids[3].tolist()]
    assert as_lists(rows.take(np.array([3, 0]))) == [ids[3].tolist(), ids[0].tolist()]
    assert len(rows.take(np.array([], dtype=np.int64))) == 0
    # picked texts are counted where they lie, as their copies would be
    for picked in (joined, rows.take(np.array([3, 0, 4]))):
        got, want = story._count_matrix(picked), story._count_matrix(picked.flat())
        assert (got != want).nnz == 0 and got.shape == want.shape


def test_row_sums_equal_a_sparse_product_for_any_chunk() -> None:
    """`_row_blocks` costs rows by their columns' frequencies a slice of rows at a time; rows longer
    than the slice, empty rows and an empty matrix give what multiplying the pattern gives."""
    rng = np.random.default_rng(1)
    for _ in range(100):
        n, v = int(rng.integers(1, 60)), int(rng.integers(1, 30))
        m = sp.random(n, v, density=rng.uniform(0, 1), format="csr", random_state=int(rng.integers(1 << 30)))
        per_column = rng.integers(0, 100, size=v)
        want = np.asarray(m.astype(bool).astype(np.float64) @ per_column.astype(np.float64)).ravel()
        for chunk in (1, 2, 3, 7, 1 << 22):
            assert np.array_equal(story._row_sums(m, per_column, chunk), want.astype(np.int64))


def test_value_counts_a_slice_at_a_time_equal_bincount(monkeypatch) -> None:
    """The story stage counts its column numbers a slice at a time (bincount copies them to intp
    first); with slices of a few values, the counts equal one bincount, whatever `minlength`."""
    from dedupe import arrays

    monkeypatch.setattr(arrays, "_COUNT_CHUNK", 7)
    rng = np.random.default_rng(3)
    for size in (0, 1, 7, 8, 50, 333):
        values = rng.integers(0, 40, size=size).astype(np.int32)
        for minlength in (0, 5, 41, 100):
            got = arrays.value_counts(values, minlength=minlength)
            assert np.array_equal(got, np.bincount(values, minlength=minlength)), (size, minlength)
