"""Writer behaviour: outputs appear whole or not at all, and inputs are never overwritten."""

from __future__ import annotations

import bz2
import errno
import gzip
import json
import lzma
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupe import readers, writers
from dedupe.errors import DedupeError, OutputError
from dedupe.readers import Reader, ReadOptions
from dedupe.writers import (
    FOLDER_MARK,
    atomic_path,
    ensure_not_input,
    open_atomic,
    write_encoded,
    write_jsonl,
    write_text_folder,
)

PACKAGE_DIR = Path(writers.__file__).resolve().parent


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders a writer left behind."""
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


# --- atomic_path / open_atomic ------------------------------------------------------------------


def test_atomic_path_is_a_hidden_sibling_that_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".out.txt.") and str(os.getpid()) in temp.name
        temp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_removes_the_temp_on_error(tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(error), atomic_path(target) as temp:
        temp.write_text("partial")
        raise error
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_full_disk_is_an_output_error_and_leaves_the_previous_target(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    target, folder = tmp_path / "out.jsonl", tmp_path / "out"
    target.write_text("old")
    write_text_folder(folder, [("a.txt", "old")])

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "_fsync_path", full)
    monkeypatch.setattr(os, "sync", full)
    with pytest.raises(OutputError, match=r"out\.jsonl: cannot write: No space left on device") as raised:
        write_jsonl(target, [{"text": "new"}])
    assert raised.value.exit_code == 74
    with pytest.raises(OutputError, match="out: cannot write: No space left on device"):
        write_text_folder(folder, [("a.txt", "new")])
    assert target.read_text() == "old" and (folder / "a.txt").read_text() == "old"
    assert leftovers(tmp_path) == []


def test_an_os_error_of_the_callers_own_work_is_not_called_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        (tmp_path / "missing-input.jsonl").read_text()
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_written_in_place_not_replaced_by_a_file(tmp_path: Path) -> None:
    # the same path as /dev/null or /dev/stdout (a rename would put a file where the device was)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert write_jsonl(fifo, [{"id": "a"}, {"id": "b"}]) == 2
    reader.join(10)
    assert received == [b'{"id": "a"}\n{"id": "b"}\n']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and leftovers(tmp_path) == []


def test_a_symbolic_link_keeps_pointing_at_the_file_it_names_which_is_replaced(tmp_path: Path) -> None:
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("old\n")
    link.symlink_to(real.name)
    write_jsonl(link, [{"id": "new"}])
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_text() == '{"id": "new"}\n' and leftovers(tmp_path) == []
    folder, folder_link = tmp_path / "folder", tmp_path / "folder-link"
    write_text_folder(folder, [("old.txt", "old")])
    folder_link.symlink_to(folder.name)
    write_text_folder(folder_link, [("new.txt", "new")])
    assert folder_link.is_symlink() and sorted(os.listdir(folder)) == [FOLDER_MARK, "new.txt"]
    assert leftovers(tmp_path) == []


def test_atomic_path_refuses_a_folder_or_a_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(DedupeError, match="is a folder"), atomic_path(tmp_path):
        pass
    with pytest.raises(DedupeError, match="does not exist"), atomic_path(tmp_path / "no" / "x.txt"):
        pass


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_open_atomic_error_leaves_the_previous_target(tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "out.jsonl.gz"
    write_jsonl(target, [{"text": "previous"}])
    before = target.read_bytes()
    with pytest.raises(error), open_atomic(target) as out:
        out.write("x" * 100_000)
        raise error
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("suffix", "decompress"),
    [
        ("", lambda data: data),
        (".gz", gzip.decompress),
        (".bz2", bz2.decompress),
        (".xz", lzma.decompress),
        (".zst", lambda data: __import__("zstandard").ZstdDecompressor().decompressobj().decompress(data)),
    ],
)
def test_open_atomic_text_is_compressed_by_suffix(tmp_path: Path, suffix: str, decompress: Any) -> None:
    target = tmp_path / f"notes.txt{suffix}"
    with open_atomic(target) as out:
        out.write("héllo\nwörld\n")
    assert decompress(target.read_bytes()) == "héllo\nwörld\n".encode()
    encoded = tmp_path / f"encoded.txt{suffix}"  # the same file from text already encoded
    write_encoded(encoded, "héllo\nwörld\n".encode())
    assert decompress(encoded.read_bytes()) == "héllo\nwörld\n".encode()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_encoded_error_leaves_the_previous_target(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"report.json{suffix}"
    write_encoded(target, b'{"previous": true}\n')
    before = target.read_bytes()
    with pytest.raises(TypeError):
        write_encoded(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_open_atomic_binary_writes_bytes_as_given(tmp_path: Path) -> None:
    target = tmp_path / "blob.gz"
    with open_atomic(target, "wb") as out:
        out.write(b"raw")
    assert target.read_bytes() == b"raw"


def test_open_atomic_rejects_other_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError), open_atomic(tmp_path / "x", "a"):  # type: ignore[arg-type]
        pass


def test_open_atomic_zst_without_zstandard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(DedupeError, match=r"pip install 'dedupe\[zstd\]'"), open_atomic(tmp_path / "o.zst"):
        pass
    assert os.listdir(tmp_path) == []


# The child registers the package without running dedupe/__init__.py, which imports the whole
# pipeline (about a second); the writer itself needs only writers, readers, errors and model.
KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, types
    package = types.ModuleType("dedupe")
    package.__path__ = [sys.argv[2]]
    sys.modules["dedupe"] = package
    from dedupe.writers import open_atomic

    with open_atomic(sys.argv[1]) as out:
        for i in range(20000):
            out.write('{"id": %d, "text": "%s"}\\n' % (i, "x" * 200))
        out.flush()
        print("writing", flush=True)
        while True:
            out.write('{"id": 0, "text": "more"}\\n')
            time.sleep(0.001)
    """
)


