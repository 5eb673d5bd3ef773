"""The `dedupe` command: reads like the README, renders what the library returns.

Only this module prints. Errors meant for users (`DedupeError`) become one line on stderr and a
documented exit code; progress bars appear only when stderr is a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from . import __version__, allocator, cli_batches, cli_dask, kernel_cache
from .clean import (
    check_removal_guard,
    output_files,
    output_records,
    removed_records,
    stripped_records,
)
from .cli_index import Run, index_group, run_options, unattended_run  # index, lock, signals, run log
from .errors import DedupeError
from .gcpause import collector_paused
from .index import is_url
from .model import BadRecord, Document
from .pipeline import scan
from .readers import Reader, ReadOptions
from .render import render
from .report import REPORT_ERRORS, build_report, report_json
from .results import ScanResult
from .settings import Settings
from .writers import (
    check_folder_exists,
    check_replaceable_folder,
    ensure_not_input,
    write_encoded,
    write_jsonl,
    write_text_folder,
)

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = Settings()
_JSONL_OUTPUT = (".jsonl", ".ndjson", ".jsonl.gz", ".jsonl.bz2", ".jsonl.xz", ".jsonl.zst", ".ndjson.gz")


def _err_console() -> Console:
    return Console(stderr=True)


def reading_options(func: F) -> F:
    """Options shared by every command that reads a dump."""
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("--text-field", default="text", show_default=True, help="JSONL field holding the text."),
        click.option("--id-field", default="id", show_default=True,
                     help="JSONL field holding the document id (else file:line)."),
        click.option("--site-field", default=None,
                     help="JSONL field naming the site (default: host of a `url` field, else a `site` field)."),
        click.option("--site-from-folder", is_flag=True,
                     help="Text folders: the top folder of each file is its site."),
        click.option("--strict", is_flag=True, help="Stop at the first bad record (exit 65) instead of skipping it."),
        click.option("--threshold", type=click.FloatRange(0.05, 1.0), default=_DEFAULTS.threshold, show_default=True,
                     help="Word n-gram Jaccard at or above which texts are near copies."),
        click.option("--containment", type=click.FloatRange(0.05, 1.0), default=_DEFAULTS.containment,
                     show_default=True,
                     help="Share of a shorter document inside a longer one that makes it a cut copy."),
        click.option("--ngram", type=click.IntRange(1, 20), default=_DEFAULTS.ngram, show_default=True,
                     help="Words per shingle."),
        click.option("--num-perm", type=click.IntRange(16, 1024), default=_DEFAULTS.num_perm, show_default=True,
                     help="MinHash permutations."),
        click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="MinHash seed."),
        click.option("--no-chrome", is_flag=True, help="Do not detect or strip site chrome."),
        click.option("--no-story", is_flag=True, help="Do not look for story clusters."),
        click.option("--keep", type=click.Choice(["longest", "first", "earliest"]), default=_DEFAULTS.keep,
                     show_default=True, help="Which copy of a cluster stays."),
        click.option("--date-field", default=_DEFAULTS.date_field, show_default=True,
                     help="Field read by --keep earliest."),
        click.option("--jobs", "-j", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="Worker processes for the per-batch stages."),
        click.option("--in-batches", "in_batches", type=click.IntRange(1), default=None, metavar="N",
                     help="Read and scan N documents at a time, each batch checked against the earlier ones in a "
                          "temporary index (under $TMPDIR), or with --index against the archive and the earlier "
                          "batches: memory bounded by N, not by the dump's size."),
        click.option("--engine", type=click.Choice(["local", "dask"]), default=None,
                     help="Run on this machine (default), or on Dask (pip install 'dedupe[dask]')."),
        click.option("--scheduler", default=None, metavar="SPEC",
                     help="Dask scheduler (implies --engine dask): sync (default), processes, local:N workers, "
                          "or tcp://HOST:PORT."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _settings(kw: dict[str, Any]) -> Settings:
    return Settings(ngram=kw["ngram"], num_perm=kw["num_perm"], seed=kw["seed"], threshold=kw["threshold"],
                    containment=kw["containment"], keep=kw["keep"], date_field=kw["date_field"],
                    chrome=not kw["no_chrome"], story=not kw["no_story"], jobs=kw["jobs"])


def _read_options(kw: dict[str, Any]) -> ReadOptions:
    return ReadOptions(text_field=kw["text_field"], id_field=kw["id_field"], site_field=kw["site_field"],
                       site_from_folder=kw["site_from_folder"], strict=kw["strict"])


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback that draws bars on stderr, or does nothing when stderr is not a terminal."""
    console = _err_console()
    if not enabled or not console.is_terminal:
        yield lambda stage, done, total: None
        return
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                  TimeElapsedColumn(), console=console, transient=True) as bars:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield tick


