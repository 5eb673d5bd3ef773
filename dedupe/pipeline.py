"""The scan: documents in, clusters, chrome and per-document outcomes out.

Stages, in order (each a function of the previous stages' outputs only):

1. segment + sign (`features.analyse`, per batch): paragraphs, exact keys, signatures;
2. page groups: documents that are copies of each other as whole pages (so chrome recurrence is
   counted once per group, not once per copy);
3. chrome (`chrome.learn_chrome`, `chrome.classify_page`): per-site recurrence plus page cues;
4. paragraph clusters over the content paragraphs (LSH candidates, verified, chaining guarded);
5. document clusters over content only: exact content, near (Jaccard), or a copy cut from the
   bottom (containment), with candidates from LSH and from shared paragraph clusters;
6. the kept copy of each document cluster, by the keep policy;
7. story clusters (`story.story_pairs`) over one copy of each document and of each paragraph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal, TypeVar, get_args

import numpy as np
import xxhash

from . import chrome as chrome_stage
from . import kernels
from . import story as story_stage
from .archive import Archive, ArchivedDocs, ArchiveRows
from .arrays import pieces, range_indices, unique_pairs, unique_sorted
from .chrome_compiled import classify_pages
from .cluster import Group, cluster, components
from .feature_table import FeatureTable, Written
from .features import ParagraphFeatures, analyse, concat
from .forkpool import CAN_FORK, fork_beside, fork_map
from .gcpause import collector_paused
from .lsh import band_keys, candidate_pairs, lsh_params, normalise_pairs
from .minhash import EMPTY, MinHasher, estimate_jaccard
from .model import BadRecord, Cluster, ClusterKind, Document, Member
from .normalize import utf8
from .segment import paragraph_text
from .stripped import StrippedParagraph, StrippedStore

T = TypeVar("T")
KeepPolicy = Literal["first", "longest", "earliest"]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a scan; recorded in the report so a result can be reproduced.

    threshold: word n-gram Jaccard at or above which two texts are `near` copies. 0.8 with 5-grams
        tolerates roughly one edited word in 25 (each edit breaks up to 5 shingles).
    containment: a document whose shingles lie at least this much inside a longer one is a copy cut
        from the bottom (wire copy is routinely trimmed), if it has `min_containment_shingles`.
        0.7 allows for a new headline and byline and light copy edits (2% of words edited breaks
        about 10% of 5-gram shingles); measured on syndicated copies of the dev set it keeps
        pair precision at 0.997 while recall rises from 0.83 (at 0.8) to 0.91.
    min_words: paragraphs with fewer words get no signature and are never reported as copies
        (short lines are headlines, bylines and chrome; exact document keys still cover them).
    """

    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    threshold: float = 0.8
    containment: float = 0.7
    min_containment_shingles: int = 10
    min_words: int = 8
    keep: KeepPolicy = "longest"
    date_field: str = "date"
    chrome: bool = True
    story: bool = True
    batch_size: int = 1024
    jobs: int = 1

    def __post_init__(self) -> None:
        """Refuse settings no scan can use, naming the field, before any work is done."""
        ranges = (("ngram", self.ngram >= 1, "at least 1"), ("num_perm", self.num_perm >= 1, "at least 1"),
                  ("threshold", 0 < self.threshold <= 1, "in (0, 1]"),
                  ("containment", 0 < self.containment <= 1, "in (0, 1]"),
                  ("min_containment_shingles", self.min_containment_shingles >= 0, "at least 0"),
                  ("min_words", self.min_words >= 0, "at least 0"), ("batch_size", self.batch_size >= 1, "at least 1"),
                  ("jobs", self.jobs >= 1, "at least 1"))
        for name, ok, wanted in ranges:
            if not ok:
                raise ValueError(f"Settings.{name} must be {wanted}, not {getattr(self, name)!r}")
        if self.keep not in get_args(KeepPolicy):
            raise ValueError(f"Settings.keep must be one of {', '.join(get_args(KeepPolicy))}, not {self.keep!r}")


@dataclass(frozen=True, slots=True)
class DocumentOutcome:
    """What `clean` does with one input document. (`stripped` reads its paragraphs from the
    document's text when iterated, so an outcome keeps its document's text alive.)"""

    id: str
    site: str
    kept: bool
    cluster: str | None
    duplicate_of: str | None
    similarity: float | None
    reason: str | None
    stripped: Sequence[StrippedParagraph]  # made when read (`stripped.StrippedParagraphs`)
    chars: int


@dataclass(frozen=True, slots=True)
class ChromeLine:
    """A chrome line found on a site: its text (first seen), pages it was stripped on, a sample page."""

    site: str
    text: str
    pages: int
    sample: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stats:
    documents: int
    paragraphs: int
    bad_records: int
    document_clusters: dict[str, int]
    paragraph_clusters: dict[str, int]
    removable_documents: int
    removable_bytes: int
    chrome_paragraphs: int
    chrome_bytes: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    settings: Settings
    stats: Stats
    document_clusters: list[Cluster]
    paragraph_clusters: list[Cluster]
    chrome: list[ChromeLine]
    outcomes: list[DocumentOutcome]
    bad: list[BadRecord] = field(default_factory=list)
    chrome_stats: chrome_stage.ChromeStats | None = None
    archive_rows: ArchiveRows | None = None

    def kept_rows(self) -> ArchiveRows | None:
        """Archive rows of the documents this run keeps: what an index adds after `clean`."""
        if self.archive_rows is None:
            return None
        return self.archive_rows.take(np.array([k for k, o in enumerate(self.outcomes) if o.kept], dtype=np.int64))


def scan(documents: Iterable[Document], settings: Settings = Settings(), bad: Sequence[BadRecord] = (),
         progress: Progress | None = None, archive: Archive | None = None) -> ScanResult:
    """Run every stage over `documents` and return clusters, chrome and what `clean` would do.

    With an `archive`, new documents are also compared with the archived ones: a copy of an
    archived document is removed in favour of it, and the archive's chrome statistics are used.
    Python's cyclic garbage collector is paused meanwhile (see `gcpause`).
    """
    with collector_paused():
        return _scan(list(documents), settings, bad, progress, archive)


