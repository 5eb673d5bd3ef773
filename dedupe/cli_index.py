"""What `scan` and `clean` need to run unattended, and the `dedupe index ...` commands.

A scheduled run must never leave things half done: `unattended_run` takes the index's writer lock
(a lock file beside an SQLite index, an advisory lock in PostgreSQL; a second writer exits 75 at
once, or waits `--wait`), turns SIGINT/SIGTERM into a stop at the next
batch boundary (exit 130/143; the index transaction rolls back), logs on stderr (rich on a terminal,
timestamped lines or JSON lines otherwise) and times each stage for the report.

Test hook: `DEDUPE_TEST_PAUSE_AT=<point>` makes a run print "dedupe: paused at <point>" on stderr and
sleep there (`DEDUPE_TEST_PAUSE_SECONDS`, default 60), so a test can kill it at a known point. Points:
`after-lock`, `writing-output` (after the first output record), `before-index-commit` (inside the
index transaction, everything inserted). Unset, it costs one environment lookup per point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from .errors import DedupeError, NoInputError, RemovalRefused
from .index import IndexBase, IndexBusy, RunRecord, index_exists, index_name, is_url, open_index, utc_now, writer_lock
from .results import ScanResult
from .settings import Settings
from .writers import ensure_not_input, write_jsonl

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Tick = Callable[[str, int, int], None]

LOG = logging.getLogger("dedupe.run")
PAUSE_ENV = "DEDUPE_TEST_PAUSE_AT"
_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
_CHECK_EVERY = 256  # output records between stop checks


# --- options ---------------------------------------------------------------------------------------


def run_options(writer: bool) -> Callable[[F], F]:
    """--index, --log-format and, for a command that writes the index, --wait."""
    verb = ("Check against the documents archived in this index (an SQLite file, or a postgresql:// URL), then "
            "add the kept ones to it (created on first use)." if writer else
            "Also check against the documents archived in this index (an SQLite file, or a postgresql:// URL; read "
            "only; a missing one is empty).")
    options = [
        click.option("--index", "index_path", metavar="PATH|URL", help=verb),
        click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
                     help="Log the run on stderr: text (rich on a terminal, timestamped lines otherwise) or JSON "
                          "lines. Default: text when --index is given, else no log."),
    ]
    if writer:
        options.append(click.option("--wait", type=click.FloatRange(0), default=0.0, show_default=True,
                                    metavar="SECONDS", help="If another run holds the index, wait this long for it "
                                                            "(else exit 75 at once)."))

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


# --- logging ---------------------------------------------------------------------------------------


class _JsonLines(logging.Formatter):
    """One JSON object per record: time, level, message, run id and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "message": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(log_format: str | None, quiet: bool, enabled: bool) -> None:
    """Send the run log to stderr in the chosen format; `quiet` keeps warnings and errors only."""
    for old in list(LOG.handlers):
        LOG.removeHandler(old)
    LOG.propagate = False
    if not enabled:
        LOG.addHandler(logging.NullHandler())
        LOG.setLevel(logging.CRITICAL + 1)
        return
    console = Console(stderr=True)
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonLines())
    elif console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s dedupe: %(message)s",
                                               datefmt="%Y-%m-%dT%H:%M:%S%z"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.WARNING if quiet else logging.INFO)


def _log(level: int, message: str, **fields: Any) -> None:
    LOG.log(level, message, extra={"fields": fields})


# --- stopping --------------------------------------------------------------------------------------


class RunStopped(DedupeError):
    """SIGINT or SIGTERM: the run stopped at a batch boundary; exit 128 + signal number."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = _SIGNAL_EXIT.get(signal.Signals(signum), 128 + signum)


def pause_point(name: str, check: Callable[[], None]) -> None:
    """Test hook (module docstring): sleep here when DEDUPE_TEST_PAUSE_AT names this point."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    sys.stderr.write(f"dedupe: paused at {name}\n")
    sys.stderr.flush()
    end = time.monotonic() + float(os.environ.get("DEDUPE_TEST_PAUSE_SECONDS", "60"))
    while time.monotonic() < end:
        check()
        time.sleep(0.02)


