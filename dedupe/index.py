"""The persistent archive: an embedded SQLite index of every document kept by earlier runs (and of
the near copies they removed, each standing for its kept document).

Why SQLite: one file beside the dumps and no server to run; a transaction survives a crash (WAL
journal), and readers (`dedupe scan --index`) never wait for the writer. One writer at a time is
enforced by `WriterLock`, a lock file beside the index, so an overlapping nightly run fails fast
instead of queueing behind SQLite's own lock.

Layout (`SCHEMA_VERSION`):
- `meta`: schema version and the settings that must match between runs (a signature made with
  other permutations or shingles would silently never match), and the index's own LSH banding:
  band keys are computed from signatures with it, whatever banding the running dedupe prefers, and
  a probe detects a changed band-key function (`rebuild_bands` then recomputes them).
- `documents`: one row per archived document; 64-bit keys are stored as signed INTEGERs (the
  uint64 bit pattern viewed as int64), the signature as uint32 little-endian, and the keys of its
  long content paragraphs as uint64 little-endian (what verification needs, without a second lookup;
  since schema version 3 each paragraph's exact key and its MinHash sketch keys, which lightly
  edited copies of the paragraph share: `copies.paragraph_keys`),
  and the page group its chrome recurrence was counted in (since schema version 2: a later night's
  copy of the page is counted in the same group, so the lines they share are not taken for chrome),
  and, for a near copy a run removed, `copy_of`: the kept document it was removed for (since schema
  version 3: a later copy of the copy is found through it; NULL for a kept document).
- `content_keys`: unique index on (key_hi, key_lo, id) for exact-content lookups; the same document
  id with the same content is stored once, so re-running a batch adds nothing.
- `bands` (band, key, doc_id) and `paragraph_keys` (key, doc_id): WITHOUT ROWID tables, so a lookup
  is one B-tree probe per key. Documents with an empty signature get no band rows (the scan never
  pairs them by LSH).
- `chrome` / `chrome_keys`: chrome recurrence statistics, one row per site and one per (site, line
  key). They grow with the archive (every line of every page has a key), so a run fetches only the
  rows for its own sites and lines instead of the whole statistics; see `_LazyChrome`.
- `runs`: one row per run: when, outcome, documents in, kept, removed, added.

Lookups are batched: a batch's keys go into TEMP tables that are joined with the index, never one
query per key.

The rules every index shares (what is stored, what is refused, how chrome statistics merge) live in
`index_base`; the PostgreSQL index (`index_pg`) is the same archive in a database several machines
share. `open_index` and `writer_lock` pick the backend from a path or a postgresql:// URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .archive import ArchiveRows
from .errors import DedupeError, OutputError
from .index_base import (  # noqa: F401  (re-exported: the names this module has always offered)
    MATCHED_SETTINGS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    Check,
    IndexBase,
    IndexBusy,
    IndexWriteError,
    RunRecord,
    from_signed,
    to_signed,
    utc_now,
)
from .settings import Settings

if TYPE_CHECKING:
    from .index_pg import PostgresLock

APPLICATION_ID = 0x64647570  # "ddup" in PRAGMA application_id: tells our files from other SQLite files
_CHUNK = 20_000  # rows per executemany: the point between chunks where a stop request is honoured
_PARAMS = 900  # host parameters per IN (...) list, under SQLite's historic limit of 999

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE documents (
    doc_id INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    site TEXT NOT NULL,
    key_hi INTEGER NOT NULL,
    key_lo INTEGER NOT NULL,
    size INTEGER NOT NULL,
    signature BLOB NOT NULL,
    paragraphs BLOB NOT NULL,
    run_id TEXT NOT NULL,
    added_at TEXT NOT NULL,
    page_group TEXT,
    copy_of TEXT
);
CREATE UNIQUE INDEX content_keys ON documents (key_hi, key_lo, id);
CREATE TABLE bands (
    band INTEGER NOT NULL, key INTEGER NOT NULL, doc_id INTEGER NOT NULL,
    PRIMARY KEY (band, key, doc_id)
) WITHOUT ROWID;
CREATE TABLE paragraph_keys (
    key INTEGER NOT NULL, doc_id INTEGER NOT NULL, PRIMARY KEY (key, doc_id)
) WITHOUT ROWID;
CREATE TABLE chrome (site_id INTEGER PRIMARY KEY, site TEXT NOT NULL UNIQUE, groups BLOB NOT NULL);
CREATE TABLE chrome_keys (
    site_id INTEGER NOT NULL, key INTEGER NOT NULL, groups BLOB NOT NULL, seen INTEGER NOT NULL,
    PRIMARY KEY (site_id, key)
) WITHOUT ROWID;
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT NOT NULL, status TEXT NOT NULL,
    exit_code INTEGER NOT NULL, documents_in INTEGER NOT NULL, bad_records INTEGER NOT NULL,
    kept INTEGER NOT NULL, removed INTEGER NOT NULL, added INTEGER NOT NULL
);
"""

