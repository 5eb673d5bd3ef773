"""The full pipeline on a dump too big for one run: nightly batches cleaned against one index.

    python benchmarks/batched.py --docs 1m --batch 100k [--out-dir benchmarks/out] [--keep-files]
    python benchmarks/batched.py --docs 1m --batch 100k --one-command [--with-index]

`scan` and `clean` hold a run's documents and their per-paragraph features in memory (about 21 KB
per news-length document at the peak), so a dump of millions of pages is cleaned as batches, each
`dedupe clean BATCH --index INDEX` against the archive the earlier ones built (README, "Scheduled
runs"). This measures that on the seeded synthetic corpus (`corpus.py`), in the corpus's order, as
nights would arrive:

- each batch is a separate `python -m dedupe clean` process: wall time and peak RSS from the kernel
  (wait4), the index's size after it;
- the clusters of every night's report (archived members included: that is how a copy joins an
  earlier night's document) are merged and scored against the planted pairs as `bench.py` scores
  its rows (recall of planted pairs, precision of predicted pairs).

Each batch file is written just before its run and deleted after it, and so are the cleaned outputs
(`--keep-files` keeps them), so the disk holds the corpus, the index and the reports.

`--one-command` measures the same dump cleaned by one command instead, `dedupe clean CORPUS
--in-batches BATCH` (one process reading the corpus a batch at a time, each batch checked against
the earlier ones in a temporary index), and scores its one report the same way. With
`--with-index` that command runs against a new index instead (`--in-batches BATCH --index INDEX`:
each batch checked against the archive and the earlier batches, all archived in one transaction),
as a nightly job on a dump larger than memory runs; the index's size is recorded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import Truth, ids_to_indices, parse_docs, score
from corpus import synthetic
from quality import merged_clusters

MB = 1024 * 1024


def run_clean(args: list[str]) -> dict[str, Any]:
    """`python -m dedupe clean ARGS`: wall seconds and peak RSS (MB) of the process."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dedupe", "clean", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"dedupe clean {' '.join(args)} failed ({code}):\n{err.decode()}")
    return {"seconds": round(time.perf_counter() - started, 2), "max_rss_mb": round(usage.ru_maxrss * 1024 / MB)}


