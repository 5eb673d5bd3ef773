"""Pages printed again: which new page of a run prints an archived page of its site again.

Chrome recurrence is counted over page groups, so that whole-page copies count once. An index
stores each archived page's group, and a new page that prints an archived page again (a story
under a new address, or updated with text of its own) joins that group (`reprinted_groups`): the
lines the two share are then one group's, not the site's recurring chrome, so the page keeps its
article and the copy stages can match it with the archived copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import chrome as chrome_stage
from . import kernels_rows
from .archive import Archive, ArchiveRows
from .arrays import shared_key_pairs
from .chrome import ChromeSettings
from .features import ParagraphFeatures
from .lsh import band_keys, candidate_pairs, lsh_params, normalise_pairs
from .minhash import EMPTY, estimate_jaccard
from .model import Document
from .settings import Settings


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
    long paragraphs (`Archive.candidates`). Containment is not used, unlike in the copy stages: an
    archived page of a site seen once has its template in its content, and every later page of the
    site holds that."""
    n = len(docs)
    signed = feats.sig_row >= 0
    own = signed & ~_recurring(docs, feats, groups, learned)
    owner, long_keys = feats.doc[signed], feats.key_hi[signed]
    sigs = kernels_rows.merged_signatures(feats.signatures, feats.sig_row[own], feats.doc[own], n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    keys = band_keys(sigs, bands, rows)
    none = np.zeros(n, dtype=np.uint64)  # no content keys: the pages' content is not known yet
    found = archive.candidates(ArchiveRows([d.id for d in docs], [d.site for d in docs], none, none,
                                           np.zeros(n, dtype=np.int64), sigs, keys, long_keys, offsets, list(groups)))
    if not found.ids:
        return {}
    active = np.concatenate([sigs[:, 0], found.signatures[:, 0]]) != EMPTY if len(sigs) else None
    pairs = np.concatenate([
        candidate_pairs(np.concatenate([keys, band_keys(found.signatures, bands, rows)]), active),
        shared_key_pairs(long_keys, owner, found.paragraph_keys,
                         n + np.repeat(np.arange(len(found.ids)), np.diff(found.paragraph_offsets)), _MAX_KEY_PAIRS,
                         hub=False)])
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
    for site, site_rows in rows_by_site(docs, feats, rows).items():
        hashes = feats.key_hashes[site_rows].tolist()
        here = np.array(run.recurrences_of_hashes(site, hashes))
        archived = np.array(learned.recurrences_of_hashes(site, hashes)) if learned is not None else 0
        out[site_rows] = (here >= least) | (archived >= least)
    return out


def rows_by_site(docs: Sequence[Document], feats: ParagraphFeatures, rows: np.ndarray) -> dict[str, list[int]]:
    """The given paragraph rows of each site."""
    by_site: dict[str, list[int]] = {}
    for row, d in zip(rows.tolist(), feats.doc[rows].tolist(), strict=True):
        by_site.setdefault(docs[d].site, []).append(row)
    return by_site


_MAX_KEY_PAIRS = 256  # a paragraph on more pages than this pairs them by their signatures' bands only
