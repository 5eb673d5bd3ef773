"""Stages 2-3: page groups (whole pages that are copies of each other, counted once for chrome
recurrence), the per-site chrome statistics, and each paragraph's chrome verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from . import chrome as chrome_stage
from . import chrome_compiled, kernels_rows
from .archive import Archive, ArchiveRows
from .chrome import ChromeSettings
from .cluster import components
from .copies import (
    content_keys,
    equal_key_pairs,
    verified_lsh_pairs,
)
from .features import ParagraphFeatures
from .lsh import band_keys, candidate_pairs, lsh_params, normalise_pairs
from .minhash import EMPTY, estimate_jaccard
from .model import Document
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
    if archive is None or not settings.chrome:
        return [names[int(label)] for label in labels]
    groups = [names[int(label)] for label in labels]
    archived: dict[int, str] = {}
    for d, group in reprinted_groups(docs, feats, groups, archive, learned, settings).items():
        label = int(labels[d])
        archived[label] = min(group, archived.get(label, group))
    names.update(archived)
    return [names[int(label)] for label in labels]


def reprinted_groups(docs: Sequence[Document], feats: ParagraphFeatures, groups: Sequence[str], archive: Archive,
                     learned: chrome_stage.ChromeStats | None, settings: Settings) -> dict[int, str]:
    """The archived page group of each page that prints an archived page of its own site again:
    the Jaccard of their shingles reaches the threshold, taken between the archived page's content
    and the page's own text, which is its long paragraphs that recur neither on two of this run's
    page `groups` of its site nor on two archived groups (`learned`). The page's chrome is not
    known yet, but a template line recurs on other pages of the site, in this run or archived; a
    line the page shares with the archived page it prints recurs on one archived group and the
    page's own. When a page prints several, the smallest group id.

    Candidates are the archived pages sharing a band key of that signature or one of the page's
    long paragraphs (`Archive.candidates`). Containment is not enough here, as it is for the copy
    stages: an archived page of a site seen once has its template in its content, and every later
    page of the site holds that."""
    n = len(docs)
    signed = feats.sig_row >= 0
    own = signed & ~_recurring(docs, feats, groups, learned)
    owner, long_keys = feats.doc[signed], feats.key_hi[signed]
    sigs = kernels_rows.merged_signatures(feats.signatures, feats.sig_row[own], feats.doc[own], n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    keys = band_keys(sigs, bands, rows)
    none = np.zeros(n, dtype=np.uint64)
    found = archive.candidates(ArchiveRows([d.id for d in docs], [d.site for d in docs], none, none,
                                           np.zeros(n, dtype=np.int64), sigs, keys, long_keys, offsets, list(groups)))
    if not found.ids:
        return {}
    active = np.concatenate([sigs[:, 0], found.signatures[:, 0]]) != EMPTY if len(sigs) else None
    pairs = np.concatenate([
        candidate_pairs(np.concatenate([keys, band_keys(found.signatures, bands, rows)]), active),
        _shared_paragraph_pairs(long_keys, owner, found.paragraph_keys,
                                n + np.repeat(np.arange(len(found.ids)), np.diff(found.paragraph_offsets)))])
    pairs = normalise_pairs(pairs)
    pairs = pairs[(pairs[:, 0] < n) & (pairs[:, 1] >= n)]
    page, old = pairs[:, 0], pairs[:, 1] - n
    same_site = np.fromiter((docs[d].site == found.sites[a] for d, a in zip(page.tolist(), old.tolist(), strict=True)),
                            dtype=bool, count=len(page))
    page, old = page[same_site], old[same_site]
    prints = estimate_jaccard(np.concatenate([sigs, found.signatures]), page, old + n) >= settings.threshold
    matched: dict[int, str] = {}
    for d, a in zip(page[prints].tolist(), old[prints].tolist(), strict=True):
        group = found.page_groups[a]
        matched[d] = min(group, matched.get(d, group))
    return matched


def _recurring(docs: Sequence[Document], feats: ParagraphFeatures, groups: Sequence[str],
               learned: chrome_stage.ChromeStats | None) -> np.ndarray:
    """Per paragraph: a long one whose line recurs on two of this run's page `groups` of its site,
    or on two archived groups (`learned`)."""
    out = np.zeros(len(feats.doc), dtype=bool)
    if not len(feats.key_chars):
        return out
    run = chrome_stage.ChromeStats()
    rows = np.flatnonzero((feats.sig_row >= 0) & run.tracked_lengths(feats.key_chars))
    run.add_hashed_pages([d.site for d in docs], groups, feats.doc[rows], feats.key_hashes[rows])
    least = ChromeSettings().min_recurrence
    for site, site_rows in _rows_by_site(docs, feats, rows).items():
        hashes = feats.key_hashes[site_rows].tolist()
        here = np.array(run.recurrences_of_hashes(site, hashes))
        archived = np.array(learned.recurrences_of_hashes(site, hashes)) if learned is not None else 0
        out[site_rows] = (here >= least) | (archived >= least)
    return out


def _rows_by_site(docs: Sequence[Document], feats: ParagraphFeatures, rows: np.ndarray) -> dict[str, list[int]]:
    """The given paragraph rows of each site."""
    by_site: dict[str, list[int]] = {}
    for row, d in zip(rows.tolist(), feats.doc[rows].tolist(), strict=True):
        by_site.setdefault(docs[d].site, []).append(row)
    return by_site


def _keys_by_site(docs: Sequence[Document], feats: ParagraphFeatures,
                  stats: chrome_stage.ChromeStats) -> dict[str, list[int]]:
    """The distinct counted line key hashes of each site's paragraphs in this run."""
    rows = np.flatnonzero(stats.tracked_lengths(feats.key_chars))
    return {site: np.unique(feats.key_hashes[site_rows]).tolist()
            for site, site_rows in _rows_by_site(docs, feats, rows).items()}


