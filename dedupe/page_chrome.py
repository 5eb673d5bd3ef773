"""Stages 2-3: page groups (whole pages that are copies of each other, counted once for chrome
recurrence), the per-site chrome statistics, and each paragraph's chrome verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from . import chrome as chrome_stage
from . import chrome_compiled, kernels_rows
from .archive import Archive
from .arrays import unique_sorted
from .cluster import components
from .copies import (
    content_keys,
    equal_key_pairs,
    verified_lsh_pairs,
)
from .features import ParagraphFeatures
from .lsh import normalise_pairs
from .model import Document
from .reprints import reprinted_groups, rows_by_site
from .settings import Settings
from .stripped import StrippedStore


def page_groups(docs: Sequence[Document], feats: ParagraphFeatures, rank: np.ndarray, settings: Settings,
                archive: Archive | None = None, learned: chrome_stage.ChromeStats | None = None) -> list[str]:
    """Group id per document: whole pages that are exact or near copies share one, the id of the
    group's first document by rank, so ids stay meaningful across runs (chrome statistics persist).
    A page's exact key is the key of all its normalised paragraphs in order.

    With an `archive` (and chrome detection on), a group holding a page that prints an archived
    page of its site again takes the archived page's group (`reprinted_groups`, with the archive's
    chrome statistics `learned`): the lines the two share are then one group's, not a recurrence,
    so a later night's copy of an archived article keeps its text and the copy stages can match it
    with the archived copy."""
    n = len(docs)
    page_hi, page_lo = content_keys(feats, np.ones(len(feats.doc), dtype=bool), n)
    pairs = [equal_key_pairs(page_hi, page_lo)]
    signed = feats.sig_row >= 0
    sigs = kernels_rows.merged_signatures(feats.signatures, feats.sig_row[signed], feats.doc[signed], n)
    pairs.append(verified_lsh_pairs(sigs, settings.threshold, settings.num_perm))
    labels = components(n, normalise_pairs(np.concatenate(pairs)))
    leader: dict[int, int] = {}
    for d in np.argsort(rank):
        leader.setdefault(int(labels[d]), int(d))
    names = {label: docs[d].id for label, d in leader.items()}
    groups = [names[int(label)] for label in labels]
    if archive is None or not settings.chrome:
        return groups
    archived: dict[int, str] = {}
    for d, group in reprinted_groups(docs, feats, groups, archive, learned, settings).items():
        label = int(labels[d])
        archived[label] = min(group, archived.get(label, group))
    names.update(archived)
    return [names[int(label)] for label in labels]


def _keys_by_site(docs: Sequence[Document], feats: ParagraphFeatures,
                  stats: chrome_stage.ChromeStats) -> dict[str, list[int]]:
    """The distinct counted line key hashes of each site's paragraphs in this run."""
    rows = np.flatnonzero(stats.tracked_lengths(feats.key_chars))
    return {site: unique_sorted(feats.key_hashes[site_rows]).tolist()
            for site, site_rows in rows_by_site(docs, feats, rows).items()}


def find_chrome(docs: Sequence[Document], feats: ParagraphFeatures, rank: np.ndarray, settings: Settings,
                archive: Archive | None
                ) -> tuple[np.ndarray, StrippedStore, chrome_stage.ChromeStats | None, list[str]]:
    """Stage 3: page groups, then `strip_chrome` (with what earlier runs learned of chrome, when
    there is an archive). Also returns each document's page group, which an archive stores."""
    learned = archive.chrome_stats() if archive is not None else None
    if learned is not None and settings.chrome:  # only this run's sites and lines are asked about
        learned = learned.narrowed(_keys_by_site(docs, feats, learned))
    groups = page_groups(docs, feats, rank, settings, archive, learned)
    return (*strip_chrome(docs, groups, feats, replace(settings, jobs=1), learned), groups)


def strip_chrome(docs: Sequence[Document], groups: list[str],
                 feats: ParagraphFeatures, settings: Settings, learned: chrome_stage.ChromeStats | None
                 ) -> tuple[np.ndarray, StrippedStore, chrome_stage.ChromeStats | None]:
    """Chrome flag per paragraph (in feature order), the stripped paragraphs, and this run's own
    statistics (classification also uses what earlier runs `learned`)."""
    if not settings.chrome:
        return np.zeros(len(feats.doc), dtype=bool), StrippedStore.empty(docs), None
    if learned is not None:
        stats = page_stats(docs, groups, feats)
        mask, stripped = classify_pages(docs, feats, learned.merge(stats))
        return mask, stripped, stats
    # Only this run's pages: every paragraph's recurrence from one sort of the run's own triples,
    # as the statistics would answer it key by key (`chrome.page_recurrences`); the statistics
    # themselves are built only if asked for whole (an index storing them).
    tracked = chrome_stage.ChromeStats().tracked_lengths(feats.key_chars)
    lazy = chrome_stage.PagesChrome([d.site for d in docs], groups, feats.doc[tracked], feats.key_hashes[tracked])
    recurrences = np.zeros(len(feats.doc), dtype=np.int64)
    recurrences[tracked] = lazy.recurrences()
    mask, stripped = classify_pages(docs, feats, lazy, recurrences)
    return mask, stripped, lazy


