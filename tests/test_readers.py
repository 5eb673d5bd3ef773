"""Reader behaviour: what is read, how records map to Documents, and how bad input is reported."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupe import readers
from dedupe.errors import BadRecordError, DedupeError, NoInputError
from dedupe.model import BadRecord, Document
from dedupe.readers import Reader, ReadOptions, host_of, read_documents, split_suffix
from dedupe.writers import write_jsonl

PARSERS: dict[str, Callable[[bytes], Any]] = {
    "orjson": readers._fast_loads,
    "stdlib": readers._stdlib_loads,
}


@pytest.fixture(params=sorted(PARSERS))
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with each JSON parser: both must behave identically."""
    if request.param == "orjson" and readers._fast_loads is readers._stdlib_loads:
        pytest.skip("orjson is not installed")
    monkeypatch.setattr(readers, "_loads", PARSERS[request.param])
    return request.param


@contextlib.contextmanager
def using_parser(name: str) -> Iterator[None]:
    """The parser switch for hypothesis tests, which cannot use function-scoped fixtures."""
    saved = readers._loads
    readers._loads = PARSERS[name]
    try:
        yield
    finally:
        readers._loads = saved


def write_lines(path: Path, lines: list[bytes | str]) -> str:
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return str(path)


def record(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False)


# --- JSONL --------------------------------------------------------------------------------------


def test_jsonl_records_become_documents(tmp_path: Path, parser: str) -> None:
    path = write_lines(
        tmp_path / "dump.jsonl",
        [record(id="a", text="Hello", title="T"), "", "   ", record(id=7, text="Wörld", lang="de")],
    )
    docs, bad = read_documents([path])
    assert bad == []
    assert docs == [
        Document("a", "Hello", "", path, 1, {"id": "a", "title": "T"}),
        Document("7", "Wörld", "", path, 4, {"id": 7, "lang": "de"}),
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_read_as_json_lines_as_stdin_is(tmp_path: Path) -> None:
    """`dedupe scan <(zcat dump.jsonl.gz)` hands over /dev/fd/63, a pipe with no suffix: read as
    one text document, the dump became a single page."""
    pipe = tmp_path / "63"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text(record(id="a", text="one") + "\n"
                                                              + record(id="b", text="two") + "\n"), daemon=True)
    writer.start()
    docs, bad = read_documents([str(pipe)])
    writer.join(10)
    assert [(d.id, d.text) for d in docs] == [("a", "one"), ("b", "two")] and bad == []


