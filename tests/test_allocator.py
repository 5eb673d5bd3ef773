"""The CLI's allocator setting: freed blocks are reused instead of paged in afresh."""

from __future__ import annotations

import subprocess
import sys

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


def _second_block_faults(mode: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    took, faults = done.stdout.split()
    return took, int(faults)


@pytest.mark.skipif(not allocator.is_glibc(), reason="the setting is glibc's")
def test_a_freed_block_is_reused_without_paging_it_in_again() -> None:
    took, faults = _second_block_faults("reuse")
    assert took == "True"
    assert faults < 256  # 16 MiB is 4,096 pages: none of them is paged in again
    _, default_faults = _second_block_faults("default")
    assert default_faults > 1024  # the probe does tell the two apart on this C library


def test_the_setting_is_a_no_op_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "is_glibc", lambda: False)
    assert allocator.reuse_freed_blocks() is False


@pytest.mark.parametrize("command", ["scan", "clean"])
def test_scan_and_clean_set_the_allocator_up_before_reading(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                            command: str) -> None:
    from click.testing import CliRunner

    from dedupe import cli

    calls: list[str] = []
    monkeypatch.setattr(cli.allocator, "reuse_freed_blocks", lambda: calls.append("set") or True)
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"id": "a", "text": "One line of text."}\n', encoding="utf-8")
    args = [command, str(dump), "--quiet"] + (["-o", str(tmp_path / "out.jsonl")] if command == "clean" else [])
    assert CliRunner().invoke(cli.main, args, catch_exceptions=False).exit_code == 0
    assert calls == ["set"]
