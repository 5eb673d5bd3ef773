"""Story pairs: texts that retell the same news story in different words.

Rewritten copies share few word n-grams (Jaccard of 5-gram shingles ≈ 0.01) but many *content
words*: the names, places and topic words of the story. A text becomes a bag of content terms
(`content_terms`: stop words out, Snowball-stemmed, numbers out) and a TF-IDF vector

    w(t, d) = (1 + ln tf(t, d)) · idf(t),    idf(t) = ln((1 + n) / (1 + df(t))) + 1,

L2-normalised, and two texts are compared by cosine similarity. Sub-linear tf stops one term
repeated many times from dominating; idf makes a shared rare name ("Akazawa") count far more than a
shared common word ("said"). Terms found in more than `max_df` of the texts are dropped as corpus
stop words (they are in too many texts to say anything about a story).

Scaling (no n×n matrix): *prefix filtering* (Bayardo et al., "Scaling up all pairs similarity
search", WWW 2007). Order terms globally rarest first and cut each unit vector x into a prefix and a
tail x_s, the longest run of its most common terms with ‖x_s‖ < τ/2 (τ = `min_similarity`). For a
pair, let b be the earlier start of the two tails: a shared term ranked before b is in both
prefixes, the others are ranked at or after b, so by Cauchy–Schwarz

    x·y ≤ pp + ‖x_{≥b}‖·‖y_{≥b}‖ ≤ pp + ‖x_s‖,    pp = prefix(x)·prefix(y).

A pair sharing no prefix term has pp = 0 and x·y < τ/2, so candidates come from the sparse product
P·Pᵀ of the prefixes alone, computed in row blocks; those whose bound reaches τ are verified by
their exact cosine. Common terms, which would make that product quadratic, sit in the tails.

Terms in more than `candidate_df` texts ("widespread" terms; they are the last ranks of the global
order) always go to the tails and are left out of the bound: the norms above are taken over the
rarer terms only. That keeps the work linear in the corpus size: each prefix term brings at most
`candidate_df` partners, and the bound does not grow with the corpus. (Bounding the widespread
terms too is exact but not linear: on a corpus drawn from one vocabulary, more terms pass
`candidate_df` as it grows, their weight swells every tail, and at 30k synthetic documents 55% of
the prefix products passed the bound, 139M pairs to verify.) This is the one approximation: every
pair whose shared terms of df ≤ `candidate_df` give a dot product of τ on their own is found, and
is then kept or dropped on its full cosine, but a pair that reaches τ only with the help of
widespread terms can be missed (on the dev sets' paragraphs, 5 of 1,267 and 3 of 617 pairs). On a
corpus with no term in more than `candidate_df` texts the result equals the all-pairs cosine (tests
check it against brute force).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
import snowballstemmer
import xxhash

from dedupe import kernels, kernels_rows, kernels_story
from dedupe.arrays import unique_sorted, value_counts
from dedupe.forkpool import fork_map
from dedupe.normalize import tokenize, words
from dedupe.stopwords import ENGLISH_STOPWORDS

_STEMMER = snowballstemmer.stemmer("english")

TAIL_FRACTION = 0.5
"""Tails are cut at ‖x_s‖ < TAIL_FRACTION·τ, so a candidate needs pp ≥ (1 − TAIL_FRACTION)·τ to be
verified. A larger fraction shortens the prefixes (a smaller product) but lets more pairs through to
the exact check; 0.5 balances the two."""


@dataclass(frozen=True, slots=True)
class StorySettings:
    """Knobs of story pairing (defaults measured with benchmarks/story_eval.py).

    min_terms: texts with fewer *distinct* content terms get no pairs. 20 is a prose paragraph of
        ~50 words; below it a couple of shared names decide the cosine, and headlines, bylines and
        captions pair by chance (on the MMDS dev set, paragraphs of 15+ terms paired at τ = 0.35
        are 89% same-story across documents, of 20+ terms 94%).
    min_similarity: τ, the TF-IDF cosine at or above which two texts are paired. On the MMDS dev
        set (document level, after the chaining guard) 0.35 gives pair precision 0.94 at recall
        0.46; 0.30 gives 0.90 / 0.55, 0.25 gives 0.87 / 0.57. Precision is preferred: a false story
        merge is worse than a missed one.
    max_df: terms in more than this fraction of the texts get idf 0 (corpus stop words: "year",
        "government" in a news dump, or a topic every text shares)...
    max_df_floor: ...but only when also in more than this many texts, so that small corpora
        (a handful of paragraphs) do not lose every shared term.
    candidate_df: terms in more texts than this never generate candidates nor count in the
        candidate bound (see the module docstring); they still count in the verified cosine.
        Raising it finds more of the pairs that lean on widespread terms, at a cost growing with
        it: each prefix term brings up to this many partners.
    block_rows: rows of P per block of the candidate product P·Pᵀ...
    block_entries: ...and at most about this many product entries per block (estimated from the
        document frequencies of each row's prefix terms): blocks are the units of work shared
        among `jobs`, and on the numpy path (no compiled kernels), which materialises each block's
        product, they bound peak memory, which on texts with flat term weights (many mid-frequency
        terms in every prefix) would otherwise grow with the corpus.
    """

    min_terms: int = 20
    min_similarity: float = 0.35
    max_df: float = 0.05
    max_df_floor: int = 5
    candidate_df: int = 500
    block_rows: int = 2048
    block_entries: int = 4_000_000


def content_terms(text: str) -> list[str]:
    """Stemmed content words of `text`, in order.

    Normalised tokens minus one-letter tokens, digits-only tokens and stop words, then Snowball
    (Porter 2) stemmed so that "negotiations" and "negotiators" meet at "negoti". Each distinct
    word's fate (its stem, or "" when dropped) is worked out once and remembered, since the same
    words recur in every text of a dump.
    """
    return _stems(words(text))


def term_hashes_of_normalised(norm: str) -> np.ndarray:
    """`content_terms` of normalised text as 64-bit hashes of the stems (uint64), in order.

    Hashes cross process boundaries as one array and are numbered corpus-wide by sorting, with no
    string per term occurrence; two stems sharing a 64-bit hash is negligible at any corpus size."""
    tokens = tokenize(norm)
    fate = _remember(_HASHED_FATE, tokens, lambda stem: term_hash(stem) if stem else 0)
    hashes = np.fromiter(map(fate.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
    return hashes[hashes != 0]


def term_hashes_of_batch(normalised: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`term_hashes_of_normalised` of every text, as one flat array and offsets into it.

    With the compiled kernels, tokens are found and hashed in one pass over the batch and each
    distinct word's fate is looked up once per batch (by its 64-bit hash), not once per token."""
    if not kernels.AVAILABLE:
        parts = [term_hashes_of_normalised(norm) for norm in normalised]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)), offsets
    found = kernels.distinct_words(normalised)
    per_word = _WORD_FATES.of(found)
    terms = per_word[found.ids]
    kept = np.flatnonzero(terms)
    return terms[kept], np.searchsorted(kept, found.offsets)


