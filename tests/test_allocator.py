"""The CLI's memory set-up: freed blocks are reused instead of paged in afresh; arrays on small pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dedupe import allocator

# A block of 16 MiB allocated, written, freed and allocated again: with the setting the second one is
# the first one's memory, already paged in; without it, glibc maps a new block at first and then
# takes one from the heap's top that was never written, so writing it pages it in (4k faults).
_PROBE = """
import ctypes, resource, sys
from dedupe import allocator
took = allocator.reuse_freed_blocks() if sys.argv[1] == "reuse" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 16 << 20

def written_block() -> int:
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block

libc.free(written_block())
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = written_block()
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(script: str, mode: str) -> tuple[str, int]:
    """Run a probe in a fresh interpreter: what the setting call returned, and the count it printed."""
    done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True)
    took, count = done.stdout.split()
    return took, int(count)


@pytest.mark.skipif(not allocator.is_glibc(), reason="the setting is glibc's")
def test_a_freed_block_is_reused_without_paging_it_in_again() -> None:
    took, faults = _probe(_PROBE, "reuse")
    assert took == "True"
    assert faults < 256  # 16 MiB is 4,096 pages: none of them is paged in again
    _, default_faults = _probe(_PROBE, "default")
    assert default_faults > 1024  # the probe does tell the two apart on this C library


def test_the_setting_is_a_no_op_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "is_glibc", lambda: False)
    assert allocator.reuse_freed_blocks() is False


# A 64 MiB numpy array written at once: how much of it the kernel backed with transparent huge pages.
_HUGE_PROBE = """
import sys
import numpy as np
from dedupe import allocator
took = allocator.small_pages_for_arrays() if sys.argv[1] == "small" else None

def huge_kib() -> int:
    with open("/proc/self/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.startswith("AnonHugePages:"))

before = huge_kib()
block = np.ones(64 << 20, dtype=np.uint8)
print(took, huge_kib() - before)
"""
_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_ADVICE_DECIDES = _THP.exists() and "[madvise]" in _THP.read_text() and Path("/proc/self/smaps_rollup").exists()


@pytest.mark.skipif(not _ADVICE_DECIDES, reason="huge pages only where numpy's advice decides them")
def test_arrays_are_not_put_on_huge_pages() -> None:
    _, advised = _probe(_HUGE_PROBE, "default")
    if advised == 0:
        pytest.skip("the kernel had no huge page to give even when advised")
    took, kib = _probe(_HUGE_PROBE, "small")
    assert (took, kib) == ("True", 0)


def test_an_explicit_numpy_madvise_hugepage_is_left_to_rule() -> None:
    probe = "from dedupe import allocator; import numpy as np; m = np._core.multiarray if hasattr(np, '_core') " \
            "else np.core.multiarray; print(allocator.small_pages_for_arrays(), m._get_madvise_hugepage())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          env={**os.environ, "NUMPY_MADVISE_HUGEPAGE": "1"})
    assert done.stdout.split() == ["False", "True"]
    without = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=without)
    assert done.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("command", ["scan", "clean"])
def test_scan_and_clean_set_the_allocator_up_before_reading(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                            command: str) -> None:
    from click.testing import CliRunner

    from dedupe import cli

    calls: list[str] = []
    monkeypatch.setattr(cli.allocator, "tune_for_batches", lambda: calls.append("set"))
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"id": "a", "text": "One line of text."}\n', encoding="utf-8")
    args = [command, str(dump), "--quiet"] + (["-o", str(tmp_path / "out.jsonl")] if command == "clean" else [])
    assert CliRunner().invoke(cli.main, args, catch_exceptions=False).exit_code == 0
    assert calls == ["set"]
