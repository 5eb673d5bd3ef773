"""Write outputs so that a reader never sees a half-written one.

Every file is written to a hidden temporary file beside its target and renamed over the target only
once it is complete and fsynced; a folder is filled beside the target and swapped in. An interrupted
run (an exception, Ctrl-C, even SIGKILL) leaves the previous target untouched; at worst a hidden
temporary file or folder stays behind. Inputs are never written: see `ensure_not_input`.

Two kinds of target are not replaced. A device, FIFO or socket (`--json /dev/null`, a named pipe
another process reads) is written in place: a rename would put a regular file where the device
was (as root, `/dev/null` itself). A symbolic link keeps pointing where it did: the file it
points to is the one replaced.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import lzma
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

from .errors import DedupeError, OutputError
from .readers import is_special_file, require_zstandard, split_suffix

WriteMode = Literal["wt", "wb"]

_GZIP_LEVEL = 6  # gzip's own default: level 9 is several times slower for a few percent
_ZSTD_LEVEL = 3


# --- atomic files -------------------------------------------------------------------------------


def _temp_sibling(target: Path, kind: str) -> Path:
    """A hidden, unique name in the target's folder, so the final rename never crosses filesystems."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; some platforms cannot fsync a folder, which is then best effort."""
    with contextlib.suppress(OSError):
        _fsync_path(path)


FOLDER_MARK = ".dedupe-output"  # in every folder written, so that only such folders are replaced whole
_MARK_TEXT = "Written by dedupe; the next run writing here replaces this folder whole.\n"


def check_folder_exists(target: Path) -> None:
    """Refuse a target whose folder does not exist (callers check this before a long run too)."""
    if not target.parent.is_dir():
        raise DedupeError(f"{target}: folder {target.parent} does not exist")


def _check_target(target: Path, want_folder: bool) -> None:
    """Fail before writing anything if the target cannot be replaced by what we write. A folder
    output replaces its target whole: an existing folder is replaced only if it is empty or was
    written by dedupe (it holds `FOLDER_MARK`), never a folder of someone's other files."""
    check_folder_exists(target)
    if target.is_dir() and not want_folder:
        raise DedupeError(f"{target}: is a folder")
    if target.exists() and not target.is_dir() and want_folder:
        raise DedupeError(f"{target}: exists and is not a folder")
    if want_folder:
        check_replaceable_folder(target)


def check_replaceable_folder(target: Path) -> None:
    """Refuse an existing folder that is neither empty nor an earlier dedupe output: a folder output
    replaces its target whole, and must not take someone's other files with it."""
    if target.is_dir() and not (target / FOLDER_MARK).exists() and any(target.iterdir()):
        raise DedupeError(f"{target}: refusing to replace a folder dedupe did not write (it holds other files "
                          f"and no {FOLDER_MARK}); give a new or empty folder")


def _writing_failed(target: Path, exc: OSError) -> bool:
    """True when `exc` came from writing `target` (its temporary sibling, or a write or flush, which
    name no file), not from the caller's own work inside the block (reading an input, say)."""
    name = str(exc.filename) if exc.filename is not None else None
    return name is None or name == str(target) or name.startswith(str(target.with_name(f".{target.name}.")))


@contextlib.contextmanager
def _refusals(target: Path) -> Iterator[None]:
    """An OSError of writing `target` (no space, no permission, a pipe's reader gone) as `OutputError`."""
    try:
        yield
    except OSError as exc:
        if _writing_failed(target, exc):
            raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        raise


