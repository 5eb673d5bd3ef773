"""Document-level near-duplicates on whole texts: the classic MinHash-LSH task, without chrome,
paragraphs or stories. Useful on its own and the like-for-like row of the speed benchmark."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from functools import lru_cache
from itertools import islice
from typing import Literal

import numpy as np
import xxhash

from . import kernels
from .cluster import cluster, components
from .exact import ShingleSets, pair_jaccard
from .forkpool import CAN_FORK, fork_map, spans
from .kernels import text_signatures
from .lsh import band_keys, candidate_pairs, lsh_params
from .minhash import EMPTY, MinHasher, estimate_jaccard

_BATCH = 2048
_MIN_SPAN = 256  # texts per forked work item at least (each item costs a round trip)

Verify = Literal["exact", "estimate"]


def document_signatures(texts: Iterable[str], ngram: int = 5, num_perm: int = 128, seed: int = 1,
                        jobs: int = 1) -> np.ndarray:
    """MinHash signature of each whole text's word n-grams, computed batch by batch (compiled with
    numba when it is installed), in `jobs` worker processes when `jobs` > 1.

    `texts` may be any iterable, e.g. a generator reading a dump: it is consumed one batch at a
    time, so memory holds signatures (4 bytes x num_perm per text), not the texts themselves.
    """
    if jobs > 1 and CAN_FORK and isinstance(texts, Sequence) and not isinstance(texts, str):
        # A list is inherited by forked workers: only index spans go out, and signatures come back
        # through shared memory (through the pipe, a worker waits for this process to be scheduled
        # and read each batch's megabyte while both cores are busy: 0.3 s per worker at 100k).
        kernels.warm_up()  # the workers inherit the loaded kernels instead of each loading them
        items = spans(len(texts), jobs, _BATCH, _MIN_SPAN)
        parts = fork_map(_sign_span, (texts, ngram, num_perm, seed), items, jobs,
                         shared_bytes=len(texts) * num_perm * 4 + 64 * len(items))
        return np.concatenate(parts) if parts else np.zeros((0, num_perm), dtype=np.uint32)
    batches = _batches(texts)
    if jobs > 1:
        kernels.warm_up()  # forked pool workers inherit the loaded kernels
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            parts = list(_bounded_map(pool, batches, 2 * jobs, ngram, num_perm, seed))
    else:
        parts = [_sign_batch(batch, ngram, num_perm, seed) for batch in batches]
    return np.concatenate(parts) if parts else np.zeros((0, num_perm), dtype=np.uint32)


def _batches(texts: Iterable[str]) -> Iterator[list[str]]:
    iterator = iter(texts)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def _bounded_map(pool: ProcessPoolExecutor, batches: Iterator[list[str]], in_flight: int, ngram: int,
                 num_perm: int, seed: int) -> Iterator[np.ndarray]:
    """Signatures of each batch in order, with at most `in_flight` batches submitted at a time
    (`Executor.map` would read the whole input first)."""
    pending: deque[Future[np.ndarray]] = deque()
    for batch in batches:
        pending.append(pool.submit(_sign_batch, batch, ngram, num_perm, seed))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _sign_span(context: tuple[Sequence[str], int, int, int], span: tuple[int, int]) -> np.ndarray:
    texts, ngram, num_perm, seed = context
    return _sign_batch(texts[span[0] : span[1]], ngram, num_perm, seed)


def _sign_batch(texts: Sequence[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """One batch's signatures; top-level so that worker processes can run it."""
    return text_signatures(texts, ngram, _hasher(num_perm, seed))


@lru_cache(maxsize=4)
def _hasher(num_perm: int, seed: int) -> MinHasher:
    return MinHasher(num_perm, seed)


def _content_rank(sigs: np.ndarray) -> np.ndarray:
    """Tie-break order from the signatures themselves, so clusters do not depend on input order."""
    keys = np.fromiter((xxhash.xxh3_64_intdigest(row.tobytes()) for row in sigs), dtype=np.uint64, count=len(sigs))
    rank = np.empty(len(sigs), dtype=np.int64)
    rank[np.argsort(keys, kind="stable")] = np.arange(len(sigs))
    return rank


def find_near_duplicate_documents(texts: Iterable[str], *, ngram: int = 5, num_perm: int = 128,
                                  threshold: float = 0.8, seed: int = 1, jobs: int = 1,
                                  verify: Verify | None = None) -> list[list[int]]:
    """Clusters (lists of indices, at least two each) of texts whose word n-gram Jaccard similarity
    to the cluster's representative reaches `threshold`. The representative comes first.

    LSH finds candidate pairs; `verify` says how they are checked. "exact" shingles the candidates'
    texts again and counts shared shingles, so a pair is kept exactly when its Jaccard reaches the
    threshold; it needs `texts` to be a sequence, and it is the default for one. "estimate" uses the
    share of equal MinHash slots (standard error about 0.035 at 0.8 with 128 permutations), and is
    the default for any other iterable, e.g. a generator reading a dump: indices then count from 0 in
    its order and memory holds signatures, not texts. `jobs` > 1 signs in worker processes; the
    clusters are the same either way.
    """
    rereadable = isinstance(texts, Sequence) and not isinstance(texts, str)
    if verify is None:
        verify = "exact" if rereadable else "estimate"
    if verify not in ("exact", "estimate"):
        raise ValueError(f"verify must be 'exact' or 'estimate', not {verify!r}")
    if verify == "exact" and not rereadable:
        raise TypeError("verify='exact' reads candidate texts again, so texts must be a sequence (a list)")
    sigs = document_signatures(texts, ngram, num_perm, seed, jobs)
    bands, rows = lsh_params(threshold, num_perm)
    active = sigs[:, 0] != EMPTY if len(sigs) else np.zeros(0, dtype=bool)
    pairs = candidate_pairs(band_keys(sigs, bands, rows), active)
    if verify == "exact":
        sims = pair_jaccard(texts, pairs, ngram, jobs)  # type: ignore[arg-type]
    else:
        sims = estimate_jaccard(sigs, pairs[:, 0], pairs[:, 1])
    keep = sims >= threshold
    pairs, sims = pairs[keep], sims[keep]

    if verify == "exact":
        # The chaining guard compares members of larger components with their representative, pairs
        # LSH need not have found: shingle those members (only they) once.
        labels = components(len(sigs), pairs)
        larger = np.flatnonzero(np.bincount(labels)[labels] > 2)
        sets = ShingleSets.of(texts, larger, ngram, jobs)  # type: ignore[arg-type]
        measure = sets.jaccard
    else:

        def measure(first: np.ndarray, second: np.ndarray) -> np.ndarray:
            return estimate_jaccard(sigs, first, second)

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return measure(np.full(len(others), rep), others)

    n = np.int64(len(sigs))
    verified = pairs[:, 0] * n + pairs[:, 1]  # sorted, as the candidates were

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """A two-node component is one verified pair: its similarity is already known."""
        return sims[np.searchsorted(verified, np.minimum(first, second) * n + np.maximum(first, second))]

    groups = cluster(len(sigs), pairs, _content_rank(sigs), similarity, threshold, pair_similarity)
    return [[int(m) for m in g.members] for g in groups]
