"""Does the document-level task's memory grow with the number of documents, not with their text?
And does its cost grow linearly?

    python benchmarks/stream_memory.py CORPUS.jsonl [--sizes 10000,100000] [--jobs 1]

For each size, a fresh process streams the first N documents of the corpus (one `json.loads` per
line, nothing kept) into `dedupe.find_near_duplicate_documents` and reports wall time, documents
per second, peak RSS above the interpreter's idle RSS, and that per document. The texts are never
held in memory together, so what remains per document is its signature and band keys.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from dedupe import find_near_duplicate_documents
path, n, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
find_near_duplicate_documents(["warm the kernels up " * 20, "warm the kernels up " * 20])
idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def texts():
    with open(path, encoding="utf-8") as fh:
        for k, line in enumerate(fh):
            if k >= n:
                return
            yield json.loads(line)["text"]

start = time.perf_counter()
clusters = find_near_duplicate_documents(texts(), jobs=jobs)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"docs": n, "seconds": seconds, "idle_kb": idle, "peak_kb": peak, "clusters": len(clusters)}))
"""


def run(corpus: Path, n: int, jobs: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(n), str(jobs)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        start = time.perf_counter()
        r = run(args.corpus, n, args.jobs)
        r["wall"] = time.perf_counter() - start
        rows.append(r)
    print("| documents | seconds | docs/s | peak RSS above idle | per document | clusters |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        extra_mb = (r["peak_kb"] - r["idle_kb"]) / 1024
        print(f"| {r['docs']:,} | {r['seconds']:.1f} | {r['docs'] / r['seconds']:,.0f} | {extra_mb:,.0f} MB | "
              f"{extra_mb * 1024 * 1024 / r['docs']:,.0f} B | {r['clusters']:,} |")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        per_doc = [r["seconds"] / r["docs"] for r in (first, last)]
        print(f"\ncost per document, {last['docs']:,} vs {first['docs']:,}: {per_doc[1] / per_doc[0]:.2f}x")


if __name__ == "__main__":
    main()
