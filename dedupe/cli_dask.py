"""`dedupe scan|clean --engine dask`: the commands' runs on the Dask engine (see dedupe.engine_dask).

Kept apart from `cli` so the local commands stay as they are. Inputs are files or globs (one
partition each); `clean -o OUT` writes the folder OUT with one JSONL shard per input partition
(and `--removed`/`--stripped` folders sharded the same way); the report is the local engine's,
plus the engine's stage timings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from . import kernel_cache
from .clean import check_site_removals
from .cli_index import unattended_run
from .dask_io import dask_scheduler, expand_inputs, require_dask
from .errors import DedupeError
from .render import render
from .report import build_report
from .writers import ensure_not_input


def check_engine_options(kw: dict[str, Any], index_path: str | None) -> None:
    """Usage errors of --engine/--scheduler, before anything is read."""
    if kw.get("scheduler"):
        if kw.get("engine") == "local":
            raise click.UsageError("--scheduler only applies with --engine dask")
        kw["engine"] = "dask"
    if kw.get("engine") == "dask":
        require_dask()
        if index_path:
            raise DedupeError("--index is not supported with --engine dask yet; run the local engine for indexed runs")


def _scan(kw: dict[str, Any], paths: list[str], collect: bool = False) -> Any:
    from .cli import _read_options, _settings
    from .engine_dask import DaskOptions, scan_dask

    return scan_dask(paths, _settings(kw), _read_options(kw), DaskOptions(collect_outcomes=collect))


def _kernels_ready(spec: str) -> None:
    """A scheduler on this machine runs the kernels in this process or in workers started from
    this install: make them ready here first (on a first run, compiled once, in a child, rather
    than mid-run or once in each worker). A remote cluster's workers have their own cache."""
    if "://" not in spec:
        kernel_cache.prepare()


def _extra(scan: Any) -> dict[str, Any]:
    return {"engine": {"name": "dask", "stage_timings": scan.timings,
                       "components": {k: {"method": r.method, "edges": r.edges, "iterations": r.iterations}
                                      for k, r in scan.components.items()}}}


def _expanded_inputs(kw: dict[str, Any], *outputs: str | None) -> list[str]:
    """The input files the arguments' globs match, and no output onto any of them (the arguments
    as given were checked by `cli.check_outputs`)."""
    paths = expand_inputs(kw["inputs"])
    for path in outputs:
        if path and path != "-":
            ensure_not_input(Path(path), paths)
    return paths


def scan_command(kw: dict[str, Any], json_path: str | None, top: int, quiet: bool, log_format: str | None) -> None:
    """`dedupe scan --engine dask`."""
    from .cli import _settings, _write_json_report

    paths = _expanded_inputs(kw, json_path)
    _kernels_ready(kw["scheduler"] or "sync")
    with unattended_run("scan", None, _settings(kw), log_format=log_format, quiet=quiet, writer=False) as run:
        with dask_scheduler(kw["scheduler"] or "sync"):
            scan = _scan(kw, paths)
        report = build_report(scan.result, {**run.report_extra(scan.result), **_extra(scan)})
        report["sites"] = scan.sites
    if json_path:
        _write_json_report(json_path, report)
    if not quiet and json_path != "-":
        render(report, Console(), top=top)


def clean_command(kw: dict[str, Any], output: str, removed: str | None, stripped: str | None, annotate: bool,
                  max_removed: float | None, json_path: str | None, top: int, quiet: bool,
                  log_format: str | None) -> None:
    """`dedupe clean --engine dask`: OUT (and --removed/--stripped) are folders of shards."""
    from .cli import _settings, _write_json_report

    for path in (output, removed, stripped):
        if path == "-":
            raise DedupeError("--engine dask writes folders of shards, not standard output (-)")
    paths = _expanded_inputs(kw, output, removed, stripped, json_path)
    _kernels_ready(kw["scheduler"] or "sync")
    with unattended_run("clean", None, _settings(kw), log_format=log_format, quiet=quiet, writer=True) as run:
        with dask_scheduler(kw["scheduler"] or "sync"):
            scan = _scan(kw, paths)
            if max_removed is not None and not annotate:
                check_site_removals(scan.sites, max_removed)
            run.writing()
            scan.write_shards(Path(output), "documents", kw["text_field"], annotate)
            if removed:
                scan.write_shards(Path(removed), "removed")
            if stripped:
                scan.write_shards(Path(stripped), "stripped")
        run.commit(scan.result)
        report = build_report(scan.result, {"output": output, **run.report_extra(scan.result), **_extra(scan)})
        report["sites"] = scan.sites
        if json_path:
            _write_json_report(json_path, report)
    if not quiet and json_path != "-":
        render(report, Console(), top=top)