@dataclass
class _Timer:
    """Seconds per stage; a stage runs until the next one starts."""

    spent: dict[str, float] = field(default_factory=dict)
    stage: str | None = None
    since: float = 0.0

    def enter(self, stage: str | None) -> None:
        now = time.perf_counter()
        if self.stage is not None:
            self.spent[self.stage] = self.spent.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage, now


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    """One scan or clean: its id, index, lock, stop flag, timings and outcome."""

    command: str
    run_id: str
    index_spec: str | None  # a path or a URL, as given
    writer: bool
    index: IndexBase | None = None
    stop_signal: int | None = None
    phase: str = "reading"  # reading -> writing -> written -> committed
    # Not in repr: restoring the signal handlers makes `signal` format the old handler, this run's
    # bound method, and a whole ScanResult's repr took most of a second at 10k documents.
    result: ScanResult | None = field(default=None, repr=False)
    totals: tuple[int, int, int] | None = None  # documents, kept, bad records: a run in batches has no one result
    added: int = 0
    started_at: str = field(default_factory=utc_now)
    clock: float = field(default_factory=time.perf_counter)
    timer: _Timer = field(default_factory=_Timer)

    @property
    def archive(self) -> IndexBase | None:
        return self.index

    @property
    def index_name(self) -> str | None:
        """The index as logs and reports name it (a URL without its password)."""
        return index_name(self.index_spec) if self.index_spec is not None else None

    def check(self) -> None:
        """Raise `RunStopped` if a stop was requested: called only at batch boundaries."""
        if self.stop_signal is not None:
            raise RunStopped(self.stop_signal, self._stop_message(self.stop_signal))

    def _stop_message(self, signum: int) -> str:
        name = signal.Signals(signum).name
        if self.phase == "written":
            return (f"stopped by {name} after the outputs were written; the index was not updated "
                    "(re-running this batch gives the same output and updates it)")
        if self.command == "clean":
            return f"stopped by {name}; no output was written and the index was not changed"
        return f"stopped by {name}"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:  # asked twice: stop now (cleanups still run)
            raise RunStopped(signum, self._stop_message(signum))
        self.stop_signal = signum

    def watch(self, tick: Tick) -> Tick:
        """The progress callback, also timing stages and stopping at batch boundaries."""
        self.timer.enter("read")

        def watched(stage: str, done: int, total: int) -> None:
            self.check()
            if stage != self.timer.stage:
                self.timer.enter(stage)
            tick(stage, done, total)

        return watched

    def watch_records(self, records: Iterable[T]) -> Iterator[T]:
        """The main output's records, with stop checks: a stop while writing leaves no output."""
        for count, record in enumerate(records):
            if count % _CHECK_EVERY == 0:
                self.check()
            yield record
            if count == 0:
                pause_point("writing-output", self.check)

    def writing(self) -> None:
        """Outputs are being written from here on (a stop now still leaves none)."""
        self.check()
        self.phase = "writing"
        self.timer.enter("write")

    def commit(self, result: ScanResult) -> None:
        """After the outputs are in place: archive the kept documents and chrome, record the run.

        In a run in batches (its `totals` set) `result` is the last batch's, and the index's
        `one_transaction` is still open: the run is committed when that ends (`committed`)."""
        if self.totals is None:
            self.result = result
        rows = result.rows_to_archive() if self.index is not None and self.writer else None
        if self.index is None or (rows is None and not self.index.in_transaction):
            self.phase = "committed"  # nothing left to do: the run is complete
            self.timer.enter(None)
            return
        self.phase = "written"
        self.timer.enter("index_commit")
        self.check()
        if rows is None:
            self.index.record_run(self._record("ok", 0))
        else:
            self.added += self.index.add(rows, result.chrome_stats, self.run_id, record=self._record("ok", 0),
                                         check=self._check_stage)
        if not self.index.in_transaction:
            self.phase = "committed"
        self.timer.enter(None)

    def committed(self) -> None:
        """The index's `one_transaction` of a run in batches has been committed."""
        self.phase = "committed"

    def _check_stage(self, stage: str) -> None:
        if stage == "commit":
            pause_point("before-index-commit", self.check)
        self.check()

    def _record(self, status: str, exit_code: int) -> RunRecord:
        documents, kept, bad = self.counts() or (0, 0, 0)
        return RunRecord(self.run_id, self.started_at, utc_now(), status, exit_code, documents, bad, kept,
                         documents - kept)

    def counts(self) -> tuple[int, int, int] | None:
        """Documents, kept documents and bad records of the run, once known."""
        if self.result is not None:
            outcomes = self.result.outcomes
            return len(outcomes), sum(o.kept for o in outcomes), len(self.result.bad)
        return self.totals

    def report_extra(self, result: ScanResult | None) -> dict[str, Any]:
        """`run_id`, `timings` and `index` for the JSON report."""
        if result is not None:
            self.result = result
        self.timer.enter(None)
        timings = {stage: round(s, 3) for stage, s in self.timer.spent.items()}
        if self.index is not None:
            timings.update({f"index_{k}": round(s, 3) for k, s in self.index.timings.items()})
        timings["total"] = round(time.perf_counter() - self.clock, 3)
        extra: dict[str, Any] = {"run_id": self.run_id, "timings": timings}
        if self.index_spec is not None:
            idx = self.index
            extra["index"] = {"path": self.index_name, "documents": idx.count() if idx else 0,
                              "size_bytes": idx.size_bytes() if idx else 0, "added": self.added}
        return extra


