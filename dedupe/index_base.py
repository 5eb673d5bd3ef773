"""What every persistent index shares, whatever stores it (SQLite file, PostgreSQL schema).

The backends differ only in SQL and transport; the rules live here once, so an SQLite and a
PostgreSQL index built from the same runs hold the same rows and answer the same way:
- the stored meta (schema version, shingle hash version, matched settings, the index's own banding
  and its probe) and the refusals when they do not match;
- which rows `add` writes (documents not yet archived by id and content, band keys of non-empty
  signatures, long-paragraph keys, chrome statistics merged per (site, line key), a run record);
- the chrome statistics merge (`_merge_rows`) and their lazy, batch-restricted loading
  (`_LazyChrome`);
- ids, site names and page groups stored as text both databases take (`stored_text`), given back
  unchanged;
- the export record and the statistics report.

A backend subclasses `IndexBase` and implements the storage hooks (the `_`-methods raising
NotImplementedError).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import re
import time
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .archive import ArchivedDocs, ArchiveRows
from .arrays import distinct_rows, range_indices, unique_sorted
from .chrome import ChromeStats, DeferredChrome
from .errors import EXIT_IOERR, EXIT_TEMPFAIL, DedupeError
from .lsh import band_keys, lsh_params
from .minhash import EMPTY
from .settings import Settings
from .shingle import HASH_VERSION

SCHEMA_VERSION = 3
"""2 added `documents.page_group`, 3 `documents.copy_of`; an index of an earlier version is upgraded
in place when opened for writing, and read as it is (its documents' page groups are their ids, and
none is a copy)."""
UPGRADABLE_VERSIONS = ("1", "2")
MATCHED_SETTINGS = ("num_perm", "seed", "ngram", "threshold", "min_words")
CHUNK = 20_000  # rows per insert batch: the point between batches where a stop request is honoured

Check = Callable[[str], None]


class IndexBusy(DedupeError):
    """Another writer holds the index: exit 75 (EX_TEMPFAIL), so a scheduler retries later."""

    exit_code = EXIT_TEMPFAIL


class IndexWriteError(DedupeError):
    """The database refused a run's write (a full disk, an I/O error; for PostgreSQL a lost
    connection is 75, as at connecting): the transaction is rolled back, the index is as it was."""

    exit_code = EXIT_IOERR


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


RUN_COLUMNS = tuple(RunRecord.__dataclass_fields__)


def utc_now() -> str:
    """The timestamp format of the index: ISO 8601 UTC to the second, which sorts as text."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- uint64 <-> signed 64-bit integers -------------------------------------------------------------


def to_signed(values: np.ndarray) -> list[int]:
    """uint64 values as the int64 the databases store (same bits), as Python ints."""
    return np.ascontiguousarray(values, dtype=np.uint64).view(np.int64).tolist()  # type: ignore[no-any-return]


def from_signed(values: Sequence[int]) -> np.ndarray:
    """Inverse of `to_signed`."""
    return np.array(values, dtype=np.int64).view(np.uint64)


def hex_to_signed(h: str) -> int:
    v = int(h, 16)
    return v - (1 << 64) if v >= 1 << 63 else v


def pack(hexes: Sequence[str]) -> bytes:
    """A KMV sketch (the 16-digit hex strings of `ChromeStats.to_dict`) as uint64 big-endian bytes."""
    return bytes.fromhex("".join(hexes))


def unpack(blob: bytes) -> list[str]:
    digits = bytes(blob).hex()
    return [digits[i : i + 16] for i in range(0, len(digits), 16)]


# --- ids and site names as stored text --------------------------------------------------------------

_ESCAPE = "\ufdd0"  # a Unicode noncharacter: never in real text, still valid UTF-8 for both databases
_UNSTORABLE = re.compile("[\x00\ud800-\udfff\ufdd0]")
_ESCAPED = re.compile("\ufdd0([0-9a-f]{4})")