def test_missing_or_null_id_falls_back_to_source_and_line(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", [record(text="x"), record(id=None, text="y")])
    docs, _ = read_documents([path])
    assert [d.id for d in docs] == [f"{path}:1", f"{path}:2"]


def test_custom_text_and_id_fields(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "d.ndjson", [record(key="k1", body="B", text="not this")])
    docs, bad = read_documents([path], ReadOptions(text_field="body", id_field="key"))
    assert bad == []
    assert (docs[0].id, docs[0].text, dict(docs[0].fields)) == ("k1", "B", {"key": "k1", "text": "not this"})


@pytest.mark.parametrize(
    ("fields", "site"),
    [
        ({"url": "https://WWW.Example.com:8443/a?b=1"}, "www.example.com"),
        ({"url": "news.example.org/story/1", "site": "ignored"}, "news.example.org"),
        ({"url": "", "site": "fallback"}, "fallback"),
        ({"url": None, "site": "fallback"}, "fallback"),
        ({"site": 42}, ""),
        ({}, ""),
    ],
)
def test_default_site(tmp_path: Path, parser: str, fields: dict[str, Any], site: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", [record(text="x", **fields)])
    docs, _ = read_documents([path])
    assert docs[0].site == site


@pytest.mark.parametrize(
    ("value", "site"),
    [("Example Wire", "Example Wire"), ("https://a.example.com/x", "a.example.com"), (None, "")],
)
def test_explicit_site_field(tmp_path: Path, parser: str, value: Any, site: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", [record(text="x", publisher=value, url="https://other.org/")])
    docs, _ = read_documents([path], ReadOptions(site_field="publisher"))
    assert docs[0].site == site


def test_host_of_agrees_with_urlsplit_on_awkward_urls() -> None:
    assert host_of("http://user:pw@Host.org:80/x") == "host.org"
    assert host_of("http://[::1]:8080/") == "::1"
    assert host_of("//cdn.example.com/a.js") == "cdn.example.com"
    assert host_of("http://[broken/") == ""
    assert host_of("") == ""


def test_each_bad_line_is_skipped_with_its_line_and_reason(tmp_path: Path, parser: str) -> None:
    path = write_lines(
        tmp_path / "d.jsonl",
        [
            record(id=1, text="good"),
            '{"id": 2, "text": ',
            "[1, 2]",
            record(id=4, body="no text"),
            record(id=5, text=["not", "a", "string"]),
            b'{"id": 6, "text": "caf\xe9"}',
            "null",
            record(id=8, text="also good"),
            record(id=9, text=None),
        ],
    )
    docs, bad = read_documents([path])
    assert [d.id for d in docs] == ["1", "8"]
    assert [(b.source, b.line) for b in bad] == [(path, n) for n in (2, 3, 4, 5, 6, 7, 9)]
    reasons = [b.reason for b in bad]
    assert reasons[0].startswith("invalid JSON: ")
    assert reasons[1] == "not a JSON object: array"
    assert reasons[2] == "missing text field 'text'"
    assert reasons[3].startswith("missing text field 'text': got array")
    assert reasons[4] == "not valid UTF-8"
    assert reasons[5] == "not a JSON object: null"
    assert reasons[6] == "missing text field 'text': got null, not a string"


def test_both_parsers_report_the_same_reason(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", ['{"text": "x",}', "{'text': 1}", "tru", '{"text": "\t"}'])
    results = []
    for name in PARSERS:
        with using_parser(name):
            results.append(read_documents([path])[1])
    assert results[0] == results[1]
    assert all(b.reason.startswith("invalid JSON: ") for b in results[0])


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file_is_a_bad_record_at_line_zero(tmp_path: Path, parser: str, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    docs, bad = read_documents([str(path)])
    assert docs == []
    assert bad == [BadRecord(str(path), 0, "empty file")]


def test_utf8_bom_on_first_line_is_accepted(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + record(text="x").encode()])
    docs, bad = read_documents([path])
    assert (len(docs), bad) == (1, [])


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ('{"text": "x", "n": 123456789012345678901234567890}', "n", 123456789012345678901234567890),
        ('{"text": "x", "n": -99999999999999999999}', "n", -99999999999999999999),
        ('{"text": "x", "id": 100000000000000000000}', "id", 100000000000000000000),
        ('{"text": "x", "n": 1e300}', "n", 1e300),
        ('{"text": "x", "n": "\\ud800"}', "n", "\ud800"),
        ('{"text": "x", "n": 1, "n": 2}', "n", 2),
        ('{"text": "x", "n": Infinity}', "n", float("inf")),
    ],
)
def test_parsers_agree_where_orjson_differs(
    tmp_path: Path, parser: str, line: str, field: str, expected: Any
) -> None:
    path = write_lines(tmp_path / "d.jsonl", [line])
    docs, bad = read_documents([path])
    assert bad == []
    assert docs[0].fields[field] == expected
    assert type(docs[0].fields[field]) is type(expected)


def test_big_integer_id_keeps_every_digit(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", ['{"id": 123456789012345678901234567890, "text": "x"}'])
    docs, _ = read_documents([path])
    assert docs[0].id == "123456789012345678901234567890"


def test_deep_nesting_is_a_bad_record_not_a_crash(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", ['{"text": "x", "n": ' + "[" * 5000 + "]" * 5000 + "}"])
    docs, bad = read_documents([path])
    assert docs == []
    assert bad[0].reason.startswith("invalid JSON: ")


json_lines = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=30).map(str.encode),
    st.dictionaries(
        st.sampled_from(["text", "id", "url", "site", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=6,
        ),
    )
    .map(lambda obj: json.dumps(obj).encode())
    .flatmap(lambda line: st.sampled_from([line, line[:-1], line[1:], line.replace(b":", b"", 1)])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(json_lines, max_size=6))
def test_both_parsers_give_identical_results(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    results = []
    for name in PARSERS:
        with using_parser(name):
            docs, bad = read_documents([str(path)])
            results.append((repr(docs), bad))
    assert results[0] == results[1]


def test_json_file_with_one_object_per_line_is_jsonl(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "d.json", [record(text="a"), record(text="b")])
    docs, bad = read_documents([path])
    assert ([d.text for d in docs], bad) == (["a", "b"], [])


@pytest.mark.parametrize("content", ['{\n  "text": "pretty"\n}\n', '[{"text": "a"}, {"text": "b"}]\n'])
def test_json_file_that_is_not_json_lines_is_one_bad_record(
    tmp_path: Path, parser: str, content: str
) -> None:
    path = tmp_path / "d.json"
    path.write_text(content)
    docs, bad = read_documents([str(path)])
    assert docs == []
    assert [(b.line, b.reason.startswith("not JSON Lines")) for b in bad] == [(0, True)]


# --- strict and missing inputs ------------------------------------------------------------------


def test_strict_raises_on_first_bad_record(tmp_path: Path, parser: str) -> None:
    path = write_lines(tmp_path / "d.jsonl", [record(text="ok"), "{oops", record(text="never")])
    reader = Reader([path], ReadOptions(strict=True))
    seen = []
    with pytest.raises(BadRecordError) as caught:
        seen.extend(reader)
    assert caught.value.exit_code == 65
    assert caught.value.record == BadRecord(path, 2, caught.value.record.reason)
    assert str(caught.value).startswith(f"{path}:2: invalid JSON")
    assert [d.text for d in seen] == ["ok"]


def test_strict_raises_on_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_bytes(b"")
    with pytest.raises(BadRecordError, match="empty file"):
        read_documents([str(tmp_path / "e.jsonl")], ReadOptions(strict=True))


def test_missing_path_raises_before_anything_is_read(tmp_path: Path) -> None:
    good = write_lines(tmp_path / "d.jsonl", [record(text="x")])
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(NoInputError) as caught:
        Reader([good, missing])
    assert caught.value.exit_code == 66
    assert str(caught.value) == f"{missing}: no such file or directory"


@pytest.mark.parametrize("contents", [{}, {".hidden.txt": b"text"}, {"img.png": b"\x89PNG\0\0data"}])
def test_folder_without_text_files_is_no_input(tmp_path: Path, contents: dict[str, bytes]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    with pytest.raises(NoInputError, match="no text files"):
        Reader([str(folder)])


def test_bad_records_reset_on_each_iteration(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", ["{bad", record(text="x")])
    reader = Reader([path])
    assert len(list(reader)) == 1
    assert len(list(reader)) == 1
    assert len(reader.bad) == 1


# --- compression --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz", ".zst"])
def test_every_compression_round_trips_with_the_writer(tmp_path: Path, parser: str, suffix: str) -> None:
    records = [
        {"id": f"r{i}", "text": f"text {i} ✓", "url": f"https://s{i % 3}.example/x"} for i in range(50)
    ]
    target = tmp_path / f"out.jsonl{suffix}"
    assert write_jsonl(target, records) == 50
    docs, bad = read_documents([str(target)])
    assert bad == []
    assert [(d.id, d.text, d.site, d.line) for d in docs] == [
        (r["id"], r["text"], f"s{i % 3}.example", i + 1) for i, r in enumerate(records)
    ]


def _compress(suffix: str, data: bytes) -> bytes:
    if suffix == ".zst":
        import zstandard

        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    if suffix == ".bz2":
        return bz2.compress(data, 1)  # small blocks, so a cut file still holds whole blocks
    return {".gz": gzip.compress, ".xz": lzma.compress}[suffix](data)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_truncated_stream_keeps_what_was_read(tmp_path: Path, parser: str, suffix: str) -> None:
    lines = [record(id=i, text=f"document number {i} " * 20) for i in range(3000)]
    compressed = _compress(suffix, "\n".join(lines).encode() + b"\n")
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(compressed[: len(compressed) * 2 // 3])
    docs, bad = read_documents([str(path)])
    assert 0 < len(docs) < 3000
    assert [d.id for d in docs] == [str(i) for i in range(len(docs))]
    assert len(bad) == 1
    assert (bad[0].source, bad[0].line) == (str(path), len(docs) + 1)
    assert bad[0].reason.startswith("truncated or corrupt compressed stream")


def test_corrupt_stream_is_a_bad_record(tmp_path: Path, parser: str) -> None:
    path = tmp_path / "fake.jsonl.gz"
    path.write_bytes(record(text="not gzipped").encode())
    docs, bad = read_documents([str(path)])
    assert docs == []
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [(1, "truncated or corrupt compressed stream")]


def test_concatenated_zstd_frames_are_all_read(tmp_path: Path) -> None:
    path = tmp_path / "multi.jsonl.zst"
    path.write_bytes(_compress(".zst", b'{"text": "a"}\n') + _compress(".zst", b'{"text": "b"}\n'))
    docs, bad = read_documents([str(path)])
    assert ([d.text for d in docs], bad) == (["a", "b"], [])


def test_zst_without_zstandard_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.jsonl.zst"
    path.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(DedupeError) as caught:
        Reader([str(path)])
    message = str(caught.value)
    assert "pip install 'dedupe[zstd]'" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", (".jsonl", "")),
        ("A.NDJSON.GZ", (".ndjson", ".gz")),
        ("a.json.zst", (".json", ".zst")),
        ("notes.txt.bz2", (".txt", ".bz2")),
        ("data.xz", ("", ".xz")),
        ("README", ("", "")),
    ],
)
def test_split_suffix(name: str, expected: tuple[str, str]) -> None:
    assert split_suffix(name) == expected


# --- stdin --------------------------------------------------------------------------------------


def test_stdin_is_read_as_jsonl(tmp_path: Path, parser: str) -> None:
    stdin = io.BytesIO(f"{record(id='s1', text='from stdin')}\n\nnot json\n".encode())
    file = write_lines(tmp_path / "d.jsonl", [record(id="f1", text="from file")])
    reader = Reader(["-", file], stdin=stdin)
    docs = list(reader)
    assert [(d.id, d.source, d.line) for d in docs] == [("s1", "<stdin>", 1), ("f1", file, 1)]
    assert [(b.source, b.line) for b in reader.bad] == [("<stdin>", 3)]


def test_empty_stdin_is_reported(parser: str) -> None:
    reader = Reader(["-"], stdin=io.BytesIO(b""))
    assert list(reader) == []
    assert reader.bad == [BadRecord("<stdin>", 0, "empty file")]


# --- text files and folders ---------------------------------------------------------------------


@pytest.fixture
def text_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "site_dump"
    files = {
        "root.txt": "At the root.",
        "alpha.com/b.txt": "Second.",
        "alpha.com/a.txt": "First.",
        "alpha.com/deeper/c.md": "Nested.",
        "beta.org/x.html": "<p>Beta</p>",
        ".git/config": "hidden folder",
        "beta.org/.DS_Store": "hidden file",
    }
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    (folder / "beta.org/logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    return folder


def test_folder_reads_every_visible_text_file_sorted(text_folder: Path) -> None:
    docs, bad = read_documents([str(text_folder)])
    assert bad == []
    assert [d.id for d in docs] == [
        "alpha.com/a.txt",
        "alpha.com/b.txt",
        "alpha.com/deeper/c.md",
        "beta.org/x.html",
        "root.txt",
    ]
    first = docs[0]
    assert (first.text, first.site, first.source, first.line) == (
        "First.",
        "",
        str(text_folder / "alpha.com" / "a.txt"),
        0,
    )
    assert first.fields == {"path": "alpha.com/a.txt"}


def test_folder_sites_come_from_the_top_folder(text_folder: Path) -> None:
    docs, _ = read_documents([str(text_folder)], ReadOptions(site_from_folder=True))
    assert {d.id: d.site for d in docs} == {
        "alpha.com/a.txt": "alpha.com",
        "alpha.com/b.txt": "alpha.com",
        "alpha.com/deeper/c.md": "alpha.com",
        "beta.org/x.html": "beta.org",
        "root.txt": "",
    }


def test_folder_bad_files_are_reported(text_folder: Path) -> None:
    (text_folder / "latin1.txt").write_bytes("café".encode("latin-1"))
    (text_folder / "blank.txt").write_bytes(b"")
    docs, bad = read_documents([str(text_folder)])
    assert len(docs) == 5
    assert bad == [
        BadRecord(str(text_folder / "blank.txt"), 0, "empty file"),
        BadRecord(str(text_folder / "latin1.txt"), 0, "not valid UTF-8"),
    ]


def test_single_text_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "article.txt"
    path.write_text("Line one.\nLine two.\n", encoding="utf-8")
    docs, bad = read_documents([str(path)])
    assert bad == []
    assert docs == [
        Document("article.txt", "Line one.\nLine two.\n", "", str(path), 0, {"path": "article.txt"})
    ]


def test_compressed_text_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "article.txt.gz"
    path.write_bytes(gzip.compress("Grüße\n".encode()))
    docs, _ = read_documents([str(path)])
    assert [(d.id, d.text) for d in docs] == [("article.txt.gz", "Grüße\n")]


@pytest.mark.parametrize(
    ("data", "reason"), [(b"\xff\xfeb\x00a\x00d\x00", "binary file"), (b"caf\xe9", "not valid UTF-8")]
)
def test_unusable_single_text_file_is_a_bad_record(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(data)
    docs, bad = read_documents([str(path)])
    assert (docs, bad) == ([], [BadRecord(str(path), 0, reason)])


def test_strict_folder_raises_on_bad_file(text_folder: Path) -> None:
    (text_folder / "aaa.txt").write_bytes(b"\xff\xff")
    with pytest.raises(BadRecordError) as caught:
        read_documents([str(text_folder)], ReadOptions(strict=True))
    assert caught.value.record == BadRecord(str(text_folder / "aaa.txt"), 0, "not valid UTF-8")
