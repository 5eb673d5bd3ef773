"""What a scan needs from an archive of earlier runs, and what it hands back to be archived.

A persistent index (SQLite, PostgreSQL) implements `Archive`; `MemoryArchive` is the reference
implementation, used by tests and by library callers who keep their archive in memory.

Contract:
- `candidates` is one batched lookup per scan: the new documents' LSH band keys, content keys and
  long-paragraph keys in, the archived documents sharing any of them out, with what verification
  needs (signature, content key, distinct shingle count).
- `chrome_stats` returns the per-site chrome statistics learned in earlier runs, merged by the scan
  with this run's, so a site's chrome is known from the first page of a new run.
- `add` archives the documents of a run (rows from `ScanResult.rows_to_archive`: the kept ones, and
  the near copies removed, each marked with the archived document it is a copy of) and the run's
  chrome statistics; an index does this in one transaction after the outputs are in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .chrome import ChromeStats
from .kernels_rows import gather_rows


@dataclass(frozen=True, slots=True)
class ArchiveRows:
    """Per-document data an archive stores, as arrays aligned with the scan's documents.

    `bands` holds each document's LSH band keys (documents x bands); `paragraph_keys` 64-bit keys
    of its long content paragraphs, flattened with `paragraph_offsets`: each one's exact key and its
    sketch keys (`copies.paragraph_keys`), so an edited copy of a paragraph is found too. `page_groups`
    names the page group each document's chrome recurrence was counted in
    (`page_chrome.page_groups`), so a later run's copy of the page is counted in the same one.
    `copy_of` names, for a document archived as a removed copy, the kept document it was removed
    for (None for a kept one; no list at all when none is a copy).
    """

    ids: list[str]
    sites: list[str]
    key_hi: np.ndarray
    key_lo: np.ndarray
    sizes: np.ndarray
    signatures: np.ndarray
    bands: np.ndarray
    paragraph_keys: np.ndarray
    paragraph_offsets: np.ndarray
    page_groups: list[str]
    copy_of: list[str | None] | None = None

    def copies_of(self) -> list[str | None]:
        """`copy_of` for every document (None: kept)."""
        return self.copy_of if self.copy_of is not None else [None] * len(self.ids)

    def take(self, rows: np.ndarray, copy_of: list[str | None] | None = None) -> ArchiveRows:
        """The same data for a subset of documents (e.g. the kept ones), marked with `copy_of` if given."""
        flat, offsets = gather_rows(self.paragraph_keys, self.paragraph_offsets, rows)
        if copy_of is None and self.copy_of is not None:
            copy_of = [self.copy_of[r] for r in rows]
        return ArchiveRows([self.ids[r] for r in rows], [self.sites[r] for r in rows], self.key_hi[rows],
                           self.key_lo[rows], self.sizes[rows], self.signatures[rows], self.bands[rows],
                           flat.astype(np.uint64), offsets, [self.page_groups[r] for r in rows], copy_of)


@dataclass(frozen=True, slots=True)
class ArchivedDocs:
    """Archived documents returned by a lookup: what verification against new documents needs."""

    ids: list[str]
    sites: list[str]
    key_hi: np.ndarray
    key_lo: np.ndarray
    sizes: np.ndarray
    signatures: np.ndarray
    paragraph_keys: np.ndarray
    paragraph_offsets: np.ndarray
    page_groups: list[str]  # (a document archived before page groups were stored: its own id)
    copy_of: list[str | None]  # per document: the kept document a removed copy was archived for, or None
    # Per document: archived by this very run, from an earlier batch (`IndexBase.one_transaction`), so
    # the same id and content again is a duplicate record, not a re-run; None when none is.
    this_run: np.ndarray | None = None

    @classmethod
    def empty(cls, num_perm: int) -> ArchivedDocs:
        return cls([], [], np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64),
                   np.zeros((0, num_perm), np.uint32), np.zeros(0, np.uint64), np.zeros(1, np.int64), [], [])

    @classmethod
    def from_rows(cls, rows: ArchiveRows) -> ArchivedDocs:
        return cls(rows.ids, rows.sites, rows.key_hi, rows.key_lo, rows.sizes, rows.signatures,
                   rows.paragraph_keys, rows.paragraph_offsets, rows.page_groups, rows.copies_of())

    def this_run_mask(self) -> np.ndarray:
        """`this_run` for every document (False where there is none)."""
        return self.this_run if self.this_run is not None else np.zeros(len(self.ids), dtype=bool)

    def take(self, rows: np.ndarray) -> ArchivedDocs:
        """The same data for the documents at positions `rows`, in that order."""
        flat, offsets = gather_rows(self.paragraph_keys, self.paragraph_offsets, rows)
        return ArchivedDocs([self.ids[r] for r in rows], [self.sites[r] for r in rows], self.key_hi[rows],
                            self.key_lo[rows], self.sizes[rows], self.signatures[rows], flat.astype(np.uint64),
                            offsets, [self.page_groups[r] for r in rows], [self.copy_of[r] for r in rows],
                            None if self.this_run is None else self.this_run[rows])

    def then(self, other: ArchivedDocs) -> ArchivedDocs:
        """These documents followed by `other`'s."""
        return ArchivedDocs(self.ids + other.ids, self.sites + other.sites,
                            np.concatenate([self.key_hi, other.key_hi]), np.concatenate([self.key_lo, other.key_lo]),
                            np.concatenate([self.sizes, other.sizes]),
                            np.concatenate([self.signatures, other.signatures]),
                            np.concatenate([self.paragraph_keys, other.paragraph_keys]),
                            np.concatenate([self.paragraph_offsets[:-1],
                                            other.paragraph_offsets + self.paragraph_offsets[-1]]),
                            self.page_groups + other.page_groups, self.copy_of + other.copy_of,
                            None if self.this_run is None and other.this_run is None else
                            np.concatenate([self.this_run_mask(), other.this_run_mask()]))