def page_stats(docs: Sequence[Document], groups: Sequence[str], feats: ParagraphFeatures) -> chrome_stage.ChromeStats:
    """Per-site recurrence over these documents, each counted in its page group, from the key
    hashes the features stage worked out."""
    stats = chrome_stage.ChromeStats()
    tracked = stats.tracked_lengths(feats.key_chars)
    stats.add_hashed_pages([d.site for d in docs], groups, feats.doc[tracked], feats.key_hashes[tracked])
    return stats


def classify_pages(docs: Sequence[Document], feats: ParagraphFeatures, known: chrome_stage.ChromeStats,
                   recurrences: np.ndarray | None = None) -> tuple[np.ndarray, StrippedStore]:
    """Chrome flag per paragraph and the stripped paragraphs, given the site statistics: per
    document only, so any engine can run it wherever the documents are. The verdicts come from the
    features' cues, compiled, a span of documents at a time; no text is read (the stripped
    paragraphs are kept as where they lie). (Statistics backed by an index may query its database
    connection, so they are read in this process.) `recurrences`, when given, is every paragraph's
    recurrence as `known` would answer it (worked out already), and `known` then only counts sites."""
    mask = np.zeros(len(feats.doc), dtype=bool)
    bounds = np.searchsorted(feats.doc, np.arange(len(docs) + 1))
    spans = [(lo, min(len(docs), lo + _CHROME_SPAN)) for lo in range(0, len(docs), _CHROME_SPAN)]
    worded: dict[tuple[int, int, str], int] = {}
    found = [_classify_span(docs, feats, bounds, known, recurrences, worded, *span) for span in spans]
    rows = np.concatenate([r for r, _ in found] or [np.zeros(0, dtype=np.int64)])
    mask[rows] = True
    columns = {name: getattr(feats, name)[rows] for name in ("index", "line", "end", "start", "stop", "chars")}
    reason_ids = np.concatenate([i for _, i in found] or [np.zeros(0, dtype=np.int64)])
    reasons = [chrome_stage.verdict_reason(code, rec, known.site_groups(site), site) for code, rec, site in worded]
    return mask, StrippedStore(docs, feats.doc[rows], columns, reason_ids, reasons)


def _span_recurrences(feats: ParagraphFeatures, known: chrome_stage.ChromeStats, sites: list[str],
                      page_bounds: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The recurrence of paragraphs [lo, hi) (the pages of `sites`), asked of `known` a run of pages
    of one site at a time."""
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
    return recs


_CHROME_SPAN = 2000  # documents per call of the compiled classification (bounds its scratch arrays)


def _classify_span(docs: Sequence[Document], feats: ParagraphFeatures, bounds: np.ndarray,
                   known: chrome_stage.ChromeStats, recurrences: np.ndarray | None,
                   worded: dict[tuple[int, int, str], int], first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    """The chrome paragraphs of documents [first, last), as ascending rows of the features, and the
    reason for each as its number in `worded`, one per distinct (verdict, recurrence, site) (a
    site's chrome lines share a handful), which numbers new ones as they come."""
    lo, hi = int(bounds[first]), int(bounds[last])
    sites = [docs[d].site for d in range(first, last)]
    groups = [known.site_groups(site) for site in sites]
    page_bounds = bounds[first : last + 1] - lo
    recs = (recurrences[lo:hi] if recurrences is not None
            else _span_recurrences(feats, known, sites, page_bounds, lo, hi))
    codes = chrome_compiled.classify_pages(feats.line_flags[lo:hi], feats.chars[lo:hi], feats.key_words[lo:hi],
                                           feats.key_stops[lo:hi], recs, page_bounds,
                                           np.array(groups, dtype=np.int64))
    found = np.flatnonzero(codes >= chrome_stage.CHROME_RECURRING)
    ids = [worded.setdefault((code, rec, sites[page]), len(worded))
           for code, rec, page in zip(codes[found].tolist(), recs[found].tolist(),
                                      (feats.doc[lo + found] - first).tolist(), strict=True)]
    return found + lo, np.array(ids, dtype=np.int64)
