"""Dumps larger than memory: read, scan and archive a fixed number of documents at a time.

`scan` holds a run's documents and their per-paragraph features (about 21 KB per document of
news-length text at its peak), so its memory grows with the dump. `scan_in_batches` reads `size`
documents at a time and scans each batch against the batches before it, archived in a temporary
index on disk (`earlier_batches`), as a nightly run is checked against its `--index`. Memory is
then bounded by the batch; the temporary index takes about 1.8 KB of disk per document. A
nightly run in batches (`clean --in-batches --index`) uses its own index instead (`IndexBatches`):
each batch is checked against the archive and the earlier batches, and added to the index in one
transaction that commits after the outputs are in place; `scan --in-batches --index` reads the
index and keeps the earlier batches in a temporary one beside it (`ArchiveAndEarlierBatches`).

What differs from one pass over the whole dump (README, "Dumps larger than memory"):
- a copy in a later batch is found through the index's keys (document bands, content keys and
  the paragraphs' exact and sketch keys), not by comparing every paragraph;
- a document kept by an earlier batch stays kept (archived documents rank first), whatever `keep`;
- a site's chrome is learned from the pages read so far (each batch adds its statistics);
- a later copy of an earlier batch's document is clustered with that document marked `archived`,
  as a nightly run's report does; that cluster takes the id of the earlier batch's cluster of the
  document, and the report joins the two (`ClusterIds`, `batch_report`); a later cluster meeting
  two earlier ones joins them. Other ids run on from batch to batch.
A record read again in a later batch is removed as one pass removes it, even where its chrome was
stripped differently from the earlier copy's (`RecordsRead`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import xxhash

from .archive import Archive, ArchivedDocs, ArchiveRows
from .chrome import ChromeStats, MergedChrome
from .index import IndexBase, open_index
from .model import BadRecord, Cluster, Document
from .normalize import utf8
from .pipeline import scan
from .results import ScanResult
from .settings import Progress, Settings


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of a run in batches: its number (from 0), documents and scan result (with the run's
    cluster ids, `ClusterIds`), whether it is the last (not archived), and the earlier clusters
    joined so far (`ClusterIds.joined`: each joined id and the id it now goes by)."""

    number: int
    documents: list[Document]
    result: ScanResult
    last: bool = False
    joined: Mapping[str, str] = dataclasses.field(default_factory=dict)


class BatchArchive(Archive, Protocol):
    """The `Archive` a batch is checked against, which then takes the batch in."""

    def add(self, result: ScanResult) -> None:
        """Archive what `clean --index` would archive of one batch: its kept documents, near
        copies and chrome statistics."""
        ...


class EarlierBatches:
    """The documents and chrome statistics of the run's earlier batches, in a temporary index of
    their own. The same id and content again is a duplicate record here, as in one pass, not a
    re-run of the same batch (`Archive.reruns`)."""

    reruns = False

    def __init__(self, index: IndexBase) -> None:
        self.index = index
        self.batches = 0

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        return self.index.candidates(rows)

    def chrome_stats(self) -> ChromeStats | None:
        return self.index.chrome_stats()

    def add(self, result: ScanResult) -> None:
        """Archive one batch, recorded in the index's run log as `batch-N`."""
        self.batches += 1
        rows = result.rows_to_archive()
        if rows is not None:
            self.index.add(rows, result.chrome_stats, f"batch-{self.batches}")