_MAX_KEY_PAIRS = 256  # a paragraph on more pages than this pairs them by their signatures' bands only


def _shared_paragraph_pairs(new_keys: np.ndarray, new_owner: np.ndarray, old_keys: np.ndarray,
                            old_owner: np.ndarray) -> np.ndarray:
    """Every pair of a new and an archived page holding the same long paragraph (by exact key),
    except through paragraphs so widespread that they would pair more than `_MAX_KEY_PAIRS`."""
    new, new_pages = _by_key(new_keys, new_owner)
    old, old_pages = _by_key(old_keys, old_owner)
    shared = np.intersect1d(new, old)
    new_lo, new_hi = np.searchsorted(new, shared), np.searchsorted(new, shared, side="right")
    old_lo, old_hi = np.searchsorted(old, shared), np.searchsorted(old, shared, side="right")
    out = [np.stack(np.meshgrid(new_pages[a:b], old_pages[c:d], indexing="ij"), axis=-1).reshape(-1, 2)
           for a, b, c, d in zip(new_lo.tolist(), new_hi.tolist(), old_lo.tolist(), old_hi.tolist(), strict=True)
           if (b - a) * (d - c) <= _MAX_KEY_PAIRS]
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def _by_key(keys: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (key, page) rows sorted by key, then page, as two arrays."""
    order = np.lexsort((owner, keys))
    keys, owner = keys[order], owner[order].astype(np.int64)
    keep = np.ones(len(keys), dtype=bool)
    keep[1:] = (keys[1:] != keys[:-1]) | (owner[1:] != owner[:-1])
    return keys[keep], owner[keep]


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
    stats = page_stats(docs, groups, feats)
    known = stats if learned is None else learned.merge(stats)
    mask, stripped = classify_pages(docs, feats, known)
    return mask, stripped, stats


def page_stats(docs: Sequence[Document], groups: Sequence[str], feats: ParagraphFeatures) -> chrome_stage.ChromeStats:
    """Per-site recurrence over these documents, each counted in its page group, from the key
    hashes the features stage worked out."""
    stats = chrome_stage.ChromeStats()
    tracked = stats.tracked_lengths(feats.key_chars)
    stats.add_hashed_pages([d.site for d in docs], groups, feats.doc[tracked], feats.key_hashes[tracked])
    return stats


def classify_pages(docs: Sequence[Document], feats: ParagraphFeatures,
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
    codes = chrome_compiled.classify_pages(feats.line_flags[lo:hi], feats.chars[lo:hi], feats.key_words[lo:hi],
                                           feats.key_stops[lo:hi], recs, page_bounds,
                                           np.array(groups, dtype=np.int64))
    found = np.flatnonzero(codes >= chrome_stage.CHROME_RECURRING)
    ids = [worded.setdefault((code, rec, sites[page]), len(worded))
           for code, rec, page in zip(codes[found].tolist(), recs[found].tolist(),
                                      (feats.doc[lo + found] - first).tolist(), strict=True)]
    return found + lo, np.array(ids, dtype=np.int64)
