"""The persistent archive: an embedded SQLite index of every document kept by earlier runs.

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
  long content paragraphs as uint64 little-endian (what verification needs, without a second lookup).
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
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .archive import ArchivedDocs, ArchiveRows
from .chrome import ChromeStats
from .errors import EXIT_TEMPFAIL, DedupeError
from .lsh import band_keys, lsh_params
from .minhash import EMPTY
from .pipeline import Settings
from .shingle import HASH_VERSION

SCHEMA_VERSION = 1
APPLICATION_ID = 0x64647570  # "ddup" in PRAGMA application_id: tells our files from other SQLite files
MATCHED_SETTINGS = ("num_perm", "seed", "ngram", "threshold", "min_words")
_CHUNK = 20_000  # rows per executemany: the point between chunks where a stop request is honoured
_PARAMS = 900  # host parameters per IN (...) list, under SQLite's historic limit of 999

Check = Callable[[str], None]

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
    added_at TEXT NOT NULL
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
SELECT d.id, d.site, d.key_hi, d.key_lo, d.size, d.signature, d.paragraphs
FROM hits h CROSS JOIN documents d ON d.doc_id = h.doc_id ORDER BY d.doc_id
"""


class IndexBusy(DedupeError):
    """Another writer holds the index: exit 75 (EX_TEMPFAIL), so a scheduler retries later."""

    exit_code = EXIT_TEMPFAIL


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the `runs` table: what a run did, for `dedupe index stats` and monitoring."""

    run_id: str
    started_at: str
    finished_at: str
    status: str  # ok | refused | interrupted | failed
    exit_code: int = 0
    documents_in: int = 0
    bad_records: int = 0
    kept: int = 0
    removed: int = 0
    added: int = 0


def utc_now() -> str:
    """The timestamp format of the index: ISO 8601 UTC to the second, which sorts as text."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- uint64 <-> SQLite INTEGER ---------------------------------------------------------------------


def to_signed(values: np.ndarray) -> list[int]:
    """uint64 values as the int64 SQLite stores (same bits), as Python ints."""
    return np.ascontiguousarray(values, dtype=np.uint64).view(np.int64).tolist()  # type: ignore[no-any-return]


def from_signed(values: Sequence[int]) -> np.ndarray:
    """Inverse of `to_signed`."""
    return np.array(values, dtype=np.int64).view(np.uint64)


def _hex_to_signed(h: str) -> int:
    v = int(h, 16)
    return v - (1 << 64) if v >= 1 << 63 else v


def _pack(hexes: Sequence[str]) -> bytes:
    """A KMV sketch (the 16-digit hex strings of `ChromeStats.to_dict`) as uint64 big-endian bytes."""
    return bytes.fromhex("".join(hexes))


def _unpack(blob: bytes) -> list[str]:
    digits = blob.hex()
    return [digits[i : i + 16] for i in range(0, len(digits), 16)]


# --- the index ------------------------------------------------------------------------------------