def _followed(target: str | Path) -> Path:
    """The path written for `target`: the file or folder a symbolic link names, which is replaced
    while the link keeps pointing at it."""
    return Path(os.path.realpath(target)) if os.path.islink(target) else Path(target)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target`, on any exception it is
    removed. An OSError of the writing itself (no space, no permission) becomes `OutputError`."""
    target = _followed(target)
    _check_target(target, want_folder=False)
    temp = _temp_sibling(target, "tmp")
    with _refusals(target):
        try:
            yield temp
            _fsync_path(temp)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[BinaryIO]:
    with atomic_path(target) as temp, open(temp, "xb") as raw:
        yield raw


@contextlib.contextmanager
def _in_place(target: Path) -> Iterator[BinaryIO]:
    with _refusals(target), open(target, "wb") as raw:
        yield raw


def _compressor(raw: BinaryIO, target: Path) -> BinaryIO | None:
    """A compressing writer over `raw` chosen by the target's suffix; None for no compression.

    Closing it finishes the compressed stream but leaves `raw` open.
    """
    compression = split_suffix(target.name)[1]
    if compression == ".gz":
        return gzip.GzipFile(filename=target.name, mode="wb", fileobj=raw,  # type: ignore[return-value]
                             compresslevel=_GZIP_LEVEL, mtime=0)
    if compression == ".bz2":
        return bz2.BZ2File(raw, "wb")  # type: ignore[return-value]
    if compression == ".xz":
        return lzma.LZMAFile(raw, "wb")  # type: ignore[return-value]
    if compression == ".zst":
        zstd = require_zstandard()
        compressor = zstd.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True)
        return compressor.stream_writer(raw, closefd=False)  # type: ignore[no-any-return]
    return None


@contextlib.contextmanager
def open_atomic(target: str | Path, mode: WriteMode = "wt", errors: str = "strict") -> Iterator[IO[Any]]:
    """Open a file that appears at `target` only once it is complete.

    "wt" writes UTF-8 text, compressed when the target ends in .gz, .bz2, .xz or .zst; "wb" writes
    the bytes as given. `errors` is the text encoding error handler.
    """
    if mode not in ("wt", "wb"):
        raise ValueError(f"mode must be 'wt' or 'wb', not {mode!r}")
    target = Path(target)
    if mode == "wb":
        with _in_place(target) if is_special_file(target) else _replacing(target) as raw:
            yield raw
        return
    with _encoded_stream(target) as encoded:
        text = io.TextIOWrapper(encoded, encoding="utf-8", errors=errors, newline="\n")
        try:
            yield text
        except BaseException:
            with contextlib.suppress(Exception):  # the temp file is deleted; the first error matters
                _detach(text)
            raise
        _detach(text)


def write_encoded(target: str | Path, data: bytes) -> None:
    """Write UTF-8 `data` as `open_atomic(target, "wt")` would write its text (or to stdout for "-",
    as `write_jsonl` does). A report that orjson encodes (100 MB at 100k documents) then needs no
    decoding and encoding again."""
    write_encoded_parts(target, (data,))


def write_encoded_parts(target: str | Path, parts: Iterable[bytes]) -> None:
    """`write_encoded` of the bytes `parts` make up, never all held at once (a report streamed from
    a spool); the file appears only once the last part is written."""
    if str(target) == "-":
        out = _stdout_bytes()
        for part in parts:
            if out is None:  # stdout replaced by a text-only stream
                sys.stdout.write(part.decode("utf-8"))
            else:
                out.write(part)
        (out or sys.stdout).flush()
        return
    with _encoded_stream(Path(target)) as encoded:
        for part in parts:
            encoded.write(part)


@contextlib.contextmanager
def _encoded_stream(target: Path) -> Iterator[BinaryIO]:
    """The stream that text for `target` is encoded into: compressed when the target's suffix says
    so (the compressed stream ended on success, leaving the file open for fsync), in a file that
    appears only once complete, or a device written in place."""
    if split_suffix(target.name)[1] == ".zst":
        require_zstandard()  # fail before the temp file exists
    with _in_place(target) if is_special_file(target) else _replacing(target) as raw:
        compressed = _compressor(raw, target)
        if compressed is None:
            yield raw
            return
        try:
            yield compressed
        except BaseException:
            with contextlib.suppress(Exception):  # the temp file is deleted; the first error matters
                compressed.close()
            raise
        compressed.close()


def _detach(text: io.TextIOWrapper) -> None:
    """Flush the text layer, leaving the stream under it open (close() would close it too)."""
    if not text.closed:
        text.detach()


def _stdout_bytes() -> BinaryIO | None:
    """stdout's byte stream, with any text written before flushed into it (None when stdout was
    replaced by a stream of text only): the outputs are UTF-8 whatever the terminal's encoding."""
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        sys.stdout.flush()
    return out


# --- JSON Lines ---------------------------------------------------------------------------------


def _json_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


# Lone surrogates (from "\ud800" escapes in the input) cannot be encoded as UTF-8; backslashreplace
# writes them back as the same JSON escape, so a record round-trips instead of failing the write.
_JSON_ERRORS = "backslashreplace"


def write_jsonl(target: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line (atomically, unless `target` is "-" for stdout); returns the count."""
    with jsonl_writer(target) as write:
        return write(records)


RecordsWriter = Callable[[Iterable[Mapping[str, Any]]], int]


@contextlib.contextmanager
def jsonl_writer(target: str | Path) -> Iterator[RecordsWriter]:
    """`write_jsonl` for records that come in several lots (a run in batches): each call writes a
    lot and returns its count; the file appears, whole, when the block ends without an error.
    Standard output ("-") gets each lot as it comes: what is written there cannot be taken back."""
    if str(target) == "-":
        yield _write_jsonl_stdout
        return
    with open_atomic(target, "wt", errors=_JSON_ERRORS) as out:
        yield lambda records: _write_jsonl_text(out, records)


def _write_jsonl_stdout(records: Iterable[Mapping[str, Any]]) -> int:
    """Write UTF-8 to stdout whatever the terminal's encoding, as the file outputs do."""
    out = _stdout_bytes()
    if out is None:  # stdout replaced by a text-only stream
        return _write_jsonl_text(sys.stdout, records)
    count = 0
    for record in records:
        out.write(_json_line(record).encode("utf-8", _JSON_ERRORS))
        count += 1
    out.flush()
    return count


def _write_jsonl_text(out: IO[str], records: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    for record in records:
        out.write(_json_line(record))
        count += 1
    out.flush()
    return count


# --- text folders -------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[/\\]")
_DRIVE = re.compile(r"[A-Za-z]:")


def _checked_relative(rel: str) -> str:
    """`rel` if it stays inside the folder; rejects absolute paths, drives and ".." on any platform."""
    parts = _SEPARATORS.split(rel)
    if not rel or "\0" in rel or not parts[0] or _DRIVE.match(rel) or ".." in parts:
        raise DedupeError(f"refusing to write {rel!r}: not a relative path inside the output folder")
    if all(part in ("", ".") for part in parts):
        raise DedupeError(f"refusing to write {rel!r}: not a file name")
    return rel


def _write_file(path: Path, text: str) -> None:
    """Write one text; a lone surrogate is written as a visible escape rather than failing the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8", errors="backslashreplace", newline="") as out:
        out.write(text)


def _fill_folder(folder: Path, files: Iterable[tuple[str, str]]) -> int:
    """Write every (relative path, text) under `folder` and make it durable; return the count.

    One `os.sync()` replaces an fsync per file, which costs milliseconds each on a real disk, so
    minutes for a large dump. Platforms without it get the fsyncs.
    """
    written: list[Path] = []
    for rel, text in files:
        path = folder / _checked_relative(rel)
        try:
            _write_file(path, text)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise DedupeError(f"refusing to write {rel!r}: clashes with another output file") from None
        written.append(path)
    if hasattr(os, "sync"):
        os.sync()
    else:  # pragma: no cover - Windows
        for path in written:
            _fsync_path(path)
    return len(written)


def _swap_in(new: Path, target: Path) -> None:
    """Put the finished folder `new` at `target`, keeping the old one aside until the new one is in."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    old = _temp_sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove_quietly(old)


def _remove_quietly(path: Path) -> None:
    """Delete a replaced output; a leftover hidden copy is harmless, failing the run now is not."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """A hidden folder beside `target` to fill, swapped in for `target` (for the folder a symbolic
    link names, if `target` is one) on success and removed on any error: `target` is the previous
    output or the complete new one. An OSError of the writing becomes `OutputError`."""
    target = _followed(target)
    _check_target(target, want_folder=True)
    temp = _temp_sibling(target, "tmp")
    with _refusals(target):
        try:
            temp.mkdir()
            yield temp
            (temp / FOLDER_MARK).write_text(_MARK_TEXT)
            _swap_in(temp, target)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
    _fsync_dir(target.parent)


def write_text_folder(target: Path, files: Iterable[tuple[str, str]]) -> int:
    """Write (relative path, text) pairs as a folder that replaces `target` only once complete."""
    with text_folder_writer(target) as write:
        return write(files)


@contextlib.contextmanager
def text_folder_writer(target: Path) -> Iterator[Callable[[Iterable[tuple[str, str]]], int]]:
    """`write_text_folder` for files that come in several lots: the folder replaces `target`,
    whole, when the block ends without an error."""
    with replacing_folder(target) as temp:
        yield lambda files: _fill_folder(temp, files)


# --- safety -------------------------------------------------------------------------------------


def ensure_not_input(output: Path, inputs: Sequence[str]) -> None:
    """Refuse an output that is an input, lies inside an input folder or holds an input.

    Writing replaces the output (a folder output is swapped out whole), so any of these would
    modify or delete input data.
    """
    if str(output) == "-":
        return
    out = Path(output).resolve()
    for given in inputs:
        if given == "-":
            continue
        source = Path(given).resolve()
        if out == source or _same_file(out, source):
            raise DedupeError(f"{output}: refusing to overwrite input {given}")
        if source in out.parents:
            raise DedupeError(f"{output}: refusing to write inside input folder {given}")
        if out in source.parents:
            raise DedupeError(f"{output}: refusing to replace a folder that holds input {given}")


def _same_file(a: Path, b: Path) -> bool:
    """True for two names of one file (hard links), which resolving paths does not catch."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
