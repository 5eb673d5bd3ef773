"""LSH candidates and clustering: recall on planted copies, no chaining, order independence."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import find_near_duplicate_documents
from dedupe.cluster import cluster
from dedupe.lsh import band_keys, candidate_pairs, lsh_params

from .conftest import edit_words, random_text


def test_lsh_params_favour_recall_since_candidates_are_verified() -> None:
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128
    found = 1 - (1 - 0.8**rows) ** bands
    assert found >= 0.9  # a pair right at the threshold is a candidate nine times in ten


def test_candidate_pairs_from_equal_bands() -> None:
    sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 6, 7, 8]], dtype=np.uint32)
    pairs = candidate_pairs(band_keys(sigs, 2, 2))
    assert pairs.tolist() == [[0, 1], [0, 2]]


def test_big_bucket_stays_connected_without_quadratic_pairs() -> None:
    sigs = np.zeros((500, 4), dtype=np.uint32)
    pairs = candidate_pairs(band_keys(sigs, 2, 2))
    assert len(pairs) < 2 * 500
    from dedupe.cluster import components

    assert len(set(components(500, pairs).tolist())) == 1


def test_recall_on_planted_near_duplicates(rng: random.Random) -> None:
    originals = [random_text(rng, rng.randint(300, 600)) for _ in range(120)]
    copies = [edit_words(rng, originals[k], 0.005) for k in range(40)]  # true Jaccard about 0.9
    texts = originals + copies
    clusters = find_near_duplicate_documents(texts, threshold=0.8)
    together = {frozenset(c) for c in clusters}
    found = sum(any({k, 120 + k} <= c for c in together) for k in range(40))
    assert found >= 38  # recall >= 0.95
    assert all(len(c) == 2 for c in clusters)  # nothing unrelated glued on


def test_chaining_guard_splits_a_chain() -> None:
    """0-1-2-3-4 linked in a chain, each link similar, the ends far apart: the chain is cut into
    stars whose members are all close to their representative."""
    close = {(0, 1), (1, 2), (2, 3), (3, 4)}

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return np.array([0.9 if (min(rep, o), max(rep, o)) in close else 0.3 for o in others])

    groups = cluster(5, np.array(sorted(close)), np.arange(5), similarity, 0.8)
    assert [sorted(g.members.tolist()) for g in groups] == [[0, 1, 2], [3, 4]]
    for g in groups:
        assert all(s >= 0.8 for s in g.similarity)


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_same_clusters_whatever_the_input_order(rnd: random.Random) -> None:
    rng = random.Random(99)
    base = [random_text(rng, 200) for _ in range(12)]
    texts = base + [edit_words(rng, base[k], 0.01) for k in range(6)] + [base[0]]
    order = list(range(len(texts)))
    rnd.shuffle(order)
    first = {frozenset(c) for c in find_near_duplicate_documents(texts)}
    shuffled = find_near_duplicate_documents([texts[k] for k in order])
    assert {frozenset(order[m] for m in c) for c in shuffled} == first


def test_worker_processes_find_the_same_clusters(rng: random.Random) -> None:
    import dedupe.near as near

    base = [random_text(rng, 200) for _ in range(30)]
    texts = base + [edit_words(rng, base[k], 0.005) for k in range(10)]
    old_batch = near._BATCH
    near._BATCH = 8  # several batches, so the pool is used
    try:
        assert find_near_duplicate_documents(texts, jobs=2) == find_near_duplicate_documents(texts)
    finally:
        near._BATCH = old_batch


def test_a_generator_of_texts_gives_the_same_clusters(rng: random.Random) -> None:
    import dedupe.near as near

    base = [random_text(rng, 200) for _ in range(30)]
    texts = base + [edit_words(rng, base[k], 0.005) for k in range(10)]
    old_batch = near._BATCH
    near._BATCH = 8
    try:
        expected = find_near_duplicate_documents(texts)
        assert find_near_duplicate_documents(iter(texts)) == expected
        assert find_near_duplicate_documents((t for t in texts), jobs=2) == expected
    finally:
        near._BATCH = old_batch
