"""What the persistent index costs a nightly run: `clean --index` against an archive of N documents
versus the same batch with no index, and the index's size per document.

    python benchmarks/index_bench.py [--archive 1000000] [--batch 10000] [--real 5000] [--repeat 1]
                                     [--index-url postgresql://USER@HOST/DB]

The archive is built in two parts. `--real` documents of the synthetic corpus (benchmarks/corpus.py,
with a site assigned to each) are cleaned into the index by the CLI, so it holds real signatures,
paragraph keys and chrome statistics, and the nightly batch (the next `--batch` documents of the same
corpus) contains copies of some of them. The rest, up to `--archive`, is synthetic: random
signatures, content and paragraph keys, and per-page chrome lines, with the per-document counts
measured on the real part, bulk-inserted through `SQLiteIndex.add`. Random signatures share no band
with the batch, as most of a large archive shares nothing with one night.

Each measured run is a separate `python -m dedupe clean` process on a fresh copy of the index;
wall time and peak RSS come from the kernel (wait4). Results are printed as Markdown and saved as
JSON under benchmarks/out/.

`--index-url` measures the PostgreSQL index instead, on the server that URL reaches (its role needs
CREATEDB): the archive is built in a database `dedupe_bench_archive`, and each measured run gets a
fresh copy of it, `dedupe_bench_run` (CREATE DATABASE ... TEMPLATE); both are dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpus import synthetic  # noqa: E402

from dedupe.archive import ArchiveRows  # noqa: E402
from dedupe.chrome import ChromeStats  # noqa: E402
from dedupe.index import IndexBase, index_name, open_index  # noqa: E402
from dedupe.lsh import band_keys, lsh_params  # noqa: E402
from dedupe.pipeline import Settings  # noqa: E402

SITES = 50
FILLER_CHUNK = 20_000
MB = 1_000_000
ARCHIVE_DB, RUN_DB = "dedupe_bench_archive", "dedupe_bench_run"


class Store:
    """Where the benchmark's indexes live: files in the work folder, or databases of a PostgreSQL server."""

    def __init__(self, work: Path, url: str | None) -> None:
        self.work, self.url = work, url

    def spec(self, name: str) -> str:
        """`archive` (built once) or `run` (a fresh copy per measured run), as an `--index` value."""
        if self.url is None:
            return str(self.work / f"{name}.idx")
        return urlsplit(self.url)._replace(path=f"/{ARCHIVE_DB if name == 'archive' else RUN_DB}").geturl()

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(statement)

    def create_archive(self) -> None:
        if self.url is not None:
            self.drop()
            self._admin(f"CREATE DATABASE {ARCHIVE_DB}")

    def fresh_run_copy(self) -> None:
        if self.url is None:
            shutil.copyfile(self.work / "archive.idx", self.work / "run.idx")
            return
        self._admin(f"DROP DATABASE IF EXISTS {RUN_DB}")
        self._admin(f"CREATE DATABASE {RUN_DB} TEMPLATE {ARCHIVE_DB}")

    def drop(self) -> None:
        if self.url is not None:
            for db in (RUN_DB, ARCHIVE_DB):
                self._admin(f"DROP DATABASE IF EXISTS {db}")

    def describe(self) -> str:
        if self.url is None:
            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self.url) as conn:
            return "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


def _site(doc_id: str) -> str:
    return f"site{zlib.crc32(doc_id.encode()) % SITES:02d}.example"


def make_inputs(work: Path, real: int, batch: int, seed: int) -> tuple[Path, Path]:
    """The corpus's first `real` documents (archived) and the next `batch` (tonight), with sites."""
    corpus = synthetic(real + batch, seed, work)
    archived, night = work / "archived.jsonl", work / "night.jsonl"
    with open(corpus.path, encoding="utf-8") as src, open(archived, "w") as a, open(night, "w") as b:
        for k, line in enumerate(src):
            record = json.loads(line)
            record["site"] = _site(record["id"])
            (a if k < real else b).write(json.dumps(record) + "\n")
    return archived, night


