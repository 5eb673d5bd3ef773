"""Kernels made ready before a command reads its input: compiled in a child on a first run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dedupe import Settings, kernel_cache, kernels, scan
from dedupe.forkpool import CAN_FORK

pytestmark = pytest.mark.skipif(not (kernels.AVAILABLE and CAN_FORK), reason="needs numba and fork")


def test_an_empty_cache_is_told_from_a_filled_one(tmp_path: Path) -> None:
    kernel_cache.prepare()  # this process's kernels are loaded, so their cache is filled (or cannot be used)
    assert kernel_cache.compiled_on_disk()
    empty = tmp_path / "numba-cache"
    empty.mkdir()
    check = "from dedupe import kernel_cache; print(kernel_cache.compiled_on_disk())"
    told = subprocess.run([sys.executable, "-c", check], env={**os.environ, "NUMBA_CACHE_DIR": str(empty)},
                          capture_output=True, text=True, check=True)
    assert told.stdout.strip() == "False"


@pytest.fixture
def loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`kernel_cache` as on a first run, its loading replaced by a note of the process that loads."""
    log = tmp_path / "loads.txt"

    def load() -> None:
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")

    monkeypatch.setattr(kernel_cache, "_prepared", False)
    monkeypatch.setattr(kernel_cache, "compiled_on_disk", lambda: False)
    monkeypatch.setattr(kernel_cache, "_load", load)
    return log


def test_a_first_run_compiles_in_a_child_then_loads_here_once(loads: Path) -> None:
    kernel_cache.prepare()
    kernel_cache.prepare()  # once per process
    child, parent = map(int, loads.read_text().split())
    assert parent == os.getpid() and child != parent


def test_a_child_that_fails_leaves_the_loading_to_this_process(loads: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    me, noted = os.getpid(), kernel_cache._load

    def load() -> None:
        noted()
        if os.getpid() != me:
            raise RuntimeError("no compiler here")

    monkeypatch.setattr(kernel_cache, "_load", load)
    kernel_cache.prepare()
    assert len(loads.read_text().split()) == 2 and int(loads.read_text().split()[-1]) == me


def test_the_sample_goes_through_every_stage() -> None:
    """The built-in pages call the kernels as a run does: chrome, exact and near copies, story
    terms, text that is not ASCII."""
    docs = kernel_cache.sample_documents()
    result = scan(docs, Settings(jobs=1))
    assert result.stats.chrome_paragraphs > 0
    assert {c.kind for c in result.document_clusters} >= {"exact", "near"}
    assert any(not d.text.isascii() for d in docs)


def test_the_dask_engine_makes_them_ready_for_schedulers_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from dedupe import cli_dask

    calls: list[str] = []
    monkeypatch.setattr(kernel_cache, "prepare", lambda: calls.append("prepared"))
    for spec in ("sync", "processes", "local:2", "tcp://scheduler.example:8786"):
        cli_dask._kernels_ready(spec)
    assert calls == ["prepared"] * 3  # a remote cluster's workers have their own cache