@pytest.fixture
def killed_writer() -> Iterator[Any]:
    """Run a writer in a subprocess and SIGKILL it mid-write, once it has written a lot."""
    processes: list[subprocess.Popen[str]] = []

    def run(target: Path) -> None:
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER, str(target), str(PACKAGE_DIR)],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "writing\n"
        temps = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
        assert len(temps) == 1 and temps[0].stat().st_size > 10_000
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_leaves_no_target(tmp_path: Path, killed_writer: Any) -> None:
    target = tmp_path / "out.jsonl"
    killed_writer(target)
    assert not target.exists()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_leaves_previous_target_unchanged(tmp_path: Path, killed_writer: Any) -> None:
    target = tmp_path / "out.jsonl.gz"
    write_jsonl(target, [{"text": "previous run"}])
    before = target.read_bytes()
    killed_writer(target)
    assert target.read_bytes() == before


# --- write_jsonl --------------------------------------------------------------------------------


def test_write_jsonl_writes_one_object_per_line(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    count = write_jsonl(target, iter([{"id": 1, "text": "naïve ☃"}, {"id": 2, "text": "line\nbreak"}]))
    assert count == 2
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines == ['{"id": 1, "text": "naïve ☃"}', '{"id": 2, "text": "line\\nbreak"}']


def test_write_jsonl_dash_writes_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert write_jsonl("-", [{"text": "é"}]) == 1
    assert capsys.readouterr().out == '{"text": "é"}\n'
    assert os.listdir(tmp_path) == []


def test_write_jsonl_keeps_lone_surrogates_as_escapes(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    write_jsonl(target, [{"text": "bad \ud800 char"}])
    assert target.read_bytes() == b'{"text": "bad \\ud800 char"}\n'
    assert json.loads(target.read_text())["text"] == "bad \ud800 char"


def test_write_jsonl_error_midway_keeps_previous_target(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous\n")
    with pytest.raises(TypeError):
        write_jsonl(target, [{"text": "ok"}, {"text": {1, 2}}])
    assert target.read_text() == "previous\n"
    assert leftovers(tmp_path) == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=()), max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
json_records = st.fixed_dictionaries(
    {"text": st.text(st.characters(exclude_categories=()))},
    optional={"id": json_values, "url": st.text(max_size=20), "site": json_values},
).flatmap(
    lambda base: st.dictionaries(st.text(max_size=6), json_values, max_size=3).map(
        lambda extra: {**extra, **base}
    )
)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(json_records, max_size=5))
def test_arbitrary_records_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, records: list[dict[str, Any]]
) -> None:
    monkeypatch.setattr(writers, "_fsync_path", lambda path: None)  # content is tested here, not durability
    monkeypatch.setattr(writers, "_fsync_dir", lambda path: None)
    target = tmp_path / f"round.jsonl{suffix}"
    assert write_jsonl(target, records) == len(records)
    for loads in {readers._fast_loads, readers._stdlib_loads}:
        saved, readers._loads = readers._loads, loads
        try:
            reader = Reader([str(target)])
            docs = list(reader)
        finally:
            readers._loads = saved
        if not records:
            assert docs == [] and [b.reason for b in reader.bad] == ["empty file"]
            continue
        assert reader.bad == []
        for line, (doc, original) in enumerate(zip(docs, records, strict=True), 1):
            expected_id = f"{target}:{line}" if original.get("id") is None else str(original["id"])
            assert (doc.id, doc.text, doc.line) == (expected_id, original["text"], line)
            assert doc.fields == {k: v for k, v in original.items() if k != "text"}