def _scan(docs: list[Document], settings: Settings, bad: Sequence[BadRecord], progress: Progress | None,
          archive: Archive | None) -> ScanResult:
    tick = progress or (lambda stage, done, total: None)
    tick("sign", 0, len(docs))  # segment + sign start here, not when the first batch is done
    texts = [d.text for d in docs]
    # Each text's length, read now: a text read while a forked stage runs costs a copy of the page
    # that holds it (its reference count is written), and the outcomes need every text's length.
    doc_chars = list(map(len, texts))
    feats = _sign(texts, settings, tick)
    terms, feats = _numbered_terms(feats) if settings.story else (None, feats)
    rank = _rank([d.id for d in docs])

    tick("chrome", 0, 1)
    learned = archive.chrome_stats() if archive is not None else None

    def chrome_and_content() -> _Content:
        chrome_mask, stripped, chrome_stats = _chrome_stage(docs, feats, rank, settings, learned)
        content = ~chrome_mask
        shingle_sets = _content_shingles(feats, content & (feats.sig_row >= 0), len(docs))
        return _Content(content, stripped, chrome_stats, shingle_sets,
                        _archive_rows(docs, feats, content, shingle_sets, settings))

    found, para_groups = _beside_paragraph_groups(feats, rank, settings, chrome_and_content)
    content, stripped, shingle_sets, rows = found.content, found.stripped, found.shingle_sets, found.rows
    tick("chrome", 1, 1)
    tick("clusters", 0, 3)
    feats = _without_shingles(feats)
    para_units = _paragraph_story_units(feats, para_groups, rank) if terms is not None else None

    def copies(story_jobs: int) -> tuple[_Copies, list[Cluster], list[DocumentOutcome], list[ChromeLine]]:
        """Stages 5-6 and the story's document level, then what needs only them: the outcomes and
        the chrome report (with two processes, while the story's paragraph level runs beside)."""
        c = _copy_stages(docs, feats, content, shingle_sets, rows, para_groups, rank, settings, archive,
                         terms, story_jobs, tick)
        stories = (_document_story_clusters(docs, c.previews, c.story_units, c.story_found, len(c.doc_clusters))
                   if terms is not None else [])
        outcomes = _outcomes(docs, c.table, c.doc_groups, c.doc_clusters, c.kept, c.doc_sim, stripped, doc_chars)
        return c, c.doc_clusters + stories, outcomes, _chrome_report(docs, stripped, feats)

    para_found: list[tuple[list[int], list[float]]] = []
    if terms is None or para_units is None:
        c, doc_clusters, outcomes, chrome_lines = copies(settings.jobs)
    elif settings.jobs == 2:
        # The story stage's paragraph level needs only the paragraph groups: it runs in a forked
        # process while this one makes the copy clusters and then the story's document level. About
        # half of a level's work (counts, weights, prefix cuts) is serial, so one level per process
        # uses both cores where splitting each level's candidate blocks would leave one idle; with
        # more processes, the levels go one after the other, each spreading its blocks over all.
        para_found, (c, doc_clusters, outcomes, chrome_lines) = fork_beside(
            _paragraph_story, (terms, para_units, 1), 0, lambda: copies(1), 2)
    else:
        c, doc_clusters, outcomes, chrome_lines = copies(settings.jobs)
        para_found = _paragraph_story((terms, para_units, settings.jobs), 0)
    para_clusters = c.para_clusters
    if terms is not None and para_units is not None:
        para_clusters = para_clusters + _paragraph_story_clusters(docs, feats, para_units[0], para_found,
                                                                  len(para_clusters))
        tick("story", 1, 1)
    tick("clusters", 3, 3)

    stats = _stats(docs, feats, bad, doc_clusters, para_clusters, outcomes, stripped)
    return ScanResult(settings, stats, doc_clusters, para_clusters, chrome_lines, outcomes, list(bad),
                      found.chrome_stats, rows)


@dataclass(frozen=True, slots=True)
class _Content:
    """What the chrome stage leaves for the copy stages: the content mask, the stripped paragraphs,
    this run's chrome statistics, and the content shingles and archive rows of each document."""

    content: np.ndarray
    stripped: StrippedStore
    chrome_stats: chrome_stage.ChromeStats | None
    shingle_sets: tuple[np.ndarray, np.ndarray]
    rows: ArchiveRows


@dataclass(frozen=True, slots=True)
class _Copies:
    """What stages 5-6 (copy clusters, kept copies) and the story stage's document level leave for
    the clusters and outcomes."""

    table: _DocTable
    doc_groups: list[Group]
    doc_sim: Callable[[np.ndarray, np.ndarray], np.ndarray]
    kept: dict[int, int]
    previews: Callable[[int], str]
    doc_clusters: list[Cluster]
    para_clusters: list[Cluster]
    story_units: np.ndarray  # the documents the story stage compares (one per copy group)...
    story_found: list[tuple[list[int], list[float]]]  # ...and its groups of them (positions in story_units)


def _copy_stages(docs: list[Document], feats: ParagraphFeatures, content: np.ndarray,
                 shingle_sets: tuple[np.ndarray, np.ndarray], rows: ArchiveRows, para_groups: list[Group],
                 rank: np.ndarray, settings: Settings, archive: Archive | None, terms: story_stage.TermRows | None,
                 story_jobs: int, tick: Progress) -> _Copies:
    """Stages 5-6 and, with `terms`, the story stage's document level (in `story_jobs` processes)."""
    tick("clusters", 1, 3)
    table = _DocTable.build(rows, archive, rank, settings.threshold)
    doc_groups, doc_sim = _document_groups(table, feats, content, shingle_sets, para_groups, settings)
    tick("clusters", 2, 3)
    kept = _choose_kept(docs, table, doc_groups, feats, content, settings)

    previews = _content_previews(docs, feats, content)
    doc_clusters = _document_clusters(table, doc_groups, previews)
    para_clusters = _paragraph_clusters(docs, feats, para_groups)
    units, found = np.zeros(0, dtype=np.int64), []
    if terms is not None:
        tick("story", 0, 1)
        units, doc_terms, doc_ranks = _document_story_units(docs, feats, terms, content, doc_groups, kept, rank)
        found = _story_groups(doc_terms, story_stage.StorySettings(), doc_ranks, story_jobs)
    return _Copies(table, doc_groups, doc_sim, kept, previews, doc_clusters, para_clusters, units, found)


# -- stage 1: segment + sign ---------------------------------------------------------------------

def _sign(texts: list[str], settings: Settings, tick: Progress) -> ParagraphFeatures:
    """Features of every batch of documents' `texts`, written into one table as they are done
    (`feature_table`); in forked workers when `settings.jobs` > 1 (batches are independent; the
    workers inherit the texts, split them into paragraphs and write into the table's shared memory,
    so only a few numbers per batch travel back)."""
    n, size = len(texts), settings.batch_size
    spans = [(lo, min(n, lo + size)) for lo in range(0, n, size)] or [(0, 0)]

    def progress(k: int) -> None:
        tick("sign", spans[k - 1][1], n)

    if settings.jobs > 1:
        kernels.warm_up()  # every later pool's workers inherit the loaded kernels
    try:
        table = FeatureTable(texts, spans, settings.num_perm, key_cues=settings.chrome, terms=settings.story,
                             shared=settings.jobs > 1 and CAN_FORK)
    except (OSError, ValueError, MemoryError):  # address space or overcommit refused: join the batches after
        parts = fork_map(_analyse_span, (texts, settings), spans, settings.jobs, progress)
        return concat(parts, [lo for lo, _ in spans])
    written = fork_map(_write_span, (texts, settings, table), list(range(len(spans))), settings.jobs, progress)
    return table.join(written, settings.jobs)