def term_ids_of_batch(normalised: Sequence[str] | kernels.Packed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`term_hashes_of_batch` as batch-local ids (int32) into the batch's sorted distinct term
    hashes (`vocabulary[ids]` are the hashes), and the offsets. Batches join by merging their small
    vocabularies (`features.concat`), so no sort over every term occurrence of the corpus is needed,
    and ids take half the memory of hashes."""
    if kernels.AVAILABLE:
        return term_ids_of_words(kernels.distinct_words(normalised))
    assert not isinstance(normalised, kernels.Packed)  # only the kernels pack texts
    hashes, offsets = term_hashes_of_batch(normalised)
    vocabulary, ids = np.unique(hashes, return_inverse=True)
    return ids.astype(np.int32).reshape(-1), vocabulary, offsets


def term_ids_of_words(found: kernels.DistinctWords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`term_ids_of_batch` of a batch whose words are already numbered (`kernels.distinct_words`, or
    `kernels.sign_paragraphs` with `number_words`, which finds them in its own pass over the batch)."""
    per_word = _WORD_FATES.of(found)
    vocabulary, word_term = np.unique(per_word, return_inverse=True)  # 0 (a dropped word) sorts first
    dropped = int(vocabulary.size > 0 and vocabulary[0] == 0)
    terms, offsets = kernels_rows.mapped_kept(word_term.astype(np.int32) - np.int32(dropped), found.ids, found.offsets)
    return terms, vocabulary[dropped:], offsets


class _WordFates:
    """XXH64 of a word -> `term_hash` of its stem (0 for a dropped word), as two sorted arrays, so a
    batch's distinct words are looked up with one `searchsorted` and only unseen ones are spelt out
    and stemmed. Bounded: past `_FATE_LIMIT` words it starts afresh."""

    def __init__(self) -> None:
        self.words = self.fates = np.zeros(0, dtype=np.uint64)

    def of(self, found: kernels.DistinctWords) -> np.ndarray:
        """The fate of each of the batch's distinct words, in their order."""
        if len(self.words) > _FATE_LIMIT:
            self.words = self.fates = np.zeros(0, dtype=np.uint64)
        hashes = found.hashes
        by_hash = np.argsort(hashes)  # looked up in sorted order: 3-4x faster than in the batch's order
        at = _searched(self.words, hashes, by_hash)
        known = np.zeros(len(hashes), dtype=bool)
        inside = at < len(self.words)
        known[inside] = self.words[at[inside]] == hashes[inside]
        unseen = np.flatnonzero(~known)
        if unseen.size:
            spelt = [found.word(int(w)) for w in unseen]
            fate = _remember(_HASHED_FATE, spelt, lambda stem: term_hash(stem) if stem else 0)
            new = hashes[unseen]
            order = np.argsort(new)
            where = np.searchsorted(self.words, new[order])
            self.words = np.insert(self.words, where, new[order])
            values = np.fromiter(map(fate.__getitem__, spelt), dtype=np.uint64, count=len(spelt))
            self.fates = np.insert(self.fates, where, values[order])
            at = _searched(self.words, hashes, by_hash)
        return self.fates[at]


def _searched(sorted_values: np.ndarray, queries: np.ndarray, order: np.ndarray) -> np.ndarray:
    """`np.searchsorted(sorted_values, queries)`, the queries taken in sorted order (`order` sorts
    them): each search then starts near the last one's place, in cache."""
    at = np.empty(len(queries), dtype=np.intp)
    at[order] = np.searchsorted(sorted_values, queries[order])
    return at


def term_hash(term: str) -> int:
    """A term's 64-bit hash (never 0, which marks a dropped word)."""
    return xxhash.xxh64_intdigest(term.encode("utf-8")) or 1


@dataclass(frozen=True, slots=True)
class TermRows:
    """Texts as term ids, in one flat array: text k's are `ids[offsets[k]:offsets[k + 1]]`.

    Ids are column numbers of the sorted distinct term hashes, so the numbering does not depend on
    the order of the texts. One flat array, not an array per text: a dump has millions of
    paragraphs, and the story stage picks, joins and counts them with array operations.

    Texts picked or joined from other texts (`unions`, `take`) are not copied: they are made of
    ranges of the same ids, text k the concatenation of ids[starts[j]:starts[j] + lengths[j]] for
    j in [offsets[k], offsets[k + 1]), and counted where they lie (a copy of a dump's paragraph
    terms was the story stage's largest array at its peak of memory)."""

    ids: np.ndarray  # int32 (int64 past 2^31 distinct terms)
    offsets: np.ndarray  # int64, texts + 1
    vocabulary: int
    starts: np.ndarray | None = None  # int64 per range, when the texts are made of ranges...
    lengths: np.ndarray | None = None  # ...and their lengths

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def of_hashes(cls, hashes: np.ndarray, offsets: np.ndarray) -> TermRows:
        """Number flat term hashes (text k's are `hashes[offsets[k]:offsets[k + 1]]`)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if kernels.AVAILABLE:
            ids, count = kernels_story.sorted_ranks(hashes)
        else:
            vocabulary = unique_sorted(hashes)
            ids, count = np.searchsorted(vocabulary, hashes), len(vocabulary)
            ids = ids.astype(np.int32 if count < 2**31 else np.int64)
        return cls(ids, np.asarray(offsets, dtype=np.int64), count)

    @classmethod
    def of_arrays(cls, hashes: Sequence[np.ndarray]) -> TermRows:
        """Number each text's array of term hashes."""
        offsets = np.zeros(len(hashes) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, hashes), dtype=np.int64, count=len(hashes)), out=offsets[1:])
        flat = np.concatenate(hashes) if len(hashes) else np.zeros(0, dtype=np.uint64)
        return cls.of_hashes(flat, offsets)

    def unions(self, rows: np.ndarray, sizes: np.ndarray) -> TermRows:
        """New texts, each the union of consecutive texts of `rows`: the first of `sizes[0]` of them,
        the next of `sizes[1]`, and so on (a document of its paragraphs; `take` when all are 1)."""
        flat = self.flat()
        rows = np.asarray(rows, dtype=np.int64)
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        starts = flat.offsets[rows]
        return TermRows(flat.ids, offsets, self.vocabulary, starts, flat.offsets[rows + 1] - starts)

    def take(self, rows: np.ndarray) -> TermRows:
        """The texts `rows`, in that order."""
        return self.unions(rows, np.ones(len(rows), dtype=np.int64))

    def flat(self) -> TermRows:
        """The same texts with their ids in one flat array of their own (as they are, when they are)."""
        if self.starts is None or self.lengths is None:
            return self
        ends = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=ends[1:])
        return TermRows(kernels_rows.gather_ranges(self.ids, self.starts, self.lengths), ends[self.offsets],
                        self.vocabulary)


