"""fork_map and forked_steps: results in order, the same in workers as in process, whichever way they
travel back; a step's error, or a process that dies, reaches the caller."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np
import pytest

from dedupe.forkpool import CAN_FORK, fork_map, forked_steps

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


def _steps(context: tuple[int, str]) -> Iterator[object]:
    """`count` steps, each its process id and an array; then `end`: "" (none), "error" or "die"."""
    count, end = context
    for k in range(count):
        yield os.getpid(), np.arange(100_000, dtype=np.int64) * k
    if end == "error":
        raise ValueError("step failed")
    if end == "die":
        os._exit(3)


@pytest.mark.parametrize("fork", [False, True])
@pytest.mark.parametrize("shared_bytes", [0, 10_000_000])
def test_forked_steps_come_one_at_a_time_from_the_other_process(fork: bool, shared_bytes: int) -> None:
    with forked_steps(_steps, (3, ""), fork, shared_bytes) as steps:
        got = [next(steps) for _ in range(3)]
        with pytest.raises(StopIteration):
            next(steps)
    pids = {pid for pid, _ in got}  # type: ignore[misc]
    assert (pids != {os.getpid()}) == (fork and CAN_FORK) and len(pids) == 1
    assert [int(a[1]) for _, a in got] == [0, 1, 2]  # type: ignore[misc,index]
    if fork and CAN_FORK:
        assert all(_in_shared_memory(a) for _, a in got) == (shared_bytes > 0)  # type: ignore[misc]


@pytest.mark.parametrize("fork", [False, True])
def test_a_failed_step_raises_in_the_caller_after_the_earlier_results(fork: bool) -> None:
    with forked_steps(_steps, (2, "error"), fork) as steps:
        assert len([next(steps), next(steps)]) == 2
        with pytest.raises(ValueError, match="step failed"):
            next(steps)


@needs_fork
def test_a_forked_process_that_dies_is_an_error_not_a_short_result() -> None:
    with forked_steps(_steps, (1, "die"), True) as steps:
        next(steps)
        with pytest.raises(RuntimeError, match="exit code 3"):
            next(steps)


@needs_fork
def test_leaving_early_ends_the_forked_process() -> None:
    import multiprocessing

    with forked_steps(_steps, (10**9, ""), True) as steps:
        next(steps)
        children = multiprocessing.active_children()
        assert children
    assert not any(child.is_alive() for child in children)
