"""Turn input paths (JSONL files, text files, folders of text files, stdin) into `Document`s.

Inputs are streamed: a JSONL file is read one line at a time, so a dump larger than memory still
works. A record that cannot be used is skipped and remembered as a `BadRecord` (or raised under
`strict`), so one broken line never costs the rest of a file.

JSON is parsed with `orjson` when it is installed, else with the stdlib. The stdlib is the reference:
whenever `orjson` rejects a line, or may have rounded an integer too large for 64 bits to a float,
the line is parsed again with the stdlib, so both give the same documents and the same reasons.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

from .errors import BadRecordError, DedupeError, NoInputError
from .model import BadRecord, Document

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
STDIN_SOURCE = "<stdin>"

_SNIFF_BYTES = 8192
_READ_BUFFER = 1 << 20
_ZSTD_CHUNK = 1 << 17  # compressed bytes per step: bounds the memory one step can decompress to
_BOM = b"\xef\xbb\xbf"
# orjson turns integers outside the 64-bit range into floats; any float this large may be one.
_BIG_FLOAT = 9.2e18


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How records map onto `Document` fields, and whether a bad record stops the run."""

    text_field: str = "text"
    id_field: str = "id"
    site_field: str | None = None
    site_from_folder: bool = False
    strict: bool = False


def require_zstandard() -> ModuleType:
    """The optional `zstandard` module, or a one-line error telling the user how to get it."""
    try:
        import zstandard
    except ImportError:
        raise DedupeError(
            "reading or writing .zst files needs the zstandard package: pip install 'dedupe[zstd]'"
        ) from None
    return zstandard


def split_suffix(name: str) -> tuple[str, str]:
    """(format suffix, compression suffix) of a file name, lowercased: "a.JSONL.gz" -> (".jsonl", ".gz")."""
    stem, dot, last = name.lower().rpartition(".")
    if not dot:
        return "", ""
    compression = "." + last if "." + last in COMPRESSIONS else ""
    if compression:
        stem, dot, last = stem.rpartition(".")
        if not dot:
            return "", compression
    return "." + last, compression


# --- JSON parsing -------------------------------------------------------------------------------


def _stdlib_loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


_fast_loads: Callable[[bytes], Any]
try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = _stdlib_loads

_loads: Callable[[bytes], Any] = _fast_loads


class _Blank:
    """Marker for a line holding only whitespace."""


class _Problem:
    """Why a line could not be parsed; stands in for the record."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_BLANK = _Blank()
_ABSENT = _Blank()  # a record without the text field (its value may also be null)


def _parse_reference(raw: bytes, first_line: bool) -> Any:
    """Parse a line with the stdlib, classifying failures; the slow path, only for rejected lines."""
    if not raw.strip():
        return _BLANK
    if first_line and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _Problem("not valid UTF-8")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        msg = exc.msg.removesuffix(" at")  # "Unterminated string starting at": the position follows
        return _Problem(f"invalid JSON: {msg[:1].lower()}{msg[1:]} at column {exc.colno}")
    except RecursionError:
        return _Problem("invalid JSON: nested too deeply")


def _may_hold_big_int(value: Any) -> bool:
    """True if `value` holds a float large enough to be an integer orjson could not keep exact."""
    kind = type(value)
    if kind is float:
        return value >= _BIG_FLOAT or value <= -_BIG_FLOAT
    if kind is dict:
        return any(_may_hold_big_int(item) for item in value.values())
    if kind is list:
        return any(_may_hold_big_int(item) for item in value)
    return False


def _exact_numbers(record: dict[str, Any], raw: bytes, first_line: bool) -> dict[str, Any]:
    """The stdlib's parse of a line orjson may have rounded (it keeps big integers exact)."""
    reference = _parse_reference(raw, first_line)
    return reference if type(reference) is dict else record


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for bad-record reasons."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "number"


# --- sites --------------------------------------------------------------------------------------


