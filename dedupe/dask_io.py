"""Inputs, schedulers and sharded outputs of the Dask engine.

An input partition is one file (a JSONL shard, optionally compressed, a Parquet file, or a text
file or folder as the local engine reads them): partitions are read where they are processed, and
`clean` writes one output shard per input partition. Shards are written by the workers into a
hidden folder beside the target, each atomically, and the folder is swapped in only once every
shard is complete, so a failed run leaves the previous output whole. (With a remote cluster the
output folder must be on storage the workers share.)
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from .errors import BadRecordError, DedupeError, NoInputError
from .model import BadRecord, Document
from .readers import _ABSENT, Reader, ReadOptions, _site_getter, _text_field_reason

PARQUET_SUFFIXES = (".parquet", ".pq")


def require_dask() -> None:
    """Fail with one line naming the extra when Dask is not installed."""
    try:
        import dask
        import dask.dataframe  # noqa: F401
    except ImportError:
        raise DedupeError("--engine dask needs Dask: pip install 'dedupe[dask]'") from None


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Input paths with globs expanded (each glob's matches sorted), in the order given; checked."""
    paths: list[str] = []
    for given in inputs:
        if given == "-":
            raise DedupeError("--engine dask reads files, not standard input (-)")
        if glob.has_magic(given):
            matches = sorted(glob.glob(given))
            if not matches:
                raise NoInputError(f"{given}: no file matches")
            paths.extend(matches)
        else:
            paths.append(given)
    for path in paths:
        if is_parquet(path):
            if not os.path.isfile(path):
                raise NoInputError(f"{path}: no such file or directory")
            _require_pyarrow()
    Reader([p for p in paths if not is_parquet(p)])  # plans (checks) every other path now, not on a worker
    return paths


def is_parquet(path: str) -> bool:
    return path.lower().endswith(PARQUET_SUFFIXES)


def _require_pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DedupeError("reading Parquet needs pyarrow: pip install 'dedupe[dask]'") from None
    return pq


def read_partition(path: str, options: ReadOptions) -> tuple[list[Document], list[BadRecord]]:
    """The documents and bad records of one input partition, read as the local engine reads them."""
    if is_parquet(path):
        return _read_parquet(path, options)
    reader = Reader([path], options)
    docs = list(reader)
    return docs, reader.bad


def _read_parquet(path: str, options: ReadOptions) -> tuple[list[Document], list[BadRecord]]:
    """Rows of a Parquet file as documents: the same fields as JSONL records, row numbers as lines."""
    pq = _require_pyarrow()
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise NoInputError(f"{path}: not a readable Parquet file ({exc})") from None
    site_of = _site_getter(options.site_field)
    docs: list[Document] = []
    bad: list[BadRecord] = []
    for line, record in enumerate(rows, 1):
        text = record.pop(options.text_field, _ABSENT)
        if type(text) is not str:
            bad.append(BadRecord(path, line, _text_field_reason(options.text_field, text)))
            if options.strict:
                raise BadRecordError(bad[-1])
            continue
        raw_id = record.get(options.id_field)
        doc_id = f"{path}:{line}" if raw_id is None else str(raw_id)
        docs.append(Document(doc_id, text, site_of(record), path, line, record))
    if not rows:
        bad.append(BadRecord(path, 0, "empty file"))
    return docs, bad


# -- schedulers ----------------------------------------------------------------------------------

@contextmanager
def dask_scheduler(spec: Any) -> Iterator[None]:
    """Run the enclosed Dask work on `spec`: "sync" (one thread, the test suite's), "processes",
    "local:N" (a LocalCluster of N single-threaded worker processes), "tcp://HOST:PORT" (a running
    distributed scheduler), or a `distributed.Client` already made."""
    require_dask()
    import dask

    settings = {"dataframe.convert-string": False}  # bytes columns (signatures, shingle sets) stay bytes
    if not isinstance(spec, str):  # a distributed Client
        with dask.config.set(settings), spec.as_current():
            yield
        return
    if spec in ("sync", "synchronous"):
        with dask.config.set({**settings, "scheduler": "synchronous"}):
            yield
        return
    if spec == "processes":
        # One pool for the whole run: Dask would otherwise start (and compile kernels in) a new
        # pool for every compute.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn")) as pool, \
                dask.config.set({**settings, "scheduler": "processes", "pool": pool}):
            yield
        return
    if spec.startswith("local:") or "://" in spec:
        distributed = _require_distributed()
        # The p2p shuffle logs a warning per finished shuffle from the scheduler: noise on our stderr.
        logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
        if spec.startswith("local:"):
            workers = _worker_count(spec)
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None)
            with cluster, distributed.Client(cluster) as client, dask.config.set(settings), client.as_current():
                yield
            return
        try:
            client = distributed.Client(spec, timeout="30s")
        except OSError as exc:
            raise DedupeError(f"cannot reach the Dask scheduler at {spec}: {exc}") from None
        with client, dask.config.set(settings), client.as_current():
            yield
        return
    raise DedupeError(f"unknown --scheduler {spec!r}: use sync, processes, local:N or tcp://HOST:PORT")


def _worker_count(spec: str) -> int:
    try:
        workers = int(spec.partition(":")[2])
    except ValueError:
        workers = 0
    if workers < 1:
        raise DedupeError(f"--scheduler {spec}: N must be a whole number of workers, at least 1")
    return workers


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise DedupeError("--scheduler local:N and tcp:// need dask.distributed: pip install 'dedupe[dask]'") from None
    return distributed


# -- sharded output ------------------------------------------------------------------------------

def shard_name(partition: int) -> str:
    return f"part-{partition:05d}.jsonl"


def shard_folder(target: Path) -> AbstractContextManager[Path]:
    """A hidden folder beside `target` to fill with shards; swapped in for `target` on success,
    removed on any error, so `target` is either the previous output or the complete new one."""
    from .writers import replacing_folder

    return replacing_folder(target)
