"""LSH candidates and clustering: recall on planted copies, no chaining, order independence."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import find_near_duplicate_documents
from dedupe.cluster import cluster
from dedupe.lsh import band_keys, candidate_pairs, lsh_params
from dedupe.normalize import normalize, tokenize

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


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 60), st.floats(0.3, 0.9))
def test_components_settled_at_once_match_the_peel(seed: int, n: int, threshold: float) -> None:
    """With `pair_similarity`, components whose members all reach their representative are settled
    in one call (`_whole_stars`), the rest peeled: the groups are those of peeling every one,
    through stars, chains, cut stars and ties of degree broken by rank."""
    rng = np.random.default_rng(seed)
    points = rng.random(n)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.15], dtype=np.int64)
    pairs = pairs.reshape(-1, 2)
    rank = rng.permutation(n)

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return 1.0 - np.abs(points[first] - points[second])

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return pair_similarity(np.full(len(others), rep), others)

    got = cluster(n, pairs, rank, similarity, threshold, pair_similarity)
    want = cluster(n, pairs, rank, similarity, threshold)
    assert [(g.representative, g.members.tolist(), g.similarity.tolist()) for g in got] == [
        (g.representative, g.members.tolist(), g.similarity.tolist()) for g in want]
    assert all(g.members.dtype == np.int64 for g in got)


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
        expected = find_near_duplicate_documents(texts, verify="estimate")
        assert find_near_duplicate_documents(iter(texts)) == expected
        assert find_near_duplicate_documents((t for t in texts), jobs=2) == expected
    finally:
        near._BATCH = old_batch


def _jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        tokens = tokenize(normalize(text))
        return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_exact_verification_keeps_a_pair_exactly_when_its_jaccard_reaches_the_threshold(rng: random.Random) -> None:
    # Forty copies cut from the bottom of their source to a Jaccard just under or just over 0.8,
    # where a 128-slot estimate (standard error 0.035) is wrong about four times in ten.
    texts, truth = [], []
    for k in range(40):
        source = random_text(rng, 300)
        words = source.split()
        keep = round(4 + (0.765 + 0.0018 * k) * (len(words) - 4))
        copy = " ".join(words[:keep])
        truth.append(_jaccard(source, copy))
        texts += [source, copy]
    assert min(truth) < 0.78 and max(truth) > 0.83 and sum(j >= 0.8 for j in truth) >= 15

    def found(clusters: list[list[int]]) -> list[bool]:
        together = {frozenset((a, b)) for c in clusters for a in c for b in c if a < b}
        return [frozenset((2 * k, 2 * k + 1)) in together for k in range(40)]

    exact = found(find_near_duplicate_documents(texts))
    assert not any(f for f, j in zip(exact, truth, strict=True) if j < 0.8)
    above = [f for f, j in zip(exact, truth, strict=True) if j >= 0.8]
    assert sum(above) >= 0.9 * len(above)  # LSH finds a pair at J = 0.8 as a candidate 95 times in 100
    estimated = found(find_near_duplicate_documents(iter(texts)))  # a generator: estimates only
    wrong = sum(f != (j >= 0.8) for f, j in zip(estimated, truth, strict=True))
    assert wrong > sum(f != (j >= 0.8) for f, j in zip(exact, truth, strict=True))


def test_verify_option_is_checked() -> None:
    with pytest.raises(TypeError, match="sequence"):
        find_near_duplicate_documents(iter(["a b c d e"]), verify="exact")
    with pytest.raises(ValueError, match="verify"):
        find_near_duplicate_documents(["a b c d e"], verify="closely")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_content_keys_hash_each_documents_content_paragraph_keys_in_order(seed: int) -> None:
    """A document's key is XXH3-128 of its content paragraphs' high key halves then their low halves
    (all its paragraphs when none is content; an empty input for a document without paragraphs):
    archives hold these keys, so they must not change."""
    import xxhash

    from dedupe.copies import content_keys

    rng = np.random.default_rng(seed)
    n = 40
    doc = np.sort(rng.integers(0, n, 300))  # some documents have no paragraphs
    feats = type("Feats", (), {"doc": doc, "key_hi": rng.integers(0, 2**64, len(doc), dtype=np.uint64),
                               "key_lo": rng.integers(0, 2**64, len(doc), dtype=np.uint64)})()
    content = rng.random(len(doc)) < 0.6
    content[doc == doc[0]] = False  # a document with no content paragraph
    hi, lo = content_keys(feats, content, n)
    for d in range(n):
        mine = doc == d
        use = mine & content if (mine & content).any() else mine
        value = xxhash.xxh3_128_intdigest(feats.key_hi[use].tobytes() + feats.key_lo[use].tobytes())
        assert (int(hi[d]), int(lo[d])) == (value >> 64, value & (2**64 - 1))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flat_groups_and_their_objects_agree(seed: int) -> None:
    """`others` are every member but the representatives; `objects` with names renames members;
    `Groups.of` flattens the objects back into the same arrays."""
    from dedupe.cluster import Groups, cluster_groups

    rng = np.random.default_rng(seed)
    n = 60
    points = rng.random(n)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.08], dtype=np.int64)
    rank = rng.permutation(n)

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return 1.0 - np.abs(points[first] - points[second])

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return pair_similarity(np.full(len(others), rep), others)

    flat = cluster_groups(n, pairs.reshape(-1, 2), rank, similarity, 0.8, pair_similarity)
    objects = cluster(n, pairs.reshape(-1, 2), rank, similarity, 0.8, pair_similarity)
    assert len(flat) == len(objects) > 3
    assert [g.representative for g in objects] == [int(g.members[0]) for g in objects]
    assert sorted(flat.others().tolist()) == sorted(m for g in objects for m in g.members[1:].tolist())
    names = np.arange(n) * 10
    assert [g.members.tolist() for g in flat.objects(names)] == [(g.members * 10).tolist() for g in objects]
    again = Groups.of(objects)
    assert again.starts.tolist() == flat.starts.tolist() and again.members.tolist() == flat.members.tolist()
    assert again.similarity.tolist() == flat.similarity.tolist()
    assert len(Groups.joined([])) == 0 and Groups.joined([]).objects() == []