_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS want_band (band INTEGER, key INTEGER, PRIMARY KEY (band, key)) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS want_content (hi INTEGER, lo INTEGER, PRIMARY KEY (hi, lo)) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS want_para (key INTEGER PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS want_doc (pos INTEGER PRIMARY KEY, id TEXT, hi INTEGER, lo INTEGER);
CREATE TEMP TABLE IF NOT EXISTS want_chrome (site_id INTEGER, key INTEGER, PRIMARY KEY (site_id, key))
    WITHOUT ROWID;
"""

_CANDIDATES = """
WITH hits (doc_id) AS (
    SELECT b.doc_id FROM want_band w CROSS JOIN bands b ON b.band = w.band AND b.key = w.key
    UNION SELECT d.doc_id FROM want_content w CROSS JOIN documents d ON d.key_hi = w.hi AND d.key_lo = w.lo
    UNION SELECT p.doc_id FROM want_para w CROSS JOIN paragraph_keys p ON p.key = w.key
)
SELECT d.id, d.site, d.key_hi, d.key_lo, d.size, d.signature, d.paragraphs, {page_group}, {copy_of}, d.doc_id
FROM hits h CROSS JOIN documents d ON d.doc_id = h.doc_id ORDER BY d.doc_id
"""


# Forgetting documents forgets the removed copies that stood for them (no kept document of that id
# remains): a later copy matching one would otherwise be removed in favour of a forgotten document.
_ORPHANED_COPIES = (
    "DROP TABLE IF EXISTS temp.gone_kept",
    "CREATE TEMP TABLE gone_kept AS SELECT DISTINCT id FROM documents "
    "WHERE copy_of IS NULL AND doc_id IN (SELECT doc_id FROM temp.gone)",
    "DELETE FROM temp.gone_kept WHERE id IN (SELECT id FROM documents "
    "WHERE copy_of IS NULL AND doc_id NOT IN (SELECT doc_id FROM temp.gone))",
    "INSERT INTO temp.gone SELECT doc_id FROM documents "
    "WHERE copy_of IN (SELECT id FROM temp.gone_kept) AND doc_id NOT IN (SELECT doc_id FROM temp.gone)",
    "DROP TABLE temp.gone_kept",
)


# --- the index ------------------------------------------------------------------------------------


def _rollback(conn: sqlite3.Connection) -> None:
    """ROLLBACK, where SQLite has not already rolled back itself (it does on some errors)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class SQLiteIndex(IndexBase):
    """An `Archive` kept in one SQLite file: what earlier runs kept, looked up in batches.

    `readonly=True` opens for `scan`: nothing is ever written (a missing file is an empty archive).
    Otherwise the file is created on first use. `settings` are checked against the ones the index was
    built with; None adopts them (maintenance commands). Writers must hold `WriterLock(path)`.
    """

    def __init__(self, path: str | Path, settings: Settings | None = None, readonly: bool = False,
                 check_banding: bool = True) -> None:
        super().__init__(str(path), readonly)
        self.path = Path(path)
        if readonly and (not self.path.exists() or self.path.stat().st_size == 0):
            return  # an empty archive
        self._conn = self._connect()
        try:
            self._open(settings, check_banding)
        except BaseException:
            self.close()
            raise

    # -- opening ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly and not self.path.parent.is_dir():
            raise DedupeError(f"index {self.path}: folder {self.path.parent} does not exist")
        if self.path.is_dir():
            raise DedupeError(f"index {self.path}: is a folder")
        try:
            if self.readonly:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise DedupeError(f"index {self.path}: cannot open ({error})") from None
        conn.execute("PRAGMA busy_timeout = 10000")  # readers only meet a checkpoint; writers hold the lock
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def _open(self, settings: Settings | None, check_banding: bool) -> None:
        conn = self._db()
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise DedupeError(f"index {self.path}: not a dedupe index ({error})") from None
        if app_id == 0 and tables == 0:
            if self.readonly:  # an empty database: an empty archive
                self.close()
                return
            self._create(settings or Settings())
        elif app_id != APPLICATION_ID:
            raise DedupeError(f"index {self.path}: not a dedupe index (an SQLite file of another application)")
        self._adopt_meta(dict(conn.execute("SELECT key, value FROM meta").fetchall()), settings, check_banding)
        if not self.readonly:
            conn.execute("PRAGMA synchronous = FULL")  # a committed run survives a power cut, as outputs do
        conn.executescript(_TEMP)

    def _create(self, settings: Settings) -> None:
        conn = self._db()
        meta = self._creation_meta(settings)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteIndex:
        return self

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        return self._db().execute(sql).fetchall()

    # -- lookups ----------------------------------------------------------------------------------

    def _lookup(self, bands: tuple[np.ndarray, np.ndarray], hi: list[int], lo: list[int],
                paragraphs: list[int]) -> list[tuple[Any, ...]]:
        with self._scratch() as conn:
            conn.executemany("INSERT OR IGNORE INTO want_band VALUES (?, ?)",
                             zip(bands[0].tolist(), bands[1].tolist(), strict=True))
            conn.executemany("INSERT OR IGNORE INTO want_content VALUES (?, ?)", zip(hi, lo, strict=True))
            conn.executemany("INSERT OR IGNORE INTO want_para VALUES (?)", ((k,) for k in paragraphs))
            return conn.execute(_CANDIDATES.format(page_group=self._page_group, copy_of=self._copy_of)).fetchall()

    def _site_rows(self, sites: Sequence[str]) -> list[tuple[int, str, bytes]]:
        conn = self._db()
        found: list[tuple[int, str, bytes]] = []
        for lo in range(0, len(sites), _PARAMS):
            part = sites[lo : lo + _PARAMS]
            found += conn.execute(f"SELECT site_id, site, groups FROM chrome WHERE site IN "
                                  f"({','.join('?' * len(part))})", part).fetchall()
        return found

    def _chrome_key_rows(self, wanted: list[tuple[int, int]]) -> list[tuple[int, int, bytes]]:
        with self._scratch() as conn:
            conn.executemany("INSERT OR IGNORE INTO want_chrome VALUES (?, ?)", wanted)
            return conn.execute("SELECT k.site_id, k.key, k.groups FROM want_chrome w "
                                "CROSS JOIN chrome_keys k ON k.site_id = w.site_id AND k.key = w.key").fetchall()

    def _all_chrome_keys(self) -> dict[str, list[int]]:
        conn = self._db()
        return {site: [key for (key,) in conn.execute("SELECT key FROM chrome_keys WHERE site_id = ?", (site_id,))]
                for site_id, site in conn.execute("SELECT site_id, site FROM chrome").fetchall()}

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[sqlite3.Connection]:
        """A savepoint that is always rolled back: the lookup's temp rows vanish, and it reads one
        snapshot. Works alone (read-only runs) and inside `add`'s write transaction."""
        conn = self._db()
        conn.execute("SAVEPOINT lookup")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK TO lookup")
            conn.execute("RELEASE lookup")

    # -- writing ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (a stop request included)."""
        if self.readonly:
            raise DedupeError(f"index {self.path}: opened read-only")
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as error:  # "database or disk is full", "disk I/O error"
            _rollback(conn)
            raise IndexWriteError(f"index {self.path}: cannot write: {error}") from error
        except BaseException:
            _rollback(conn)
            raise

    def _known(self, rows: ArchiveRows) -> dict[int, int]:
        with self._scratch() as conn:
            conn.executemany("INSERT INTO want_doc VALUES (?, ?, ?, ?)",
                             zip(range(len(rows.ids)), rows.ids, to_signed(rows.key_hi), to_signed(rows.key_lo),
                                 strict=True))
            return dict(conn.execute(
                "SELECT w.pos, d.doc_id FROM want_doc w CROSS JOIN documents d ON d.key_hi = w.hi AND d.key_lo = w.lo "
                "AND d.id = w.id").fetchall())

    def _next_doc_id(self) -> int:
        return int(self._db().execute("SELECT coalesce(max(doc_id), 0) + 1 FROM documents").fetchone()[0])

    def _upgrade(self) -> None:
        for column, kind in self._added_columns():
            self._db().execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")

    def _insert_documents(self, documents: Iterator[tuple[Any, ...]], count: int, check: Check) -> None:
        conn = self._db()
        for _ in range(0, count, _CHUNK):
            check("insert")
            conn.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             itertools.islice(documents, _CHUNK))

    def _insert_bands(self, columns: tuple[np.ndarray, np.ndarray, np.ndarray], check: Check) -> None:
        self._insert_many("INSERT INTO bands VALUES (?, ?, ?)", columns, check)

    def _insert_paragraph_keys(self, columns: tuple[np.ndarray, np.ndarray], check: Check) -> None:
        self._insert_many("INSERT OR IGNORE INTO paragraph_keys VALUES (?, ?)", columns, check)

    def _insert_many(self, sql: str, columns: tuple[np.ndarray, ...], check: Check) -> None:
        conn = self._db()
        total = len(columns[0])
        for a in range(0, total, _CHUNK):
            check("insert")
            conn.executemany(sql, zip(*(c[a : a + _CHUNK].tolist() for c in columns), strict=True))

    def _set_meta(self, values: Mapping[str, object]) -> None:
        self._db().executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])

    def _upsert_sites(self, sites: list[tuple[str, bytes]]) -> None:
        self._db().executemany("INSERT INTO chrome (site, groups) VALUES (?, ?) ON CONFLICT (site) DO UPDATE "
                               "SET groups = excluded.groups", sites)

    def _upsert_chrome_keys(self, rows: list[tuple[int, int, bytes, int]], check: Check) -> None:
        conn = self._db()
        for a in range(0, len(rows), _CHUNK):
            check("insert")
            conn.executemany("INSERT INTO chrome_keys VALUES (?, ?, ?, ?) ON CONFLICT (site_id, key) DO UPDATE "
                             "SET groups = excluded.groups, seen = excluded.seen", rows[a : a + _CHUNK])

    def _write_run(self, record: RunRecord) -> None:
        values = astuple(record)
        self._db().execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(values))})", values)

    def _recent_runs(self, recent: int) -> list[tuple[Any, ...]]:
        return self._db().execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY started_at DESC, rowid DESC "
                                  "LIMIT ?", (recent,)).fetchall()

    def _clear_bands(self) -> None:
        self._db().execute("DELETE FROM bands")

    def _signature_chunks(self, num_perm: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        conn = self._db()
        last = 0
        while True:
            chunk = conn.execute("SELECT doc_id, signature FROM documents WHERE doc_id > ? ORDER BY doc_id "
                                 "LIMIT ?", (last, _CHUNK)).fetchall()
            if not chunk:
                return
            last = chunk[-1][0]
            yield (np.array([d for d, _ in chunk], dtype=np.int64),
                   np.frombuffer(b"".join(sig for _, sig in chunk), dtype="<u4").reshape(len(chunk), num_perm))

    def _forget_documents(self, run: str | None, cutoff: str | None) -> int:
        conn = self._db()
        conn.execute("DROP TABLE IF EXISTS temp.gone")
        if run is not None:
            conn.execute("CREATE TEMP TABLE gone AS SELECT doc_id FROM documents WHERE run_id = ?", (run,))
        else:
            conn.execute("CREATE TEMP TABLE gone AS SELECT doc_id FROM documents WHERE added_at < ?", (cutoff,))
        for statement in _ORPHANED_COPIES:
            conn.execute(statement)
        gone = conn.execute("SELECT count(*) FROM temp.gone").fetchone()[0]
        for table in ("bands", "paragraph_keys", "documents"):
            conn.execute(f"DELETE FROM {table} WHERE doc_id IN (SELECT doc_id FROM temp.gone)")
        conn.execute("DROP TABLE temp.gone")
        return int(gone)

    def _forget_chrome(self, day: int) -> None:
        self._db().execute("DELETE FROM chrome_keys WHERE seen < ?", (day,))

    def vacuum(self) -> tuple[int, int]:
        """Rewrite the file without free pages; returns its size before and after, in bytes."""
        if self.readonly:
            raise DedupeError(f"index {self.path}: opened read-only")
        conn = self._db()
        before = self.size_bytes()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA optimize")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, self.size_bytes()

    # -- inspection -------------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _document_rows(self) -> Iterator[Sequence[Any]]:
        yield from self._db().execute("SELECT * FROM documents ORDER BY doc_id")


# --- one writer at a time -------------------------------------------------------------------------


class WriterLock:
    """An exclusive `flock` on `INDEX.lock`, holding who took it (pid, host, start, run).

    The kernel releases it when the holder exits, even on SIGKILL, so a stale lock file never
    blocks anyone; the file itself is never deleted (deleting a lock file races with its next user).
    flock is not reliable on NFS: keep the index on a local disk.
    """

    def __init__(self, index_path: str | Path, run_id: str = "", wait: float = 0.0,
                 should_stop: Callable[[], None] | None = None) -> None:
        self.path = Path(f"{index_path}.lock")
        self.index_path = Path(index_path)
        self.run_id = run_id
        self.wait = wait
        self.should_stop = should_stop or (lambda: None)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, waiting up to `wait` seconds; raise `IndexBusy` naming the holder if we cannot."""
        if not self.path.parent.is_dir():
            raise DedupeError(f"index {self.index_path}: folder {self.path.parent} does not exist")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:  # a read-only folder, no permission
            raise OutputError(f"index {self.index_path}: cannot create its lock file {self.path}: "
                              f"{(error.strerror or str(error)).lower()}") from None
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    os.close(fd)
                    waited = f" after waiting {self.wait:g}s" if self.wait else ""
                    raise IndexBusy(f"index {self.index_path} is in use by {holder}{waited}; "
                                    "another run is writing it (pass --wait SECONDS to wait for it)") from None
                try:
                    self.should_stop()
                except BaseException:
                    os.close(fd)
                    raise
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now(), "run_id": self.run_id}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    def holder(self) -> str:
        """Who holds the lock, as written in the lock file by the holder."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another process"
        run = f", run {info['run_id']}" if info.get("run_id") else ""
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('started_at')}{run}"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- choosing the backend -------------------------------------------------------------------------