class ArchiveAndEarlierBatches:
    """What `scan --in-batches --index` checks a batch against: an archive read only (the user's
    index) and the run's earlier batches (`EarlierBatches`), as `clean --in-batches --index` sees
    them in its index: an archived document with a new document's id and content is that document
    run again, and one the earlier batches met again (the same id and content in both) is taken
    once, the archive's row, marked as this run's (`ArchivedDocs.this_run`)."""

    reruns = True

    def __init__(self, archive: Archive, batches: EarlierBatches) -> None:
        self.archive, self.batches = archive, batches

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        old, new = self.archive.candidates(rows), self.batches.candidates(rows)
        position = {key: k for k, key in enumerate(_id_and_content(old))}
        met = [position.get(key, -1) for key in _id_and_content(new)]
        this_run = old.this_run_mask().copy()
        this_run[[k for k in met if k >= 0]] = True
        fresh = new.take(np.array([j for j, k in enumerate(met) if k < 0], dtype=np.int64))
        return dataclasses.replace(old, this_run=this_run).then(
            dataclasses.replace(fresh, this_run=np.ones(len(fresh.ids), dtype=bool)))

    def chrome_stats(self) -> ChromeStats | None:
        archived, earlier = self.archive.chrome_stats(), self.batches.chrome_stats()
        if archived is None or earlier is None:
            return archived or earlier
        return MergedChrome(archived, earlier)

    def add(self, result: ScanResult) -> None:
        self.batches.add(result)


def _id_and_content(docs: ArchivedDocs) -> Iterator[tuple[str, int, int]]:
    return zip(docs.ids, docs.key_hi.tolist(), docs.key_lo.tolist(), strict=True)


class IndexBatches:
    """A user's index that a run in batches is checked against and archived into
    (`clean --in-batches --index`): each batch is added inside the index's `one_transaction`, which
    the caller holds open and ends after the outputs are in place, so later batches are checked
    against earlier ones as against the archive, and a stopped run leaves the index as it was. A
    document archived before this run, with a new document's id and content, is that document
    itself (a re-run); one archived by an earlier batch is a duplicate record (`ArchivedDocs.this_run`).

    `check(stage)` is passed to each `IndexBase.add` (a stop request between chunks)."""

    reruns = True

    def __init__(self, index: IndexBase, run_id: str, check: Callable[[str], None] | None = None) -> None:
        if not index.in_transaction:
            raise ValueError("IndexBatches needs the index's one_transaction open")
        self.index, self.run_id, self.check = index, run_id, check

    @property
    def added(self) -> int:
        """Documents the batches so far added to the index."""
        return self.index.added_in_transaction

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        return self.index.candidates(rows)

    def chrome_stats(self) -> ChromeStats | None:
        return self.index.chrome_stats()

    def add(self, result: ScanResult) -> None:
        rows = result.rows_to_archive()
        if rows is not None:
            self.index.add(rows, result.chrome_stats, self.run_id, check=self.check)


@contextlib.contextmanager
def earlier_batches(settings: Settings, folder: str | Path | None = None) -> Iterator[EarlierBatches]:
    """A temporary SQLite index in a new folder under `folder` (default: the system's temporary
    folder, `TMPDIR`), removed with everything in it when the block ends."""
    with tempfile.TemporaryDirectory(prefix="dedupe-batches-", dir=folder) as tmp, \
            open_index(Path(tmp) / "batches.idx", settings) as index:
        yield EarlierBatches(index)


def scan_in_batches(documents: Iterable[Document], skipped: Callable[[], Sequence[BadRecord]], settings: Settings,
                    size: int, archive: BatchArchive, progress: Progress | None = None) -> Iterator[Batch]:
    """Scan `documents` `size` at a time, each batch against `archive`: the batches before it
    (`EarlierBatches`), or an archive with them (`IndexBatches` for `clean --index`,
    `ArchiveAndEarlierBatches` for a read-only `scan --index`).

    `skipped()` gives the records the reader of `documents` has skipped so far (`lambda: reader.bad`
    for a `Reader`): each batch's result holds those skipped while its documents were read. A
    batch is archived when the next one is asked for, after the caller has written its outputs;
    the caller should drop each batch before asking for the next, or two batches are held at once.
    The last batch is not archived (nothing comes after it: into an `IndexBatches`, the caller
    adds it once its outputs are in place). An input with no documents gives one
    empty batch (with its bad records), as `scan` of nothing gives an empty result.
    """
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    tick = progress or (lambda stage, done, total: None)
    stream = iter(documents)
    ahead = next(stream, None)  # the next batch's first document; None once the input has ended
    cluster_ids = ClusterIds()
    records = RecordsRead()
    seen_bad = read = 0
    for number in itertools.count():
        tick("read", read, read)  # (the documents read so far: how many there will be is not known)
        docs = [] if ahead is None else [ahead, *itertools.islice(stream, size - 1)]
        ahead = next(stream, None)  # read one ahead: the last batch is not archived for nothing
        read += len(docs)
        bad = list(skipped()[seen_bad:])
        seen_bad += len(bad)
        result = cluster_ids.assign(scan(docs, settings, bad=bad, progress=progress, archive=archive))
        result = records.settle(docs, result)
        yield Batch(number, docs, result, last=ahead is None, joined=dict(cluster_ids.joined))
        if ahead is None:  # that was the last batch
            return
        del docs  # not held while the next batch is read and scanned
        tick("archive", number, number + 1)
        archive.add(result)
        del result