def _read(inputs: Sequence[str], options: ReadOptions, tick: Callable[[str, int, int], None]
          ) -> tuple[list[Document], list[BadRecord]]:
    reader = Reader(list(inputs), options)
    docs: list[Document] = []
    for doc in reader:
        docs.append(doc)
        if len(docs) % 1000 == 0:
            tick("read", len(docs), len(docs))
    return docs, reader.bad


def _run_scan(kw: dict[str, Any], quiet: bool = False, run: Run | None = None) -> tuple[list[Document], ScanResult]:
    with _progress(not quiet) as tick:
        if run is not None:  # stage timings, stop at batch boundaries on SIGINT/SIGTERM
            tick = run.watch(tick)
        docs, bad = _read(kw["inputs"], _read_options(kw), tick)
        result = scan(docs, _settings(kw), bad=bad, progress=tick, archive=run.archive if run else None)
        if run is not None:
            run.result = result  # recorded in the index even if the run is refused later
    return docs, result


def _write_json_report(target: str, report: dict[str, Any]) -> None:
    write_encoded(target, report_json(report))


def check_outputs(inputs: Sequence[str], outputs: Sequence[tuple[str, str | None]], index_path: str | None) -> None:
    """Refuse, before any work, files a run would write over an input or over each other (each
    replaces what was at its path: `scan dump.jsonl --json dump.jsonl` replaced the dump), a folder
    of other files as a folder output, and more than one output on stdout."""
    to_stdout = [name for name, path in outputs if path == "-"]
    if len(to_stdout) > 1:
        raise click.UsageError(f"{', '.join(to_stdout)}: only one output can go to stdout (-)")
    files = [(name, path) for name, path in outputs if path and path != "-"]
    if index_path and not is_url(index_path):
        files.append(("--index", index_path))
    seen: dict[Path, str] = {}
    for name, path in files:
        ensure_not_input(Path(path), inputs)
        check_folder_exists(Path(path))  # now, not after an hour's scan
        if name != "--index":
            check_replaceable_folder(Path(path))
        where = Path(path).resolve()
        if where in seen:
            raise click.UsageError(f"{seen[where]} and {name} name the same file ({path})")
        seen[where] = name
    for where, name in seen.items():  # a folder output is replaced whole, with whatever lies inside it
        for other, other_name in seen.items():
            if where in other.parents:
                raise click.UsageError(f"{other_name} ({other}) lies inside {name} ({where}), which is replaced whole")