def _stems(tokens: list[str]) -> list[str]:
    fate = _remember(_FATE, tokens, lambda stem: stem)
    return [stem for stem in map(fate.__getitem__, tokens) if stem]


def _remember(fate: dict[str, T], tokens: list[str], value: Callable[[str], T]) -> dict[str, T]:
    """`fate` with an entry for every token: `value(stem)`, or `value("")` for a dropped word.

    One-letter tokens, digits-only tokens and stop words are dropped; the rest are stemmed in one
    call per batch of new words."""
    if len(fate) > _FATE_LIMIT:
        fate.clear()
    unseen = [w for w in set(tokens) if w not in fate]
    if unseen:
        content = [w for w in unseen if len(w) > 1 and not w.isdigit() and w not in ENGLISH_STOPWORDS]
        fate.update(dict.fromkeys(unseen, value("")))
        fate.update(zip(content, map(value, _STEMMER.stemWords(content)), strict=True))
    return fate


T = TypeVar("T")
_FATE: dict[str, str] = {}  # word -> its stem, "" when dropped
_HASHED_FATE: dict[str, int] = {}  # word -> term_hash of its stem, 0 when dropped
_FATE_LIMIT = 1 << 20  # distinct words remembered before starting afresh (bounds memory)
_WORD_FATES = _WordFates()


