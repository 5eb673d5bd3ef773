"""Shingling and MinHash: the datasketch contract and the properties a signature must have."""

from __future__ import annotations

import numpy as np
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import MinHasher, shingle, shingle_hash32

_token = st.text(alphabet="abcdefghij", min_size=1, max_size=4)


def _datasketch_signature(tokens: list[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash32)
    if len(tokens) < ngram:
        m.update(" ".join(tokens).encode())
    for i in range(len(tokens) - ngram + 1):
        m.update(" ".join(tokens[i : i + ngram]).encode())
    return m.hashvalues


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_token, min_size=1, max_size=40), min_size=1, max_size=6),
       st.integers(1, 6), st.sampled_from([16, 64, 128]), st.integers(0, 2**31))
def test_signatures_equal_datasketch(texts: list[list[str]], ngram: int, num_perm: int, seed: int) -> None:
    sigs = MinHasher(num_perm, seed).signatures(shingle(texts, ngram))
    for row, tokens in zip(sigs, texts, strict=True):
        assert np.array_equal(row, _datasketch_signature(tokens, ngram, num_perm, seed))


def test_signature_works_in_datasketch_lsh() -> None:
    hasher = MinHasher(128, 7)
    tokens = ("one two three four five six seven eight nine ten " * 3).split()
    sig = hasher.signatures(shingle([tokens, [*tokens, "eleven"]], 5))
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    lsh.insert("a", hasher.to_datasketch(sig[0]))
    assert lsh.query(hasher.to_datasketch(sig[1])) == ["a"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_token, min_size=5, max_size=5), min_size=1, max_size=20), st.randoms())
def test_signature_ignores_repeats_and_order_of_shingles(shingles: list[list[str]], rnd) -> None:
    """A set's signature: the same shingles repeated or reordered give the same signature."""
    hasher = MinHasher(64, 3)
    as_texts = [s for s in shingles]  # each 5-token text is exactly one shingle
    shuffled = list(as_texts) + list(as_texts)
    rnd.shuffle(shuffled)
    a = hasher.signatures(shingle(as_texts, 5)).min(axis=0)
    b = hasher.signatures(shingle(shuffled, 5)).min(axis=0)
    assert np.array_equal(a, b)


def test_empty_text_has_empty_signature_and_short_text_one_shingle() -> None:
    batch = shingle([[], ["just", "two"]], 5)
    assert batch.counts.tolist() == [0, 1]
    sigs = MinHasher(32).signatures(batch)
    assert (sigs[0] == 0xFFFFFFFF).all()
    assert not (sigs[1] == 0xFFFFFFFF).any()


def test_estimate_tracks_true_jaccard(rng) -> None:
    from dedupe.minhash import estimate_jaccard

    base = [f"w{rng.randrange(10**6)}" for _ in range(400)]
    other = base[:300] + [f"x{rng.randrange(10**6)}" for _ in range(100)]
    a = {tuple(base[i : i + 5]) for i in range(396)}
    b = {tuple(other[i : i + 5]) for i in range(396)}
    truth = len(a & b) / len(a | b)
    sigs = MinHasher(256).signatures(shingle([base, other], 5))
    estimate = estimate_jaccard(sigs, np.array([0]), np.array([1]))[0]
    assert abs(estimate - truth) < 0.1
