"""Run a function over work items in forked worker processes that share the caller's data.

The later stages (chrome verdicts, story pairs) work over large read-only structures: pages, sparse
matrices, per-site statistics. Pickling them to every worker would cost more than the work, so
workers are forked after the data exists and inherit it; only the small work items and their results
cross between processes. Where the platform does not fork safely (not Linux), the items run in the
calling process: the results are the same, only slower.

Large results (a corpus's paragraph groups as flat arrays) come back through a shared memory arena
rather than the pool's pipe when the caller reserves one (`shared_bytes`): on the machines
measured, a pipe moved 120-450 MB/s, so at 30k documents stage 1's features (before they went
straight into `feature_table`'s shared table) spent about 2 s in transit, against about 0.3 s
written once into shared pages. Each result is pickled with
protocol 5: its arrays' buffers go into the arena, only the small rest through the pipe, and the
caller's arrays are views of the arena (no copy), freed with the last of them.

`forked_steps` runs a generator in one forked process instead, for a stage whose steps depend on
each other: the caller takes each result when it needs it while the process goes on to the next
(the scan's paragraph level beside chrome and then beside the copy stages).
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M")

CAN_FORK = sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()

_TASK: tuple[Callable[[Any, Any], Any], Any, _Arena | None] | None = None


def fork_map(fn: Callable[[C, T], R], context: C, items: Sequence[T], jobs: int,
             done: Callable[[int], None] | None = None, shared_bytes: int = 0,
             meanwhile: Callable[[], None] | None = None) -> list[R]:
    """`[fn(context, item) for item in items]`, in up to `jobs` forked processes when jobs > 1.

    `fn` must be a module-level function; `context` is inherited by the workers, never pickled.
    Results come back in the order of `items` whatever the number of workers; `done(k)` is called
    as the first k results are in (progress, and a caller's chance to stop between items).
    `shared_bytes`, an upper bound of the results' array bytes, reserves an arena for them (only
    the pages written are used); a result that does not fit comes through the pipe as usual.
    `meanwhile` is the caller's own work, run in this process while the workers run (before the
    items when there are no workers); the workers are forked before it, so they do not see it.
    With it, even one item goes to a worker, so that the two overlap."""
    out: list[R] = []
    if jobs <= 1 or len(items) < (1 if meanwhile is not None else 2) or not CAN_FORK:
        if meanwhile is not None:
            meanwhile()
        for item in items:
            out.append(fn(context, item))
            if done is not None:
                done(len(out))
        return out
    global _TASK
    arena = _Arena.reserve(shared_bytes)
    _TASK = (fn, context, arena)
    try:
        pool = multiprocessing.get_context("fork").Pool(min(jobs, len(items)), _default_signals)
        try:
            results = pool.imap(_run, items, chunksize=1)  # handed out by the pool's threads from here on
            if meanwhile is not None:
                meanwhile()
            for result in results:
                out.append(arena.unpack(result) if isinstance(result, _Packed) and arena is not None else result)
                if done is not None:
                    done(len(out))
        except BaseException:
            pool.terminate()
            raise
        # Every result is in: the workers end on their own, reaped by a thread as they go (ending
        # one that mapped the features' table took 30-50 ms, waited for here before).
        pool.close()
        threading.Thread(target=pool.join, daemon=True).start()
        return out
    finally:
        _TASK = None


def fork_beside(fn: Callable[[C, T], R], context: C, item: T, mine: Callable[[], M], jobs: int,
                shared_bytes: int = 0) -> tuple[R, M]:
    """`(fn(context, item), mine())`: with `jobs` > 1 the first in a forked process while this one
    works out the second (`fork_map`'s `meanwhile`), else the second and then the first here."""
    here: list[M] = []
    theirs = fork_map(fn, context, [item], jobs, shared_bytes=shared_bytes, meanwhile=lambda: here.append(mine()))
    return theirs[0], here[0]


@contextlib.contextmanager
def forked_steps(steps: Callable[[C], Iterator[R]], context: C, fork: bool,
                 shared_bytes: int = 0) -> Iterator[Iterator[R]]:
    """`steps(context)`'s results one at a time, as the caller takes them: with `fork`, made in a
    forked process and each sent as soon as it is made, so the caller works meanwhile and takes a
    result when it needs it (and the process goes on to the next step); else made here, each when
    taken. `shared_bytes` reserves an arena for the results' arrays (`fork_map`'s). Leaving the
    block ends the process if it is still running."""
    if not fork or not CAN_FORK:
        yield steps(context)
        return
    arena = _Arena.reserve(shared_bytes)
    forking = multiprocessing.get_context("fork")
    receiving, sending = forking.Pipe(duplex=False)
    process = forking.Process(target=_send_steps, args=(steps, context, arena, sending), daemon=True)
    process.start()
    sending.close()
    ended: list[bool] = []
    try:
        yield _received(receiving, arena, process, ended)
    finally:
        with contextlib.suppress(EOFError, OSError):  # a caller that took the last result: the end comes at once
            if not ended and receiving.poll(0.05) and receiving.recv()[0] == _END:
                ended.append(True)
        if ended:  # it has sent everything and is ending: reaped as it goes (50 ms at 100k documents)
            threading.Thread(target=process.join, daemon=True).start()
        else:
            if process.is_alive():
                process.terminate()
            process.join()
        receiving.close()


def _send_steps(steps: Callable[[Any], Iterator[Any]], context: Any, arena: _Arena | None, sending: Any) -> None:
    """In the forked process: each result sent as it is made, then the end (or the error)."""
    _default_signals()
    try:
        for result in steps(context):
            sending.send((_RESULT, arena.pack(result) if arena is not None else result))
    except BaseException as error:  # the caller raises it
        sending.send((_ERROR, error))
    else:
        sending.send((_END, None))


def _received(receiving: Any, arena: _Arena | None, process: Any, ended: list[bool]) -> Iterator[Any]:
    while True:
        try:
            kind, value = receiving.recv()
        except EOFError:
            process.join()
            raise RuntimeError(f"a forked process ended before its results were in (exit code {process.exitcode})"
                               ) from None
        if kind == _END:
            ended.append(True)
            return
        if kind == _ERROR:
            raise value
        yield arena.unpack(value) if isinstance(value, _Packed) and arena is not None else value


_RESULT, _ERROR, _END = range(3)


def spans(count: int, jobs: int, largest: int, smallest: int = 1) -> list[tuple[int, int]]:
    """[lo, hi) spans covering `count` items, `largest` long; under `jobs` > 1 shorter, about four
    per worker (so no worker is left with the last big span while the others idle), but at least
    `smallest` (each span costs a round trip to a worker)."""
    size = largest if jobs <= 1 else max(smallest, min(largest, -(-count // (4 * jobs))))
    return [(lo, min(lo + size, count)) for lo in range(0, count, size)]


def _run(item: Any) -> Any:
    assert _TASK is not None, "fork_map's task is set before the workers are forked"
    fn, context, arena = _TASK
    result = fn(context, item)
    return arena.pack(result) if arena is not None else result


@dataclass(frozen=True, slots=True)
class _Packed:
    """A result whose buffers are in the arena: the pickle of the rest, and each buffer's span."""

    header: bytes
    spans: list[tuple[int, int]]


class _Arena:
    """Anonymous shared memory mapped before the fork, so every worker writes into the caller's
    pages; space is handed out by one shared counter."""

    _ALIGN = 64

    def __init__(self, size: int) -> None:
        self.size = size
        self.memory = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS: pages exist once written
        self.used = multiprocessing.get_context("fork").Value("q", 0)

    @classmethod
    def reserve(cls, size: int) -> _Arena | None:
        if size <= 0:
            return None
        try:
            return cls(size)
        except (OSError, ValueError):  # address space or overcommit refused: results use the pipe
            return None

    def pack(self, result: Any) -> Any:
        """In a worker: `result` with its buffers written to the arena (or as it is, if they do not fit)."""
        buffers: list[pickle.PickleBuffer] = []
        header = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        sizes = [-(-r.nbytes // self._ALIGN) * self._ALIGN for r in raws]
        with self.used.get_lock():
            start = self.used.value
            if start + sum(sizes) > self.size:
                return result
            self.used.value = start + sum(sizes)
        spans = []
        for raw, size in zip(raws, sizes, strict=True):
            self.memory[start : start + raw.nbytes] = raw
            spans.append((start, raw.nbytes))
            start += size
        return _Packed(header, spans)

    def unpack(self, packed: _Packed) -> Any:
        """In the caller: the result, its arrays viewing the arena."""
        view = memoryview(self.memory)
        return pickle.loads(packed.header, buffers=[view[a : a + n] for a, n in packed.spans])


def _default_signals() -> None:
    """Forked workers must not keep a caller's handlers: the pool ends them with SIGTERM, and a
    handler that only sets a flag (the CLI's) would leave them, and the caller, waiting forever.
    SIGINT is the caller's to handle, so workers ignore it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