def story_pairs(
    term_lists: Sequence[Sequence[str]], settings: StorySettings = StorySettings(), jobs: int = 1
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cosine) with i < j and cosine ≥ settings.min_similarity, sorted by (i, j).

    IDF is computed over `term_lists` themselves (the scanned corpus). The result does not depend
    on the order of the input beyond renumbering: terms are numbered in the order of their hashes, so every
    dot product is summed in the same order whatever the order of the texts. With `jobs` > 1 the
    row blocks of the candidate product are worked in forked processes (where the platform forks);
    each block's pairs are the same wherever it runs, so the result is too.
    """
    hashes = [np.fromiter(map(term_hash, terms), dtype=np.uint64, count=len(terms)) for terms in term_lists]
    rows, cols, sims = story_pair_arrays(TermRows.of_arrays(hashes), settings, jobs)
    return [(int(i), int(j), float(s)) for i, j, s in zip(rows, cols, sims, strict=True)]


def story_pair_arrays(terms: TermRows, settings: StorySettings = StorySettings(),
                      jobs: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`story_pairs` as three arrays (rows i, columns j, cosines), sorted by (i, j)."""
    none = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    weights = _tfidf(_count_matrix(terms), settings)  # the counts are used up as they are weighted
    if weights.nnz == 0:
        return none
    tau = settings.min_similarity
    prefixes = _prefixes(weights, TAIL_FRACTION * tau, settings.candidate_df)
    work = _Work(weights, prefixes, tau)
    spans = _row_blocks(prefixes.matrix, settings.block_rows, settings.block_entries)
    found = [part for part in fork_map(_Work.block, work, spans, jobs) if part[0].size]
    if not found:
        return none
    rows, cols, sims = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.lexsort((cols, rows))
    return rows[order].astype(np.int64), cols[order].astype(np.int64), sims[order]


def _count_matrix(terms: TermRows) -> sp.csr_matrix:
    """Term counts, one row per text, columns numbered by sorted term hash (sorted in every row)."""
    shape = (len(terms), terms.vocabulary)
    if kernels.AVAILABLE:
        indptr, columns, counts = kernels_story.row_counts(terms.ids, terms.offsets, terms.starts, terms.lengths)
        m = sp.csr_matrix((counts, columns, indptr), shape=shape)
        m.has_sorted_indices = True
        return m
    terms = terms.flat()
    data = np.ones(terms.ids.size, dtype=np.float64)
    m = sp.csr_matrix((data, terms.ids, terms.offsets), shape=shape)
    m.sum_duplicates()  # also sorts the column indices of every row
    return m