class RecordsRead:
    """The records (id and text) of a run's earlier batches, by a 128-bit key of each (xxh3):
    16 bytes a kept record, and the document each removed one was removed for.

    One pass removes a record read twice as an exact duplicate. In batches the two copies can be
    stripped of different chrome (their site's chrome learned in between) and then match nothing,
    so the later one would be kept too; `settle` removes it still, as a duplicate of the earlier
    one (or of the document that one was removed for)."""

    def __init__(self) -> None:
        self._kept = np.zeros(0, dtype="V16")  # sorted
        self._removed: dict[bytes, str] = {}

    def settle(self, docs: Sequence[Document], result: ScanResult) -> ScanResult:
        """`result` with every kept record that an earlier batch read already removed instead;
        the batch's records are remembered for the next ones."""
        keys = _keys(utf8(d.id) + b"\0" + utf8(d.text) for d in docs)
        result = self._resolved(docs, keys, result)
        kept = np.array([o.kept for o in result.outcomes], dtype=bool)
        self._kept = np.union1d(self._kept, keys[kept])
        for k in np.flatnonzero(~kept).tolist():
            duplicate_of = result.outcomes[k].duplicate_of
            if duplicate_of is not None:
                self._removed.setdefault(keys[k].tobytes(), duplicate_of)
        return result

    def _resolved(self, docs: Sequence[Document], keys: np.ndarray, result: ScanResult) -> ScanResult:
        if not len(self._kept) and not self._removed:
            return result
        earlier_kept = np.isin(keys, self._kept)
        outcomes, changed = list(result.outcomes), []
        for k, o in enumerate(outcomes):
            kept_for = None if not o.kept else o.id if earlier_kept[k] else self._removed.get(keys[k].tobytes())
            if kept_for is None:
                continue
            there = "" if kept_for == o.id else f", removed there as a duplicate of {kept_for}"
            outcomes[k] = dataclasses.replace(
                o, kept=False, duplicate_of=kept_for, similarity=1.0, through=None,
                reason=f"exact duplicate of {o.id}: the same record, read in an earlier batch{there}")
            changed.append(k)
        if not changed:
            return result
        stripped = [o.stripped for o in (result.outcomes[k] for k in changed)]
        stats = result.stats
        stats = dataclasses.replace(
            stats, removable_documents=stats.removable_documents + len(changed),
            removable_bytes=stats.removable_bytes + sum(len(utf8(docs[k].text)) for k in changed),
            chrome_paragraphs=stats.chrome_paragraphs - sum(len(p) for p in stripped),
            chrome_bytes=stats.chrome_bytes - sum(len(utf8(x.text)) for p in stripped for x in p))
        return dataclasses.replace(result, outcomes=outcomes, stats=stats)


