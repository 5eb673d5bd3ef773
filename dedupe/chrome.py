"""Chrome detection: tell a page's own text from the site chrome wrapped around it.

Two kinds of evidence are combined, line by line (one paragraph per line of a scraped page).

1. Recurrence across a site (`ChromeStats`). Navigation, share prompts, footers and "Related
   Articles" headings repeat on many pages of a site, equal up to digits (`normalize.line_key`).
   Recurrence is counted over distinct *groups* of copies, so a paragraph that recurs only because
   whole pages are copies (one article crawled twice) is not mistaken for chrome.
2. Cues from the page itself, which carry sites with few pages and lines seen once: jusText's scheme
   on text lines. Each line is first classed without context (bad / short / near-good / good) by
   boilerplate phrases, length and stop-word density; then short and near-good lines take the class
   of their good/bad neighbours, so headlines and short paragraphs inside an article survive while
   the same lengths in a menu do not. Finally the article is bounded: a comments thread or
   "Related Articles" section after it is chrome however prose-like, and the headline, byline and
   date just above its first line are kept.

Recurrence feeds the page classes rather than overriding them: template lines (on a large share of
the site's groups) are bad; a line on only a few groups (an article's headline or lead shown as a
teaser on some other pages) cannot be good on its own, so it is kept only where its neighbours make
it part of running text. A page whose prose all recurs on a few groups is the exception: it is a
story the site printed again (another address, another template, a later night's batch against the
archive), and its article is judged on its own cues, so that the copy stages keep one copy rather
than chrome stripping the story from all of them (`_reprinted`).

A page with no running text at all is relaxed step by step (`_classes`): near-good lines and
sentences count as text; on a site with evidence, lines the site does not share are kept. On a
site seen once (one page, or one copy group) nothing can show a line is template, and without an
article no line is "outside" it: such a page keeps its short lines, and loses only boilerplate
phrases and link-list items (a one-line post in a dump of many sites is not emptied).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal, NamedTuple

import numpy as np
import xxhash

from dedupe.normalize import line_key, utf8
from dedupe.stopwords import ENGLISH_STOPWORDS

Klass = Literal["bad", "short", "neargood", "good"]

_STATS_VERSION = 1
_HASH_SPACE = float(2**64)


@dataclass(frozen=True, slots=True)
class ChromeSettings:
    """Thresholds of chrome detection. Defaults were set once, on half of the sites of a dev set of
    real news/blog pages, and hold on the other half; there is no per-site tuning.

    Recurrence
    - `min_recurrence` (2): a line whose key occurs in this many distinct groups of its site is
      recurring. Two is enough evidence because article text does not repeat across different
      stories of one site, and copies of one story share a group.
    - `template_share` (0.5): a recurring line on at least this share of the site's groups is
      template (menus, footers, share bars) and always chrome. Below it, the line may be an
      article's own headline or lead that other pages show as a teaser: it can't be good on its
      own and its neighbours decide.
      On a page with no prose of its own, though, a run of such prose lines holding
      `min_article_chars` is the page's article printed again (`_reprinted`), judged on its own
      cues: stripping it would strip it from every copy, where the copy stages keep one.
    - `min_site_groups` (2): below this many groups a site has no recurrence evidence.

    Page cues, in characters of the line (jusText's scheme)
    - `length_low` (70): shorter lines are "short", classed by their neighbours only.
    - `length_high` (200): longer lines with enough stop words are "good" on their own; between the
      two lengths they are "near-good" and need one good neighbour.
    - `stopwords_low` (0.20) / `stopwords_high` (0.32): share of stop words (`ENGLISH_STOPWORDS`)
      below the low mark marks menus, credits and headline lists ("bad"); at or above the high mark
      the line reads as prose. The low mark is below jusText's 0.30 because our list is shorter.
    - `max_heading_distance` (200): a short, non-list line at most this many characters before a
      good line is treated like a heading of it (jusText keeps headings close to good text).

    Article bounds
    - `min_article_chars` (200): good text needed before a comments/"Related" marker can end the
      article (so a "12 comments" link above the headline does not), and below which a page is
      deemed to have no running text and its near-good lines stand in for it.
    - `comment_window` (20): lines after a possible end searched for comment headers.
    - `header_lines` (6) / `max_header_chars` (150): how far above an article's first line, and how
      long, short lines are still its headline, byline or date.
    """

    min_recurrence: int = 2
    template_share: float = 0.5
    min_site_groups: int = 2
    length_low: int = 70
    length_high: int = 200
    stopwords_low: float = 0.20
    stopwords_high: float = 0.32
    max_heading_distance: int = 200
    min_article_chars: int = 200
    comment_window: int = 20
    header_lines: int = 6
    max_header_chars: int = 150


_DEFAULT_SETTINGS = ChromeSettings()


@dataclass(frozen=True, slots=True)
class ChromeVerdict:
    """Whether one paragraph is chrome, why (human readable), and its recurrence on its site."""

    is_chrome: bool
    reason: str
    recurrence: int


# --- per-site recurrence statistics ------------------------------------------------------------


def _hash(text: str) -> int:
    return xxhash.xxh64_intdigest(utf8(text))


def _union(a: tuple[int, ...], b: tuple[int, ...], k: int) -> tuple[int, ...]:
    """The k smallest distinct hashes of a and b: merging KMV sketches is this union."""
    if not b or a == b:
        return a
    if not a:
        return b
    return tuple(sorted(set(a).union(b))[:k])


def _smallest_per_run(outer: np.ndarray, inner: np.ndarray, values: np.ndarray,
                      k: int) -> Iterable[tuple[int, int, tuple[int, ...]]]:
    """(outer, inner, the k smallest distinct values with them, ascending) for each distinct
    (outer, inner): the KMV sketch `_union` would build from the values one at a time."""
    order = np.lexsort((values, inner, outer))
    o, i, v = outer[order], inner[order], values[order]
    new = np.ones(len(o), dtype=bool)
    new[1:] = (o[1:] != o[:-1]) | (i[1:] != i[:-1]) | (v[1:] != v[:-1])
    o, i, v = o[new], i[new], v[new]
    starts = np.flatnonzero(np.concatenate(([True], (o[1:] != o[:-1]) | (i[1:] != i[:-1])))) if len(o) else o
    lengths = np.diff(np.append(starts, len(o)))
    keep = np.arange(len(o)) - np.repeat(starts, lengths) < k  # the first k of each run
    kept = v[keep].tolist()
    ends = np.cumsum(np.minimum(lengths, k))
    bounds = zip((ends - np.minimum(lengths, k)).tolist(), ends.tolist(), strict=True)
    return zip(o[starts].tolist(), i[starts].tolist(), (tuple(kept[a:b]) for a, b in bounds), strict=True)


class _NumberedPages(NamedTuple):
    """Pages as numbers: the sites in the order first met, and per page its site's place among them
    and its copy group's hash (the value a site's and a key's sketches keep)."""

    names: list[str]
    site_of: np.ndarray  # int64 per page
    group_of: np.ndarray  # uint64 per page


def _numbered_pages(sites: Sequence[str], groups: Sequence[str | int]) -> _NumberedPages:
    numbers: dict[str, int] = {}
    site_of = np.fromiter((numbers.setdefault(site, len(numbers)) for site in sites), dtype=np.int64,
                          count=len(sites))
    group_of = np.fromiter((_hash(f"group:{g}") for g in groups), dtype=np.uint64, count=len(groups))
    return _NumberedPages(list(numbers), site_of, group_of)


def _site_sketches(pages: _NumberedPages, k: int) -> Iterable[tuple[int, tuple[int, ...]]]:
    """Each site's number and the KMV sketch of its pages' groups."""
    for number, _, sketch in _smallest_per_run(pages.site_of, np.zeros(len(pages.site_of), dtype=np.uint64),
                                               pages.group_of, k):
        yield number, sketch


def page_recurrences(sites: Sequence[str], groups: Sequence[str | int], page: np.ndarray, hashes: np.ndarray,
                     k: int) -> np.ndarray:
    """For each key hash `hashes[r]` of page `page[r]`, its recurrence on that page's site among these
    pages: what `recurrence_of_hash` answers after `add_hashed_pages(sites, groups, page, hashes)`
    into empty statistics of this `k`. Worked out from one sort of the (site, key, group) triples,
    with no sketch per key and no dictionary: a key met in fewer than k groups recurs in as many as
    it is met in; only keys met in k or more (a site's chrome) get their sketch's estimate."""
    return _row_recurrences(_numbered_pages(sites, groups), page, hashes, k)


def _row_recurrences(pages: _NumberedPages, page: np.ndarray, hashes: np.ndarray, k: int) -> np.ndarray:
    site_of, group_of = pages.site_of[page], pages.group_of[page]
    keys = hashes.astype(np.uint64, copy=False)
    order = np.lexsort((group_of, keys, site_of))
    o, h, g = site_of[order], keys[order], group_of[order]
    n = len(order)
    new_run = np.ones(n, dtype=bool)  # a new (site, key)...
    new_run[1:] = (o[1:] != o[:-1]) | (h[1:] != h[:-1])
    new_group = new_run.copy()  # ...or a new group within it
    new_group[1:] |= g[1:] != g[:-1]
    run = np.cumsum(new_run) - 1
    distinct = np.bincount(run[new_group], minlength=int(run[-1]) + 1 if n else 0)
    recurrence = distinct[run]
    wide = np.flatnonzero(distinct >= k)  # the sketch's estimate: the k smallest distinct groups
    if wide.size:
        firsts = np.flatnonzero(new_group)
        run_of_first = run[firsts]
        starts = np.searchsorted(run_of_first, wide)
        values = g[firsts].tolist()
        estimates = {int(r): _estimate(tuple(values[a : a + k]), k) for r, a in zip(wide.tolist(), starts.tolist(),
                                                                                 strict=True)}
        big = np.isin(run, wide)
        recurrence[big] = [estimates[r] for r in run[big].tolist()]
    out = np.empty(n, dtype=np.int64)
    out[order] = recurrence
    return out


def _estimate(sketch: tuple[int, ...], k: int) -> int:
    """Distinct count from a KMV sketch: exact below k hashes, (k-1)/(k-th smallest) above."""
    if len(sketch) < k:
        return len(sketch)
    return max(k, round((k - 1) * _HASH_SPACE / (sketch[-1] + 1)))


@dataclass
class _Site:
    groups: tuple[int, ...] = ()
    keys: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # Each key's `_estimate`, worked out once the site has been asked about enough keys (see
    # `recurrences_of_hashes`); dropped whenever `keys` changes.
    estimates: dict[int, int] | None = field(default=None, compare=False, repr=False)
    asked: int = field(default=0, compare=False, repr=False)


class ChromeStats:
    """Per-site recurrence: for each site, the number of distinct groups seen and, per line_key, in
    how many distinct groups it occurs.

    Groups are kept as k-minimum-values sketches of their hashes: exact up to `k` groups, an
    estimate within about 1/sqrt(k) beyond (where only shares of a site's groups matter). So
    adding a page twice, or merging statistics of overlapping nightly runs, never double-counts,
    and `merge` is associative, commutative and idempotent. Memory is bounded by storing 64-bit
    hashes, not text: at most k group hashes per key (one for the usual line seen once), and keys
    of lines longer than `max_key_chars` are not stored (such lines are article prose).
    """

    __slots__ = ("_sites", "k", "max_key_chars")

    def __init__(self, k: int = 32, max_key_chars: int = 4000) -> None:
        self.k = k
        self.max_key_chars = max_key_chars
        self._sites: dict[str, _Site] = {}

    def add_page(self, site: str, group: str | int, keys: Iterable[str]) -> None:
        """Count one page of `site` in copy group `group`, given its paragraphs' line_keys."""
        self.add_hashed_page(site, group, [_hash(key) for key in keys if self.tracks(key)])

    def add_hashed_page(self, site: str, group: str | int, hashes: Iterable[int]) -> None:
        """`add_page` given the XXH64 of the page's keys that `tracks` (the features stage has them)."""
        entry = self._sites.setdefault(site, _Site())
        g = (_hash(f"group:{group}"),)
        entry.groups = _union(entry.groups, g, self.k)
        entry.estimates = None
        store = entry.keys
        for h in set(hashes):
            store[h] = _union(store.get(h, ()), g, self.k)

    def add_hashed_pages(self, sites: Sequence[str], groups: Sequence[str | int], page: np.ndarray,
                         hashes: np.ndarray) -> None:
        """`add_hashed_page` of many pages at once: page p of `sites[p]` in copy group `groups[p]`,
        whose keys' hashes are `hashes[page == p]`. Into empty statistics, each sketch is cut from
        one sort of all (site, key, group) triples instead of a sketch union per key and page."""
        if self._sites:
            order = np.argsort(page, kind="stable")
            cuts = np.searchsorted(page[order], np.arange(len(sites) + 1)).tolist()
            by_page = hashes[order].tolist()
            for p, (site, group) in enumerate(zip(sites, groups, strict=True)):
                self.add_hashed_page(site, group, by_page[cuts[p] : cuts[p + 1]])
            return
        self._add_numbered(_numbered_pages(sites, groups), page, hashes)

    def _add_numbered(self, pages: _NumberedPages, page: np.ndarray, hashes: np.ndarray) -> None:
        """`add_hashed_pages` into empty statistics, the pages numbered already."""
        entries = [_Site() for _ in pages.names]
        for number, sketch in _site_sketches(pages, self.k):
            entries[number].groups = sketch
        for number, key, sketch in _smallest_per_run(pages.site_of[page], hashes.astype(np.uint64),
                                                     pages.group_of[page], self.k):
            entries[number].keys[key] = sketch
        self._sites.update(zip(pages.names, entries, strict=True))

    def tracks(self, key: str) -> bool:
        """Whether recurrence of `key` is counted: empty keys and keys of long lines are not."""
        return self.tracks_length(len(key))

    def tracks_length(self, chars: int) -> bool:
        """`tracks` of a key `chars` characters long."""
        return 0 < chars <= self.max_key_chars

    def tracked_lengths(self, chars: np.ndarray) -> np.ndarray:
        """`tracks_length` of each of many key lengths, as a mask."""
        return (chars > 0) & (chars <= self.max_key_chars)

    def narrowed(self, keys: Mapping[str, Iterable[int]]) -> ChromeStats:
        """Statistics that answer as these do about the given sites and their given line key
        hashes (a scan's own), held in memory. These are: itself. An index's statistics, loaded
        lazily, fetch just those rows, in one batched query (`index_base._LazyChrome`)."""
        return self

    def merge(self, other: ChromeStats) -> ChromeStats:
        """A new ChromeStats holding both; associative, commutative and idempotent."""
        if (self.k, self.max_key_chars) != (other.k, other.max_key_chars):
            raise ValueError("cannot merge ChromeStats built with different k or max_key_chars")
        out = ChromeStats(self.k, self.max_key_chars)
        for src in (self, other):
            for site, entry in src._sites.items():
                dst = out._sites.setdefault(site, _Site())
                dst.groups = _union(dst.groups, entry.groups, self.k)
                for h, sketch in entry.keys.items():
                    dst.keys[h] = _union(dst.keys.get(h, ()), sketch, self.k)
        return out

    def sites(self) -> list[str]:
        """The sites seen, sorted."""
        return sorted(self._sites)

    def site_groups(self, site: str) -> int:
        """Distinct groups seen for `site` (0 for an unknown site)."""
        entry = self._sites.get(site)
        return _estimate(entry.groups, self.k) if entry else 0

    def recurrence(self, site: str, key: str) -> int:
        """Distinct groups of `site` with a paragraph whose line_key is `key`."""
        return self.recurrence_of_hash(site, _hash(key)) if self.tracks(key) else 0

    def recurrence_of_hash(self, site: str, key_hash: int) -> int:
        """`recurrence` of a counted key given its XXH64."""
        entry = self._sites.get(site)
        return _estimate(entry.keys.get(key_hash, ()), self.k) if entry is not None else 0

    def recurrences_of_hashes(self, site: str, key_hashes: Sequence[int]) -> list[int]:
        """`recurrence_of_hash` of many counted keys of one site (one dictionary lookup each).

        Once the keys asked about add up to an eighth of the site's keys (a scan asks about every
        key it counted, page by page), every key's estimate is worked out in one pass and later
        questions are plain lookups: about a fifth of the time per key. Statistics of a large
        archive, asked about a few new pages, are never expanded."""
        entry = self._sites.get(site)
        if entry is None:
            return [0] * len(key_hashes)
        k = self.k
        if entry.estimates is None:
            entry.asked += len(key_hashes)
            if entry.asked * 8 < len(entry.keys):
                return [_estimate(s, k) for s in map(entry.keys.get, key_hashes, repeat(()))]
            entry.estimates = {h: _estimate(s, k) for h, s in entry.keys.items()}
        return list(map(entry.estimates.get, key_hashes, repeat(0)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form; hashes as hex strings, sorted, so equal stats give equal dicts."""
        return {
            "version": _STATS_VERSION,
            "k": self.k,
            "max_key_chars": self.max_key_chars,
            "sites": {
                site: {
                    "groups": [f"{h:016x}" for h in e.groups],
                    "keys": {f"{h:016x}": [f"{g:016x}" for g in s] for h, s in sorted(e.keys.items())},
                }
                for site, e in sorted(self._sites.items())
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChromeStats:
        """Inverse of `to_dict`."""
        if d.get("version") != _STATS_VERSION:
            raise ValueError(f"unsupported ChromeStats version {d.get('version')!r}")
        out = cls(int(d["k"]), int(d["max_key_chars"]))
        for site, e in d["sites"].items():
            entry = out._sites.setdefault(site, _Site())
            entry.groups = tuple(sorted(int(h, 16) for h in e["groups"]))[: out.k]
            entry.keys = {int(h, 16): tuple(sorted(int(g, 16) for g in s))[: out.k] for h, s in e["keys"].items()}
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChromeStats) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class DeferredChrome(ChromeStats):
    """Statistics worked out whole only when a question needs all of them (`_load`, once): a
    subclass answers what it can sooner (`narrowed`, prefetched lines), and every other
    ChromeStats method, reading `_sites`, gets the whole statistics there."""

    def __init__(self, k: int, max_key_chars: int) -> None:
        self._full: ChromeStats | None = None
        super().__init__(k, max_key_chars)

    def _load(self) -> ChromeStats:
        raise NotImplementedError

    def _everything(self) -> ChromeStats:
        if self._full is None:
            self._full = self._load()
        return self._full

    @property  # type: ignore[override]
    def _sites(self) -> Any:
        return self._everything()._sites

    @_sites.setter
    def _sites(self, value: Any) -> None:  # ChromeStats.__init__ assigns an empty dict
        pass


class MergedChrome(DeferredChrome):
    """Two statistics as their merge, where each may be an index's, loaded lazily: `narrowed`
    narrows each on its own (one batched query per index) and merges the two; any other question
    merges them whole first, so the object always answers as `first.merge(second)` would."""

    def __init__(self, first: ChromeStats, second: ChromeStats) -> None:
        self._parts = (first, second)
        super().__init__(first.k, first.max_key_chars)

    def narrowed(self, keys: Mapping[str, Iterable[int]]) -> ChromeStats:
        first, second = self._parts
        return first.narrowed(keys).merge(second.narrowed(keys))

    def _load(self) -> ChromeStats:
        return self._parts[0].merge(self._parts[1])


class PagesChrome(DeferredChrome):
    """The statistics of some pages, as `add_hashed_pages` would make them into empty statistics,
    built only when a question needs them whole (an index storing them, a merge). Until then
    `site_groups` is answered from the pages' groups alone. A scan with no index asks only that,
    having every paragraph's recurrence from `page_recurrences`, so it never builds a sketch per
    key (at 100k synthetic documents, about 700k of them)."""

    def __init__(self, sites: Sequence[str], groups: Sequence[str | int], page: np.ndarray, hashes: np.ndarray,
                 k: int = 32, max_key_chars: int = 4000) -> None:
        super().__init__(k, max_key_chars)
        self._numbered = _numbered_pages(sites, groups)
        self._keys: tuple[np.ndarray, np.ndarray] | None = (page, hashes)
        names = self._numbered.names
        self._site_groups = {names[number]: _estimate(sketch, k)
                             for number, sketch in _site_sketches(self._numbered, k)}

    def recurrences(self) -> np.ndarray:
        """`page_recurrences` of these pages' keys (asked before the statistics are built whole)."""
        assert self._keys is not None, "asked before the statistics are built"
        return _row_recurrences(self._numbered, *self._keys, self.k)

    def site_groups(self, site: str) -> int:
        if self._full is not None:
            return self._full.site_groups(site)
        return self._site_groups.get(site, 0)

    def _load(self) -> ChromeStats:
        assert self._keys is not None, "the statistics are built once"
        stats = ChromeStats(self.k, self.max_key_chars)
        stats._add_numbered(self._numbered, *self._keys)
        self._keys = None
        return stats


def learn_chrome(pages: Iterable[tuple[str, str | int, Sequence[str]]]) -> ChromeStats:
    """Recurrence statistics from (site, group, paragraph texts) triples."""
    stats = ChromeStats()
    for site, group, paragraphs in pages:
        stats.add_page(site, group, (line_key(p) for p in paragraphs))
    return stats


# --- page cues -----------------------------------------------------------------------------------

# "* Item", "+ Item", "- Item", "1. Item": flattened <li>, the shape of menus and link lists.
_LIST_ITEM = re.compile(r"^\s*(?:[*+•·\-–—>]|\d{1,2}[.)])\s+")
_CLOSERS = " \t\"'”’)]"  # may follow a sentence's final stop

# The patterns below run on the lower-cased line; plain alternations without IGNORECASE keep
# them cheap, as they run on every short line of every page.

# Whole lines that open a comments or related-content section after an article.
_SECTION_END = re.compile(
    r"^\W*(?:\d+\s+)?(?:comments?|responses?|replies|discussion|reader comments|"
    r"leave a (?:comment|reply)|post a comment|add (?:a|your) comment|"
    r"(?:\d+\s+)?(?:comments?|responses?|thoughts?|replies) (?:on|to)\b.*|"
    r"join the (?:discussion|conversation)|what do you think|"
    r"related(?: articles?| stories| posts| content| links| coverage| reading)?|"
    r"more (?:from|on|stories|articles|news)\b.*|you (?:may|might) also like|"
    r"recommended(?: for you| stories| articles)?|most (?:popular|read|viewed|shared)|"
    r"trending(?: now)?|popular (?:posts|stories|articles)|also on\b.*|"
    r"hashtags|tags|share this(?: article| story| post)?)\W*(?:\(\d+\))?\W*$"
)

# Phrases that make a line chrome unless it is long prose: prompts, legal lines, widgets.
_BOILERPLATE = re.compile(
    r"©|\b(?:all rights reserved|copyright|privacy policy|terms of (?:use|service)|sign up|subscribe|"
    r"newsletter|log ?in|sign in|follow us|share (?:this|on)|click here|cookies?|javascript|"
    r"no comments yet|powered by|skip to|permalink|read more|our ai|can do for you)\b"
)

# A comment's header: who ("Posted by: Dave", "Carl said...") and when ("November 7, 2012 at
# 3:04 am", "3 hours ago"), or its action links ("Reply").
_COMMENT_WHO = re.compile(
    r"\b(?:says|said|wrote)\s*(?::|\.{2,}|…)?\s*$|^(?:reply|report(?: abuse)?|flag|quote)\b|\bposted by\b"
)
_COMMENT_WHEN = re.compile(
    r"\b\d{1,2}:\d{2}\s*[ap]\.?m\b|"
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}|"
    r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|"
    r"\b\d+\s+(?:seconds?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\s+ago\b"
)
_DIGIT = re.compile(r"\d")
_MAX_META_CHARS = 100


def _is_comment_meta(lower: str) -> bool:
    return bool(_COMMENT_WHO.search(lower) or (_DIGIT.search(lower) and _COMMENT_WHEN.search(lower)))


KeyCue = tuple[int, int, int, int]
"""What chrome needs of a paragraph's line key, worked out by the features stage: its words, stop
words, XXH64 and length in characters (`kernels_lines.LineKeys`)."""

# What a line's text says, as bits of one small int (`text_flags`), so the features stage can work
# them out where the text is and classification needs no text.
SENTENCE, LIST_ITEM, BOILERPLATE, SECTION_END, COMMENT_META = 1, 2, 4, 8, 16
NOT_HEADING = LIST_ITEM | BOILERPLATE | SECTION_END  # a line with one of these heads no text


def text_flags(stripped: str, settings: ChromeSettings | None = None) -> int:
    """The text cues of one stripped paragraph as `SENTENCE | LIST_ITEM | ...` bits. The phrase
    searches run on short lines only (below `length_high`, the only ones they can affect), which
    keeps the cost per page low for long articles."""
    s = settings or _DEFAULT_SETTINGS
    sentence = stripped.rstrip(_CLOSERS).endswith((".", "!", "?"))
    short = len(stripped) < s.length_high
    meta = len(stripped) <= _MAX_META_CHARS and not sentence
    flags = SENTENCE if sentence else 0
    if _LIST_ITEM.match(stripped):
        flags |= LIST_ITEM
    if short or meta:
        lower = stripped.lower()
        if short and _BOILERPLATE.search(lower):
            flags |= BOILERPLATE
        if short and _SECTION_END.match(lower):
            flags |= SECTION_END
        # Short and not a sentence: prose that merely mentions a date is no comment header.
        if meta and _is_comment_meta(lower):
            flags |= COMMENT_META
    return flags


def text_flags_of(texts: Sequence[str]) -> list[int]:
    """`text_flags` of every stripped paragraph, with the default settings (the features stage's).

    A dump repeats its chrome on page after page: of the dev set's 145k lines, 47k are distinct,
    and of the syndication set's 196k, 49k. So the flags of lines that can recur as chrome (those
    below `length_high`; the phrase searches run on them alone) are remembered in each process,
    from batch to batch (`features.analyse` already takes each distinct text of a batch once), and
    worked out once per distinct line. Bounded: past `_FLAGS_LIMIT` lines it starts afresh."""
    if len(_FLAGS) > _FLAGS_LIMIT:
        _FLAGS.clear()
    remembered, high = _FLAGS.get, _DEFAULT_SETTINGS.length_high
    out = []
    for text in texts:
        if len(text) >= high:  # long lines are not remembered: seldom repeated, and costly to hash
            out.append(text_flags(text))
            continue
        flags = remembered(text)
        if flags is None:
            flags = _FLAGS[text] = text_flags(text)
        out.append(flags)
    return out


_FLAGS: dict[str, int] = {}  # short line -> its text_flags with the default settings
_FLAGS_LIMIT = 1 << 16


class _Line(NamedTuple):
    """A paragraph's cues, computed once (a tuple: cheap to build for every line of every page)."""

    key: str
    words: int
    chars: int
    stop_density: float
    list_item: bool
    sentence: bool
    boilerplate: bool
    section_end: bool
    comment_meta: bool


def _line(text: str, s: ChromeSettings, key: str | None = None, cue: KeyCue | None = None) -> _Line:
    """Cues of one paragraph. `cue` is what the features stage worked out of the key (compiled);
    with it, the key itself is not needed."""
    stripped = text.strip()
    if key is None:
        key = "" if cue is not None else line_key(stripped)
    if cue is None:
        tokens = key.split()  # the word tokens, digits masked: stop-word counts are unchanged
        count, stops = len(tokens), sum(map(ENGLISH_STOPWORDS.__contains__, tokens))
    else:
        count, stops = cue[0], cue[1]
    return _line_of(key, count, len(stripped), stops, text_flags(stripped, s))


def _line_of(key: str, words: int, chars: int, stops: int, flags: int) -> _Line:
    return _Line(key=key, words=words, chars=chars, stop_density=stops / words if words else 0.0,
                 list_item=bool(flags & LIST_ITEM), sentence=bool(flags & SENTENCE),
                 boilerplate=bool(flags & BOILERPLATE), section_end=bool(flags & SECTION_END),
                 comment_meta=bool(flags & COMMENT_META))


# --- classification ------------------------------------------------------------------------------


def _context_free(line: _Line, s: ChromeSettings) -> Klass:
    """jusText's context-free class, by boilerplate phrases, length and stop-word density.

    List items are "short" unless they are sentences of prose: a bullet list inside an article
    then joins its text, a menu between other chrome does not."""
    if line.boilerplate and line.chars < s.length_high:
        return "bad"
    if line.list_item and not (line.sentence and line.stop_density >= s.stopwords_low):
        return "short"
    if line.chars < s.length_low:
        return "short"
    if line.stop_density >= s.stopwords_high:
        return "good" if line.chars > s.length_high else "neargood"
    if line.stop_density >= s.stopwords_low:
        return "neargood"
    return "bad"


def _with_recurrence(cf: Klass, rec: int, template: int, s: ChromeSettings) -> Klass:
    """Fold a line's recurrence into its page class: template lines are bad; a line on a few
    groups is demoted one step (prose to short, short to bad), so it is kept only between good
    text, as an article's own lead is and a teaser in a sidebar is not."""
    if rec >= template:
        return "bad"
    if rec >= s.min_recurrence:
        return "short" if cf in ("good", "neargood") else "bad"
    return cf


def _neighbours(classes: Sequence[Klass], skip: tuple[Klass, ...]) -> tuple[list[Klass], list[Klass]]:
    """For every line, the class of the nearest line before and after it whose class is not in
    `skip`; page edges count as bad. Linear time, however long the runs of skipped lines."""
    before: list[Klass] = []
    last: Klass = "bad"
    for c in classes:
        before.append(last)
        if c not in skip:
            last = c
    after: list[Klass] = []
    last = "bad"
    for c in reversed(classes):
        after.append(last)
        if c not in skip:
            last = c
    after.reverse()
    return before, after


def _good_follows(classes: Sequence[Klass], lines: Sequence[_Line], i: int, limit: int) -> bool:
    """True when a good line starts within `limit` characters after line i."""
    distance = 0
    for j in range(i + 1, len(classes)):
        if classes[j] == "good":
            return True
        distance += lines[j].chars
        if distance > limit:
            return False
    return False


def _is_heading(line: _Line) -> bool:
    """A line that may head text: neither a list item, a prompt nor a section marker."""
    return not (line.list_item or line.boilerplate or line.section_end)


def _revise(cf: Sequence[Klass], lines: Sequence[_Line], s: ChromeSettings) -> list[Klass]:
    """jusText's context-sensitive pass.

    1. A short heading-like line close above good text becomes near-good (a headline).
    2. A short line between good lines is good, between bad lines bad; between good and bad it is
       good only next to near-good text.
    3. A near-good line is bad only between bad lines.
    """
    classes = list(cf)
    for i, line in enumerate(lines):
        if classes[i] == "short" and _is_heading(line) and _good_follows(classes, lines, i, s.max_heading_distance):
            classes[i] = "neargood"
    before, after = _neighbours(classes, ("short", "neargood"))
    near_before, near_after = _neighbours(classes, ("short",))
    revised = list(classes)
    for i, c in enumerate(classes):
        if c != "short":
            continue
        between_good = before[i] == after[i] == "good"
        by_near_good = (before[i] == "bad" and near_before[i] == "neargood") or (
            after[i] == "bad" and near_after[i] == "neargood"
        )
        revised[i] = "good" if between_good or by_near_good else "bad"
    before, after = _neighbours(revised, ("short", "neargood"))
    return [
        ("bad" if before[i] == after[i] == "bad" else "good") if c == "neargood" else c for i, c in enumerate(revised)
    ]


def _good_chars(classes: Sequence[Klass], lines: Sequence[_Line]) -> int:
    return sum(ln.chars for c, ln in zip(classes, lines, strict=True) if c == "good")


def _promote(c: Klass, line: _Line) -> Klass:
    """Relaxed class for a page without running text (a brief, a photo post): near-good lines and
    short sentences stand in for the article, rather than the page losing everything."""
    if c == "neargood":
        return "good"
    if c == "short" and line.sentence and not line.list_item and line.words >= 5:
        return "neargood"
    return c


def _unique(c: Klass, line: _Line, rec: int, s: ChromeSettings) -> Klass:
    """Last resort on a site with recurrence evidence for a page still without running text: what
    the page does not share with its site is its own text, unless it is a link list or a prompt."""
    if rec < s.min_recurrence and not line.list_item and not line.boilerplate:
        return "good"
    return c


def _reprinted(free: Sequence[Klass], lines: Sequence[_Line], recs: Sequence[int], template: int,
               s: ChromeSettings) -> set[int]:
    """Lines of a story the site printed on more than one page, to be judged on their own cues.

    Recurrence demotes prose seen on a few of the site's groups (a lead shown as a teaser on other
    pages). On a page whose prose all recurs, a run of such lines holding `min_article_chars` is
    no teaser but the page's article printed again (re-issued under a new address, or in another
    template, so the pages fall in different groups): stripping it as chrome would strip it from
    every copy, where the copy stages keep one.
    """
    out: set[int] = set()
    if any(c in ("good", "neargood") and rec < s.min_recurrence for c, rec in zip(free, recs, strict=True)):
        return out  # the page has prose of its own: recurring prose on it is a teaser or a blurb
    run: list[int] = []
    for i in range(len(lines) + 1):
        if i < len(lines) and free[i] in ("good", "neargood") and s.min_recurrence <= recs[i] < template:
            run.append(i)
            continue
        if run and sum(lines[j].chars for j in run) >= s.min_article_chars:
            out.update(run)
        run = []
    return out


def _classes(
    lines: Sequence[_Line], recs: Sequence[int], template: int, evidence: bool, s: ChromeSettings
) -> tuple[list[Klass], Sequence[int]]:
    """Final good/bad class of every line, relaxing the cues for pages without running text; and
    the recurrence each line is judged by (none for the lines of a story printed again)."""
    free = [_context_free(ln, s) for ln in lines]
    cf = [_with_recurrence(c, rec, template, s) for c, rec in zip(free, recs, strict=True)]
    reprinted = _reprinted(free, lines, recs, template, s)
    if reprinted:
        recs = [0 if i in reprinted else rec for i, rec in enumerate(recs)]
        cf = [free[i] if i in reprinted else c for i, c in enumerate(cf)]
    classes = _revise(cf, lines, s)
    if _good_chars(classes, lines) < s.min_article_chars:
        cf = [_promote(c, ln) if rec < s.min_recurrence else c for c, ln, rec in zip(cf, lines, recs, strict=True)]
        classes = _revise(cf, lines, s)
    if _good_chars(classes, lines) < s.min_article_chars and evidence:
        cf = [_unique(c, ln, rec, s) for c, ln, rec in zip(cf, lines, recs, strict=True)]
        classes = _revise(cf, lines, s)
    return classes, recs


# --- article bounds ------------------------------------------------------------------------------


def _next_runs(classes: Sequence[Klass], lines: Sequence[_Line]) -> list[int]:
    """For every index i, the characters of the first run of good lines starting at or after i."""
    out = [0] * (len(lines) + 1)
    run = 0
    for i in range(len(lines) - 1, -1, -1):
        if classes[i] == "good":
            run = lines[i].chars + (run if i + 1 < len(lines) and classes[i + 1] == "good" else 0)
            out[i] = run
        else:
            out[i] = out[i + 1]
    return out


def _article_end(classes: Sequence[Klass], lines: Sequence[_Line], s: ChromeSettings) -> int:
    """Index of the line where comments or related content take over from the article (len if none).

    Only a point after `min_article_chars` of good text can end the article, so a "12 comments"
    link or a "5 hours ago" teaser list above the headline does not. There, a comments/"Related"
    marker ends it when comment headers (name and date, "said...", "Reply") follow, or when the
    text after it is smaller than the good text before (a comment after its post, teasers after
    a story); a thread of comment headers ends it even without a marker. An article that merely
    continues after an inline "Comments" widget is larger than what preceded it and has no comment
    headers, so it goes on.
    """
    next_run = _next_runs(classes, lines)
    meta = [0]
    for ln in lines:
        meta.append(meta[-1] + ln.comment_meta)
    good = 0
    for i, line in enumerate(lines):
        if good >= s.min_article_chars and (line.section_end or line.comment_meta):
            headers = meta[min(len(lines), i + 1 + s.comment_window)] - meta[i + 1]
            smaller = next_run[i + 1] < good
            if (line.section_end and (smaller or headers >= 2)) or (smaller and headers >= 2):
                return i
        if classes[i] == "good":
            good += line.chars
    return len(lines)


def _headers(
    classes: Sequence[Klass], lines: Sequence[_Line], template: Sequence[bool], end: int, s: ChromeSettings
) -> set[int]:
    """Lines kept as the header of a run of good text (headline, byline, date).

    From the run's first line, walk up at most `header_lines` lines and keep short heading-like
    lines until anything else; template lines (share bars, "Print") are stepped over, since sites
    put them between a headline and its text. Such lines are often short, dates recur up to digits
    and headlines recur in other pages' teaser lists, so neither cue alone keeps them."""
    out: set[int] = set()
    for i in range(end):
        if classes[i] != "good" or (i and classes[i - 1] == "good"):
            continue
        for j in range(i - 1, max(-1, i - 1 - s.header_lines), -1):
            if template[j]:
                continue
            if classes[j] == "good" or lines[j].chars > s.max_header_chars or not _is_heading(lines[j]):
                break
            out.add(j)
    return out


# --- verdicts ------------------------------------------------------------------------------------


def classify_page(
    paragraphs: Sequence[str],
    site: str,
    stats: ChromeStats,
    settings: ChromeSettings = ChromeSettings(),
    keys: Sequence[str] | None = None,
    cues: Sequence[KeyCue] | None = None,
) -> list[ChromeVerdict]:
    """One verdict per paragraph of a page of `site`, in order. Linear in the page's length.

    `keys` are the paragraphs' `line_key`s when the caller already has them; `cues` stand in for
    them: what the features stage worked out of each key (`KeyCue`, `kernels_lines.line_keys_with_cues`)."""
    s = settings
    if cues is not None:
        lines = [_line(p, s, None, c) for p, c in zip(paragraphs, cues, strict=True)]
    elif keys is None:
        lines = [_line(p, s) for p in paragraphs]
    else:
        lines = [_line(p, s, k) for p, k in zip(paragraphs, keys, strict=True)]
    if cues is None:
        counts = [stats.recurrence(site, ln.key) for ln in lines]
    else:
        counts = [stats.recurrence_of_hash(site, c[2]) if stats.tracks_length(c[3]) else 0 for c in cues]
    groups = stats.site_groups(site)
    codes = page_codes(lines, counts, groups, s)
    return [ChromeVerdict(code >= CHROME_RECURRING, verdict_reason(code, rec, groups, site), rec)
            for code, rec in zip(codes, counts, strict=True)]


# Verdict codes: content below CHROME_RECURRING, chrome from it on (`verdict_reason` words them).
CONTENT_HEADER, CONTENT_RUNNING, CONTENT_RECURRING = 0, 1, 2
CHROME_RECURRING, CHROME_AFTER_ARTICLE, CHROME_BOILERPLATE, CHROME_LIST_ITEM, CHROME_SHORT = 3, 4, 5, 6, 7


def page_template(groups: int, settings: ChromeSettings) -> int:
    """Recurrence at or above which a line of a site with `groups` groups is template."""
    return max(settings.min_recurrence, math.ceil(settings.template_share * groups))


def page_codes(lines: Sequence[_Line], counts: Sequence[int], groups: int, s: ChromeSettings) -> list[int]:
    """The verdict code of every line of a page of a site with `groups` groups, given each line's
    recurrence `counts` (`chrome_compiled` does the same for many pages at once, compiled)."""
    evidence = groups >= s.min_site_groups
    seen = list(counts) if evidence else [0] * len(lines)  # a site seen once can't show recurrence
    template = page_template(groups, s)
    classes, recs = _classes(lines, seen, template, evidence, s)
    end = _article_end(classes, lines, s)
    headers = _headers(classes, lines, [rec >= template for rec in recs], end, s)
    out = []
    for i, (ln, rec, c) in enumerate(zip(lines, recs, classes, strict=True)):
        if i in headers:
            out.append(CONTENT_HEADER)
        elif evidence and (rec >= template or (rec >= s.min_recurrence and c != "good")):
            out.append(CHROME_RECURRING)
        elif i >= end:
            out.append(CHROME_AFTER_ARTICLE)
        elif c == "good":
            out.append(CONTENT_RECURRING if rec >= s.min_recurrence else CONTENT_RUNNING)
        elif ln.boilerplate:
            out.append(CHROME_BOILERPLATE)
        elif ln.list_item:
            out.append(CHROME_LIST_ITEM)
        else:
            out.append(CHROME_SHORT)
    if not evidence and all(code >= CHROME_RECURRING for code in out):
        # No article and no other page of the site: "short line outside the article text" has
        # nothing to be outside of, and nothing says the line is template, so the page keeps it.
        out = [CONTENT_RUNNING if code == CHROME_SHORT else code for code in out]
    return out


def verdict_reason(code: int, rec: int, groups: int, site: str) -> str:
    """Why a line got its verdict code, in words (`rec`: its recurrence on the site's `groups`)."""
    if code in (CHROME_RECURRING, CONTENT_RECURRING):
        recurring = f"recurs on {rec} of {groups} pages of {site or 'the site'}"
        return recurring if code == CHROME_RECURRING else f"content: {recurring}, but inside running text"
    return _REASONS[code]


_REASONS = {
    CONTENT_HEADER: "content: headline, byline or date above the text",
    CONTENT_RUNNING: "content: running text",
    CHROME_AFTER_ARTICLE: "after the article: comments or related content",
    CHROME_BOILERPLATE: "boilerplate phrase outside the article text",
    CHROME_LIST_ITEM: "link-list item outside the article text",
    CHROME_SHORT: "boilerplate: short line outside the article text",
}