def new_run_id() -> str:
    """Sortable and unique enough for one machine: UTC time plus random hex."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


@contextlib.contextmanager
def _signals(run: Run) -> Iterator[None]:
    """SIGINT/SIGTERM set the run's stop flag while it lasts (main thread only; else left alone)."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, run._on_signal)
    except ValueError:  # not the main thread: keep the default behaviour
        pass
    try:
        yield
    finally:
        for number, previous_handler in previous.items():
            signal.signal(number, previous_handler)


@contextlib.contextmanager
def unattended_run(command: str, index_path: str | None, settings: Settings, *, log_format: str | None,
                   quiet: bool, writer: bool, wait: float = 0.0) -> Iterator[Run]:
    """Everything around one scan/clean: logs, signals, the lock and the index; records failures."""
    if wait and not index_path:
        raise click.UsageError("--wait only applies with --index")
    configure_logging(log_format, quiet, enabled=index_path is not None or log_format is not None)
    run = Run(command, new_run_id(), index_path or None, writer)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_signals(run))
        _log(logging.INFO, f"run {run.run_id}: {command} started", run_id=run.run_id, event="start",
             command=command, index=run.index_name)
        try:
            if run.index_spec is not None:
                if writer:
                    stack.enter_context(_locked(run, wait))
                    pause_point("after-lock", run.check)
                run.index = stack.enter_context(open_index(run.index_spec, settings, readonly=not writer))
            yield run
        except BaseException as error:
            _record_failure(run, error)
            raise
        _log_done(run)


@contextlib.contextmanager
def _locked(run: Run, wait: float) -> Iterator[None]:
    """The writer lock; says so in the log when it has to wait for another run."""
    assert run.index_spec is not None
    lock = writer_lock(run.index_spec, run.run_id, 0.0, run.check)
    try:
        lock.acquire()
    except IndexBusy:
        if wait <= 0:
            raise
        _log(logging.WARNING, f"index {run.index_name} is in use by {lock.holder()}; waiting up to {wait:g}s",
             run_id=run.run_id, event="lock-wait", holder=lock.holder())
        lock.wait = wait
        started = time.perf_counter()
        lock.acquire()
        run.timer.spent["lock_wait"] = time.perf_counter() - started
    try:
        yield
    finally:
        lock.release()