def _tfidf(counts: sp.csr_matrix, settings: StorySettings) -> sp.csr_matrix:
    """L2-normalised sub-linear TF-IDF rows; texts under min_terms and corpus stop words zeroed.
    Columns are numbered by global rank, rarest first (`_ranks`), which the prefix cut needs; cosines
    do not depend on how columns are numbered.

    Built without a copy of `counts`, a squared copy of the matrix for the norms or a renumbered
    copy for the prefix cut: on a dump's paragraphs these matrices hold tens of millions of
    entries. With the kernels the weights are written over the counts' arrays, so `counts` is used
    up (the numpy form leaves it as it was)."""
    n = counts.shape[0]
    df = value_counts(counts.indices, minlength=counts.shape[1])
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    idf[df > max(settings.max_df * n, settings.max_df_floor)] = 0.0
    if kernels.AVAILABLE:  # ranked, and each row sorted, by the kernel as it fills the rows
        log_tf = np.concatenate([[0.0], 1.0 + np.log(np.arange(1.0, counts.data.max(initial=0.0) + 1.0))])
        indptr, ranked, data = kernels_story.tfidf_rows(counts.indptr, counts.indices, counts.data, idf, log_tf,
                                                        settings.min_terms, df)
        w = sp.csr_matrix((data, ranked, indptr), shape=counts.shape)
        w.has_sorted_indices = True
        return w
    indptr, indices, data = _tfidf_rows(counts, idf, settings.min_terms)
    ranked = _ranks(np.bincount(indices, minlength=counts.shape[1])).astype(indices.dtype)[indices]
    w = sp.csr_matrix((data, ranked, indptr), shape=counts.shape)
    w.sort_indices()  # in place, row by row
    return w


