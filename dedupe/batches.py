"""Dumps larger than memory: read, scan and archive a fixed number of documents at a time.

`scan` holds a run's documents and their per-paragraph features (about 21 KB per document of
news-length text at its peak), so its memory grows with the dump. `scan_in_batches` reads `size`
documents at a time and scans each batch against the batches before it, archived in a temporary
index on disk (`earlier_batches`), as a nightly run is checked against its `--index`. Memory is
then bounded by the batch; the temporary index takes about 1.8 KB of disk per document.

What differs from one pass over the whole dump (README, "Dumps larger than memory"):
- a copy in a later batch is found through the index's keys (document bands, content keys and
  the paragraphs' exact and sketch keys), not by comparing every paragraph;
- a document kept by an earlier batch stays kept (archived documents rank first), whatever `keep`;
- a site's chrome is learned from the pages read so far (each batch adds its statistics);
- a later copy of an earlier batch's document makes a cluster of its own, holding that document
  marked `archived`, as a nightly run's report does.
Cluster ids run on from batch to batch (`renumbered`), so each names one cluster in the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .archive import ArchivedDocs, ArchiveRows
from .chrome import ChromeStats
from .index import IndexBase, open_index
from .model import BadRecord, Document
from .pipeline import scan
from .results import ScanResult
from .settings import Progress, Settings


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of a run in batches: its number (from 0), documents and scan result (with cluster
    ids that run on from the batches before it)."""

    number: int
    documents: list[Document]
    result: ScanResult


class EarlierBatches:
    """The `Archive` a batch is checked against: the documents and chrome statistics of the run's
    earlier batches, in an index of their own. The same id and content again is a duplicate
    record here, as in one pass, not a re-run of the same batch (`Archive.reruns`)."""

    reruns = False

    def __init__(self, index: IndexBase) -> None:
        self.index = index

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        return self.index.candidates(rows)

    def chrome_stats(self) -> ChromeStats | None:
        return self.index.chrome_stats()

    def add(self, result: ScanResult, run_id: str) -> None:
        """Archive what `clean --index` would archive of one batch (kept documents, near copies and
        the batch's chrome statistics), recorded in the index's run log as `run_id`."""
        rows = result.rows_to_archive()
        if rows is not None:
            self.index.add(rows, result.chrome_stats, run_id)


@contextlib.contextmanager
def earlier_batches(settings: Settings, folder: str | Path | None = None) -> Iterator[EarlierBatches]:
    """A temporary SQLite index in a new folder under `folder` (default: the system's temporary
    folder, `TMPDIR`), removed with everything in it when the block ends."""
    with tempfile.TemporaryDirectory(prefix="dedupe-batches-", dir=folder) as tmp, \
            open_index(Path(tmp) / "batches.idx", settings) as index:
        yield EarlierBatches(index)


def scan_in_batches(documents: Iterable[Document], skipped: Callable[[], Sequence[BadRecord]], settings: Settings,
                    size: int, archive: EarlierBatches, progress: Progress | None = None) -> Iterator[Batch]:
    """Scan `documents` `size` at a time, each batch against `archive` (the ones before it).

    `skipped()` gives the records the reader of `documents` has skipped so far (`lambda: reader.bad`
    for a `Reader`): each batch's result holds those skipped while its documents were read. A
    batch is archived when the next one is asked for, after the caller has written its outputs;
    the caller should drop each batch before asking for the next, or two batches are held at once.
    The last batch is not archived (nothing comes after it). An input with no documents gives one
    empty batch (with its bad records), as `scan` of nothing gives an empty result.
    """
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    tick = progress or (lambda stage, done, total: None)
    stream = iter(documents)
    ahead = next(stream, None)  # the next batch's first document; None once the input has ended
    clusters = (0, 0)  # document and paragraph clusters of the batches so far
    seen_bad = read = 0
    for number in itertools.count():
        tick("read", read, read)  # (the documents read so far: how many there will be is not known)
        docs = [] if ahead is None else [ahead, *itertools.islice(stream, size - 1)]
        ahead = next(stream, None)  # read one ahead: the last batch is not archived for nothing
        read += len(docs)
        bad = list(skipped()[seen_bad:])
        seen_bad += len(bad)
        result = renumbered(scan(docs, settings, bad=bad, progress=progress, archive=archive), *clusters)
        clusters = (clusters[0] + len(result.document_clusters), clusters[1] + len(result.paragraph_clusters))
        yield Batch(number, docs, result)
        if ahead is None:  # that was the last batch
            return
        del docs  # not held while the next batch is read and scanned
        tick("archive", number, number + 1)
        archive.add(result, f"batch-{number + 1}")
        del result


def renumbered(result: ScanResult, documents: int, paragraphs: int) -> ScanResult:
    """`result` with its cluster ids moved past `documents` document clusters and `paragraphs`
    paragraph clusters of earlier batches (d1 becomes d{documents + 1}), in the clusters and in the
    outcomes that name them."""
    if not documents and not paragraphs:
        return result
    shift = {"d": documents, "p": paragraphs}

    def moved(cluster: str) -> str:
        return f"{cluster[0]}{int(cluster[1:]) + shift[cluster[0]]}"

    return dataclasses.replace(
        result,
        document_clusters=[dataclasses.replace(c, id=moved(c.id)) for c in result.document_clusters],
        paragraph_clusters=[dataclasses.replace(c, id=moved(c.id)) for c in result.paragraph_clusters],
        outcomes=[o if o.cluster is None else dataclasses.replace(o, cluster=moved(o.cluster))
                  for o in result.outcomes],
    )