def _record_failure(run: Run, error: BaseException) -> None:
    """Log why the run ended early and, if we hold the index, record it there (best effort)."""
    code = error.exit_code if isinstance(error, DedupeError) else 130 if isinstance(error, KeyboardInterrupt) else 1
    status = ("refused" if isinstance(error, RemovalRefused) else
              "interrupted" if isinstance(error, (RunStopped, KeyboardInterrupt)) else "failed")
    level = logging.WARNING if status in ("refused", "interrupted") else logging.ERROR
    # The reason is the CLI's own one-line message on the next line; JSON lines carry it as "error".
    _log(level, f"run {run.run_id}: {run.command} {status} (exit {code})", run_id=run.run_id, event="end",
         status=status, exit_code=code, error=str(error))
    if run.index is not None and run.writer and run.phase != "committed":
        with contextlib.suppress(Exception):
            run.index.record_run(run._record(status, code))


def _log_done(run: Run) -> None:
    result = run.result
    fields: dict[str, Any] = {"run_id": run.run_id, "event": "end", "status": "ok", "exit_code": 0,
                              "seconds": round(time.perf_counter() - run.clock, 3)}
    text = f"run {run.run_id}: {run.command} done in {fields['seconds']:.1f}s"
    counts = run.counts()
    if counts is not None:
        documents, kept, bad = counts
        fields.update(documents=documents, kept=kept, removed=documents - kept, bad_records=bad)
        text += f": {documents:,} documents, {kept:,} kept, {fields['removed']:,} removed"
        if result is not None and result.bad:
            _log(logging.WARNING, f"run {run.run_id}: skipped {len(result.bad):,} bad records, first "
                 f"{result.bad[0].source}:{result.bad[0].line} ({result.bad[0].reason})", run_id=run.run_id,
                 event="bad-records", bad_records=len(result.bad))
    if run.index is not None:
        fields.update(index=run.index_name, index_documents=run.index.count(), added=run.added)
        text += f"; index {run.index_name}: {fields['index_documents']:,} documents"
        if run.writer:
            text += f" (+{run.added:,})"
    _log(logging.INFO, text, **fields)


# --- dedupe index ... ------------------------------------------------------------------------------


class _Command(click.Command):
    """A DedupeError becomes one line on stderr and its exit code (as in the main commands)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DedupeError as error:
            click.echo(f"dedupe: {error}", err=True)
            sys.exit(error.exit_code)


def _existing(path: str, readonly: bool, check_banding: bool = True) -> IndexBase:
    _must_exist(path)
    return open_index(path, None, readonly=readonly, check_banding=check_banding)


def _must_exist(path: str) -> None:
    if not index_exists(path):
        raise NoInputError(f"index {index_name(path)} does not exist")


@click.group("index")
def index_group() -> None:
    """Inspect and maintain an index written by `dedupe clean --index`.

    PATH is the index's SQLite file or its postgresql:// URL (?schema=NAME picks the schema)."""