def run_cli(args: list[str], cwd: Path) -> dict[str, Any]:
    """Run `python -m dedupe ARGS` and return wall seconds, peak RSS and exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dedupe", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dedupe {' '.join(args)} failed ({proc.returncode}):\n{err.decode()}")
    return {"seconds": round(seconds, 2), "max_rss_mb": round(usage.ru_maxrss * 1024 / MB)}


def _per_document(index: IndexBase) -> tuple[float, float]:
    """Mean long-paragraph keys and chrome lines per archived document, measured on the real part."""
    [(docs, paras)] = index._query("SELECT count(*), sum(length(paragraphs)) / 8 FROM documents")
    [(lines,)] = index._query("SELECT count(*) FROM chrome_keys")
    return float(paras) / docs, lines / docs


def add_filler(index_spec: str, count: int, seed: int) -> float:
    """Bulk-insert `count` synthetic documents; returns seconds spent."""
    settings = Settings()
    bands, rows_per_band = lsh_params(settings.threshold, settings.num_perm)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    with open_index(index_spec, settings) as index:
        paras_mean, lines_mean = _per_document(index)
        for lo in range(0, count, FILLER_CHUNK):
            n = min(FILLER_CHUNK, count - lo)
            ids = [f"filler-{lo + k:07d}" for k in range(n)]
            sites = [_site(i) for i in ids]
            sigs = rng.integers(0, 2**32 - 1, size=(n, settings.num_perm), dtype=np.uint32)
            paras = rng.poisson(paras_mean, n)
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(paras, out=offsets[1:])
            rows = ArchiveRows(ids, sites, rng.integers(0, 2**64 - 1, n, dtype=np.uint64),
                               rng.integers(0, 2**64 - 1, n, dtype=np.uint64), rng.integers(100, 1500, n),
                               sigs, band_keys(sigs, bands, rows_per_band),
                               rng.integers(0, 2**64 - 1, int(offsets[-1]), dtype=np.uint64), offsets, ids)
            stats = ChromeStats()
            for doc_id, site in zip(ids, sites, strict=True):
                stats.add_page(site, doc_id, (f"{doc_id} line {j}" for j in range(int(rng.poisson(lines_mean)))))
            index.add(rows, stats, f"filler-{lo // FILLER_CHUNK}")
            print(f"  filler {lo + n:,}/{count:,}", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def build_archive(store: Store, archived: Path, archive: int, real: int, seed: int) -> dict[str, Any]:
    work = store.work
    store.create_archive()
    index = store.spec("archive")
    first = run_cli(["clean", str(archived), "-o", str(work / "archived-out.jsonl"), "--index", index,
                     "--keep", "first", "-q", "--json", str(work / "archived-report.json")], work)
    run_id = json.loads((work / "archived-report.json").read_text())["run_id"]
    filler = add_filler(index, archive - real, seed)
    with open_index(index) as idx:
        idx.vacuum()  # the nightly runs below start from a compact file
        documents, size = idx.count(), idx.size_bytes()
        tables = _tables(idx)
    built = {"path": index_name(index), "real_clean": first, "real_run_id": run_id, "filler_seconds": round(filler, 1),
             "filler_docs_per_second": round((archive - real) / filler), "documents": documents,
             "size_bytes": size, "bytes_per_document": round(size / documents), "tables": tables}
    (work / "archive.json").write_text(json.dumps(built, indent=2))
    return built


def _tables(index: IndexBase) -> dict[str, int]:
    """Bytes per table and index (SQLite's dbstat; PostgreSQL's relation sizes, a table's with its
    TOAST data), to see where the size goes."""
    if not hasattr(index, "schema"):
        try:
            return dict(index._query("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"))
        except sqlite3.OperationalError:  # SQLite built without dbstat
            return {}
    return dict(index._query(
        "SELECT c.relname, CASE c.relkind WHEN 'r' THEN pg_table_size(c.oid) ELSE pg_relation_size(c.oid) END "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{index.schema}' AND c.relkind IN ('r', 'i') ORDER BY 2 DESC"))


def measure(store: Store, night: Path, repeat: int) -> dict[str, Any]:
    """Min over `repeat` alternating runs of the plain and the indexed clean; stage timings of the last."""
    work = store.work
    plain: list[dict[str, Any]] = []
    indexed: list[dict[str, Any]] = []
    for k in range(repeat):
        plain.append(run_cli(["clean", str(night), "-o", "plain.jsonl", "--keep", "first", "-q",
                              "--json", "plain.json"], work))
        store.fresh_run_copy()
        indexed.append(run_cli(["clean", str(night), "-o", "indexed.jsonl", "--keep", "first", "-q",
                                "--index", store.spec("run"), "--json", "indexed.json"], work))
        print(f"  run {k + 1}/{repeat}: plain {plain[-1]['seconds']}s, indexed {indexed[-1]['seconds']}s",
              file=sys.stderr, flush=True)
    best_plain = min(plain, key=lambda r: r["seconds"])
    best_indexed = min(indexed, key=lambda r: r["seconds"])
    report_plain = json.loads((work / "plain.json").read_text())
    report_indexed = json.loads((work / "indexed.json").read_text())
    return {"plain": best_plain, "indexed": best_indexed,
            "ratio": round(best_indexed["seconds"] / best_plain["seconds"], 2),
            "timings_plain": report_plain["timings"], "timings_indexed": report_indexed["timings"],
            "removed_plain": report_plain["stats"]["removable_documents"],
            "removed_indexed": report_indexed["stats"]["removable_documents"],
            "index_after": report_indexed["index"]}


def maintenance(store: Store, run_id: str) -> dict[str, Any]:
    """`dedupe index forget --run` (the real part) and `vacuum` on the copy the last run updated."""
    return {"forget_run": run_cli(["index", "forget", store.spec("run"), "--run", run_id], store.work),
            "vacuum": run_cli(["index", "vacuum", store.spec("run")], store.work)}


def markdown(result: dict[str, Any]) -> str:
    a, m = result["archive"], result["measure"]
    ti, tp = m["timings_indexed"], m["timings_plain"]
    lines = [
        f"archive {a['documents']:,} documents ({result['args']['real']:,} real, the rest synthetic), "
        f"nightly batch {result['args']['batch']:,} documents; {result['machine']}",
        "",
        "| | wall | peak RSS | removed |",
        "|---|---:|---:|---:|",
        f"| `clean` (no index) | {m['plain']['seconds']:.1f} s | {m['plain']['max_rss_mb']:,} MB "
        f"| {m['removed_plain']:,} |",
        f"| `clean --index` | {m['indexed']['seconds']:.1f} s | {m['indexed']['max_rss_mb']:,} MB "
        f"| {m['removed_indexed']:,} |",
        f"| ratio | **{m['ratio']:.2f}x** | | |",
        "",
        f"- index stages in the indexed run: lookup {ti.get('index_lookup', 0):.2f} s, chrome fetch "
        f"{ti.get('index_chrome', 0):.2f} s, commit {ti.get('index_commit', 0):.2f} s "
        f"(stages: " + ", ".join(f"{k} {v:.1f}" for k, v in ti.items()) + ")",
        "- same stages without the index: " + ", ".join(f"{k} {v:.1f}" for k, v in tp.items()),
        f"- index size: {a['size_bytes'] / MB:,.1f} MB for {a['documents']:,} documents = "
        f"**{a['bytes_per_document']:,} bytes per document** (after vacuum)",
        f"- bulk insert of the synthetic part: {a['filler_docs_per_second']:,} documents/s",
        f"- maintenance: forget one run of {result['args']['real']:,} documents "
        f"{result['maintenance']['forget_run']['seconds']:.1f} s, vacuum "
        f"{result['maintenance']['vacuum']['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=int, default=1_000_000, help="documents in the index")
    parser.add_argument("--batch", type=int, default=10_000, help="documents in the nightly batch")
    parser.add_argument("--real", type=int, default=5_000, help="archived documents cleaned from real text")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs of each kind (min is kept)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--reuse", action="store_true", help="measure again on the archive built in --work")
    parser.add_argument("--index-url", default=None, metavar="URL",
                        help="measure a PostgreSQL index on this server (postgresql://USER@HOST[:PORT]/DB; the "
                             "role needs CREATEDB) instead of an SQLite file")
    args = parser.parse_args()
    if args.real > args.archive:
        parser.error("--real must not exceed --archive")
    if args.reuse and args.work is None:
        parser.error("--reuse needs the --work folder of an earlier run")
    work = args.work or Path(tempfile.mkdtemp(prefix="index-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work, args.index_url)
    try:
        print(f"work folder {work}", file=sys.stderr)
        if args.reuse:
            archive, night = json.loads((work / "archive.json").read_text()), work / "night.jsonl"
        else:
            archived, night = make_inputs(work, args.real, args.batch, args.seed)
            archive = build_archive(store, archived, args.archive, args.real, args.seed)
        measured = measure(store, night, args.repeat)
        shown = {**vars(args), "index_url": index_name(args.index_url) if args.index_url else None}
        result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in shown.items()},
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                             f"{store.describe()}, load {os.getloadavg()[0]:.1f}",
                  "archive": archive,
                  "measure": measured, "maintenance": maintenance(store, archive["real_run_id"])}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
            store.drop()
    text = markdown(result)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    backend = "pg-" if args.index_url else ""
    stem = f"index-{backend}n{args.archive}-b{args.batch}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