def _analyse_span(context: tuple[list[str], Settings], span: tuple[int, int]) -> ParagraphFeatures:
    """Features of documents [lo, hi); a top-level function so forked workers can run it."""
    texts, s = context
    return analyse(texts[span[0] : span[1]], _hasher(s.num_perm, s.seed), s.ngram, s.min_words,
                   key_cues=s.chrome, terms=s.story)


def _write_span(context: tuple[list[str], Settings, FeatureTable], batch: int) -> Written:
    """Features of batch `batch`, written into the table (a top-level function so forked workers can run it)."""
    texts, s, table = context
    return table.write(batch, _analyse_span((texts, s), table.spans[batch]))


def _numbered_terms(feats: ParagraphFeatures) -> tuple[story_stage.TermRows, ParagraphFeatures]:
    """The paragraphs' story terms as the story stage takes them (`concat` has numbered them
    corpus-wide), and the features without them: the story stage owns them from here on."""
    terms = story_stage.TermRows(feats.term_ids, feats.term_offsets[: len(feats.doc) + 1], len(feats.term_vocabulary))
    return terms, replace(feats, term_ids=np.zeros(0, dtype=np.int32), term_vocabulary=np.zeros(0, dtype=np.uint64),
                          term_offsets=np.zeros(1, dtype=np.int64))


@lru_cache(maxsize=4)
def _hasher(num_perm: int, seed: int) -> MinHasher:
    return MinHasher(num_perm, seed)


def _rank(ids: Sequence[str]) -> np.ndarray:
    """Position of each document in (id, input position) order: a tie-break independent of input order."""
    order = sorted(range(len(ids)), key=lambda k: (ids[k], k))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


# -- stage 2: page groups ----------------------------------------------------------------------

def _page_groups(docs: Sequence[Document], feats: ParagraphFeatures, rank: np.ndarray,
                 settings: Settings) -> list[str]:
    """Group id per document: whole pages that are exact or near copies share one, the id of the
    group's first document by rank, so ids stay meaningful across runs (chrome statistics persist).
    A page's exact key is the key of all its normalised paragraphs in order."""
    n = len(docs)
    pairs = [_equal_key_pairs(*_content_keys(feats, np.ones(len(feats.doc), dtype=bool), n))]
    signed = feats.sig_row >= 0
    sigs = kernels.merged_signatures(feats.signatures, feats.sig_row[signed], feats.doc[signed], n)
    pairs.append(_verified_lsh_pairs(sigs, settings.threshold, settings.num_perm))
    labels = components(n, normalise_pairs(np.concatenate(pairs)))
    leader: dict[int, int] = {}
    for d in np.argsort(rank):
        leader.setdefault(int(labels[d]), int(d))
    return [docs[leader[int(label)]].id for label in labels]