class Archive(Protocol):
    """Documents and chrome statistics of earlier runs (an index, or `MemoryArchive`).

    `reruns`: whether the archive may hold this run's own documents from an earlier run of the same
    input; an archived document with a new document's id and content is then that document itself,
    not a copy of it. False for an archive of this run's earlier batches (`batches`), where the
    same id and text again is a duplicate record, as in one pass over the dump."""

    reruns: bool

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        """Archived documents sharing a band key, a content key or a long-paragraph key with `rows`."""
        ...

    def chrome_stats(self) -> ChromeStats | None:
        """Chrome statistics learned in earlier runs, or None."""
        ...


@dataclass
class MemoryArchive:
    """An archive held in memory: the reference implementation of `Archive`."""

    rows: list[ArchiveRows] = field(default_factory=list)
    stats: ChromeStats | None = None
    reruns: bool = True

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        num_perm = rows.signatures.shape[1]
        if not self.rows:
            return ArchivedDocs.empty(num_perm)
        ids = [i for r in self.rows for i in r.ids]
        hi = np.concatenate([r.key_hi for r in self.rows])
        lo = np.concatenate([r.key_lo for r in self.rows])
        bands = np.concatenate([r.bands for r in self.rows])
        wanted_bands = [set(rows.bands[:, b].tolist()) for b in range(rows.bands.shape[1])]
        wanted_keys = set(zip(rows.key_hi.tolist(), rows.key_lo.tolist(), strict=True))
        wanted_paragraphs = set(rows.paragraph_keys.tolist())
        hit = np.array([(int(hi[k]), int(lo[k])) in wanted_keys for k in range(len(ids))], dtype=bool)
        for b, wanted in enumerate(wanted_bands):
            hit |= np.isin(bands[:, b], np.fromiter(wanted, dtype=np.uint64, count=len(wanted)))
        base = 0
        for r in self.rows:
            for k in range(len(r.ids)):
                keys = r.paragraph_keys[r.paragraph_offsets[k]:r.paragraph_offsets[k + 1]].tolist()
                if wanted_paragraphs.intersection(keys):
                    hit[base + k] = True
            base += len(r.ids)
        return ArchivedDocs.from_rows(_concat_rows(self.rows).take(np.flatnonzero(hit)))

    def chrome_stats(self) -> ChromeStats | None:
        return self.stats

    def add(self, rows: ArchiveRows, stats: ChromeStats | None) -> None:
        self.rows.append(rows)
        if stats is not None:
            self.stats = stats if self.stats is None else self.stats.merge(stats)


def _concat_rows(parts: list[ArchiveRows]) -> ArchiveRows:
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    for r in parts:
        offsets.append(r.paragraph_offsets[1:] + base)
        base += int(r.paragraph_offsets[-1])
    return ArchiveRows([i for r in parts for i in r.ids], [s for r in parts for s in r.sites],
                       np.concatenate([r.key_hi for r in parts]), np.concatenate([r.key_lo for r in parts]),
                       np.concatenate([r.sizes for r in parts]), np.concatenate([r.signatures for r in parts]),
                       np.concatenate([r.bands for r in parts]),
                       np.concatenate([r.paragraph_keys for r in parts]), np.concatenate(offsets),
                       [g for r in parts for g in r.page_groups], [c for r in parts for c in r.copies_of()])