def write_batch(src: TextIO, count: int, path: Path) -> int:
    """The corpus's next `count` lines (read from `src`) into `path`; returns how many were written."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for line in itertools.islice(src, count):
            out.write(line)
            written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default="1m", help="corpus size (10k, 100k, 1m, ...)")
    parser.add_argument("--batch", default="100k", help="documents per nightly batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "out")
    parser.add_argument("--jobs", type=int, default=1, help="--jobs of each clean")
    parser.add_argument("--keep-files", action="store_true", help="keep the batch files and cleaned outputs")
    parser.add_argument("--with-index", action="store_true",
                        help="with --one-command: against a new index (--index) instead of a temporary one")
    parser.add_argument("--index-url", default=None, metavar="URL",
                        help="with --with-index: this PostgreSQL index (postgresql://...?schema=NAME, a schema "
                             "that does not exist yet) instead of an SQLite file")
    parser.add_argument("--one-command", action="store_true",
                        help="one `dedupe clean CORPUS --in-batches BATCH` instead of a process per night")
    args = parser.parse_args(argv)
    [docs] = parse_docs(args.docs)
    [batch] = parse_docs(args.batch)
    corpus = synthetic(docs, args.seed, args.out_dir)
    if args.one_command:
        return one_command(corpus, docs, batch, args)
    work = args.out_dir / f"batched-{corpus.name}-b{batch}"
    work.mkdir(parents=True, exist_ok=True)
    index = work / "index.db"
    if index.exists():
        raise SystemExit(f"{index} exists: remove it (or the folder) to measure from an empty archive")

    nights: list[dict[str, Any]] = []
    reports: list[Path] = []
    src = corpus.path.open(encoding="utf-8")
    for k in range((docs + batch - 1) // batch):
        night = work / f"night{k:03d}.jsonl"
        count = write_batch(src, batch, night)
        output, report = work / f"clean{k:03d}.jsonl", work / f"report{k:03d}.json"
        run = run_clean([str(night), "-o", str(output), "--json", str(report), "--index", str(index), "-q",
                         "--jobs", str(args.jobs)])
        stats = json.loads(report.read_text(encoding="utf-8"))["stats"]
        run.update(night=k, docs=count, index_mb=round(index.stat().st_size / MB, 1),
                   removed=stats["removable_documents"])
        nights.append(run)
        reports.append(report)
        print(json.dumps(run), file=sys.stderr, flush=True)
        if not args.keep_files:
            night.unlink()
            output.unlink()
    src.close()

    nights_reports = (json.loads(path.read_text(encoding="utf-8")) for path in reports)
    clusters = ids_to_indices(corpus.path, merged_clusters(nights_reports, {"exact", "near"}))
    quality = score(clusters, docs, Truth.load(corpus.truth_path), corpus.path, 0.8)
    peak = max(n["max_rss_mb"] for n in nights)
    result = {"corpus": corpus.name, "docs": docs, "batch": batch, "jobs": args.jobs, "nights": nights,
              "peak_rss_mb": peak, "seconds": round(sum(n["seconds"] for n in nights), 1),
              "index_mb": nights[-1]["index_mb"], "quality": quality}
    (work / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print("| night | docs | seconds | peak RSS MB | removed | index MB |\n|---:|---:|---:|---:|---:|---:|")
    for n in nights:
        print(f"| {n['night']} | {n['docs']:,} | {n['seconds']:.1f} | {n['max_rss_mb']:,} | {n['removed']} | "
              f"{n['index_mb']:,} |")
    print(f"\n{docs:,} documents in {len(nights)} batches of {batch:,}: {result['seconds']:.0f} s, "
          f"peak RSS {peak:,} MB (the largest night's), index {result['index_mb']:,} MB; planted-pair recall "
          f"{quality['recall']:.3f}, precision {quality['precision']:.3f} ({quality['predicted_pairs']:,} pairs)")
    return 0


def one_command(corpus: Any, docs: int, batch: int, args: argparse.Namespace) -> int:
    """`dedupe clean CORPUS --in-batches BATCH` as one process: its time, peak RSS and quality."""
    work = args.out_dir / f"in-batches-{corpus.name}-b{batch}{'-index' if args.with_index else ''}"
    work.mkdir(parents=True, exist_ok=True)
    output, report, index = work / "clean.jsonl", work / "report.json", work / "index.db"
    if index.exists():
        raise SystemExit(f"{index} exists: remove it (or the folder) to measure from an empty archive")
    spec = args.index_url or str(index)
    run = run_clean([str(corpus.path), "-o", str(output), "--json", str(report), "--in-batches", str(batch), "-q",
                     "--jobs", str(args.jobs), *(["--index", spec] if args.with_index else [])])
    if not args.keep_files:
        output.unlink()
    if args.with_index and args.index_url:
        run["index_mb"] = round(json.loads(report.read_text(encoding="utf-8"))["index"]["size_bytes"] / MB, 1)
    elif args.with_index:
        run["index_mb"] = round(index.stat().st_size / MB, 1)
        if not args.keep_files:
            index.unlink()
    found = json.loads(report.read_text(encoding="utf-8"))
    merged = merged_clusters([found], {"exact", "near"})
    # The report's copy clusters against those clusters with overlapping ones merged: equal when
    # every family of copies cut by the batches is shown as one cluster.
    shown = sum(c["kind"] in ("exact", "near") for c in found["document_clusters"])
    clusters = ids_to_indices(corpus.path, merged)
    quality = score(clusters, docs, Truth.load(corpus.truth_path), corpus.path, 0.8)
    result = {"corpus": corpus.name, "docs": docs, "batch": batch, "jobs": args.jobs, **run,
              "removed": found["stats"]["removable_documents"], "report_mb": round(report.stat().st_size / MB, 1),
              "copy_clusters": shown, "copy_clusters_overlaps_merged": len(merged), "quality": quality}
    (work / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    against = f" --index INDEX` (index {run['index_mb']:,} MB)" if args.with_index else "`"
    print(f"{docs:,} documents, one `dedupe clean --in-batches {batch:,}{against}: {run['seconds']:.0f} s, peak RSS "
          f"{run['max_rss_mb']:,} MB, {result['removed']:,} removed; planted-pair recall {quality['recall']:.3f}, "
          f"precision {quality['precision']:.3f} ({quality['predicted_pairs']:,} pairs); {shown:,} copy clusters "
          f"in the report, {len(merged):,} once overlapping ones are merged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
