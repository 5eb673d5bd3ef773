"""Dask engine scaling: the local engine, then the Dask engine on a LocalCluster of 1 and of 2 workers.

    python benchmarks/dask_scaling.py --docs 10k --shards 8 --workers 1,2 [--star]

The synthetic corpus (benchmarks/corpus.py) is split into `--shards` JSONL shards (one Dask
partition each) under benchmarks/out/. Every configuration runs in a fresh interpreter, so peak
memory is its own: for the local engine the process's peak RSS; for Dask each worker process's
peak RSS and the driver's (which, on a LocalCluster, also holds the scheduler). Reported per run:
wall time of the scan, time per stage, peak memory, and the volumes that size a larger run (band
rows shuffled, verified edges per stage, large-star/small-star rounds with `--star`). Both engines
run without story clusters (their driver-side stage is timed apart). Results are printed and saved
as benchmarks/out/dask-scaling-<corpus>-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _count(text: str) -> int:
    text = text.lower().replace(",", "").replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def shard(corpus: Path, shards: int) -> list[str]:
    """The corpus as `shards` consecutive JSONL files of (nearly) equal line counts; reused if present."""
    folder = OUT / f"shards-{corpus.stem}-s{shards}"
    paths = [folder / f"part-{k:03d}.jsonl" for k in range(shards)]
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    folder.mkdir(parents=True, exist_ok=True)
    lines = corpus.read_bytes().splitlines(keepends=True)
    step = -(-len(lines) // shards)
    for k, path in enumerate(paths):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(lines[k * step:(k + 1) * step]))
        os.replace(tmp, path)
    return [str(p) for p in paths]


def run_local(paths: list[str]) -> dict[str, Any]:
    from dedupe.pipeline import Settings, scan
    from dedupe.readers import read_documents

    stages: dict[str, float] = {}
    mark = {"stage": "read", "t": time.perf_counter()}

    def tick(stage: str, done: int, total: int) -> None:
        if stage != mark["stage"]:
            now = time.perf_counter()
            stages[mark["stage"]] = round(now - mark["t"], 2)
            mark.update(stage=stage, t=now)

    start = time.perf_counter()
    docs, bad = read_documents(paths)
    result = scan(docs, Settings(story=False), bad=bad, progress=tick)
    wall = time.perf_counter() - start
    stages[mark["stage"]] = round(time.perf_counter() - mark["t"], 2)
    return {"engine": "local", "workers": 1, "wall_s": round(wall, 2), "stages_s": stages,
            "peak_mib": {"process": round(_peak_mib())}, "document_clusters": len(result.document_clusters),
            "paragraph_clusters": len(result.paragraph_clusters),
            "removed": result.stats.removable_documents, "documents": result.stats.documents,
            "paragraphs": result.stats.paragraphs}


def run_dask(paths: list[str], workers: int, star: bool, shuffle: str | None) -> dict[str, Any]:
    import distributed

    from dedupe.engine_dask import DaskOptions, scan_dask
    from dedupe.lsh import lsh_params
    from dedupe.pipeline import Settings

    settings = Settings(story=False)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit=0) as cluster, distributed.Client(cluster) as client:
        from dedupe.dask_io import dask_scheduler

        with dask_scheduler(client):
            start = time.perf_counter()
            done = scan_dask(paths, settings, options=DaskOptions(components="star" if star else "auto",
                                                                  shuffle_method=shuffle))
            wall = time.perf_counter() - start
        peaks = client.run(_peak_mib)
    bands, _ = lsh_params(settings.threshold, settings.num_perm)
    result = done.result
    return {"engine": f"dask ({shuffle or 'p2p'})", "workers": workers, "wall_s": round(wall, 2),
            "stages_s": done.timings,
            "peak_mib": {"driver+scheduler": round(_peak_mib()),
                         **{f"worker{k}": round(v) for k, v in enumerate(sorted(peaks.values(), reverse=True))}},
            "document_clusters": len(result.document_clusters), "paragraph_clusters": len(result.paragraph_clusters),
            "removed": result.stats.removable_documents, "documents": result.stats.documents,
            "paragraphs": result.stats.paragraphs, "bands": bands,
            "components": {k: {"method": r.method, "edges": r.edges, "iterations": r.iterations}
                           for k, r in done.components.items()}}


def _child(args: argparse.Namespace) -> None:
    paths = json.loads(args.child_paths)
    engine, _, workers = args.child.partition(":")
    out = run_local(paths) if engine == "local" else run_dask(paths, int(workers), args.star, args.shuffle)
    print(json.dumps(out))


def _table(rows: list[dict[str, Any]]) -> str:
    stages = list(dict.fromkeys(s for r in rows for s in r["stages_s"]))
    head = ["engine", "workers", "wall s", *[f"{s} s" for s in stages], "peak MiB per process", "doc clusters",
            "para clusters", "removed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        peaks = ", ".join(f"{k} {v}" for k, v in r["peak_mib"].items())
        lines.append("| " + " | ".join([r["engine"], str(r["workers"]), f"{r['wall_s']:.1f}",
                                        *[str(r["stages_s"].get(s, "")) for s in stages], peaks,
                                        str(r["document_clusters"]), str(r["paragraph_clusters"]),
                                        str(r["removed"])]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="10k", help="synthetic corpus size (10k, 100k, ...)")
    parser.add_argument("--input", help="a JSONL dump instead of the synthetic corpus")
    parser.add_argument("--shards", type=int, default=8, help="input partitions")
    parser.add_argument("--workers", default="1,2", help="LocalCluster sizes to run, comma separated")
    parser.add_argument("--no-local", action="store_true", help="skip the local engine baseline")
    parser.add_argument("--star", action="store_true", help="force large-star/small-star components")
    parser.add_argument("--shuffle", choices=["tasks", "p2p"], help="Dask shuffle method (default: Dask's, p2p)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.input:
        corpus = Path(args.input)
    else:
        from corpus import synthetic
        corpus = synthetic(_count(args.docs), 1, OUT).path
    paths = shard(corpus, args.shards)
    configs = ([] if args.no_local else ["local"]) + [f"dask:{w}" for w in args.workers.split(",") if w]
    rows = []
    for config in configs:
        cmd = [sys.executable, __file__, "--child", config, "--child-paths", json.dumps(paths)]
        if args.star:
            cmd.append("--star")
        if args.shuffle:
            cmd += ["--shuffle", args.shuffle]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{config} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{config}: {rows[-1]['wall_s']} s", file=sys.stderr)
    report = {"corpus": corpus.name, "shards": args.shards, "load_average": os.getloadavg(),
              "machine": {"cpus": os.cpu_count(),
              "python": platform.python_version(), "platform": platform.platform()}, "runs": rows}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"dask-scaling-{corpus.stem}-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(_table(rows))
    for r in rows:
        if "components" in r:
            parts = [f"{k}: {v['edges']} edges by {v['method']}" + (f" in {v['iterations']} rounds"
                                                                    if v["iterations"] else "")
                     for k, v in r["components"].items()]
            print(f"dask {r['workers']} worker(s): " + "; ".join(parts))


if __name__ == "__main__":
    main()