def _fail(error: DedupeError) -> None:
    _err_console().print(f"[bold red]dedupe:[/] {escape(str(error))}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(error.exit_code)


class _Command(click.Command):
    """Turns DedupeError into a one-line message and its exit code, Ctrl-C into 130. A command reads,
    scans and reports millions of objects with no reference cycles, so the cyclic garbage collector
    is paused throughout (see `gcpause`)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with collector_paused():
                return super().invoke(ctx)
        except DedupeError as error:
            _fail(error)
        except KeyboardInterrupt:
            _err_console().print("dedupe: interrupted; no output was written")
            sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dedupe")
def main() -> None:
    """Find duplicate and syndicated content in scraped text dumps, strip site chrome, keep one copy."""
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate shows as its escape, as in the files written
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=REPORT_ERRORS)


@main.command("scan", cls=_Command)
@reading_options
@click.option("--json", "json_path", metavar="PATH", help="Also write the report as JSON (`-` for stdout).")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True, help="Clusters shown per level.")
@click.option("--quiet", "-q", is_flag=True, help="No terminal report or progress.")
@run_options(writer=False)
def scan_command(json_path: str | None, top: int, quiet: bool, index_path: str | None, log_format: str | None,
                 **kw: Any) -> None:
    """Report duplicate clusters and chrome in INPUT... without changing anything.

    INPUT is a JSONL file (optionally .gz/.bz2/.xz/.zst), a folder of text files, a text file, or `-` (or
    a pipe, e.g. <(zcat dump.jsonl.gz)) for JSONL on stdin.
    """
    check_outputs(kw["inputs"], [("--json", json_path)], index_path)
    cli_dask.check_engine_options(kw, index_path)
    cli_batches.check_options(kw)
    if kw["engine"] == "dask":
        cli_dask.scan_command(kw, json_path, top, quiet, log_format)
        return
    allocator.tune_for_batches()
    kernel_cache.prepare()
    if kw["in_batches"]:
        cli_batches.scan_command(kw, json_path, top, quiet, index_path, log_format)
        return
    with unattended_run("scan", index_path, _settings(kw), log_format=log_format, quiet=quiet, writer=False) as run:
        _, result = _run_scan(kw, quiet, run)
        report = build_report(result, run.report_extra(result))
    if json_path:
        _write_json_report(json_path, report)
    if not quiet and json_path != "-":
        render(report, Console(), top=top)



@main.command("clean", cls=_Command)
@reading_options
@click.option("--output", "-o", required=True, metavar="OUT",
              help="Cleaned dump: a .jsonl[.gz|.bz2|.xz|.zst] file, or a folder for text-folder input.")
@click.option("--removed", metavar="PATH", help="Write one JSONL record per removed document (id, kept copy, why).")
@click.option("--stripped", metavar="PATH", help="Write one JSONL record per document that lost chrome lines.")
@click.option("--annotate", is_flag=True,
              help="Remove nothing: add cluster, kept flag and stripped lines to every record instead.")
@click.option("--max-removed", type=click.FloatRange(0.0, 1.0), default=None, metavar="FRACTION",
              help="Refuse to write (exit 3) if any site would lose more than this share of documents or text.")
@click.option("--json", "json_path", metavar="PATH", help="Also write the report as JSON (`-` for stdout).")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True, help="Clusters shown per level.")
@click.option("--quiet", "-q", is_flag=True, help="No terminal report or progress.")
@run_options(writer=True)
def clean_command(output: str, removed: str | None, stripped: str | None, annotate: bool,
                  max_removed: float | None, json_path: str | None, top: int, quiet: bool, index_path: str | None,
                  log_format: str | None, wait: float, **kw: Any) -> None:
    """Write INPUT... with chrome stripped and one copy of each duplicate kept.

    Input is never modified; every output appears whole or not at all.
    """
    check_outputs(kw["inputs"], [("-o", output), ("--removed", removed), ("--stripped", stripped),
                                 ("--json", json_path)], index_path)
    cli_dask.check_engine_options(kw, index_path)
    cli_batches.check_options(kw, output, max_removed)
    if kw["engine"] == "dask":
        cli_dask.clean_command(kw, output, removed, stripped, annotate, max_removed, json_path, top, quiet, log_format)
        return
    allocator.tune_for_batches()
    kernel_cache.prepare()
    if kw["in_batches"]:
        cli_batches.clean_command(kw, output, removed, stripped, annotate, max_removed, json_path, top, quiet,
                                  index_path, log_format, wait, lambda docs: _folder_output(output, docs))
        return
    target = Path(output)
    # The run holds the index's writer lock throughout; the index is updated only after the outputs are in place.
    with unattended_run("clean", index_path, _settings(kw), log_format=log_format, quiet=quiet, writer=True,
                        wait=wait) as run:
        docs, result = _run_scan(kw, quiet, run)
        if max_removed is not None and not annotate:
            check_removal_guard(result, max_removed)
        run.writing()
        if _folder_output(output, docs) and not annotate:
            write_text_folder(target, run.watch_records(output_files(docs, result)))
        else:
            write_jsonl(target, run.watch_records(output_records(docs, result, kw["text_field"], annotate=annotate)))
        if removed:
            write_jsonl(Path(removed), removed_records(docs, result))
        if stripped:
            write_jsonl(Path(stripped), stripped_records(result))
        run.commit(result)
        report = build_report(result, {"output": output, **run.report_extra(result)})
        if json_path:
            _write_json_report(json_path, report)
    if not quiet and json_path != "-" and output != "-":
        render(report, Console(), top=top)


def _folder_output(output: str, docs: Sequence[Document]) -> bool:
    """Whether `clean` writes a text folder: its documents are all text files (not JSONL records)
    and the output is not named as JSONL nor stdout (a text folder to stdout goes as JSONL)."""
    return output != "-" and not output.endswith(_JSONL_OUTPUT) and bool(docs) and all(
        "path" in d.fields and not d.line for d in docs)


main.add_command(index_group)  # dedupe index stats|forget|vacuum|rebuild|export (cli_index.py)