def stored_text(text: str) -> str:
    """`text` as the index stores an id or a site name.

    A JSONL record may carry a lone surrogate escape ("\\ud800") or a NUL in its id or site; the
    readers keep them so records round-trip, but neither database takes them as text (SQLite's
    driver encodes strict UTF-8, PostgreSQL refuses NUL). Each such character, and the escape
    character itself, becomes U+FDD0 and four hex digits: one-to-one, so equal ids stay equal and
    distinct ones distinct, and every other text is stored unchanged. `text_from_store` inverts it.
    """
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(lambda m: f"{_ESCAPE}{ord(m[0]):04x}", text)


def text_from_store(text: str) -> str:
    """The id or site name `stored_text` stored as `text`."""
    if _ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m[1], 16)), text)


# --- rows a run adds (backend-neutral arrays) --------------------------------------------------------


def fresh_positions(rows: ArchiveRows, known: Container[int]) -> np.ndarray:
    """Positions of the rows not yet archived (`known`: positions whose id and content are), first
    occurrence only: re-running a batch adds nothing twice."""
    seen: set[tuple[str, int, int]] = set()
    fresh = []
    for pos, key in enumerate(zip(rows.ids, rows.key_hi.tolist(), rows.key_lo.tolist(), strict=True)):
        if pos not in known and key not in seen:
            seen.add(key)
            fresh.append(pos)
    return np.array(fresh, dtype=np.int64)


