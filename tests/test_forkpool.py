"""fork_map: results in order, the same in workers as in process, whichever way they travel back."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from dedupe.forkpool import CAN_FORK, fork_map

needs_fork = pytest.mark.skipif(not CAN_FORK, reason="workers are forked only where the platform forks")


def _result(context: tuple[np.ndarray, str], k: int) -> dict[str, object]:
    """Arrays of several dtypes and sizes (one not contiguous) beside plain objects."""
    base, label = context
    return {
        "k": k,
        "label": f"{label}{k}",
        "big": base[k : k + 50_000] * k,
        "empty": np.zeros(0, dtype=np.int32),
        "strided": np.arange(40, dtype=np.int64)[::3] + k,
        "nested": [np.full((k + 1, 3), k, dtype=np.uint32), ("x", k)],
    }


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _in_shared_memory(array: np.ndarray) -> bool:
    base = array.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


@needs_fork
@pytest.mark.parametrize("shared_bytes", [0, 64, 50_000_000])
def test_results_come_back_in_order_and_equal_to_running_in_process(shared_bytes: int) -> None:
    """Through the pipe (0), the arena (room for all), or both (64 bytes: nothing fits, so each
    result falls back to the pipe)."""
    context = (np.arange(200_000, dtype=np.float64), "item")
    items = list(range(12))
    want = fork_map(_result, context, items, 1)
    seen: list[int] = []
    got = fork_map(_result, context, items, 2, seen.append, shared_bytes=shared_bytes)
    assert seen == list(range(1, 13))
    assert _same(want, got)
    assert all(_in_shared_memory(r["big"]) for r in got) == (shared_bytes > 64)  # type: ignore[arg-type]
    got[3]["big"][0] = -1.0  # arrays from the arena are the caller's to use (writable)
    assert got[3]["big"][0] == -1.0


@needs_fork
def test_arena_arrays_outlive_the_pool() -> None:
    got = fork_map(_result, (np.arange(200_000, dtype=np.float64), "x"), list(range(4)), 2,
                   shared_bytes=10_000_000)
    del got[:2]
    total = sum(float(r["big"].sum()) for r in got)  # type: ignore[union-attr]
    assert total == sum(float((np.arange(k, k + 50_000, dtype=np.float64) * k).sum()) for k in (2, 3))


def _pid(context: None, k: int) -> int:
    return os.getpid()


@pytest.mark.parametrize("jobs", [1, 2])
def test_meanwhile_runs_here_beside_even_one_item(jobs: int) -> None:
    """The caller's own work runs in the caller's process; with workers, even a single item goes
    to one, so the two overlap."""
    ran: list[int] = []
    got = fork_map(_pid, None, [0], jobs, meanwhile=lambda: ran.append(os.getpid()))
    assert ran == [os.getpid()]
    assert (got[0] != os.getpid()) == (jobs > 1 and CAN_FORK)


@pytest.mark.parametrize("jobs", [1, 2])
def test_fork_beside_gives_both_results_each_from_its_process(jobs: int) -> None:
    """The item's result from a worker (with jobs > 1), the caller's own from the caller."""
    from dedupe.forkpool import fork_beside

    theirs, mine = fork_beside(_pid, None, 0, os.getpid, jobs)
    assert mine == os.getpid()
    assert (theirs != os.getpid()) == (jobs > 1 and CAN_FORK)


@pytest.mark.parametrize(("count", "jobs", "sizes"), [
    (10_000, 1, [2048] * 4 + [1808]),  # one process: the largest spans
    (10_000, 2, [1250] * 8),  # two: about four per worker
    (1_000, 2, [256] * 3 + [232]),  # never below the smallest
    (0, 2, []),
])
def test_spans_cover_every_item_once(count: int, jobs: int, sizes: list[int]) -> None:
    from dedupe.forkpool import spans

    got = spans(count, jobs, 2048, 256)
    assert [hi - lo for lo, hi in got] == sizes
    assert [i for lo, hi in got for i in range(lo, hi)] == list(range(count))