# --- write_text_folder --------------------------------------------------------------------------


def test_write_text_folder_creates_nested_files(tmp_path: Path) -> None:
    target = tmp_path / "out"
    count = write_text_folder(target, [("a.txt", "A"), ("site.com/deep/b.txt", "B\r\nkept")])
    assert count == 2
    assert (target / "a.txt").read_text() == "A"
    assert (target / "site.com" / "deep" / "b.txt").read_bytes() == b"B\r\nkept"
    assert leftovers(tmp_path) == []


def test_write_text_folder_replaces_the_old_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_text_folder(target, [("old.txt", "old"), ("sub/old.txt", "old")])
    write_text_folder(target, [("new.txt", "new")])
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [FOLDER_MARK, "new.txt"]
    assert leftovers(tmp_path) == []


def test_write_text_folder_round_trips_with_the_folder_reader(tmp_path: Path) -> None:
    files = [("alpha.com/1.txt", "One."), ("beta.org/2.txt", "Two."), ("root.txt", "Root.")]
    write_text_folder(tmp_path / "out", files)
    docs = list(Reader([str(tmp_path / "out")], ReadOptions(site_from_folder=True)))
    assert [(d.id, d.text, d.site) for d in docs] == [
        ("alpha.com/1.txt", "One.", "alpha.com"),
        ("beta.org/2.txt", "Two.", "beta.org"),
        ("root.txt", "Root.", ""),
    ]


@pytest.mark.parametrize(
    "rel", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "\\abs.txt", "C:/x.txt", "..\\x", "", "."]
)
def test_write_text_folder_rejects_paths_outside_the_folder(tmp_path: Path, rel: str) -> None:
    target = tmp_path / "out"
    write_text_folder(target, [("keep.txt", "kept")])
    with pytest.raises(DedupeError, match="refusing to write"):
        write_text_folder(target, [("fine.txt", "x"), (rel, "evil")])
    assert sorted(p.name for p in target.iterdir()) == [FOLDER_MARK, "keep.txt"]
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(
    "files", [[("a.txt", "1"), ("a.txt", "2")], [("a", "file"), ("a/b.txt", "under a file")]]
)
def test_write_text_folder_rejects_clashing_paths(tmp_path: Path, files: list[tuple[str, str]]) -> None:
    with pytest.raises(DedupeError, match="clashes"):
        write_text_folder(tmp_path / "out", files)
    assert os.listdir(tmp_path) == []


def test_write_text_folder_interrupted_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_text_folder(target, [("keep.txt", "kept")])

    def files() -> Iterator[tuple[str, str]]:
        yield "new.txt", "new"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_text_folder(target, files())
    assert sorted(p.name for p in target.iterdir()) == [FOLDER_MARK, "keep.txt"]
    assert leftovers(tmp_path) == []


def test_write_text_folder_refuses_to_replace_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(DedupeError, match="not a folder"):
        write_text_folder(target, [("a.txt", "A")])
    assert target.read_text() == "a file"


# --- ensure_not_input ---------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.txt").write_text("a")
    (tmp_path / "dump.jsonl").write_text('{"text": "x"}\n')
    return tmp_path


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("dump.jsonl", "overwrite input"),
        ("./in/../dump.jsonl", "overwrite input"),
        ("in", "overwrite input"),
        ("in/out.jsonl", "inside input folder"),
        ("in/sub/new", "inside input folder"),
        (".", "holds input"),
    ],
)
def test_ensure_not_input_refuses(
    inputs: Path, monkeypatch: pytest.MonkeyPatch, output: str, message: str
) -> None:
    monkeypatch.chdir(inputs)
    with pytest.raises(DedupeError, match=message):
        ensure_not_input(Path(output), ["-", str(inputs / "dump.jsonl"), "in"])


def test_ensure_not_input_catches_hard_links(inputs: Path) -> None:
    os.link(inputs / "dump.jsonl", inputs / "alias.jsonl")
    with pytest.raises(DedupeError):
        ensure_not_input(inputs / "alias.jsonl", [str(inputs / "dump.jsonl")])


def test_ensure_not_input_allows_separate_outputs(inputs: Path) -> None:
    ensure_not_input(inputs / "out.jsonl", [str(inputs / "dump.jsonl"), str(inputs / "in")])
    ensure_not_input(inputs / "in-clean", [str(inputs / "in")])
    ensure_not_input(Path("-"), [str(inputs / "dump.jsonl")])