def wanted_bands(signatures: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(band number, signed band key) of the non-empty signatures: what a lookup probes."""
    active = signatures[:, 0] != EMPTY if len(signatures) else np.zeros(0, dtype=bool)
    keys = band_keys(signatures[active], bands, rows)
    band_no = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    return band_no.ravel().astype(np.int64), keys.ravel().view(np.int64)


def band_rows(signatures: np.ndarray, doc_ids: np.ndarray, bands: int, rows: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(band, key, doc_id) rows of the non-empty signatures (the scan never pairs empty ones by LSH),
    sorted for B-tree locality."""
    active = signatures[:, 0] != EMPTY
    keys2d = band_keys(signatures[active], bands, rows)
    owner = np.repeat(doc_ids[active], keys2d.shape[1])
    band_no = np.tile(np.arange(keys2d.shape[1], dtype=np.int64), len(keys2d))
    keys = keys2d.ravel().view(np.int64)
    order = np.lexsort((owner, keys, band_no))
    return band_no[order], keys[order], owner[order]


def paragraph_rows(rows: ArchiveRows, fresh: np.ndarray, doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(key, doc_id) rows of the long-paragraph keys of the documents being added, sorted, unique."""
    lengths = np.diff(rows.paragraph_offsets)[fresh]
    starts = rows.paragraph_offsets[fresh]
    index = range_indices(starts, lengths)
    # (a document repeating a paragraph has its key once)
    return distinct_rows(rows.paragraph_keys[index].astype(np.uint64).view(np.int64), np.repeat(doc_ids, lengths))


def document_rows(rows: ArchiveRows, fresh: np.ndarray, doc_ids: np.ndarray, run_id: str, now: str
                  ) -> Iterator[tuple[Any, ...]]:
    """`documents` rows, in column order, of the positions `fresh`."""
    sigs = np.ascontiguousarray(rows.signatures[fresh], dtype="<u4")
    paragraphs = np.ascontiguousarray(rows.paragraph_keys, dtype="<u8")
    offsets = rows.paragraph_offsets
    hi, lo = to_signed(rows.key_hi[fresh]), to_signed(rows.key_lo[fresh])
    copy_of = rows.copies_of()
    for k, p in enumerate(fresh.tolist()):
        yield (int(doc_ids[k]), rows.ids[p], rows.sites[p], hi[k], lo[k], int(rows.sizes[p]), sigs[k].tobytes(),
               paragraphs[offsets[p]:offsets[p + 1]].tobytes(), run_id, now, rows.page_groups[p], copy_of[p])


def export_record(row: Sequence[Any]) -> dict[str, Any]:
    """A `documents` row as the JSON-able record of `dedupe index export` (a version-1 index's rows
    have no page group: the document's id stands for it; `copy_of` is null for a kept document)."""
    doc_id, id_, site, hi, lo, size, sig, paras, run_id, added = row[:10]
    group = row[10] if len(row) > 10 and row[10] is not None else id_
    copy_of = row[11] if len(row) > 11 else None
    return {"doc": doc_id, "id": text_from_store(id_), "site": text_from_store(site),
            "key": f"{hi & 0xFFFFFFFFFFFFFFFF:016x}{lo & 0xFFFFFFFFFFFFFFFF:016x}", "size": size,
            "run_id": run_id, "added_at": added, "signature": base64.b64encode(bytes(sig)).decode("ascii"),
            "paragraph_keys": [f"{v:016x}" for v in np.frombuffer(bytes(paras), dtype="<u8").tolist()],
            "page_group": text_from_store(group), "copy_of": None if copy_of is None else text_from_store(copy_of)}


def archived_docs(found: Sequence[Sequence[Any]], num_perm: int, run_from: int | None = None,
                  run_again: np.ndarray | None = None) -> ArchivedDocs:
    """Rows (id, site, key_hi, key_lo, size, signature, paragraphs, page group or None, copy_of or
    None, doc_id) as the arrays a scan verifies with. Documents numbered `run_from` or later were
    archived by the open run (`IndexBase.one_transaction`), and so, in effect, were those numbered in
    `run_again` (sorted): archived before, and met again by it."""
    if not found:
        return ArchivedDocs.empty(num_perm)
    ids, sites, hi, lo, sizes, sigs, paras, groups, copy_of, doc_ids = zip(*found, strict=True)
    this_run = None
    if run_from is not None:
        numbers = np.array(doc_ids, dtype=np.int64)
        this_run = numbers >= run_from
        if run_again is not None and run_again.size:
            this_run |= np.isin(numbers, run_again)
    lengths = np.array([len(p) // 8 for p in paras], dtype=np.int64)
    offsets = np.zeros(len(found) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return ArchivedDocs([text_from_store(i) for i in ids], [text_from_store(s) for s in sites], from_signed(hi),
                        from_signed(lo), np.array(sizes, dtype=np.int64),
                        np.frombuffer(b"".join(map(bytes, sigs)), dtype="<u4").astype(np.uint32)
                        .reshape(len(found), num_perm),
                        np.frombuffer(b"".join(map(bytes, paras)), dtype="<u8").astype(np.uint64), offsets,
                        [text_from_store(i if g is None else g) for i, g in zip(ids, groups, strict=True)],
                        [None if c is None else text_from_store(c) for c in copy_of], this_run)


# --- the shared index -------------------------------------------------------------------------------


class IndexBase:
    """The behaviour of a persistent `Archive`; subclasses store it.

    `name` is how errors and reports call the index (a path, or a URL without its password).
    """

    name: str
    readonly: bool
    reruns = True  # a batch cleaned again finds its own documents here (`Archive.reruns`)

    def __init__(self, name: str, readonly: bool) -> None:
        self.name = name
        self.readonly = readonly
        self.timings: dict[str, float] = {}
        self._meta: dict[str, str] = {}
        self._bands = self._rows = 0

    # -- storage hooks ----------------------------------------------------------------------------

    _conn: Any = None  # the backend's open connection; None once closed

    def _db(self) -> Any:
        if self._conn is None:
            raise DedupeError(f"index {self.name}: closed")
        return self._conn

    def _is_open(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        raise NotImplementedError

    def _write_transaction(self) -> contextlib.AbstractContextManager[Any]:
        """One write transaction, rolled back on any exception (a stop request included)."""
        raise NotImplementedError

    _run_from: int | None = None  # the first document number of the open `one_transaction`'s run
    _run_added = 0  # documents the open `one_transaction` has added
    _run_again = np.zeros(0, dtype=np.int64)  # archived documents it met again (a re-run), sorted

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A write transaction of its own, or a part of the open `one_transaction`."""
        if self._run_from is not None:
            return contextlib.nullcontext(self._db())
        return self._write_transaction()

    @property
    def in_transaction(self) -> bool:
        """Whether a `one_transaction` is open."""
        return self._run_from is not None

    @property
    def added_in_transaction(self) -> int:
        """Documents the open (or the last) `one_transaction` has added."""
        return self._run_added

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Every write inside the block in one transaction, committed when the block ends and rolled
        back if it raises, so a run that archives batch after batch (`clean --in-batches --index`)
        still leaves the index as it was when it stops. Its lookups see what it has added, and the
        documents it has added or met again (re-run) are marked `ArchivedDocs.this_run`: the same
        id and content again is then a duplicate record, not a re-run of an earlier run. The run is
        recorded once, by the `add` given a `record`, with the documents all its adds archived."""
        if self._run_from is not None:
            raise DedupeError(f"index {self.name}: a transaction is open already")
        with self._write_transaction():
            self._run_from, self._run_added, self._run_again = self._next_doc_id(), 0, np.zeros(0, dtype=np.int64)
            try:
                yield
            finally:
                self._run_from = None

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a parameterless statement written in SQL both backends speak."""
        raise NotImplementedError

    def _lookup(self, bands: tuple[np.ndarray, np.ndarray], hi: list[int], lo: list[int],
                paragraphs: list[int]) -> list[tuple[Any, ...]]:
        """(id, site, key_hi, key_lo, size, signature, paragraphs, page group, copy_of, doc_id) of the
        documents sharing a band (band number, key), a content key (hi, lo) or a paragraph key: one
        batched query (the page group None in an index not yet upgraded from version 1)."""
        raise NotImplementedError

    def _known(self, rows: ArchiveRows) -> dict[int, int]:
        """Positions of `rows` archived already under the same id and content key, each with the
        archived document's number."""
        raise NotImplementedError

    def _next_doc_id(self) -> int:
        raise NotImplementedError

    def _insert_documents(self, documents: Iterator[tuple[Any, ...]], count: int, check: Check) -> None:
        raise NotImplementedError

    def _insert_bands(self, columns: tuple[np.ndarray, np.ndarray, np.ndarray], check: Check) -> None:
        raise NotImplementedError

    def _insert_paragraph_keys(self, columns: tuple[np.ndarray, np.ndarray], check: Check) -> None:
        raise NotImplementedError

    def _set_meta(self, values: Mapping[str, object]) -> None:
        """Insert or replace meta rows (inside the current transaction)."""
        raise NotImplementedError

    def _site_rows(self, sites: Sequence[str]) -> list[tuple[int, str, bytes]]:
        """(site_id, site, groups) of the given sites that have chrome statistics."""
        raise NotImplementedError

    def _chrome_key_rows(self, wanted: list[tuple[int, int]]) -> list[tuple[int, int, bytes]]:
        """(site_id, key, groups) of the given (site_id, key) pairs that are stored: one batched query."""
        raise NotImplementedError

    def _all_chrome_keys(self) -> dict[str, list[int]]:
        """Every site with chrome statistics, with all its line keys."""
        raise NotImplementedError

    def _upsert_sites(self, sites: list[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def _upsert_chrome_keys(self, rows: list[tuple[int, int, bytes, int]], check: Check) -> None:
        raise NotImplementedError

    def _write_run(self, record: RunRecord) -> None:
        """Insert or replace a run record (the newest write of a run id sorts last among equal starts)."""
        raise NotImplementedError

    def _recent_runs(self, recent: int) -> list[tuple[Any, ...]]:
        """The last `recent` run rows, in `RUN_COLUMNS` order, newest first."""
        raise NotImplementedError

    def _clear_bands(self) -> None:
        raise NotImplementedError

    def _signature_chunks(self, num_perm: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(doc_ids, signatures) of every archived document, in chunks of `CHUNK`."""
        raise NotImplementedError

    def _forget_documents(self, run: str | None, cutoff: str | None) -> int:
        """Delete the documents of a run, or added before `cutoff`, with their keys; how many went."""
        raise NotImplementedError

    def _forget_chrome(self, day: int) -> None:
        """Delete the chrome line statistics last seen before that day (ordinal)."""
        raise NotImplementedError

    def _document_rows(self) -> Iterator[Sequence[Any]]:
        """Every `documents` row in column order, by doc_id."""
        raise NotImplementedError

    def size_bytes(self) -> int:
        raise NotImplementedError

    def vacuum(self) -> tuple[int, int]:
        raise NotImplementedError

    # -- meta and refusals ------------------------------------------------------------------------

    @staticmethod
    def _creation_meta(settings: Settings) -> dict[str, object]:
        """The meta rows of a new index: versions, matched settings and this dedupe's banding."""
        bands, rows = lsh_params(settings.threshold, settings.num_perm)
        return {"schema_version": SCHEMA_VERSION, "hash_version": HASH_VERSION, "created_at": utc_now(),
                "bands": bands, "rows": rows, "band_probe": band_probe(settings.num_perm, bands, rows),
                **{name: getattr(settings, name) for name in MATCHED_SETTINGS}}

    def _adopt_meta(self, meta: dict[str, str], settings: Settings | None, check_banding: bool) -> None:
        """Take the stored meta, refusing what this dedupe cannot use; an index of an earlier schema
        opened for writing is upgraded (`_upgrade`)."""
        self._meta = meta
        self._check(settings)
        self._bands, self._rows = int(self._meta["bands"]), int(self._meta["rows"])
        if check_banding:
            self._check_banding()
        if not self.readonly and self._meta.get("schema_version") in UPGRADABLE_VERSIONS:
            with self._transaction():
                self._upgrade()
                self._set_meta({"schema_version": SCHEMA_VERSION})
            self._meta["schema_version"] = str(SCHEMA_VERSION)

    def _upgrade(self) -> None:
        """To the current version, inside a transaction: add the columns of the versions since the
        stored one (`_added_columns`), NULL for the documents already archived: they are then read
        with their ids as their page groups, and as kept documents."""
        raise NotImplementedError

    def _added_columns(self) -> list[tuple[str, str]]:
        """(column, SQL type name) of `documents` that versions after the stored one added."""
        version = int(self._meta["schema_version"])
        return [column for since, column in ((2, ("page_group", "TEXT")), (3, ("copy_of", "TEXT"))) if since > version]

    @property
    def _page_group(self) -> str:
        """The SQL a lookup selects as a document's page group: the column, or NULL in an index
        read before its upgrade (opened read-only)."""
        return "d.page_group" if int(self._meta["schema_version"]) >= 2 else "NULL"

    @property
    def _copy_of(self) -> str:
        """The SQL a lookup selects as the kept document a removed copy was archived for (NULL
        before the upgrade: no copies were archived)."""
        return "d.copy_of" if int(self._meta["schema_version"]) >= 3 else "NULL"

    def _check(self, settings: Settings | None) -> None:
        """Refuse an index of another schema version, or built with settings that change signatures."""
        version = self._meta.get("schema_version")
        if version != str(SCHEMA_VERSION) and version not in UPGRADABLE_VERSIONS:
            raise DedupeError(f"index {self.name}: schema version {version}, this dedupe reads version "
                              f"{SCHEMA_VERSION}; export it with the dedupe that wrote it, or start a new index")
        hashing = self._meta.get("hash_version")
        if hashing != str(HASH_VERSION):
            raise DedupeError(f"index {self.name}: its signatures use shingle hash version {hashing}, this dedupe "
                              f"uses version {HASH_VERSION}; start a new index (or `dedupe index export` it first)")
        if settings is None:
            return
        differ = [f"{name}={self._meta.get(name)} (this run: {getattr(settings, name)})" for name in MATCHED_SETTINGS
                  if not _same(self._meta.get(name), getattr(settings, name))]
        if differ:
            raise DedupeError(f"index {self.name} was built with other settings: {', '.join(differ)}; "
                              "use the index's settings or a new index")

    def _check_banding(self) -> None:
        """Band keys are stored, so they must be computed the way they were when stored.

        The index keeps its own banding (bands x rows) whatever this dedupe's `lsh_params` now
        prefer, and computes every lookup with it; only a change in how band keys are computed
        (caught by a probe) makes the stored keys useless, and then `rebuild_bands` recomputes them.
        """
        num_perm = int(self._meta["num_perm"])
        if self._meta.get("band_probe") != band_probe(num_perm, self._bands, self._rows):
            raise DedupeError(f"index {self.name}: its LSH band keys were computed by another version of dedupe; "
                              f"run `dedupe index rebuild {self.name}` once to recompute them")

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """Band keys of `signatures` under the index's own banding."""
        return band_keys(signatures, self._bands, self._rows)

    @property
    def settings(self) -> dict[str, str]:
        """The settings the index was built with (empty for a missing read-only index)."""
        return {name: self._meta[name] for name in MATCHED_SETTINGS if name in self._meta}

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Archive protocol -------------------------------------------------------------------------

    def candidates(self, rows: ArchiveRows) -> ArchivedDocs:
        """Archived documents sharing a band key, a content key or a long-paragraph key with `rows`.

        Band keys are computed from `rows.signatures` with the index's banding (`rows.bands` follow
        the running dedupe's, which may differ from the one the archive was stored with). An index
        holding no documents yet (a first night) answers without the batched query, whose temp
        rows cost seconds for a large batch."""
        started = time.perf_counter()
        num_perm = rows.signatures.shape[1]
        if not self._is_open() or not rows.ids or not self._query("SELECT 1 FROM documents LIMIT 1"):
            return ArchivedDocs.empty(num_perm)
        found = self._lookup(wanted_bands(rows.signatures, self._bands, self._rows), to_signed(rows.key_hi),
                             to_signed(rows.key_lo), to_signed(unique_sorted(rows.paragraph_keys)))
        self.timings["lookup"] = self.timings.get("lookup", 0.0) + time.perf_counter() - started
        return archived_docs(found, num_perm, self._run_from, self._run_again)

    def chrome_stats(self) -> ChromeStats | None:
        """The archive's chrome statistics, fetched lazily (only what a run's own pages need)."""
        if not self._is_open() or not self._query("SELECT 1 FROM chrome LIMIT 1"):
            return None
        return _LazyChrome(self, None, int(self._meta["chrome_k"]), int(self._meta["chrome_max_key_chars"]))

    def chrome_for(self, sites: Mapping[str, Any]) -> ChromeStats:
        """The archived statistics of the given sites, restricted to the given line keys.

        `sites` is the "sites" part of a `ChromeStats.to_dict()`: only its site names and key hashes
        are read. Merging the result with those statistics equals merging the whole archive's.
        """
        started = time.perf_counter()
        k, max_chars = int(self._meta.get("chrome_k", 32)), int(self._meta.get("chrome_max_key_chars", 4000))
        out: dict[str, Any] = {"version": 1, "k": k, "max_key_chars": max_chars, "sites": {}}
        site_rows = [(site_id, text_from_store(site), groups)
                     for site_id, site, groups in self._site_rows([stored_text(site) for site in sites])]
        wanted = sorted({(site_id, hex_to_signed(h)) for site_id, site, _ in site_rows for h in sites[site]["keys"]})
        keys = self._chrome_key_rows(wanted) if wanted else []
        names = {site_id: site for site_id, site, _ in site_rows}
        for _, site, groups in site_rows:
            out["sites"][site] = {"groups": unpack(groups), "keys": {}}
        for site_id, key, groups in keys:
            out["sites"][names[site_id]]["keys"][f"{key & 0xFFFFFFFFFFFFFFFF:016x}"] = unpack(groups)
        self.timings["chrome"] = self.timings.get("chrome", 0.0) + time.perf_counter() - started
        return ChromeStats.from_dict(out)

    def all_chrome(self) -> ChromeStats | None:
        """Every site's statistics at once: for inspection and export, not for runs (it can be large)."""
        sites = {text_from_store(site): {"keys": [f"{key & 0xFFFFFFFFFFFFFFFF:016x}" for key in keys]}
                 for site, keys in self._all_chrome_keys().items()}
        return self.chrome_for(sites) if sites else None

    # -- writing ----------------------------------------------------------------------------------

    def add(self, rows: ArchiveRows, stats: ChromeStats | None, run_id: str, *, record: RunRecord | None = None,
            check: Check | None = None) -> int:
        """Archive a run's documents (`ScanResult.rows_to_archive`: the kept ones and the removed near
        copies) and chrome statistics, and record the run, in one transaction (or as part of the
        open `one_transaction`, where only an add given a `record` records the run).

        A document already archived with the same id and content is skipped, so re-running a batch
        adds nothing twice. `check(stage)` is called between chunks and just before the commit; an
        exception from it rolls everything back. Returns the number of documents added.
        """
        check = check or (lambda stage: None)
        now = utc_now()
        rows = dataclasses.replace(rows, ids=[stored_text(i) for i in rows.ids],
                                   sites=[stored_text(s) for s in rows.sites],
                                   page_groups=[stored_text(g) for g in rows.page_groups],
                                   copy_of=[None if c is None else stored_text(c) for c in rows.copies_of()])
        with self._transaction():
            known = self._known(rows)
            fresh = fresh_positions(rows, known)
            if self._run_from is not None and known:
                self._run_again = np.union1d(self._run_again, np.fromiter(known.values(), dtype=np.int64))
            base = self._next_doc_id()
            doc_ids = np.arange(base, base + len(fresh), dtype=np.int64)
            self._insert_documents(document_rows(rows, fresh, doc_ids, run_id, now), len(fresh), check)
            self._insert_bands(band_rows(rows.signatures[fresh], doc_ids, self._bands, self._rows), check)
            self._insert_paragraph_keys(paragraph_rows(rows, fresh, doc_ids), check)
            if stats is not None:
                self._add_chrome(stats, check)
            added = len(fresh)
            if self._run_from is not None:
                self._run_added += added
                added = self._run_added
            if record is not None or self._run_from is None:
                record = record or RunRecord(run_id, now, now, "ok", kept=len(rows.ids))
                self._write_run(RunRecord(**{**asdict(record), "added": added}))
            check("commit")
        return len(fresh)

    def _add_chrome(self, stats: ChromeStats, check: Check) -> None:
        """Merge a run's chrome statistics into the stored ones, row by row (only its sites and keys)."""
        k = self._meta.get("chrome_k")
        if k is None:
            self._set_meta({"chrome_k": stats.k, "chrome_max_key_chars": stats.max_key_chars})
            self._meta.update(chrome_k=str(stats.k), chrome_max_key_chars=str(stats.max_key_chars))
        elif int(k) != stats.k:
            raise DedupeError(f"index {self.name}: chrome statistics with k={stats.k}, the index keeps k={k}")
        merged = _merge_rows(stats.to_dict()["sites"], self.chrome_for)
        stored = {site: stored_text(site) for site in merged}
        self._upsert_sites([(stored[site], pack(e["groups"])) for site, e in merged.items()])
        ids = {site: site_id for site_id, site, _ in self._site_rows(list(stored.values()))}
        day = dt.date.today().toordinal()
        rows = [(ids[stored[site]], hex_to_signed(h), pack(groups), day)
                for site, e in merged.items() for h, groups in e["keys"].items()]
        rows.sort()
        self._upsert_chrome_keys(rows, check)

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
        with self._transaction():
            self._clear_bands()
            for doc_ids, sigs in self._signature_chunks(num_perm):
                self._insert_bands(band_rows(sigs, doc_ids, bands, rows), check)
            meta = {"bands": bands, "rows": rows, "band_probe": band_probe(num_perm, bands, rows)}
            self._set_meta(meta)
        self._meta.update({k: str(v) for k, v in meta.items()})
        self._bands, self._rows = bands, rows
        return bands, rows

    def forget(self, before: dt.date | dt.datetime | str | None = None, run: str | None = None) -> int:
        """Remove the documents archived before a date (or by one run); returns how many.

        With `before`, chrome line statistics not seen since that day are dropped too, so a
        time-windowed archive stays bounded. The storage shrinks only after `vacuum`.
        """
        if (before is None) == (run is None):
            raise DedupeError("forget: give exactly one of a date (before) or a run id")
        cutoff = None if run is not None else _cutoff(before)
        with self._transaction():
            if cutoff is not None:
                self._forget_chrome(dt.date.fromisoformat(cutoff[:10]).toordinal())
            return self._forget_documents(run, cutoff)

    # -- inspection -------------------------------------------------------------------------------

    def count(self, copies: bool = False) -> int:
        """Archived documents, the removed copies among them (with `copies`: only those, archived
        for matching the kept document they stand for)."""
        if not self._is_open():
            return 0
        if copies:
            return int(self._query("SELECT count(*) FROM documents d WHERE "
                                   f"{self._copy_of} IS NOT NULL")[0][0])
        return int(self._query("SELECT count(*) FROM documents")[0][0])

    def stats(self, recent: int = 5) -> dict[str, Any]:
        """What is in the index: sizes, dates, settings, the last runs."""
        out: dict[str, Any] = {"path": self.name, "exists": self._is_open(), "documents": self.count(),
                               "copies": self.count(copies=True), "size_bytes": self.size_bytes()}
        if not self._is_open():
            return out

        def one(sql: str) -> Any:
            return self._query(sql)[0][0]

        first, last = self._query("SELECT min(added_at), max(added_at) FROM documents")[0]
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
            "recent_runs": [dict(zip(RUN_COLUMNS, r, strict=True)) for r in self._recent_runs(recent)],
        })
        return out

    def export(self) -> Generator[dict[str, Any], None, None]:
        """Every archived document as a JSON-able record, in archive order (for backups and audits)."""
        if not self._is_open():
            return
        for row in self._document_rows():
            yield export_record(row)


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


def band_probe(num_perm: int, bands: int, rows: int) -> str:
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


class _LazyChrome(DeferredChrome):
    """The index's chrome statistics (plus `extra` merged in), loaded only as far as they are used.

    The stored statistics hold a row for every line of every archived page: far too many to load per
    run. A scan merges them with its own statistics and then asks only about its own sites and lines,
    so merging prefetches exactly those rows (one batched query) and answers them from memory. Any
    other question (another site or line, `to_dict`, equality, merging this into a plain ChromeStats)
    loads everything first, so the object always behaves as the full merge would.
    """

    def __init__(self, index: IndexBase, extra: ChromeStats | None, k: int, max_key_chars: int) -> None:
        self._index = index
        self._extra = extra
        self._fast = index.chrome_for(extra.to_dict()["sites"]).merge(extra) if extra is not None else None
        self._fast_sites = set(self._fast.sites()) if self._fast is not None else set()
        super().__init__(min(k, extra.k) if extra else k, max(max_key_chars, extra.max_key_chars) if extra else
                         max_key_chars)

    def narrowed(self, keys: Mapping[str, Iterable[int]]) -> ChromeStats:
        wanted = {site: {"keys": [f"{h:016x}" for h in hashes]} for site, hashes in keys.items()}
        fetched = self._index.chrome_for(wanted)
        return fetched.merge(self._extra) if self._extra is not None else fetched

    def merge(self, other: ChromeStats) -> ChromeStats:
        if isinstance(other, _LazyChrome):
            return self._everything().merge(other._everything())
        extra = other if self._extra is None else self._extra.merge(other)
        return _LazyChrome(self._index, extra, self.k, self.max_key_chars)

    def _load(self) -> ChromeStats:
        full = self._index.all_chrome() or ChromeStats(self.k, self.max_key_chars)
        return full.merge(self._extra) if self._extra is not None else full

    def site_groups(self, site: str) -> int:
        if self._fast is not None and site in self._fast_sites:
            return self._fast.site_groups(site)
        return self._everything().site_groups(site)

    def recurrence_of_hash(self, site: str, key_hash: int) -> int:
        if self._fast is not None:
            found = self._fast.recurrence_of_hash(site, key_hash)
            if found:  # a line of `extra`: its prefetched count includes the archive's
                return found
        return self._everything().recurrence_of_hash(site, key_hash)

    def recurrences_of_hashes(self, site: str, key_hashes: Sequence[int]) -> list[int]:
        return [self.recurrence_of_hash(site, h) for h in key_hashes]  # each from the prefetch where it can be

    def sites(self) -> list[str]:
        return self._everything().sites()

    def to_dict(self) -> dict[str, Any]:
        return self._everything().to_dict()
