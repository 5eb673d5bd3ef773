"""The scan: documents in, clusters, chrome and per-document outcomes out.

This module runs the stages in order, each a function of the previous stages' outputs only, and
decides what runs beside what under `--jobs`. Each stage lives in its own module:

1. segment + sign (`signing`; `features.analyse` per batch): paragraphs, exact keys, signatures;
2. page groups (`page_chrome.page_groups`): documents that are copies of each other as whole pages
   (so chrome recurrence is counted once per group, not once per copy);
3. chrome (`page_chrome`, with `chrome` and `chrome_compiled`): per-site recurrence plus page cues;
4. paragraph copy groups (`copies.paragraph_groups`: LSH candidates, verified, chaining guarded);
5. document copy groups over content only (`copies.document_groups`): exact content, near
   (Jaccard), or a copy cut from the bottom (containment), with candidates from LSH and from
   shared paragraph groups;
6. the kept copy of each document group (`copies.choose_kept`), by the keep policy;
7. story clusters (`story_levels`, over `story`) over one copy of each document and of each paragraph.

`results` then assembles the clusters, outcomes, chrome lines and stats of the `ScanResult`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import chrome as chrome_stage
from . import copies, page_chrome, results, signing, story_levels
from . import story as story_stage
from .archive import Archive, ArchiveRows
from .cluster import Group, Groups
from .copies import DocTable
from .feature_table import give_back
from .features import ParagraphFeatures, without_shingles
from .forkpool import CAN_FORK, fork_beside, forked_steps
from .gcpause import collector_paused
from .model import BadRecord, Cluster, Document
from .results import ChromeLine, DocumentOutcome, ScanResult, Stats
from .settings import KeepPolicy, Progress, Settings
from .stripped import StrippedStore

T = TypeVar("T")

__all__ = ["ChromeLine", "DocumentOutcome", "KeepPolicy", "ScanResult", "Settings", "Stats", "scan"]


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
    feats = signing.sign(texts, settings, tick)
    terms, feats = signing.numbered_terms(feats) if settings.story else (None, feats)
    rank = signing.document_rank([d.id for d in docs])

    tick("chrome", 0, 1)

    def chrome_and_content() -> _Content:
        chrome_mask, stripped, chrome_stats, groups = page_chrome.find_chrome(docs, feats, rank, settings, archive)
        content = ~chrome_mask
        shingle_sets = copies.content_shingles(feats, content & (feats.sig_row >= 0), len(docs))
        return _Content(content, stripped, chrome_stats, shingle_sets,
                        copies.archive_rows(docs, feats, content, shingle_sets, groups, settings))

    # With two processes (and the story stage) the paragraph level goes to a forked process for the
    # rest of the scan: the paragraph groups, then (while this one goes on to the copy stages and
    # the story's document level) the story's paragraph level (`_paragraph_steps`). About half of a
    # story level's work (counts, weights, prefix cuts) is serial, so one level per process uses
    # both cores where splitting each level's candidate blocks would leave one idle. Otherwise the
    # groups' pairs are found beside chrome, and the story's paragraph level comes after the copy
    # stages, its candidate blocks spread over all the processes.
    two = settings.jobs == 2 and terms is not None and CAN_FORK
    with ExitStack() as stack:
        if two:
            assert terms is not None, "two processes share the paragraph level when the story stage runs"
            shared = 24 * int(np.count_nonzero(feats.sig_row >= 0)) + 4096  # the groups' three flat arrays
            steps = stack.enter_context(forked_steps(_paragraph_steps, (docs, feats, rank, settings, terms), True,
                                                     shared))
            found = chrome_and_content()
            para_groups = next(steps)  # from then on the other process reads no signature or shingle
        else:
            found, para_groups = _beside_paragraph_groups(feats, rank, settings, chrome_and_content)
        content, stripped, rows, chrome_stats = found.content, found.stripped, found.rows, found.chrome_stats
        shingle_sets: tuple[np.ndarray, np.ndarray] | None = found.shingle_sets
        del found
        tick("chrome", 1, 1)
        tick("clusters", 0, 3)
        for dropped in (feats.signatures, feats.shingle_hashes, feats.shingle_offsets):
            give_back(dropped)  # now, not when the other process ends
        feats = without_shingles(feats)

        def copies_and_outcomes(story_jobs: int) -> tuple[list[Cluster], list[Cluster], list[DocumentOutcome],
                                                          list[ChromeLine]]:
            """Stages 5-6 and the story's document level, then what needs only them: the outcomes and
            the chrome report (with two processes, while the story's paragraph level runs beside).
            Returns the paragraph and document clusters, the outcomes and the chrome lines; the
            documents' shingle sets and the copy stages' tables go (with one process the story's
            paragraph level comes next, and needs the room: 120 MB at 100k documents)."""
            nonlocal shingle_sets
            assert shingle_sets is not None, "the copy stages run once"
            c = _copy_stages(docs, feats, content, shingle_sets, rows, para_groups, rank, settings, archive,
                             terms, story_jobs, tick)
            shingle_sets = None
            stories = (results.document_story_clusters(docs, c.previews, c.story_units, c.story_found,
                                                       len(c.doc_clusters)) if terms is not None else [])
            outcomes = results.document_outcomes(docs, c.table, c.doc_groups, c.doc_clusters, c.kept, c.doc_sim,
                                                 stripped, doc_chars)
            return c.para_clusters, c.doc_clusters + stories, outcomes, results.chrome_report(docs, stripped, feats)

        para_stories: results.StoryMembers | None = None
        if two:
            para_clusters, doc_clusters, outcomes, chrome_lines = copies_and_outcomes(1)
            para_stories = next(steps)
        elif terms is None:
            para_clusters, doc_clusters, outcomes, chrome_lines = copies_and_outcomes(settings.jobs)
        else:
            units = story_levels.paragraph_story_units(feats, para_groups, rank)
            para_clusters, doc_clusters, outcomes, chrome_lines = copies_and_outcomes(settings.jobs)
            stories = story_levels.paragraph_story((terms, units, settings.jobs), 0)
            para_stories = results.paragraph_story_members(docs, feats, units[0], stories)
    if para_stories is not None:
        para_clusters = para_clusters + results.paragraph_story_clusters(para_stories, len(para_clusters))
        tick("story", 1, 1)
    tick("clusters", 3, 3)

    stats = results.scan_stats(docs, feats, bad, doc_clusters, para_clusters, outcomes, stripped)
    return ScanResult(settings, stats, doc_clusters, para_clusters, chrome_lines, outcomes, list(bad),
                      chrome_stats, rows)


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

    table: DocTable
    doc_groups: list[Group]
    doc_sim: Callable[[np.ndarray, np.ndarray], np.ndarray]
    kept: dict[int, int]
    previews: Callable[[int], str]
    doc_clusters: list[Cluster]
    para_clusters: list[Cluster]
    story_units: np.ndarray  # the documents the story stage compares (one per copy group)...
    story_found: list[tuple[list[int], list[float]]]  # ...and its groups of them (positions in story_units)


def _copy_stages(docs: list[Document], feats: ParagraphFeatures, content: np.ndarray,
                 shingle_sets: tuple[np.ndarray, np.ndarray], rows: ArchiveRows, para_groups: Groups,
                 rank: np.ndarray, settings: Settings, archive: Archive | None, terms: story_stage.TermRows | None,
                 story_jobs: int, tick: Progress) -> _Copies:
    """Stages 5-6 and, with `terms`, the story stage's document level (in `story_jobs` processes)."""
    tick("clusters", 1, 3)
    table = DocTable.build(rows, archive, rank, settings.threshold)
    doc_groups, doc_sim = copies.document_groups(table, feats, content, shingle_sets, para_groups, settings)
    tick("clusters", 2, 3)
    kept = copies.choose_kept(docs, table, doc_groups, feats, content, settings)

    previews = results.content_previews(docs, feats, content)
    doc_clusters = results.document_clusters(table, doc_groups, previews)
    para_clusters = results.paragraph_clusters(docs, feats, para_groups)
    units, found = np.zeros(0, dtype=np.int64), []
    if terms is not None:
        tick("story", 0, 1)
        units, doc_terms, doc_ranks = story_levels.document_story_units(docs, feats, terms, content, doc_groups,
                                                                        kept, rank)
        found = story_levels.story_groups(doc_terms, story_stage.StorySettings(), doc_ranks, story_jobs)
    return _Copies(table, doc_groups, doc_sim, kept, previews, doc_clusters, para_clusters, units, found)


def _beside_paragraph_groups(feats: ParagraphFeatures, rank: np.ndarray, settings: Settings,
                             work: Callable[[], T]) -> tuple[T, Groups]:
    """`work` (the chrome stage and what needs only it) and `copies.paragraph_groups`, which needs only the
    features. With `settings.jobs` > 1 a forked process finds the groups' verified pairs (LSH, the
    larger part) while this one does `work`, then clusters them: two cores, and neither waits long
    for the other (the whole groups in the fork left this one idle for a third of the stage)."""
    if settings.jobs <= 1:  # the groups first: their scratch arrays are gone before `work` makes its own
        groups = copies.paragraph_groups(feats, rank, settings)
        return work(), groups
    shared = 32 * int(np.count_nonzero(feats.sig_row >= 0)) + 4096  # room for two pairs per paragraph
    pairs, done = fork_beside(_paragraph_pairs, (feats, settings), 0, work, settings.jobs, shared)
    return done, copies.paragraph_groups(feats, rank, settings, pairs)


def _paragraph_pairs(context: tuple[ParagraphFeatures, Settings], _: int) -> np.ndarray:
    """`copies.paragraph_pairs` (a top-level function, so a forked process can run it)."""
    return copies.paragraph_pairs(*context)


def _paragraph_steps(context: tuple[list[Document], ParagraphFeatures, np.ndarray, Settings,
                                    story_stage.TermRows]) -> Iterator[Any]:
    """The paragraph level in the other of two processes, step by step: the paragraph groups (LSH
    pairs, clustered), which that process takes once it has done chrome and what needs only it
    (from then on this one reads no signature or shingle, and their pages may go); then the
    story's paragraph level over one paragraph of each group, its members as plain lists
    (`results.StoryMembers`). The groups come first, so the story starts as soon as they are
    made, while that process does the copy stages."""
    docs, feats, rank, settings, terms = context
    groups = copies.paragraph_groups(feats, rank, settings)
    yield groups
    units = story_levels.paragraph_story_units(feats, groups, rank)
    found = story_levels.paragraph_story((terms, units, 1), 0)
    yield results.paragraph_story_members(docs, feats, units[0], found)