class SQLiteIndex:
    """An `Archive` kept in one SQLite file: what earlier runs kept, looked up in batches.

    `readonly=True` opens for `scan`: nothing is ever written (a missing file is an empty archive).
    Otherwise the file is created on first use. `settings` are checked against the ones the index was
    built with; None adopts them (maintenance commands). Writers must hold `WriterLock(path)`.
    """

    def __init__(self, path: str | Path, settings: Settings | None = None, readonly: bool = False,
                 check_banding: bool = True) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.timings: dict[str, float] = {}
        self._conn: sqlite3.Connection | None = None
        self._meta: dict[str, str] = {}
        self._bands = self._rows = 0
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
        self._meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._check(settings)
        self._bands, self._rows = int(self._meta["bands"]), int(self._meta["rows"])
        if check_banding:
            self._check_banding()
        if not self.readonly:
            conn.execute("PRAGMA synchronous = FULL")  # a committed run survives a power cut, as outputs do
        conn.executescript(_TEMP)

    def _create(self, settings: Settings) -> None:
        conn = self._db()
        bands, rows = lsh_params(settings.threshold, settings.num_perm)
        meta = {"schema_version": SCHEMA_VERSION, "hash_version": HASH_VERSION, "created_at": utc_now(),
                "bands": bands, "rows": rows,
                "band_probe": _band_probe(settings.num_perm, bands, rows),
                **{name: getattr(settings, name) for name in MATCHED_SETTINGS}}
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

    def _check(self, settings: Settings | None) -> None:
        """Refuse an index of another schema version, or built with settings that change signatures."""
        version = self._meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise DedupeError(f"index {self.path}: schema version {version}, this dedupe reads version "
                              f"{SCHEMA_VERSION}; export it with the dedupe that wrote it, or start a new index")
        hashing = self._meta.get("hash_version")
        if hashing != str(HASH_VERSION):
            raise DedupeError(f"index {self.path}: its signatures use shingle hash version {hashing}, this dedupe "
                              f"uses version {HASH_VERSION}; start a new index (or `dedupe index export` it first)")
        if settings is None:
            return
        differ = [f"{name}={self._meta.get(name)} (this run: {getattr(settings, name)})" for name in MATCHED_SETTINGS
                  if not _same(self._meta.get(name), getattr(settings, name))]
        if differ:
            raise DedupeError(f"index {self.path} was built with other settings: {', '.join(differ)}; "
                              "use the index's settings or a new index")

    def _check_banding(self) -> None:
        """Band keys are stored, so they must be computed the way they were when stored.

        The index keeps its own banding (bands x rows) whatever this dedupe's `lsh_params` now
        prefer, and computes every lookup with it; only a change in how band keys are computed
        (caught by a probe) makes the stored keys useless, and then `rebuild_bands` recomputes them.
        """
        num_perm = int(self._meta["num_perm"])
        if self._meta.get("band_probe") != _band_probe(num_perm, self._bands, self._rows):
            raise DedupeError(f"index {self.path}: its LSH band keys were computed by another version of dedupe; "
                              f"run `dedupe index rebuild {self.path}` once to recompute them")

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """Band keys of `signatures` under the index's own banding."""
        return band_keys(signatures, self._bands, self._rows)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise DedupeError(f"index {self.path}: closed")
        return self._conn

    @property
    def settings(self) -> dict[str, str]:
        """The settings the index was built with (empty for a missing read-only index)."""
        return {name: self._meta[name] for name in MATCHED_SETTINGS if name in self._meta}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Archive protocol -------------------------------------------------------------------------

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        """Archived documents sharing a band key, a content key or a long-paragraph key with `rows`.

        Band keys are computed from `rows.signatures` with the index's banding (`rows.bands` follow
        the running dedupe's, which may differ from the one the archive was stored with)."""
        started = time.perf_counter()
        num_perm = rows.signatures.shape[1]
        if self._conn is None or not rows.ids:
            return ArchivedDocs.empty(num_perm)
        with self._scratch() as conn:
            self._fill_wanted(rows)
            found = conn.execute(_CANDIDATES).fetchall()
        self.timings["lookup"] = self.timings.get("lookup", 0.0) + time.perf_counter() - started
        return _archived_docs(found, num_perm)

    def _fill_wanted(self, rows: ArchiveRows) -> None:
        conn = self._db()
        active = rows.signatures[:, 0] != EMPTY if len(rows.ids) else np.zeros(0, dtype=bool)
        bands = self.band_keys(rows.signatures[active])
        band_no = np.broadcast_to(np.arange(bands.shape[1]), bands.shape)
        conn.executemany("INSERT OR IGNORE INTO want_band VALUES (?, ?)",
                         zip(band_no.ravel().tolist(), to_signed(bands.ravel()), strict=True))
        conn.executemany("INSERT OR IGNORE INTO want_content VALUES (?, ?)",
                         zip(to_signed(rows.key_hi), to_signed(rows.key_lo), strict=True))
        conn.executemany("INSERT OR IGNORE INTO want_para VALUES (?)",
                         ((k,) for k in to_signed(rows.paragraph_keys)))

    def chrome_stats(self) -> ChromeStats | None:
        """The archive's chrome statistics, fetched lazily (only what a run's own pages need)."""
        if self._conn is None or self._conn.execute("SELECT 1 FROM chrome LIMIT 1").fetchone() is None:
            return None
        return _LazyChrome(self, None, int(self._meta["chrome_k"]), int(self._meta["chrome_max_key_chars"]))

    def chrome_for(self, sites: Mapping[str, Any]) -> ChromeStats:
        """The archived statistics of the given sites, restricted to the given line keys.

        `sites` is the "sites" part of a `ChromeStats.to_dict()`: only its site names and key hashes
        are read. Merging the result with those statistics equals merging the whole archive's.
        """
        started = time.perf_counter()
        conn = self._db()
        k, max_chars = int(self._meta.get("chrome_k", 32)), int(self._meta.get("chrome_max_key_chars", 4000))
        out: dict[str, Any] = {"version": 1, "k": k, "max_key_chars": max_chars, "sites": {}}
        site_rows = self._site_rows(list(sites))
        with self._scratch():
            conn.executemany("INSERT OR IGNORE INTO want_chrome VALUES (?, ?)",
                             ((site_id, _hex_to_signed(h)) for site_id, site, _ in site_rows
                              for h in sites[site]["keys"]))
            keys = conn.execute("SELECT k.site_id, k.key, k.groups FROM want_chrome w "
                                "CROSS JOIN chrome_keys k ON k.site_id = w.site_id AND k.key = w.key").fetchall()
        names = {site_id: site for site_id, site, _ in site_rows}
        for _, site, groups in site_rows:
            out["sites"][site] = {"groups": _unpack(groups), "keys": {}}
        for site_id, key, groups in keys:
            out["sites"][names[site_id]]["keys"][f"{key & 0xFFFFFFFFFFFFFFFF:016x}"] = _unpack(groups)
        self.timings["chrome"] = self.timings.get("chrome", 0.0) + time.perf_counter() - started
        return ChromeStats.from_dict(out)

    def _site_rows(self, sites: Sequence[str]) -> list[tuple[int, str, bytes]]:
        conn = self._db()
        found: list[tuple[int, str, bytes]] = []
        for lo in range(0, len(sites), _PARAMS):
            part = sites[lo : lo + _PARAMS]
            found += conn.execute(f"SELECT site_id, site, groups FROM chrome WHERE site IN "
                                  f"({','.join('?' * len(part))})", part).fetchall()
        return found

    def all_chrome(self) -> ChromeStats | None:
        """Every site's statistics at once: for inspection and export, not for runs (it can be large)."""
        conn = self._db()
        sites = {site: {"keys": [f"{key & 0xFFFFFFFFFFFFFFFF:016x}" for (key,) in conn.execute(
                    "SELECT key FROM chrome_keys WHERE site_id = ?", (site_id,))]}
                 for site_id, site in conn.execute("SELECT site_id, site FROM chrome")}
        return self.chrome_for(sites) if sites else None

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
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (a stop request included)."""
        if self.readonly:
            raise DedupeError(f"index {self.path}: opened read-only")
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def add(self, rows: ArchiveRows, stats: ChromeStats | None, run_id: str, *, record: RunRecord | None = None,
            check: Check | None = None) -> int:
        """Archive a run's kept documents and chrome statistics, and record the run, in one transaction.

        A document already archived with the same id and content is skipped, so re-running a batch
        adds nothing twice. `check(stage)` is called between chunks and just before the commit; an
        exception from it rolls everything back. Returns the number of documents added.
        """
        check = check or (lambda stage: None)
        now = utc_now()
        with self._transaction() as conn:
            fresh = self._fresh(rows)
            base = conn.execute("SELECT coalesce(max(doc_id), 0) + 1 FROM documents").fetchone()[0]
            doc_ids = np.arange(base, base + len(fresh), dtype=np.int64)
            self._insert_documents(rows, fresh, doc_ids, run_id, now, check)
            self._insert_keys(rows, fresh, doc_ids, check)
            if stats is not None:
                self._add_chrome(stats, check)
            record = record or RunRecord(run_id, now, now, "ok", kept=len(rows.ids))
            self._write_run(RunRecord(**{**asdict(record), "added": len(fresh)}))
            check("commit")
        return len(fresh)

    def _fresh(self, rows: ArchiveRows) -> np.ndarray:
        """Positions of the rows not yet archived (by id and content), first occurrence only."""
        conn = self._db()
        conn.execute("DELETE FROM want_doc")
        conn.executemany("INSERT INTO want_doc VALUES (?, ?, ?, ?)",
                         zip(range(len(rows.ids)), rows.ids, to_signed(rows.key_hi), to_signed(rows.key_lo),
                             strict=True))
        known = {pos for (pos,) in conn.execute(
            "SELECT w.pos FROM want_doc w CROSS JOIN documents d ON d.key_hi = w.hi AND d.key_lo = w.lo "
            "AND d.id = w.id")}
        seen: set[tuple[str, int, int]] = set()
        fresh = []
        for pos, key in enumerate(zip(rows.ids, rows.key_hi.tolist(), rows.key_lo.tolist(), strict=True)):
            if pos not in known and key not in seen:
                seen.add(key)
                fresh.append(pos)
        conn.execute("DELETE FROM want_doc")
        return np.array(fresh, dtype=np.int64)

    def _insert_documents(self, rows: ArchiveRows, fresh: np.ndarray, doc_ids: np.ndarray, run_id: str, now: str,
                          check: Check) -> None:
        conn = self._db()
        sigs = np.ascontiguousarray(rows.signatures[fresh], dtype="<u4")
        paragraphs = np.ascontiguousarray(rows.paragraph_keys, dtype="<u8")
        offsets = rows.paragraph_offsets
        hi, lo = to_signed(rows.key_hi[fresh]), to_signed(rows.key_lo[fresh])
        for a in range(0, len(fresh), _CHUNK):
            check("insert")
            conn.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                (int(doc_ids[k]), rows.ids[p], rows.sites[p], hi[k], lo[k], int(rows.sizes[p]), sigs[k].tobytes(),
                 paragraphs[offsets[p]:offsets[p + 1]].tobytes(), run_id, now)
                for k, p in ((k, int(fresh[k])) for k in range(a, min(a + _CHUNK, len(fresh))))))

    def _insert_bands(self, signatures: np.ndarray, doc_ids: np.ndarray, check: Check) -> None:
        """Band keys of the non-empty signatures (the scan never pairs empty ones by LSH), sorted for
        B-tree locality."""
        active = signatures[:, 0] != EMPTY
        bands = self.band_keys(signatures[active])
        owner = np.repeat(doc_ids[active], bands.shape[1])
        band_no = np.tile(np.arange(bands.shape[1]), len(bands))
        keys = bands.ravel().view(np.int64)
        order = np.lexsort((owner, keys, band_no))
        self._insert_many("INSERT INTO bands VALUES (?, ?, ?)", (band_no[order], keys[order], owner[order]), check)

    def _insert_keys(self, rows: ArchiveRows, fresh: np.ndarray, doc_ids: np.ndarray, check: Check) -> None:
        """Band keys and long-paragraph keys of the documents being added."""
        self._insert_bands(rows.signatures[fresh], doc_ids, check)
        lengths = np.diff(rows.paragraph_offsets)[fresh]
        starts = rows.paragraph_offsets[fresh]
        index = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        pkeys = rows.paragraph_keys[index].astype(np.uint64).view(np.int64)
        powner = np.repeat(doc_ids, lengths)
        order = np.lexsort((powner, pkeys))
        self._insert_many("INSERT OR IGNORE INTO paragraph_keys VALUES (?, ?)", (pkeys[order], powner[order]), check)

    def _insert_many(self, sql: str, columns: tuple[np.ndarray, ...], check: Check) -> None:
        conn = self._db()
        total = len(columns[0])
        for a in range(0, total, _CHUNK):
            check("insert")
            conn.executemany(sql, zip(*(c[a : a + _CHUNK].tolist() for c in columns), strict=True))

    def _add_chrome(self, stats: ChromeStats, check: Check) -> None:
        """Merge a run's chrome statistics into the stored ones, row by row (only its sites and keys)."""
        conn = self._db()
        k = self._meta.get("chrome_k")
        if k is None:
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [("chrome_k", str(stats.k)), ("chrome_max_key_chars", str(stats.max_key_chars))])
            self._meta.update(chrome_k=str(stats.k), chrome_max_key_chars=str(stats.max_key_chars))
        elif int(k) != stats.k:
            raise DedupeError(f"index {self.path}: chrome statistics with k={stats.k}, the index keeps k={k}")
        merged = _merge_rows(stats.to_dict()["sites"], self.chrome_for)
        conn.executemany("INSERT INTO chrome (site, groups) VALUES (?, ?) ON CONFLICT (site) DO UPDATE "
                         "SET groups = excluded.groups", ((site, _pack(e["groups"])) for site, e in merged.items()))
        ids = {site: site_id for site_id, site, _ in self._site_rows(list(merged))}
        day = dt.date.today().toordinal()
        rows = [(ids[site], _hex_to_signed(h), _pack(groups), day)
                for site, e in merged.items() for h, groups in e["keys"].items()]
        rows.sort()
        for a in range(0, len(rows), _CHUNK):
            check("insert")
            conn.executemany("INSERT INTO chrome_keys VALUES (?, ?, ?, ?) ON CONFLICT (site_id, key) DO UPDATE "
                             "SET groups = excluded.groups, seen = excluded.seen", rows[a : a + _CHUNK])

    def _write_run(self, record: RunRecord) -> None:
        values = astuple(record)
        self._db().execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(values))})", values)

    def record_run(self, record: RunRecord) -> None:
        """Record a run that archived nothing (refused, interrupted, failed) in its own transaction."""
        with self._transaction():
            self._write_run(record)

    def rebuild_bands(self, check: Check | None = None) -> tuple[int, int]:
        """Recompute every band key from the stored signatures with this dedupe's banding (after an
        upgrade changed it); one transaction. Returns the new (bands, rows)."""
        check = check or (lambda stage: None)
        num_perm = int(self._meta["num_perm"])
        bands, rows = lsh_params(float(self._meta["threshold"]), num_perm)
        with self._transaction() as conn:
            conn.execute("DELETE FROM bands")
            self._bands, self._rows = bands, rows
            last = 0
            while True:
                chunk = conn.execute("SELECT doc_id, signature FROM documents WHERE doc_id > ? ORDER BY doc_id "
                                     "LIMIT ?", (last, _CHUNK)).fetchall()
                if not chunk:
                    break
                last = chunk[-1][0]
                doc_ids = np.array([d for d, _ in chunk], dtype=np.int64)
                sigs = np.frombuffer(b"".join(sig for _, sig in chunk), dtype="<u4").reshape(len(chunk), num_perm)
                self._insert_bands(sigs, doc_ids, check)
            meta = {"bands": bands, "rows": rows, "band_probe": _band_probe(num_perm, bands, rows)}
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
            self._meta.update({k: str(v) for k, v in meta.items()})
        return bands, rows

    def forget(self, before: dt.date | dt.datetime | str | None = None, run: str | None = None) -> int:
        """Remove the documents archived before a date (or by one run); returns how many.

        With `before`, chrome line statistics not seen since that day are dropped too, so a
        time-windowed archive stays bounded. The file shrinks only after `vacuum`.
        """
        if (before is None) == (run is None):
            raise DedupeError("forget: give exactly one of a date (before) or a run id")
        with self._transaction() as conn:
            conn.execute("DROP TABLE IF EXISTS temp.gone")
            if run is not None:
                conn.execute("CREATE TEMP TABLE gone AS SELECT doc_id FROM documents WHERE run_id = ?", (run,))
            else:
                cutoff = _cutoff(before)
                conn.execute("CREATE TEMP TABLE gone AS SELECT doc_id FROM documents WHERE added_at < ?", (cutoff,))
                day = dt.date.fromisoformat(cutoff[:10]).toordinal()
                conn.execute("DELETE FROM chrome_keys WHERE seen < ?", (day,))
            gone = conn.execute("SELECT count(*) FROM temp.gone").fetchone()[0]
            for table in ("bands", "paragraph_keys", "documents"):
                conn.execute(f"DELETE FROM {table} WHERE doc_id IN (SELECT doc_id FROM temp.gone)")
            conn.execute("DROP TABLE temp.gone")
        return int(gone)

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

    def count(self) -> int:
        """Archived documents."""
        if self._conn is None:
            return 0
        return int(self._conn.execute("SELECT count(*) FROM documents").fetchone()[0])

    def stats(self, recent: int = 5) -> dict[str, Any]:
        """What is in the index: sizes, dates, settings, the last runs."""
        out: dict[str, Any] = {"path": str(self.path), "exists": self._conn is not None, "documents": self.count(),
                               "size_bytes": self.size_bytes() if self.path.exists() else 0}
        if self._conn is None:
            return out
        conn = self._conn

        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        first, last = conn.execute("SELECT min(added_at), max(added_at) FROM documents").fetchone()
        columns = [c[1] for c in conn.execute("PRAGMA table_info(runs)")]
        out.update({
            "bytes_per_document": round(out["size_bytes"] / out["documents"]) if out["documents"] else None,
            "sites": one("SELECT count(DISTINCT site) FROM documents"),
            "first_added": first, "last_added": last,
            "chrome_sites": one("SELECT count(*) FROM chrome"),
            "chrome_lines": one("SELECT count(*) FROM chrome_keys"),
            "runs": one("SELECT count(*) FROM runs"),
            "schema_version": int(self._meta["schema_version"]),
            "created_at": self._meta.get("created_at"),
            "settings": self.settings,
            "banding": f"{self._bands}x{self._rows}",
            "recent_runs": [dict(zip(columns, r, strict=True)) for r in conn.execute(
                "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (recent,))],
        })
        return out

    def export(self) -> Iterator[dict[str, Any]]:
        """Every archived document as a JSON-able record, in archive order (for backups and audits)."""
        if self._conn is None:
            return
        for doc_id, id_, site, hi, lo, size, sig, paras, run_id, added in self._conn.execute(
                "SELECT * FROM documents ORDER BY doc_id"):
            yield {"doc": doc_id, "id": id_, "site": site,
                   "key": f"{hi & 0xFFFFFFFFFFFFFFFF:016x}{lo & 0xFFFFFFFFFFFFFFFF:016x}", "size": size,
                   "run_id": run_id, "added_at": added, "signature": base64.b64encode(sig).decode("ascii"),
                   "paragraph_keys": [f"{v:016x}" for v in np.frombuffer(paras, dtype="<u8").tolist()]}


def _merge_rows(new: dict[str, Any], stored: Callable[[Mapping[str, Any]], ChromeStats]) -> dict[str, Any]:
    """`stored(new) merged with new`, as the "sites" part of `to_dict`, for the sites and keys of `new`.

    Most lines of a night's pages are new to the archive: their sketches are taken as they are (a merge
    with nothing is the identity). Only site group counts and the keys the archive already has go
    through `ChromeStats.merge`, so merging stays exactly ChromeStats's own.
    """
    old = stored(new).to_dict()
    shared = {site: {"groups": new[site]["groups"], "keys": {h: new[site]["keys"][h] for h in e["keys"]}}
              for site, e in old["sites"].items()}
    both = ChromeStats.from_dict({**old, "sites": shared}).merge(ChromeStats.from_dict(old)).to_dict()["sites"]
    return {site: {"groups": both[site]["groups"] if site in both else e["groups"],
                   "keys": {**e["keys"], **both[site]["keys"]} if site in both else e["keys"]}
            for site, e in new.items()}


def _band_probe(num_perm: int, bands: int, rows: int) -> str:
    """Band keys of a fixed signature: equal only if band keys are still computed as when stored."""
    probe = (np.arange(num_perm, dtype=np.uint64) * np.uint64(2654435761) % np.uint64(2**32)).astype(np.uint32)
    return ",".join(f"{k:x}" for k in band_keys(probe[None, :], bands, rows)[0].tolist())


def _same(stored: str | None, wanted: object) -> bool:
    if stored is None:
        return False
    if isinstance(wanted, float):
        return float(stored) == wanted
    return stored == str(wanted)


def _cutoff(before: dt.date | dt.datetime | str | None) -> str:
    """A date (documents added before that day) or a time, as text comparable with `added_at`."""
    if isinstance(before, dt.datetime):
        return before.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(before, dt.date):
        return before.isoformat()
    try:
        return dt.date.fromisoformat(str(before)).isoformat()
    except ValueError:
        raise DedupeError(f"forget: {before!r} is not a date (YYYY-MM-DD)") from None


def _archived_docs(found: list[tuple[Any, ...]], num_perm: int) -> ArchivedDocs:
    if not found:
        return ArchivedDocs.empty(num_perm)
    ids, sites, hi, lo, sizes, sigs, paras = zip(*found, strict=True)
    lengths = np.array([len(p) // 8 for p in paras], dtype=np.int64)
    offsets = np.zeros(len(found) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return ArchivedDocs(list(ids), list(sites), from_signed(hi), from_signed(lo), np.array(sizes, dtype=np.int64),
                        np.frombuffer(b"".join(sigs), dtype="<u4").astype(np.uint32).reshape(len(found), num_perm),
                        np.frombuffer(b"".join(paras), dtype="<u8").astype(np.uint64), offsets)


class _LazyChrome(ChromeStats):
    """The index's chrome statistics (plus `extra` merged in), loaded only as far as they are used.

    The stored statistics hold a row for every line of every archived page: far too many to load per
    run. A scan merges them with its own statistics and then asks only about its own sites and lines,
    so merging prefetches exactly those rows (one batched query) and answers them from memory. Any
    other question (another site or line, `to_dict`, equality, merging this into a plain ChromeStats)
    loads everything first, so the object always behaves as the full merge would.
    """

    def __init__(self, index: SQLiteIndex, extra: ChromeStats | None, k: int, max_key_chars: int) -> None:
        self._index = index
        self._extra = extra
        self._full: ChromeStats | None = None
        self._fast = index.chrome_for(extra.to_dict()["sites"]).merge(extra) if extra is not None else None
        self._fast_sites = set(self._fast.sites()) if self._fast is not None else set()
        super().__init__(min(k, extra.k) if extra else k, max(max_key_chars, extra.max_key_chars) if extra else
                         max_key_chars)

    def merge(self, other: ChromeStats) -> ChromeStats:
        if isinstance(other, _LazyChrome):
            return self._everything().merge(other._everything())
        extra = other if self._extra is None else self._extra.merge(other)
        return _LazyChrome(self._index, extra, self.k, self.max_key_chars)

    def _everything(self) -> ChromeStats:
        if self._full is None:
            full = self._index.all_chrome() or ChromeStats(self.k, self.max_key_chars)
            self._full = full.merge(self._extra) if self._extra is not None else full
        return self._full

    def site_groups(self, site: str) -> int:
        if self._fast is not None and site in self._fast_sites:
            return self._fast.site_groups(site)
        return self._everything().site_groups(site)

    def recurrence(self, site: str, key: str) -> int:
        if not key or len(key) > self.max_key_chars:
            return 0  # never stored (ChromeStats keeps no keys of longer lines)
        if self._fast is not None:
            found = self._fast.recurrence(site, key)
            if found:  # a line of `extra`: its prefetched count includes the archive's
                return found
        return self._everything().recurrence(site, key)

    def sites(self) -> list[str]:
        return self._everything().sites()

    def to_dict(self) -> dict[str, Any]:
        return self._everything().to_dict()

    # ChromeStats.merge(other) reads other._sites directly: serve the full statistics there too.
    @property  # type: ignore[override]
    def _sites(self) -> Any:
        return self._everything()._sites

    @_sites.setter
    def _sites(self, value: Any) -> None:  # ChromeStats.__init__ assigns an empty dict
        pass


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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
