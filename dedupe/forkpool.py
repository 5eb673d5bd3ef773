"""Run a function over work items in forked worker processes that share the caller's data.

The later stages (chrome verdicts, story pairs) work over large read-only structures: pages, sparse
matrices, per-site statistics. Pickling them to every worker would cost more than the work, so
workers are forked after the data exists and inherit it; only the small work items and their results
cross between processes. Where the platform does not fork safely (not Linux), the items run in the
calling process: the results are the same, only slower.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

CAN_FORK = sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()

_TASK: tuple[Callable[[Any, Any], Any], Any] | None = None


def fork_map(fn: Callable[[C, T], R], context: C, items: Sequence[T], jobs: int,
             done: Callable[[int], None] | None = None) -> list[R]:
    """`[fn(context, item) for item in items]`, in up to `jobs` forked processes when jobs > 1.

    `fn` must be a module-level function; `context` is inherited by the workers, never pickled.
    Results come back in the order of `items` whatever the number of workers; `done(k)` is called
    as the first k results are in (progress, and a caller's chance to stop between items)."""
    out: list[R] = []
    if jobs <= 1 or len(items) < 2 or not CAN_FORK:
        for item in items:
            out.append(fn(context, item))
            if done is not None:
                done(len(out))
        return out
    global _TASK
    _TASK = (fn, context)
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(items)), _default_signals) as pool:
            for result in pool.imap(_run, items, chunksize=1):
                out.append(result)
                if done is not None:
                    done(len(out))
        return out
    finally:
        _TASK = None


def _run(item: Any) -> Any:
    assert _TASK is not None, "fork_map's task is set before the workers are forked"
    fn, context = _TASK
    return fn(context, item)


def _default_signals() -> None:
    """Forked workers must not keep a caller's handlers: the pool ends them with SIGTERM, and a
    handler that only sets a flag (the CLI's) would leave them, and the caller, waiting forever.
    SIGINT is the caller's to handle, so workers ignore it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