def is_url(spec: str | Path) -> bool:
    """Whether `--index` names a PostgreSQL index (postgresql:// or postgres://) rather than a file."""
    return str(spec).startswith(("postgresql://", "postgres://"))


def index_name(spec: str | Path) -> str:
    """How logs, errors and reports name an index: its path, or its URL without the password."""
    if is_url(spec):
        from .index_pg import redact

        return redact(str(spec))
    return str(spec)


def open_index(spec: str | Path, settings: Settings | None = None, *, readonly: bool = False,
               check_banding: bool = True) -> IndexBase:
    """The index at a file path (SQLite) or a postgresql:// URL (PostgreSQL)."""
    if is_url(spec):
        from .index_pg import PostgresIndex

        return PostgresIndex(str(spec), settings, readonly=readonly, check_banding=check_banding)
    return SQLiteIndex(spec, settings, readonly=readonly, check_banding=check_banding)


def index_exists(spec: str | Path) -> bool:
    """Whether there is anything at `spec` to open (maintenance commands refuse to create an index)."""
    if is_url(spec):
        from .index_pg import index_exists as pg_exists

        return pg_exists(str(spec))
    return Path(spec).is_file()


def writer_lock(spec: str | Path, run_id: str = "", wait: float = 0.0,
                should_stop: Callable[[], None] | None = None) -> WriterLock | PostgresLock:
    """The writer lock of the index at `spec`: a lock file beside an SQLite index, an advisory lock in
    PostgreSQL."""
    if is_url(spec):
        from .index_pg import PostgresLock

        return PostgresLock(str(spec), run_id, wait, should_stop)
    return WriterLock(spec, run_id, wait, should_stop)