# scheme://[userinfo@]host[:port] followed by the path; covers nearly every URL in a dump, far
# faster than urlsplit, which handles the rest (IPv6 literals, odd schemes, stray whitespace).
_SIMPLE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:@\[\]\s]*)(?::[0-9]*)?(?:[/?#]|\Z)")


def host_of(url: str) -> str:
    """Lowercased host of a URL ("" if it has none); a bare "example.com/page" counts as a URL."""
    match = _SIMPLE_URL.match(url)
    if match:
        return match.group(1).lower()
    if "://" not in url and not url.startswith("//"):
        url = "//" + url
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _default_site(record: Mapping[str, Any]) -> str:
    """Host of `url` when it has one, else a string `site` field, else ""."""
    url = record.get("url")
    if url and type(url) is str:
        host = host_of(url)
        if host:
            return host
    site = record.get("site")
    return site if type(site) is str else ""


def _site_getter(site_field: str | None) -> Callable[[Mapping[str, Any]], str]:
    """The per-record site function; an explicit field holding a URL gives that URL's host."""
    if site_field is None:
        return _default_site
    field = site_field

    def site_from_field(record: Mapping[str, Any]) -> str:
        value = record.get(field)
        if value is None:
            return ""
        site = value if type(value) is str else str(value)
        return host_of(site) if "://" in site else site

    return site_from_field


# --- planning: every path is checked before anything is read -----------------------------------

_Kind = Literal["stdin", "jsonl", "text", "folder"]


@dataclass(frozen=True, slots=True)
class _Input:
    """One input path, classified up front."""

    path: str
    kind: _Kind
    compression: str = ""
    plain_json: bool = False
    files: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_folder(root: str) -> tuple[list[str], list[str]]:
    """(files, unreadable sub-folders) under `root` as sorted POSIX relative paths; hidden ones skipped."""
    files: list[str] = []
    unreadable: list[str] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as entries:
                for entry in entries:
                    if _is_hidden(entry.name):
                        continue
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(rel)
                    elif entry.is_file():
                        files.append(rel)
        except OSError:
            if not rel_dir:
                raise
            unreadable.append(rel_dir)
    return sorted(files), sorted(unreadable)


def _looks_binary(head: bytes) -> bool:
    return b"\0" in head


def _readable_text_file(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return not _looks_binary(handle.read(_SNIFF_BYTES))
    except OSError:
        return False


def _plan_folder(path: str) -> _Input:
    try:
        files, unreadable = _walk_folder(path)
    except OSError as exc:
        raise NoInputError(f"{path}: {_os_reason(exc)}") from None
    if not any(_readable_text_file(os.path.join(path, rel)) for rel in files):
        raise NoInputError(f"{path}: no text files in folder")
    return _Input(path, "folder", files=tuple(files), unreadable=tuple(unreadable))


def _plan(path: str) -> _Input:
    """Classify one path, raising `NoInputError` for anything that cannot be read at all."""
    if path == "-":
        return _Input(path, "stdin")
    if os.path.isdir(path):
        return _plan_folder(path)
    if not os.path.exists(path):
        raise NoInputError(f"{path}: no such file or directory")
    if not os.access(path, os.R_OK):
        raise NoInputError(f"{path}: permission denied")
    fmt, compression = split_suffix(os.path.basename(path))
    if compression == ".zst":
        require_zstandard()
    if fmt in JSONL_SUFFIXES:
        return _Input(path, "jsonl", compression, plain_json=fmt == ".json")
    if not compression and is_special_file(path):  # `<(zcat dump.jsonl.gz)`, /dev/stdin: JSONL, as `-` is
        return _Input(path, "jsonl")
    return _Input(path, "text", compression)


def is_special_file(path: str | os.PathLike[str]) -> bool:
    """True for an existing FIFO, socket or device (symbolic links followed): what process
    substitution and /dev/stdin give a reader, and what a writer must write in place."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


# --- decompression ------------------------------------------------------------------------------


class _ZstdReader(io.RawIOBase):
    """Decompresses a zstd file frame by frame, raising EOFError if it ends mid-frame.

    `zstandard`'s own stream reader returns a truncated file's data without complaint, which
    would pass a cut-off dump off as complete.
    """

    def __init__(self, compressed: BinaryIO) -> None:
        self._zstd = require_zstandard()
        self._compressed = compressed
        self._frame = self._zstd.ZstdDecompressor().decompressobj()
        self._frame_started = False
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            chunk = self._compressed.read(_ZSTD_CHUNK)
            if not chunk:
                if self._frame_started and not self._frame.eof:
                    raise EOFError("compressed file ended before the end of a zstd frame")
                return 0
            self._out = memoryview(self._decompress(chunk))
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size

    def _decompress(self, chunk: bytes) -> bytes:
        """Decompress a chunk, starting a new frame whenever one ends (concatenated frames)."""
        parts = []
        while chunk:
            self._frame_started = True
            parts.append(self._frame.decompress(chunk))
            if not self._frame.eof:
                break
            chunk = self._frame.unused_data
            self._frame = self._zstd.ZstdDecompressor().decompressobj()
            self._frame_started = False
        return b"".join(parts)

    def close(self) -> None:
        self._compressed.close()
        super().close()


def _open_binary(path: str, compression: str) -> BinaryIO:
    """A buffered binary stream of the decompressed content of `path`."""
    if compression == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == ".bz2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if compression == ".xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if compression == ".zst":
        return io.BufferedReader(_ZstdReader(open(path, "rb")), _READ_BUFFER)  # type: ignore[return-value]
    return open(path, "rb", buffering=_READ_BUFFER)


def _stream_errors(compression: str) -> tuple[type[BaseException], ...]:
    """Exceptions that mean a compressed stream is truncated or corrupt (none for plain files)."""
    if not compression:
        return ()
    errors: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, lzma.LZMAError)
    if compression == ".zst":
        errors += (require_zstandard().ZstdError,)
    return errors


# --- the reader ---------------------------------------------------------------------------------


class Reader:
    """Iterates the Documents of one or more inputs; skipped records are collected in `self.bad`.

    All paths are checked when the reader is made, so a typo fails before any work is done.
    `bad` is reset each time iteration starts.
    """

    def __init__(
        self,
        paths: Sequence[str],
        options: ReadOptions = ReadOptions(),
        stdin: BinaryIO | None = None,
    ) -> None:
        if isinstance(paths, str):  # a lone path, not a sequence of one-letter paths
            paths = [paths]
        self.options = options
        self.bad: list[BadRecord] = []
        self._stdin = stdin
        self._inputs = [_plan(path) for path in paths]
        self._site_of = _site_getter(options.site_field)

    def __iter__(self) -> Iterator[Document]:
        self.bad = []
        for item in self._inputs:
            if item.kind == "jsonl":
                yield from self._read_jsonl_file(item)
            elif item.kind == "stdin":
                stdin = self._stdin if self._stdin is not None else sys.stdin.buffer
                yield from self._read_lines(stdin, STDIN_SOURCE, plain_json=False)
            elif item.kind == "folder":
                yield from self._read_folder(item)
            else:
                yield from self._read_text_file(item)

    def _skip(self, source: str, line: int, reason: str) -> None:
        """Remember a bad record, or stop the run with it under `strict`."""
        record = BadRecord(source, line, reason)
        self.bad.append(record)
        if self.options.strict:
            raise BadRecordError(record)

    # JSONL

    def _read_jsonl_file(self, item: _Input) -> Iterator[Document]:
        try:
            stream = _open_binary(item.path, item.compression)
        except OSError as exc:
            raise NoInputError(f"{item.path}: {_os_reason(exc)}") from None
        with stream:
            yield from self._read_lines(stream, item.path, item.plain_json, _stream_errors(item.compression))

    def _read_lines(
        self,
        lines: Iterable[bytes],
        source: str,
        plain_json: bool,
        stream_errors: tuple[type[BaseException], ...] = (),
    ) -> Iterator[Document]:
        """Documents of a JSON Lines stream; the hot loop, so the common case stays inline."""
        loads = _loads
        exact = loads is _stdlib_loads  # orjson may round integers beyond 64 bits; the stdlib never does
        text_field = self.options.text_field
        id_field = self.options.id_field
        site_of = self._site_of
        line_no = blanks = 0
        try:
            for line_no, raw in enumerate(lines, 1):
                try:
                    record = loads(raw)
                except (ValueError, RecursionError):
                    record = _parse_reference(raw, line_no == 1)
                if type(record) is not dict:
                    if record is _BLANK:
                        blanks += 1
                        continue
                    if plain_json and line_no == blanks + 1:
                        self._skip(source, 0, "not JSON Lines: expected one JSON object per line")
                        return
                    self._skip(source, line_no, _unusable_reason(record))
                    continue
                if not exact and _may_hold_big_int(record):
                    record = _exact_numbers(record, raw, line_no == 1)
                text = record.pop(text_field, _ABSENT)
                if type(text) is not str:
                    self._skip(source, line_no, _text_field_reason(text_field, text))
                    continue
                raw_id = record.get(id_field)
                doc_id = f"{source}:{line_no}" if raw_id is None else str(raw_id)
                yield Document(doc_id, text, site_of(record), source, line_no, record)
        except stream_errors as exc:
            self._skip(source, line_no + 1, f"truncated or corrupt compressed stream: {_short(exc)}")
            return
        if line_no == blanks:
            self._skip(source, 0, "empty file")

    # text files and folders

    def _read_text_file(self, item: _Input) -> Iterator[Document]:
        name = os.path.basename(item.path)
        text = self._read_text(item.path, item.compression, binary_is_bad=True)
        if text is not None:
            yield Document(name, text, "", item.path, 0, {"path": name})

    def _read_folder(self, item: _Input) -> Iterator[Document]:
        for rel_dir in item.unreadable:
            self._skip(os.path.join(item.path, rel_dir), 0, "cannot read folder")
        by_folder = self.options.site_from_folder
        for rel in item.files:
            path = os.path.join(item.path, rel)
            text = self._read_text(path, "", binary_is_bad=False)
            if text is not None:
                site = rel.partition("/")[0] if by_folder and "/" in rel else ""
                yield Document(rel, text, site, path, 0, {"path": rel})

    def _read_text(self, path: str, compression: str, binary_is_bad: bool) -> str | None:
        """The whole text of one file, or None when it is skipped (binary, empty, not UTF-8...)."""
        try:
            with _open_binary(path, compression) as stream:
                head = stream.read(_SNIFF_BYTES)
                if _looks_binary(head):
                    if binary_is_bad:
                        self._skip(path, 0, "binary file")
                    return None
                data = head + stream.read()
        except (*_stream_errors(compression), OSError) as exc:  # type: ignore[misc]  # (mypy: starred)
            reason = "truncated or corrupt compressed stream" if compression else "cannot read"
            self._skip(path, 0, f"{reason}: {_short(exc)}")
            return None
        if not data.strip():
            self._skip(path, 0, "empty file")
            return None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            self._skip(path, 0, "not valid UTF-8")
            return None


def _unusable_reason(parsed: Any) -> str:
    """Why a parsed line that is not a JSON object was skipped."""
    if type(parsed) is _Problem:
        return parsed.reason
    return f"not a JSON object: {_json_type(parsed)}"


def _text_field_reason(text_field: str, value: Any) -> str:
    if value is _ABSENT:
        return f"missing text field {text_field!r}"
    return f"missing text field {text_field!r}: got {_json_type(value)}, not a string"


def _short(exc: BaseException) -> str:
    """An exception as a short lowercase phrase for a bad-record reason."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    message = str(exc) or type(exc).__name__
    return message[:1].lower() + message[1:]


def read_documents(
    paths: Sequence[str], options: ReadOptions = ReadOptions()
) -> tuple[list[Document], list[BadRecord]]:
    """Read every document of `paths` into memory; returns (documents, skipped records)."""
    reader = Reader(paths, options)
    documents = list(reader)
    return documents, reader.bad