class ClusterIds:
    """Cluster ids for a run in batches. Each batch's clusters are numbered on from the batches
    before it, except a copy cluster (exact or near, document level) that holds a member of an
    earlier batch's copy cluster: a later copy of that cluster's document finds it marked archived
    (the earlier batches are its archive), and takes that cluster's id. The outcomes name the id
    the report shows, and `BatchReport` joins the parts of one id into one cluster, as one pass
    over the whole dump would show it.

    A later cluster that holds members of two or more earlier copy clusters joins them: it takes
    the first one's id, and the others are joined into it (`joined`: each joined id and the id it
    now goes by). Their members are looked up as that id from then on; the records removed in
    their own batches still name their old ids, which the report lists on the joined cluster.

    Held per member of the earlier copy clusters: a 128-bit key of its id (xxh3) and its cluster's
    number, 24 bytes."""

    def __init__(self) -> None:
        self.documents = 0  # document clusters numbered so far
        self.paragraphs = 0
        self.joined: dict[str, str] = {}  # a joined cluster's id -> the id it goes by
        self._keys = np.zeros(0, dtype="V16")  # sorted
        self._numbers = np.zeros(0, dtype=np.int64)

    def assign(self, result: ScanResult) -> ScanResult:
        """`result` with its cluster ids made the run's, in its clusters and in the outcomes that
        name them; its copy clusters' members are remembered for the next batches."""
        numbers = []
        for c in result.document_clusters:
            earlier = self._earlier(c) if c.kind != "story" else []
            if earlier:
                self._join(earlier)
                numbers.append(earlier[0])
            else:
                self.documents += 1
                numbers.append(self.documents)
        ids = {c.id: f"d{n}" for c, n in zip(result.document_clusters, numbers, strict=True)}
        ids.update((c.id, f"p{self.paragraphs + k}") for k, c in enumerate(result.paragraph_clusters, 1))
        self.paragraphs += len(result.paragraph_clusters)
        self._remember([(c, n) for c, n in zip(result.document_clusters, numbers, strict=True) if c.kind != "story"])
        return dataclasses.replace(
            result,
            document_clusters=[dataclasses.replace(c, id=ids[c.id]) for c in result.document_clusters],
            paragraph_clusters=[dataclasses.replace(c, id=ids[c.id]) for c in result.paragraph_clusters],
            outcomes=[o if o.cluster is None else dataclasses.replace(o, cluster=ids[o.cluster])
                      for o in result.outcomes],
        )

    def _earlier(self, cluster: Cluster) -> list[int]:
        """The numbers of the earlier copy clusters holding `cluster`'s archived members, smallest first."""
        archived = [m.id for m in cluster.members if m.archived]
        if not archived or not len(self._keys):
            return []
        keys = _keys(map(utf8, archived))
        at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return np.unique(self._numbers[at[self._keys[at] == keys]]).tolist()

    def _join(self, numbers: list[int]) -> None:
        """Join the clusters `numbers` into the first of them (a rare case: about 1 cluster in
        7,000 at 1M documents in batches of 100k, so a pass over the members each time will do)."""
        into, others = numbers[0], numbers[1:]
        if not others:
            return
        self._numbers[np.isin(self._numbers, others)] = into
        renamed = {f"d{n}" for n in others}
        self.joined = {old: f"d{into}" if new in renamed else new for old, new in self.joined.items()}
        self.joined.update((name, f"d{into}") for name in renamed)

    def _remember(self, clusters: list[tuple[Cluster, int]]) -> None:
        if not clusters:
            return
        keys = _keys(utf8(m.id) for c, _ in clusters for m in c.members)
        numbers = np.repeat([n for _, n in clusters], [c.size for c, _ in clusters]).astype(np.int64)
        # Each id once, with the first number it was met with (earlier batches' before this one's).
        self._keys, first = np.unique(np.concatenate([self._keys, keys]), return_index=True)
        self._numbers = np.concatenate([self._numbers, numbers])[first]


def _keys(items: Iterable[bytes]) -> np.ndarray:
    """A 128-bit key (xxh3) of each byte string, as one array of 16-byte values (sortable, comparable)."""
    return np.frombuffer(b"".join(map(xxhash.xxh3_128_digest, items)), dtype="V16")