def _equal_key_pairs(hi: np.ndarray, lo: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
    """Star pairs linking every item to the first item with the same 128-bit key."""
    index = np.arange(len(hi)) if active is None else np.flatnonzero(active)
    if len(index) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    order = index[np.lexsort((index, lo[index], hi[index]))]
    same = (hi[order][1:] == hi[order][:-1]) & (lo[order][1:] == lo[order][:-1])
    run_id = np.concatenate([[0], np.cumsum(~same)])
    first = order[np.searchsorted(run_id, run_id)]
    keep = first != order
    return np.stack([first[keep], order[keep]], axis=1)


def _verified_lsh_pairs(sigs: np.ndarray, threshold: float, num_perm: int) -> np.ndarray:
    """LSH candidates among non-empty signatures whose estimated Jaccard reaches the threshold."""
    bands, rows = lsh_params(threshold, num_perm)
    active = sigs[:, 0] != EMPTY if len(sigs) else np.zeros(0, dtype=bool)
    cands = candidate_pairs(band_keys(sigs, bands, rows), active)
    if len(cands) == 0:
        return cands
    sim = estimate_jaccard(sigs, cands[:, 0], cands[:, 1])
    return cands[sim >= threshold]


# -- stages 3 and 4 side by side -------------------------------------------------------------------

def _chrome_stage(docs: Sequence[Document], feats: ParagraphFeatures, rank: np.ndarray, settings: Settings,
                  learned: chrome_stage.ChromeStats | None
                  ) -> tuple[np.ndarray, StrippedStore, chrome_stage.ChromeStats | None]:
    """Stage 3: page groups, then `_strip_chrome`."""
    groups = _page_groups(docs, feats, rank, settings)
    return _strip_chrome(docs, groups, feats, replace(settings, jobs=1), learned)


def _beside_paragraph_groups(feats: ParagraphFeatures, rank: np.ndarray, settings: Settings,
                             work: Callable[[], T]) -> tuple[T, list[Group]]:
    """`work` (the chrome stage and what needs only it) and `_paragraph_groups`, which needs only the
    features. Both are mostly serial, so with `settings.jobs` > 1 the paragraph groups are worked
    out in a forked process while this one does `work`: two cores, one stage each."""
    if settings.jobs <= 1:  # the groups first: their scratch arrays are gone before `work` makes its own
        groups = _paragraph_groups(feats, rank, settings)
        return work(), groups
    shared = 32 * int(np.count_nonzero(feats.sig_row >= 0)) + 4096  # two 8-byte values per member, and per group
    flat, done = fork_beside(_flat_paragraph_groups, (feats, rank, settings), 0, work, settings.jobs, shared)
    return done, _groups_of_flat(*flat)


def _flat_paragraph_groups(context: tuple[ParagraphFeatures, np.ndarray, Settings],
                           _: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_paragraph_groups` as four arrays (representatives, sizes, members, similarities), which
    cross from a forked process as four buffers rather than as an object per group."""
    groups = _paragraph_groups(*context)
    members = [g.members for g in groups]
    return (np.array([g.representative for g in groups], dtype=np.int64),
            np.fromiter(map(len, members), dtype=np.int64, count=len(members)),
            np.concatenate(members) if groups else np.zeros(0, dtype=np.int64),
            np.concatenate([g.similarity for g in groups]) if groups else np.zeros(0, dtype=np.float64))


def _groups_of_flat(reps: np.ndarray, sizes: np.ndarray, members: np.ndarray, sims: np.ndarray) -> list[Group]:
    if reps.size == 0:
        return []
    cuts = np.cumsum(sizes)[:-1]
    return [Group(rep, m, s) for rep, m, s in zip(reps.tolist(), pieces(members, cuts), pieces(sims, cuts),
                                                  strict=True)]


# -- stage 3: chrome ---------------------------------------------------------------------------

def _strip_chrome(docs: Sequence[Document], groups: list[str],
                  feats: ParagraphFeatures, settings: Settings, learned: chrome_stage.ChromeStats | None
                  ) -> tuple[np.ndarray, StrippedStore, chrome_stage.ChromeStats | None]:
    """Chrome flag per paragraph (in feature order), the stripped paragraphs, and this run's own
    statistics (classification also uses what earlier runs `learned`)."""
    if not settings.chrome:
        return np.zeros(len(feats.doc), dtype=bool), StrippedStore.empty(docs), None
    stats = _page_stats(docs, groups, feats)
    known = stats if learned is None else learned.merge(stats)
    mask, stripped = _classify_pages(docs, feats, known)
    return mask, stripped, stats


def _page_stats(docs: Sequence[Document], groups: Sequence[str], feats: ParagraphFeatures) -> chrome_stage.ChromeStats:
    """Per-site recurrence over these documents, each counted in its page group, from the key
    hashes the features stage worked out."""
    stats = chrome_stage.ChromeStats()
    tracked = stats.tracked_lengths(feats.key_chars)
    stats.add_hashed_pages([d.site for d in docs], groups, feats.doc[tracked], feats.key_hashes[tracked])
    return stats


def _classify_pages(docs: Sequence[Document], feats: ParagraphFeatures,
                    known: chrome_stage.ChromeStats) -> tuple[np.ndarray, StrippedStore]:
    """Chrome flag per paragraph and the stripped paragraphs, given the site statistics: per
    document only, so any engine can run it wherever the documents are. The verdicts come from the
    features' cues, compiled, a span of documents at a time; no text is read (the stripped
    paragraphs are kept as where they lie). (Statistics backed by an index may query its database
    connection, so they are read in this process.)"""
    mask = np.zeros(len(feats.doc), dtype=bool)
    bounds = np.searchsorted(feats.doc, np.arange(len(docs) + 1))
    spans = [(lo, min(len(docs), lo + _CHROME_SPAN)) for lo in range(0, len(docs), _CHROME_SPAN)]
    worded: dict[tuple[int, int, str], int] = {}
    found = [_classify_span(docs, feats, bounds, known, worded, *span) for span in spans]
    rows = np.concatenate([r for r, _ in found] or [np.zeros(0, dtype=np.int64)])
    mask[rows] = True
    columns = {name: getattr(feats, name)[rows] for name in ("index", "line", "end", "start", "stop", "chars")}
    reason_ids = np.concatenate([i for _, i in found] or [np.zeros(0, dtype=np.int64)])
    reasons = [chrome_stage.verdict_reason(code, rec, known.site_groups(site), site) for code, rec, site in worded]
    return mask, StrippedStore(docs, feats.doc[rows], columns, reason_ids, reasons)


_CHROME_SPAN = 2000  # documents per call of the compiled classification (bounds its scratch arrays)


def _classify_span(docs: Sequence[Document], feats: ParagraphFeatures, bounds: np.ndarray,
                   known: chrome_stage.ChromeStats, worded: dict[tuple[int, int, str], int], first: int,
                   last: int) -> tuple[np.ndarray, np.ndarray]:
    """The chrome paragraphs of documents [first, last), as ascending rows of the features, and the
    reason for each as its number in `worded`, one per distinct (verdict, recurrence, site) (a
    site's chrome lines share a handful), which numbers new ones as they come."""
    lo, hi = int(bounds[first]), int(bounds[last])
    sites = [docs[d].site for d in range(first, last)]
    groups = [known.site_groups(site) for site in sites]
    page_bounds = bounds[first : last + 1] - lo
    tracked = np.flatnonzero(known.tracked_lengths(feats.key_chars[lo:hi]))
    hashes = feats.key_hashes[lo:hi][tracked].tolist()
    cuts = np.searchsorted(tracked, page_bounds).tolist()  # each page's tracked keys
    recs = np.zeros(hi - lo, dtype=np.int64)
    run = 0  # the first page of the current run of pages of one site (asked about in one call)
    for p in range(1, len(sites) + 1):
        if p == len(sites) or sites[p] != sites[run]:
            a, b = cuts[run], cuts[p]
            if a < b:
                recs[tracked[a:b]] = known.recurrences_of_hashes(sites[run], hashes[a:b])
            run = p
    codes = classify_pages(feats.line_flags[lo:hi], feats.chars[lo:hi], feats.key_words[lo:hi],
                           feats.key_stops[lo:hi], recs, page_bounds, np.array(groups, dtype=np.int64))
    found = np.flatnonzero(codes >= chrome_stage.CHROME_RECURRING)
    ids = [worded.setdefault((code, rec, sites[page]), len(worded))
           for code, rec, page in zip(codes[found].tolist(), recs[found].tolist(),
                                      (feats.doc[lo + found] - first).tolist(), strict=True)]
    return found + lo, np.array(ids, dtype=np.int64)


# -- stage 4: paragraph clusters ---------------------------------------------------------------

def _paragraph_groups(feats: ParagraphFeatures, rank: np.ndarray, settings: Settings) -> list[Group]:
    """Clusters of signed paragraphs (indices into the feature arrays), chrome or not: a recurring
    long paragraph is worth reporting either way; document candidates use only the content ones."""
    nodes = np.flatnonzero(feats.sig_row >= 0)
    if len(nodes) < 2:
        return []
    rows = feats.sig_row[nodes]  # 0, 1, 2, ... as the features stage numbers them: no copy then
    sigs = feats.signatures if np.array_equal(rows, np.arange(len(feats.signatures))) else feats.signatures[rows]
    pairs = _verified_lsh_pairs(sigs, settings.threshold, settings.num_perm)
    para_rank = np.argsort(np.lexsort((feats.index[nodes], rank[feats.doc[nodes]])))

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return estimate_jaccard(sigs, np.full(len(others), rep), others)

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return estimate_jaccard(sigs, first, second)

    local = cluster(len(nodes), pairs, para_rank, similarity, settings.threshold, pair_similarity)
    return [Group(int(nodes[g.representative]), nodes[g.members], g.similarity) for g in local]


# -- stage 5: document clusters ----------------------------------------------------------------

def _content_keys(feats: ParagraphFeatures, content: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """128-bit key per document of its content paragraphs in order (all paragraphs if none is content)."""
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    bounds = np.searchsorted(feats.doc, np.arange(n + 1))
    for d in range(n):
        a, b = bounds[d], bounds[d + 1]
        sel = slice(a, b)
        use = content[sel] if content[sel].any() else np.ones(b - a, dtype=bool)
        h = xxhash.xxh3_128()
        h.update(feats.key_hi[sel][use].tobytes())
        h.update(feats.key_lo[sel][use].tobytes())
        value = h.intdigest()
        hi[d], lo[d] = value >> 64, value & 0xFFFFFFFFFFFFFFFF
    return hi, lo


def _archive_rows(docs: Sequence[Document], feats: ParagraphFeatures, content: np.ndarray,
                  shingle_sets: tuple[np.ndarray, np.ndarray], settings: Settings) -> ArchiveRows:
    """Per-document content key, signature, size, band keys and long-paragraph keys."""
    n = len(docs)
    signed = content & (feats.sig_row >= 0)
    sigs = kernels.merged_signatures(feats.signatures, feats.sig_row[signed], feats.doc[signed], n)
    hi, lo = _content_keys(feats, content, n)
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(feats.doc[signed], minlength=n), out=offsets[1:])
    shingle_offsets = shingle_sets[1]
    return ArchiveRows([d.id for d in docs], [d.site for d in docs], hi, lo, np.diff(shingle_offsets), sigs,
                       band_keys(sigs, bands, rows), feats.key_hi[signed], offsets)


@dataclass(frozen=True, slots=True)
class _DocTable:
    """The documents compared at document level: this run's (first `n_new` rows) and the archived
    candidates found for them. Archived documents rank before new ones, so they stay kept."""

    ids: list[str]
    n_new: int
    key_hi: np.ndarray
    key_lo: np.ndarray
    sizes: np.ndarray
    signatures: np.ndarray
    paragraph_keys: np.ndarray
    paragraph_owner: np.ndarray
    rank: np.ndarray

    @classmethod
    def build(cls, rows: ArchiveRows, archive: Archive | None, rank: np.ndarray, threshold: float) -> _DocTable:
        n = len(rows.ids)
        old = archive.candidates(rows) if archive is not None else ArchivedDocs.empty(rows.signatures.shape[1])
        keep = ~_same_documents_again(rows, old, threshold)
        sel = np.flatnonzero(keep)
        m = len(sel)
        old_owner = np.repeat(np.arange(len(old.ids)), np.diff(old.paragraph_offsets))
        old_par_keep = keep[old_owner] if len(old_owner) else np.zeros(0, dtype=bool)
        remap = np.full(len(old.ids), -1, dtype=np.int64)
        remap[sel] = np.arange(m) + n
        old_ids = [old.ids[k] for k in sel]
        old_rank = np.argsort(np.argsort(np.array(old_ids, dtype=object), kind="stable"), kind="stable")
        return cls(
            ids=list(rows.ids) + old_ids,
            n_new=n,
            key_hi=np.concatenate([rows.key_hi, old.key_hi[sel]]),
            key_lo=np.concatenate([rows.key_lo, old.key_lo[sel]]),
            sizes=np.concatenate([rows.sizes, old.sizes[sel]]),
            signatures=np.concatenate([rows.signatures, old.signatures[sel]]),
            paragraph_keys=np.concatenate([rows.paragraph_keys, old.paragraph_keys[old_par_keep]]),
            paragraph_owner=np.concatenate([np.repeat(np.arange(n), np.diff(rows.paragraph_offsets)),
                                            remap[old_owner[old_par_keep]]]),
            rank=np.concatenate([rank + m, old_rank]) if m else rank,
        )

    def is_archived(self, k: int) -> bool:
        return k >= self.n_new


def _same_documents_again(rows: ArchiveRows, old: ArchivedDocs, threshold: float) -> np.ndarray:
    """Per archived candidate: is it one of this run's documents archived before (a re-run)?

    Same id, and the same content or near it: chrome learned in later runs can strip a line more
    and change the content key, and that must not make a document a copy of its own archived self.
    """
    position = {doc_id: k for k, doc_id in enumerate(rows.ids)}
    same = np.zeros(len(old.ids), dtype=bool)
    for j, doc_id in enumerate(old.ids):
        k = position.get(doc_id)
        if k is None:
            continue
        if old.key_hi[j] == rows.key_hi[k] and old.key_lo[j] == rows.key_lo[k]:
            same[j] = True
            continue
        a, b = rows.signatures[k], old.signatures[j]
        same[j] = bool(np.mean((a == b) & (a != EMPTY)) >= threshold)
    return same


def _document_groups(table: _DocTable, feats: ParagraphFeatures, content: np.ndarray,
                     shingle_sets: tuple[np.ndarray, np.ndarray], para_groups: list[Group], settings: Settings
                     ) -> tuple[list[Group], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Exact and near document clusters over content, and the similarity of pairs they were verified with."""
    sigs, sizes, hi, lo = table.signatures, table.sizes.astype(np.float64), table.key_hi, table.key_lo
    shingles, offsets = shingle_sets

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        # Shared shingles: counted exactly between this run's documents (their sets are at hand),
        # estimated from signatures against archived ones (J = |A∩B| / |A∪B| solved for |A∩B|).
        jac = estimate_jaccard(sigs, first, second)
        shared = jac * (sizes[first] + sizes[second]) / (1.0 + jac)
        local = (first < table.n_new) & (second < table.n_new)
        if local.any():
            shared[local] = _overlap_pairs(shingles, offsets, first[local], second[local])
            union = np.maximum(sizes[first[local]] + sizes[second[local]] - shared[local], 1.0)
            jac[local] = shared[local] / union
        same = (hi[second] == hi[first]) & (lo[second] == lo[first])
        return _copy_similarity(jac, shared, sizes[first], sizes[second], same, settings)

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return pair_similarity(np.full(len(others), rep, dtype=np.int64), others)

    cands = [_equal_key_pairs(hi, lo)]
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    cands.append(candidate_pairs(band_keys(sigs, bands, rows), sigs[:, 0] != EMPTY))
    cands.append(_shared_paragraph_pairs(feats, content, para_groups))
    if table.n_new < len(table.ids):
        cands.append(_shared_key_pairs(table.paragraph_keys, table.paragraph_owner, table.n_new))
    pairs = normalise_pairs(np.concatenate(cands))
    passing = min(settings.threshold, settings.containment)
    if len(pairs):
        pairs = pairs[pair_similarity(pairs[:, 0], pairs[:, 1]) >= passing]
    return cluster(len(table.ids), pairs, table.rank, similarity, passing, pair_similarity), pair_similarity


def _without_shingles(feats: ParagraphFeatures) -> ParagraphFeatures:
    """The features without the paragraphs' signatures and shingle sets, which nothing reads once
    the documents' rows and content shingles are made: the story stage, the run's peak of memory,
    comes after."""
    return replace(feats, signatures=feats.signatures[:0].copy(), shingle_hashes=np.zeros(0, dtype=np.uint32),
                   shingle_offsets=np.zeros(1, dtype=np.int64))


def _copy_similarity(jac: np.ndarray, shared: np.ndarray, size: float, sizes: np.ndarray, same_key: np.ndarray,
                     settings: Settings) -> np.ndarray:
    """Document similarity of one document (`size` shingles) to others, from Jaccard and shared shingles.

    A pair passes on Jaccard, or failing that on containment; the value reported is the measure it
    passed on, 0 when it passes on neither, and 1 for the same content key. Shared by the engines.
    """
    small = np.minimum(size, sizes)
    contained = np.where(small >= settings.min_containment_shingles,
                         np.minimum(1.0, shared / np.maximum(small, 1.0)), 0.0)
    sim = np.where(jac >= settings.threshold, jac,
                   np.where(contained >= settings.containment, contained, 0.0))
    return np.where(same_key, 1.0, sim)


def _shared_key_pairs(keys: np.ndarray, owner: np.ndarray, n_new: int) -> np.ndarray:
    """Pairs of a new and an archived document sharing a long-paragraph key."""
    order = np.lexsort((owner, keys))
    k, o = keys[order], owner[order]
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    run = np.repeat(np.arange(len(starts)), np.diff(np.concatenate([starts, [len(k)]])))
    # One new document per key stands for the others (they are linked to it by paragraph clusters).
    hub = np.full(len(starts), -1, dtype=np.int64)
    is_new = o < n_new
    np.maximum.at(hub, run[is_new], o[is_new])
    pick = (~is_new) & (hub[run] >= 0)
    return np.stack([hub[run][pick], o[pick]], axis=1)


def _content_shingles(feats: ParagraphFeatures, signed: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each document's distinct content shingle hashes, sorted, as a flat array with offsets."""
    rows = feats.sig_row[signed]
    docs = feats.doc[signed]
    starts, ends = feats.shingle_offsets[rows], feats.shingle_offsets[rows + 1]
    lengths = ends - starts
    if kernels.AVAILABLE:  # paragraphs come in document order: each document's are consecutive ranges
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=n), out=offsets[1:])
        return kernels.distinct_of_ranges(feats.shingle_hashes, starts, lengths, offsets)
    idx = range_indices(starts, lengths)
    owner = np.repeat(docs.astype(np.uint64), lengths)
    combined = unique_sorted((owner << np.uint64(32)) | feats.shingle_hashes[idx].astype(np.uint64))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount((combined >> np.uint64(32)).astype(np.int64), minlength=n), out=offsets[1:])
    return (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets


def _overlap_pairs(shingles: np.ndarray, offsets: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Exact number of shingles each pair (first[k], second[k]) shares (sorted distinct sets)."""
    if kernels.AVAILABLE:
        return kernels.shared_counts(shingles, offsets, np.asarray(first, dtype=np.int64),
                                     np.asarray(second, dtype=np.int64))
    out = np.zeros(len(first), dtype=np.int64)
    for k, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        mine, theirs = shingles[offsets[a] : offsets[a + 1]], shingles[offsets[b] : offsets[b + 1]]
        if len(mine) and len(theirs):
            pos = np.searchsorted(mine, theirs)
            out[k] = int(np.count_nonzero(mine[np.minimum(pos, len(mine) - 1)] == theirs))
    return out


def _shared_paragraph_pairs(feats: ParagraphFeatures, content: np.ndarray, para_groups: list[Group]) -> np.ndarray:
    """Document pairs that share a content paragraph cluster: candidates for copies cut or re-wrapped.

    Each cluster's documents are linked to the cluster's first document (a star), so a paragraph
    shared by many documents adds pairs linearly, not quadratically.
    """
    if not para_groups:
        return np.zeros((0, 2), dtype=np.int64)
    members = np.concatenate([g.members for g in para_groups])
    group = np.repeat(np.arange(len(para_groups)), [len(g.members) for g in para_groups])
    keep = content[members]
    rows = unique_pairs(group[keep], feats.doc[members[keep]])
    if len(rows) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    first_of_group = np.concatenate([[True], rows[1:, 0] != rows[:-1, 0]])
    hub = rows[np.maximum.accumulate(np.where(first_of_group, np.arange(len(rows)), 0)), 1]
    spokes = ~first_of_group
    return np.stack([hub[spokes], rows[spokes, 1]], axis=1)


# -- stage 6: kept copy ------------------------------------------------------------------------

def _choose_kept(docs: Sequence[Document], table: _DocTable, groups: list[Group], feats: ParagraphFeatures,
                 content: np.ndarray, settings: Settings) -> dict[int, int]:
    """For each group (by position), the member kept: an archived copy if there is one (it is
    already archived), else the keep policy's choice among this run's documents; deterministic."""
    content_chars = np.bincount(feats.doc[content], weights=feats.chars[content], minlength=len(docs))
    rank = table.rank
    kept: dict[int, int] = {}
    for k, g in enumerate(groups):
        members = [int(m) for m in g.members]
        archived = [m for m in members if table.is_archived(m)]
        if archived:
            choice = min(archived, key=lambda m: rank[m])
        else:
            choice = _keep_choice(members, settings.keep, rank, content_chars,
                                  lambda m: _date(docs[m], settings.date_field))
        kept[k] = choice
    return kept


def _keep_choice(members: Sequence[int], keep: KeepPolicy, rank: np.ndarray, content_chars: np.ndarray,
                 date_of: Callable[[int], str]) -> int:
    """The member the keep policy keeps; `members` are input positions (the `first` order), ties by rank."""
    if keep == "first":
        return min(members)
    if keep == "earliest":
        return min(members, key=lambda m: (date_of(m), m))
    return min(members, key=lambda m: (-content_chars[m], rank[m]))


def _date(doc: Document, field_name: str) -> str:
    """Sortable date of a document; documents without one sort last."""
    value = doc.fields.get(field_name)
    return str(value) if value not in (None, "") else "\uffff"


# -- assembling clusters -----------------------------------------------------------------------

_PREVIEW_WORDS = 12


def _preview(text: str, words: int = _PREVIEW_WORDS) -> str:
    """The first `words` words of `text` (split no further than needed: texts can be whole pages)."""
    return " ".join(text.split(None, words)[:words])


def _paragraph_text(docs: Sequence[Document], feats: ParagraphFeatures, row: int) -> str:
    """The text of the paragraph in row `row` of the features, from its document's text."""
    return paragraph_text(docs[int(feats.doc[row])].text, int(feats.start[row]), int(feats.stop[row]),
                          bool(feats.end[row] != feats.line[row]))


def _document_clusters(table: _DocTable, groups: list[Group], previews: Callable[[int], str]) -> list[Cluster]:
    if not groups:
        return []
    # Every group's members at once, as plain lists (as `_paragraph_clusters` does).
    sizes = np.fromiter((len(g.members) for g in groups), dtype=np.int64, count=len(groups))
    members = np.concatenate([g.members for g in groups]).astype(np.int64, copy=False)
    reps = np.fromiter((g.representative for g in groups), dtype=np.int64, count=len(groups))
    rep_of = np.repeat(reps, sizes)
    same = (table.key_hi[members] == table.key_hi[rep_of]) & (table.key_lo[members] == table.key_lo[rep_of])
    exact = np.logical_and.reduceat(same, np.cumsum(sizes) - sizes).tolist()
    ids = [table.ids[m] for m in members.tolist()]
    archived = (members >= table.n_new).tolist()
    sims = np.concatenate([g.similarity for g in groups]).astype(np.float64, copy=False).tolist()
    out = []
    at = 0
    for k, (rep, size) in enumerate(zip(reps.tolist(), sizes.tolist(), strict=True)):
        kind: ClusterKind = "exact" if exact[k] else "near"
        cluster = tuple(Member(ids[m], round(sims[m], 4), archived=archived[m]) for m in range(at, at + size))
        preview = previews(rep) if rep < table.n_new else "(archived)"
        out.append(Cluster(f"d{k + 1}", kind, "document", cluster[0], cluster, preview))
        at += size
    return out


def _content_previews(docs: Sequence[Document], feats: ParagraphFeatures,
                      content: np.ndarray) -> Callable[[int], str]:
    """The preview of a document's text with chrome paragraphs left out (of its whole text if
    nothing is left), made when asked: only clusters' representatives need one, and a copy of
    every document's content text would cost about as much memory as the dump."""
    bounds = np.searchsorted(feats.doc, np.arange(len(docs) + 1))

    def preview(d: int) -> str:
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        first = lo + int(content[lo:hi].argmax()) if hi > lo else lo
        text = docs[d].text
        if first == hi or not content[first]:
            return _preview(text)
        words: list[str] = []
        for row in range(first, hi):  # most often the first content paragraph has the words already
            if len(words) >= _PREVIEW_WORDS:
                break
            if content[row]:
                piece = paragraph_text(text, int(feats.start[row]), int(feats.stop[row]),
                                       bool(feats.end[row] != feats.line[row]))
                words.extend(piece.split(None, _PREVIEW_WORDS)[:_PREVIEW_WORDS])
        return " ".join(words[:_PREVIEW_WORDS])

    return preview


def _paragraph_clusters(docs: Sequence[Document], feats: ParagraphFeatures,
                        groups: list[Group]) -> list[Cluster]:
    if not groups:
        return []
    # Every group's members at once, as plain lists: a Python object per member is the cost here.
    sizes = np.fromiter((len(g.members) for g in groups), dtype=np.int64, count=len(groups))
    members = np.concatenate([g.members for g in groups])
    reps = np.repeat(np.fromiter((g.representative for g in groups), dtype=np.int64, count=len(groups)), sizes)
    same = (feats.key_hi[members] == feats.key_hi[reps]) & (feats.key_lo[members] == feats.key_lo[reps])
    exact = np.logical_and.reduceat(same, np.cumsum(sizes) - sizes).tolist()
    ids = [docs[d].id for d in feats.doc[members].tolist()]
    index = feats.index[members].tolist()
    sims = np.concatenate([g.similarity for g in groups]).tolist()
    first = np.fromiter((g.representative for g in groups), dtype=np.int64, count=len(groups))
    texts = [docs[d].text for d in feats.doc[first].tolist()]
    starts, stops = feats.start[first].tolist(), feats.stop[first].tolist()
    wrapped = (feats.end[first] != feats.line[first]).tolist()
    out = []
    at = 0
    for k, size in enumerate(sizes.tolist()):
        kind: ClusterKind = "exact" if exact[k] else "near"
        cluster = tuple(Member(ids[m], round(sims[m], 4), index[m]) for m in range(at, at + size))
        preview = _preview(paragraph_text(texts[k], starts[k], stops[k], wrapped[k]))
        out.append(Cluster(f"p{k + 1}", kind, "paragraph", cluster[0], cluster, preview))
        at += size
    return out


# -- stage 7: stories --------------------------------------------------------------------------

def _document_story_units(docs: Sequence[Document], feats: ParagraphFeatures, terms: story_stage.TermRows,
                          content: np.ndarray, doc_groups: list[Group], kept: dict[int, int],
                          rank: np.ndarray) -> tuple[np.ndarray, story_stage.TermRows, np.ndarray]:
    """The story stage's documents: one unit per copy group, the kept copy standing for it
    (archived documents are not units), with the terms of its content paragraphs, or of all of
    them when it has none (`terms` are the paragraphs', numbered once for both levels); and
    their ranks among themselves."""
    unit = np.ones(len(docs), dtype=bool)
    for k, g in enumerate(doc_groups):
        unit[[int(m) for m in g.members if int(m) != kept[k] and int(m) < len(docs)]] = False
    units = np.flatnonzero(unit)
    has_content = np.bincount(feats.doc[content], minlength=len(docs)) > 0
    rows = np.flatnonzero(unit[feats.doc] & (content | ~has_content[feats.doc]))  # in document order

    return units, terms.unions(rows, np.bincount(feats.doc[rows], minlength=len(docs))[units]), rank[units]


def _paragraph_story_units(feats: ParagraphFeatures, para_groups: list[Group],
                           rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The story stage's paragraphs: every signed paragraph (a related-article teaser retelling a
    story counts), one per paragraph copy group; and their ranks among themselves."""
    unit = feats.sig_row >= 0
    for g in para_groups:
        unit[np.asarray(g.members[1:], dtype=np.int64)] = False
    para_units = np.flatnonzero(unit)
    return para_units, np.argsort(np.lexsort((feats.index[para_units], rank[feats.doc[para_units]])))


def _paragraph_story(context: tuple[story_stage.TermRows, tuple[np.ndarray, np.ndarray], int],
                     _: int) -> list[tuple[list[int], list[float]]]:
    """The story stage's paragraph level (a top-level function, so a forked process can run it)."""
    terms, (units, ranks), jobs = context
    return _story_groups(terms.take(units), story_stage.StorySettings(), ranks, jobs)


def _document_story_clusters(docs: Sequence[Document], previews: Callable[[int], str], units: np.ndarray,
                             found: list[tuple[list[int], list[float]]], base: int) -> list[Cluster]:
    out = []
    for k, (members, sims) in enumerate(found):
        mem = tuple(Member(docs[units[m]].id, round(s, 4)) for m, s in zip(members, sims, strict=True))
        out.append(Cluster(f"d{base + k + 1}", "story", "document", mem[0], mem, previews(int(units[members[0]]))))
    return out


def _paragraph_story_clusters(docs: Sequence[Document], feats: ParagraphFeatures,
                              units: np.ndarray, found: list[tuple[list[int], list[float]]],
                              base: int) -> list[Cluster]:
    out = []
    for k, (members, sims) in enumerate(found):
        mem = tuple(Member(docs[int(feats.doc[units[m]])].id, round(s, 4), int(feats.index[units[m]]))
                    for m, s in zip(members, sims, strict=True))
        first = units[members[0]]
        out.append(Cluster(f"p{base + k + 1}", "story", "paragraph", mem[0], mem,
                           _preview(_paragraph_text(docs, feats, int(first)))))
    return out


def _story_groups(terms: story_stage.TermRows, settings: story_stage.StorySettings,
                  rank: np.ndarray, jobs: int) -> list[tuple[list[int], list[float]]]:
    """Story clusters over texts' terms: pairs from the story stage, clustered with the chaining guard."""
    first, second, sims = story_stage.story_pair_arrays(terms, settings, jobs)
    if not len(first):
        return []
    n = np.int64(len(terms))
    found = first * n + second  # sorted, as the pairs are

    def pair_similarity(one: np.ndarray, other: np.ndarray) -> np.ndarray:
        lo, hi = np.minimum(one, other), np.maximum(one, other)
        at = np.minimum(np.searchsorted(found, lo * n + hi), len(found) - 1)
        return np.where(found[at] == lo * n + hi, sims[at], 0.0)

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return pair_similarity(np.full(len(others), rep, dtype=np.int64), others)

    groups = cluster(len(terms), np.stack([first, second], axis=1), rank, similarity, settings.min_similarity,
                     pair_similarity)
    return [([int(m) for m in g.members], [float(s) for s in g.similarity]) for g in groups]


# -- outcomes and stats ------------------------------------------------------------------------

def _outcomes(docs: Sequence[Document], table: _DocTable, groups: list[Group], clusters: list[Cluster],
              kept: dict[int, int], similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
              stripped: StrippedStore, doc_chars: list[int]) -> list[DocumentOutcome]:
    where: dict[int, int] = {m: k for k, g in enumerate(groups) for m in g.members.tolist()}
    # Each removed document's similarity to its kept copy, all in one call.
    removed = [(kept[k], m) for k, g in enumerate(groups) for m in g.members.tolist() if m != kept[k] and m < len(docs)]
    pairs = np.array(removed, dtype=np.int64).reshape(-1, 2)
    sims = similarity(pairs[:, 0], pairs[:, 1]).tolist() if len(pairs) else []
    sim_to_kept = dict(zip(pairs[:, 1].tolist(), sims, strict=True))
    out = []
    for d, doc in enumerate(docs):
        k = where.get(d)
        keeper = kept[k] if k is not None else d
        if keeper == d:
            out.append(DocumentOutcome(doc.id, doc.site, True, clusters[k].id if k is not None else None, None,
                                       None, None, stripped.of(d), doc_chars[d]))
            continue
        assert k is not None
        sim = sim_to_kept[d]
        archived = " (archived)" if table.is_archived(keeper) else ""
        reason = f"{clusters[k].kind} duplicate of {table.ids[keeper]}{archived}"
        out.append(DocumentOutcome(doc.id, doc.site, False, clusters[k].id, table.ids[keeper], round(sim, 4),
                                   reason, stripped.of(d), doc_chars[d]))
    return out


def _chrome_report(docs: Sequence[Document], stripped: StrippedStore, feats: ParagraphFeatures) -> list[ChromeLine]:
    """Chrome lines per site (one per line key, told apart by its hash), most widespread first;
    each worded as first seen, with the number of distinct document ids it was stripped from.
    Grouped by sorting the stripped rows' (site, key, id) numbers, not row by row."""
    if not len(stripped):
        return []
    sites: dict[str, int] = {}
    ids: dict[str, int] = {}
    site_of = np.fromiter((sites.setdefault(d.site, len(sites)) for d in docs), dtype=np.int64, count=len(docs))
    id_of = np.fromiter((ids.setdefault(d.id, len(ids)) for d in docs), dtype=np.int64, count=len(docs))
    bounds = np.searchsorted(feats.doc, np.arange(len(docs) + 1))
    doc = stripped.doc.astype(np.int64)
    site, key, page = site_of[doc], feats.key_hashes[bounds[doc] + stripped.index.astype(np.int64)], id_of[doc]
    order = np.lexsort((page, key, site))  # by line, then page id; equal rows stay in row order
    site, key, page = site[order], key[order], page[order]
    new_line = np.concatenate([[True], (site[1:] != site[:-1]) | (key[1:] != key[:-1])])
    new_page = new_line | np.concatenate([[True], page[1:] != page[:-1]])
    starts = np.flatnonzero(new_line)
    pages = np.add.reduceat(new_page.astype(np.int64), starts).tolist()
    first = np.minimum.reduceat(order, starts).tolist()  # each line's first row: as first seen
    reasons = stripped.reason_ids.tolist()
    lines = []
    for row, count in zip(first, pages, strict=True):
        d = int(doc[row])
        lines.append(ChromeLine(docs[d].site, stripped.text(row, d), count, docs[d].id,
                                stripped.reasons[reasons[row]]))
    lines.sort(key=lambda c: (c.site, -c.pages, c.text))
    return lines


def _stats(docs: Sequence[Document], feats: ParagraphFeatures, bad: Sequence[BadRecord], doc_clusters: list[Cluster],
           para_clusters: list[Cluster], outcomes: list[DocumentOutcome], stripped: StrippedStore) -> Stats:
    def by_kind(clusters: list[Cluster]) -> dict[str, int]:
        counts = {"exact": 0, "near": 0, "story": 0}
        for c in clusters:
            counts[c.kind] += 1
        return counts

    removed = [o for o in outcomes if not o.kept]
    removed_ids = {id(o) for o in removed}
    removable_bytes = sum(len(utf8(d.text)) for d, o in zip(docs, outcomes, strict=True)
                          if id(o) in removed_ids)
    kept = [d for d, o in enumerate(outcomes) if o.kept]
    return Stats(
        documents=len(docs),
        paragraphs=len(feats.doc),
        bad_records=len(bad),
        document_clusters=by_kind(doc_clusters),
        paragraph_clusters=by_kind(para_clusters),
        removable_documents=len(removed),
        removable_bytes=removable_bytes,
        chrome_paragraphs=sum(len(outcomes[d].stripped) for d in kept),
        chrome_bytes=sum(stripped.utf8_bytes(d) for d in kept),
    )
