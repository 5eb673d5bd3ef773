"""`dedupe scan|clean --in-batches N`: the commands' runs over a dump N documents at a time.

Kept apart from `cli` so the one-pass commands stay as they are. The batches come from
`batches.scan_in_batches` (each checked against the earlier ones in a temporary index), the
report from `batch_report.BatchReport`. `clean` writes every batch into the same outputs, which
appear, whole, only when the last batch is written and `--max-removed` has passed on the totals.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .batch_report import BatchReport
from .batches import ArchiveAndEarlierBatches, BatchArchive, IndexBatches, earlier_batches, scan_in_batches
from .clean import check_site_removals, output_files, output_records, removed_records, stripped_records
from .cli_index import Run, unattended_run
from .errors import DedupeError
from .model import Document
from .readers import Reader
from .render import render
from .results import ScanResult
from .settings import Settings
from .writers import jsonl_writer, text_folder_writer, write_encoded_parts


def check_options(kw: dict[str, Any], output: str | None = None, max_removed: float | None = None) -> None:
    """Usage errors of --in-batches, before anything is read."""
    if not kw.get("in_batches"):
        return
    if kw.get("engine") == "dask":
        raise click.UsageError("--in-batches applies to the local engine; --engine dask partitions the dump itself")
    if output == "-" and max_removed is not None:
        raise click.UsageError("--max-removed with --in-batches cannot write to standard output (-): what is "
                               "written there cannot be taken back if the totals are refused")


def _totals(report: BatchReport) -> tuple[int, int, int]:
    """Documents, kept documents and bad records of the whole run, for its log."""
    stats = report.stats or {"documents": 0, "removable_documents": 0}
    return stats["documents"], stats["documents"] - stats["removable_documents"], len(report.bad)


def _batches_extra(run: Run, kw: dict[str, Any], batches: int) -> dict[str, Any]:
    return {**run.report_extra(None), "batches": {"size": kw["in_batches"], "count": batches}}


def scan_command(kw: dict[str, Any], json_path: str | None, top: int, quiet: bool, index_path: str | None,
                 log_format: str | None) -> None:
    """`dedupe scan --in-batches N`: with `index_path`, each batch is checked against that index
    (read only) and the earlier batches (in a temporary index), as `clean --in-batches --index`
    checks it."""
    from .cli import _progress, _read_options, _settings

    settings = _settings(kw)
    with unattended_run("scan", index_path, settings, log_format=log_format, quiet=quiet, writer=False) as run, \
            BatchReport() as report:
        with _progress(not quiet) as tick, earlier_batches(settings) as earlier:
            archive = earlier if run.index is None else ArchiveAndEarlierBatches(run.index, earlier)
            reader = Reader(kw["inputs"], _read_options(kw))
            batches = scan_in_batches(reader, lambda: reader.bad, settings, kw["in_batches"], archive, run.watch(tick))
            for batch in batches:
                run.timer.enter("report")
                report.add(batch.result, batch.joined)
                del batch  # not held while the next batch is scanned
        run.totals = _totals(report)
        extra = _batches_extra(run, kw, report.batches)
        if json_path:
            write_encoded_parts(json_path, report.parts(extra))
        if not quiet and json_path != "-":
            render(report.shown(extra, top), Console(), top=top)


class _Outputs:
    """`clean`'s outputs, open for the whole run: each batch's records are added to them, and they
    appear when the block that opened them ends without an error."""

    def __init__(self, stack: contextlib.ExitStack, run: Run, output: str, removed: str | None,
                 stripped: str | None, folder: bool) -> None:
        self.run, self.folder = run, folder
        self.main: Callable[[Iterable[Any]], int]
        if folder:
            self.main = stack.enter_context(text_folder_writer(Path(output)))
        else:
            self.main = stack.enter_context(jsonl_writer(output))
        self.removed = stack.enter_context(jsonl_writer(removed)) if removed else None
        self.stripped = stack.enter_context(jsonl_writer(stripped)) if stripped else None

    def write(self, docs: list[Document], result: ScanResult, text_field: str, annotate: bool) -> None:
        if self.folder and not annotate:
            self.main(self.run.watch_records(output_files(docs, result)))
        else:
            self.main(self.run.watch_records(output_records(docs, result, text_field, annotate=annotate)))
        if self.removed:
            self.removed(removed_records(docs, result))
        if self.stripped:
            self.stripped(stripped_records(result))


@contextlib.contextmanager
def _batch_archive(run: Run, settings: Settings) -> Iterator[BatchArchive]:
    """What each batch is checked against and archived into: the run's index, in one transaction
    that commits when the block ends (`--index`), else a temporary index of the earlier batches."""
    if run.index is None:
        with earlier_batches(settings) as archive:
            yield archive
        return
    with run.index.one_transaction():
        yield IndexBatches(run.index, run.run_id, lambda stage: run.check())
    run.committed()


def clean_command(kw: dict[str, Any], output: str, removed: str | None, stripped: str | None, annotate: bool,
                  max_removed: float | None, json_path: str | None, top: int, quiet: bool, index_path: str | None,
                  log_format: str | None, wait: float, folder_output: Callable[[list[Document]], bool]) -> None:
    """`dedupe clean --in-batches N`. `folder_output` tells from the first batch's documents whether
    the output is a text folder (as `clean` tells from all of them). With `index_path`, the index
    is updated after the outputs are in place, as by one pass."""
    from .cli import _progress, _read_options, _settings

    settings = _settings(kw)
    with unattended_run("clean", index_path, settings, log_format=log_format, quiet=quiet, writer=True,
                        wait=wait) as run, BatchReport() as report:
        with _progress(not quiet) as tick, _batch_archive(run, settings) as archive:
            with contextlib.ExitStack() as stack:
                reader = Reader(kw["inputs"], _read_options(kw))
                outputs: _Outputs | None = None
                last: ScanResult | None = None  # the last batch's result, archived after the outputs appear
                batches = scan_in_batches(reader, lambda: reader.bad, settings, kw["in_batches"], archive,
                                          run.watch(tick))
                for batch in batches:
                    if outputs is None:
                        folder = folder_output(batch.documents)
                        outputs = _Outputs(stack, run, output, removed, stripped, folder)
                    elif outputs.folder and not folder_output(batch.documents):
                        raise DedupeError("--in-batches: the inputs mix text files and JSONL records, so the output "
                                          "cannot be a text folder; name a .jsonl output")
                    run.timer.enter("write")
                    outputs.write(batch.documents, batch.result, kw["text_field"], annotate)
                    report.add(batch.result, batch.joined)
                    if batch.last:
                        last = batch.result
                    del batch  # not held while the next batch is scanned
                if outputs is None:  # no documents: empty outputs, as one pass writes them
                    outputs = _Outputs(stack, run, output, removed, stripped, folder_output([]))
                run.totals = _totals(report)  # (a refused run is recorded with them)
                if max_removed is not None and not annotate:
                    check_site_removals(report.sites, max_removed)  # raised here, no output appears
                run.check()
            if isinstance(archive, IndexBatches) and last is not None:
                run.added = archive.added
                run.commit(last)
        extra = {"output": output, **_batches_extra(run, kw, report.batches)}
        if json_path:
            write_encoded_parts(json_path, report.parts(extra))
        if not quiet and json_path != "-" and output != "-":
            render(report.shown(extra, top), Console(), top=top)