@index_group.command("stats", cls=_Command)
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def stats_command(path: str, as_json: bool) -> None:
    """Documents, size, settings and the last runs of the index at PATH (read only)."""
    with _existing(path, readonly=True) as index:
        stats = index.stats()
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    console = Console()
    per_doc = f" ({stats['bytes_per_document']:,} bytes per document)" if stats.get("bytes_per_document") else ""
    copies = f" ({stats['copies']:,} of them removed copies, kept for matching)" if stats.get("copies") else ""
    console.print(f"[bold]{escape(index_name(path))}[/]: {stats['documents']:,} documents{copies} from "
                  f"{stats['sites']:,} sites, {stats['size_bytes'] / 1e6:,.1f} MB{per_doc}", highlight=False)
    console.print(f"added {stats['first_added']} .. {stats['last_added']}; chrome: {stats['chrome_lines']:,} "
                  f"lines of {stats['chrome_sites']:,} sites; settings: "
                  + ", ".join(f"{k}={v}" for k, v in stats["settings"].items()), highlight=False)
    # fits 80 columns (cron mail, a pipe): a run id may fold, times and counts stay whole
    table = Table("run", "started (UTC)", "status", "exit", "in", "kept", "removed", "added", title="recent runs",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.columns[0].overflow, table.columns[0].min_width = "fold", 12
    for column in table.columns[1:]:
        column.no_wrap = True
    for column in table.columns[3:]:
        column.justify = "right"
    for r in stats["recent_runs"]:
        started = str(r["started_at"]).replace("T", " ")[:16]  # to the minute
        table.add_row(r["run_id"], started, r["status"], str(r["exit_code"]), f"{r['documents_in']:,}",
                      f"{r['kept']:,}", f"{r['removed']:,}", f"{r['added']:,}")
    console.print(table)


def _wait_option(func: F) -> F:
    return click.option("--wait", type=click.FloatRange(0), default=0.0, show_default=True, metavar="SECONDS",
                        help="If a run holds the index, wait this long (else exit 75).")(func)


@index_group.command("forget", cls=_Command)
@click.argument("path")
@click.option("--before", metavar="DATE", help="Forget documents archived before this day (YYYY-MM-DD).")
@click.option("--run", "run_id", metavar="RUN_ID", help="Forget the documents archived by this run.")
@_wait_option
def forget_command(path: str, before: str | None, run_id: str | None, wait: float) -> None:
    """Remove old documents from the index at PATH, so new copies of them are kept again."""
    if (before is None) == (run_id is None):
        raise click.UsageError("give exactly one of --before DATE or --run RUN_ID")
    if before is not None:
        try:
            dt.date.fromisoformat(before)
        except ValueError:
            raise click.BadParameter(f"{before!r} is not a date (YYYY-MM-DD)", param_hint="--before") from None
    _must_exist(path)  # before the lock: a mistyped path leaves no lock file behind
    with writer_lock(path, wait=wait), _existing(path, readonly=False) as index:
        gone = index.forget(before=before, run=run_id)
        left = index.count()
    click.echo(f"forgot {gone:,} documents; {left:,} remain (run `dedupe index vacuum {index_name(path)}` to "
               "give the space back)")


@index_group.command("vacuum", cls=_Command)
@click.argument("path")
@_wait_option
def vacuum_command(path: str, wait: float) -> None:
    """Rewrite the index at PATH compactly (after `forget`); takes the writer lock."""
    _must_exist(path)  # before the lock: a mistyped path leaves no lock file behind
    with writer_lock(path, wait=wait), _existing(path, readonly=False) as index:
        before, after = index.vacuum()
    click.echo(f"{index_name(path)}: {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB")


@index_group.command("rebuild", cls=_Command)
@click.argument("path")
@_wait_option
def rebuild_command(path: str, wait: float) -> None:
    """Recompute the LSH band keys of the index at PATH from its stored signatures with this dedupe's
    banding: needed once when an upgrade changed how band keys are computed; optional (for recall)
    when it only changed the bands chosen."""
    _must_exist(path)  # before the lock: a mistyped path leaves no lock file behind
    with writer_lock(path, wait=wait), _existing(path, readonly=False, check_banding=False) as index:
        bands, rows = index.rebuild_bands()
        count = index.count()
    click.echo(f"{index_name(path)}: band keys of {count:,} documents recomputed ({bands} bands x {rows} rows)")


@index_group.command("export", cls=_Command)
@click.argument("path")
@click.option("--output", "-o", default="-", show_default=True, metavar="OUT",
              help="JSONL file (optionally .gz/.bz2/.xz/.zst), or - for stdout.")
def export_command(path: str, output: str) -> None:
    """Write every archived document of the index at PATH as JSON lines (keys, signature, run, date)."""
    if output != "-" and not is_url(path):
        ensure_not_input(Path(output), [path, f"{path}-wal", f"{path}-shm", f"{path}.lock"])
    with _existing(path, readonly=True) as index:
        records = index.export()
        try:
            write_jsonl(output, records)
        finally:
            records.close()  # its cursor, before the index closes (a reader may stop early: `| head`)