def _tfidf_rows(counts: sp.csr_matrix, idf: np.ndarray, min_terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`kernels_story.tfidf_rows` in numpy: the weighted rows as indptr, indices and data."""
    n = counts.shape[0]
    distinct = np.diff(counts.indptr)
    data = (1.0 + np.log(counts.data)) * idf[counts.indices]
    data[np.repeat(distinct < min_terms, distinct)] = 0.0
    keep = np.flatnonzero(data)
    indptr = np.searchsorted(keep, counts.indptr)  # entries kept before each row's start
    data, indices = data[keep], counts.indices[keep]
    lengths = np.diff(indptr)
    squares = np.zeros(n)
    rows = np.flatnonzero(lengths)
    if rows.size:
        squares[rows] = np.add.reduceat(data * data, indptr[rows])
    norms = np.sqrt(squares)
    data /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
    return indptr, indices, data


def _ranks(df: np.ndarray) -> np.ndarray:
    """Each term's place in the global order of the prefix cut: rarest first, ties by term number
    (so by term hash: the order does not depend on the order of the texts)."""
    rank = np.empty(df.size, dtype=np.int64)
    rank[np.lexsort((np.arange(df.size), df))] = np.arange(df.size)
    return rank


@dataclass(frozen=True, slots=True)
class _Prefixes:
    """Every row cut into a prefix (its rarest terms) and a tail (see the module docstring).

    matrix: the prefix entries that can be shared (df ≥ 2), with their weights; columns are
        numbered by global rank (rarest first), not by term.
    by_column: the same matrix by column (each term's rows, ascending), the inverted index the
        compiled candidate search walks; its weights are float32 (see `kernels_story.prefix_candidates`).
    start: global rank of each row's first tail term (the vocabulary size when it has no tail).
    tail: ‖x_s‖, the norm of each row's tail over its terms of df ≤ candidate_df.
    level: for each row, the index of the last checkpoint rank at or before its tail's start.
    above: ‖x_{≥c}‖ over the terms of df ≤ candidate_df, for each row and checkpoint rank c
        (ranks where df passes 1, 2, 4, 8, ... and `candidate_df`): an upper bound of ‖x_{≥b}‖
        for any b at or after the checkpoint, read with one gather instead of a search.
    peak: for each rank t, the largest ‖y_{≥t}‖ over the rows y with t in their prefix (norms over
        the prefix entries): a pair whose first shared prefix term is t has a prefix product of at
        most ‖x_{≥t}‖·peak[t], which the compiled search uses to stop walking early.
    """

    matrix: sp.csr_matrix
    by_column: sp.csc_matrix
    start: np.ndarray
    tail: np.ndarray
    level: np.ndarray
    above: np.ndarray
    peak: np.ndarray


def _prefixes(ranked: sp.csr_matrix, limit: float, max_df: int) -> _Prefixes:
    """Cut every row of `_tfidf`'s weights (columns by rank, rarest first, sorted in each row) so
    that its tail (its most common terms) has norm < `limit`.

    Terms in more than `max_df` texts always go to the tail (still a suffix of the global order)
    and are left out of the tail norms, which keeps the candidate search linear in the corpus size.
    """
    n, v = ranked.shape
    sorted_df = value_counts(ranked.indices, minlength=v)  # by rank: never decreasing
    cuts = np.append(2 ** np.arange(int(np.log2(max(2, sorted_df[-1] if v else 2))) + 1), max_df)
    checkpoints = np.unique(np.append(np.searchsorted(sorted_df, cuts, side="right"), 0))
    if kernels.AVAILABLE:  # one pass per row, no array per entry (the stage's peak of memory)
        indptr, indices, data, start, tail, level, above, peak = kernels_story.prefix_cut(
            ranked.indptr, ranked.indices, ranked.data, sorted_df, checkpoints, limit, max_df)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n, v))
        matrix.has_sorted_indices = True
        return _Prefixes(matrix, _postings(matrix), start, tail, level, above, peak)
    lengths = np.diff(ranked.indptr)
    row = np.repeat(np.arange(n), lengths)
    r, sq = ranked.indices.astype(np.int64), ranked.data ** 2
    suffix = _row_suffix_sums(ranked.indptr, sq)  # entry and rest of row
    common = sorted_df[r] > max_df
    in_tail = (suffix < limit * limit) | common  # a suffix of each row: its last `count` entries
    count = np.bincount(row[in_tail], minlength=n)
    start = np.full(n, v, dtype=np.int64)
    has_tail = count > 0
    start[has_tail] = r[ranked.indptr[1:][has_tail] - count[has_tail]]
    bounded = np.where(common, 0.0, sq)  # common terms are left out of the bound (see the module docstring)
    tail = np.sqrt(np.bincount(row[in_tail], weights=bounded[in_tail], minlength=n))
    bucket = (np.searchsorted(checkpoints, np.arange(v), side="right") - 1)[r]
    mass = np.bincount(row * checkpoints.size + bucket, weights=bounded, minlength=n * checkpoints.size)
    above = np.sqrt(np.cumsum(mass.reshape(n, -1)[:, ::-1], axis=1)[:, ::-1]).astype(np.float32)
    level = np.searchsorted(checkpoints, start, side="right") - 1
    matrix = sp.csr_matrix((np.where(in_tail | (sorted_df[r] < 2), 0.0, ranked.data), ranked.indices.copy(),
                            ranked.indptr.copy()), shape=(n, v))  # the weights themselves stay whole
    matrix.eliminate_zeros()
    return _Prefixes(matrix, _postings(matrix), start, tail, level, above, _peaks(matrix))


def _row_suffix_sums(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each entry of a CSR matrix, the sum of `values` from it to its row's end."""
    lengths = np.diff(indptr)
    inclusive = np.cumsum(values)
    ends = indptr[1:][lengths > 0] - 1
    return np.repeat(inclusive[ends], lengths[lengths > 0]) - inclusive + values


def _peaks(prefix: sp.csr_matrix) -> np.ndarray:
    """`_Prefixes.peak` in numpy: each entry's norm of its row from there on, the largest per column."""
    from_here = _row_suffix_sums(prefix.indptr, prefix.data * prefix.data)
    peak = np.zeros(prefix.shape[1])
    np.maximum.at(peak, prefix.indices, np.sqrt(np.maximum(from_here, 0.0)))
    return peak


def _postings(prefix: sp.csr_matrix) -> sp.csc_matrix:
    """The prefix matrix by column, its weights as float32: only the compiled search reads it.
    Made float32 before it is transposed, so no float64 copy of the matrix is made on the way."""
    narrow = sp.csr_matrix((prefix.data.astype(np.float32), prefix.indices, prefix.indptr), shape=prefix.shape)
    return narrow.tocsc()


@dataclass(frozen=True, slots=True)
class _Work:
    """What every row block needs: verified pairs of rows [a, b) with any later row."""

    weights: sp.csr_matrix
    prefixes: _Prefixes
    tau: float

    def block(self, span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i, j = _candidates(self.prefixes, self.tau, *span)
        sims = _pair_cosines(self.weights, i, j)
        keep = sims >= self.tau
        return i[keep], j[keep], sims[keep]


def _row_blocks(prefix: sp.csr_matrix, rows: int, entries: int) -> list[tuple[int, int]]:
    """Consecutive row spans of at most `rows` rows and, beyond their first row, about `entries`
    product entries: row i's share of P·Pᵀ is at most the sum of its prefix terms' frequencies."""
    n = prefix.shape[0]
    cost = _row_sums(prefix, value_counts(prefix.indices, minlength=prefix.shape[1])).astype(np.float64)
    total = np.concatenate(([0.0], np.cumsum(cost)))
    spans, a = [], 0
    while a < n:
        b = int(np.searchsorted(total, total[a] + entries, side="right")) - 1
        b = min(max(b, a + 1), a + rows, n)
        spans.append((a, b))
        a = b
    return spans


def _row_sums(matrix: sp.csr_matrix, per_column: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Each row's sum of `per_column` (integers) over its entries' columns, about `chunk` entries at
    a time: the story stage holds its most memory here, so no array as long as the matrix is made."""
    n, indptr = matrix.shape[0], matrix.indptr
    sums = np.zeros(n, dtype=np.int64)
    row = 0
    while row < n:
        last = min(n, max(row + 1, int(np.searchsorted(indptr, indptr[row] + chunk, side="right")) - 1))
        values = per_column[matrix.indices[indptr[row] : indptr[last]]]
        running = np.zeros(len(values) + 1, dtype=np.int64)  # sums from 0: a row's is the rise over it
        np.cumsum(values, out=running[1:])
        sums[row:last] = np.diff(running[indptr[row : last + 1] - indptr[row]])
        row = last
    return sums


def _candidates(pre: _Prefixes, tau: float, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j, i in rows [a, b), whose cosine can reach τ.

    Let b be the earlier of the two tails' starts in the global order (x the row whose tail starts
    there). Shared terms ranked before b are in both prefixes and make up pp, the prefix product;
    the rest rank at or after b, so by Cauchy–Schwarz their rarer part is at most ‖x_s‖·‖y_{≥b}‖
    (norms over the terms of df ≤ candidate_df), and ‖y_{≥b}‖ is at most y's norm above the last
    checkpoint before b. Pairs whose bound pp + ‖x_s‖·‖y_{≥b}‖ reaches τ are kept.
    """
    if kernels.AVAILABLE:  # the same pairs, without materialising the block's product
        m = pre.matrix
        return kernels_story.prefix_candidates(m.indptr, m.indices, m.data, pre.by_column, a, b, pre.start,
                                               pre.tail, pre.level, pre.above, pre.peak, tau)
    prod = (pre.matrix[a:b] @ pre.matrix[a:].T).tocoo()
    i, j = prod.row.astype(np.int64) + a, prod.col.astype(np.int64) + a
    upper = j > i
    i, j, pp = i[upper], j[upper], prod.data[upper]
    i_first = pre.start[i] <= pre.start[j]
    first, other = np.where(i_first, i, j), np.where(i_first, j, i)
    bound = pp + pre.tail[first] * pre.above[other, np.minimum(pre.level[i], pre.level[j])]
    keep = bound >= tau - 1e-6
    return i[keep], j[keep]


def _pair_cosines(weights: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact cosine of each pair (the rows are unit vectors), `_VERIFY_CHUNK` pairs at a time: the
    row copies it multiplies take about (pairs × terms per row) entries."""
    if rows.size == 0:
        return np.empty(0, dtype=np.float64)
    if kernels.AVAILABLE:
        return kernels_story.pair_dots(weights.indptr, weights.indices, weights.data, weights.shape[1], rows, cols)
    return np.concatenate([
        np.asarray(weights[rows[k : k + _VERIFY_CHUNK]].multiply(weights[cols[k : k + _VERIFY_CHUNK]]).sum(axis=1))
        .ravel() for k in range(0, rows.size, _VERIFY_CHUNK)])


_VERIFY_CHUNK = 50_000
