"""Speed/memory/recall benchmark of dedupe against datasketch and rensa on one corpus.

    python benchmarks/bench.py --docs 10k [--peers dedupe,rensa,...] [--input DUMP.jsonl] [--jobs 2]

Each peer runs in its own subprocess (`peers.py`), one after another, on the same JSONL. This
script makes or reuses the corpus, scores each peer's clusters against the planted truth, prints
the results and the ratios dedupe is held to, and saves JSON + Markdown under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from itertools import combinations
from pathlib import Path
from typing import Any

from corpus import Corpus, PlantedPair, iter_records, jaccard, load_truth, shingles, synthetic

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"
PRESETS = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
ALL_PEERS = ("dedupe", "dedupe-full", "dedupe-cli", "rensa", "datasketch-batch", "datasketch")
LABELS = {
    "dedupe": "dedupe (API)",
    "dedupe-full": "dedupe full pipeline",
    "dedupe-cli": "dedupe scan (CLI)",
    "rensa": "rensa",
    "datasketch-batch": "datasketch batch",
    "datasketch": "datasketch per-shingle",
}
JOBS_PEERS = ("dedupe", "dedupe-full", "dedupe-cli")  # measured with --jobs N as well as with one process
MAX_EXACT_CHECKS = 20_000  # predicted pairs outside the truth whose exact Jaccard we compute
MB = 1_000_000


@dataclass
class Row:
    """One peer's measured run, scored; what the tables and the JSON are made of."""

    key: str
    label: str
    status: str
    reason: str = ""
    docs: int = 0
    corpus_docs: int = 0
    input_bytes: int = 0
    text_bytes: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    cpu: float = 0.0
    rss_peak: int = 0
    rss_base: int = 0
    clusters: int | None = None
    clustered_docs: int | None = None
    recall: float | None = None
    recall_pairs: int = 0
    precision: float | None = None
    predicted_pairs: int = 0
    precision_estimated: bool = False
    sampled: bool = False
    recall_by_scope: dict[int, float | None] = field(default_factory=dict)
    recall_by_jaccard: dict[str, float] = field(default_factory=dict)
    near_miss_merged: float | None = None
    jobs: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.total if self.total else 0.0

    @property
    def docs_per_cpu_s(self) -> float:
        return self.docs / self.cpu if self.cpu else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / MB / self.total if self.total else 0.0

    @property
    def bytes_per_doc(self) -> float:
        """Peak RSS above the idle interpreter, per document (texts held by the peer included)."""
        return (self.rss_peak - self.rss_base) / self.docs if self.docs else 0.0


def _spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i
    return total


def parallel_ceiling(jobs: int, iterations: int = 20_000_000, repeats: int = 3) -> float | None:
    """What `jobs` processes give this machine on perfectly parallel work: `jobs` copies of a pure
    CPU loop in `jobs` forked processes, as throughput over one copy in one (median of `repeats`).

    The `--jobs` targets are read against it: shared or hyper-threaded vCPUs, and noisy neighbours,
    keep even work with nothing serial in it well under `jobs`x. None where the platform cannot fork.
    """
    if jobs < 2 or not hasattr(os, "fork"):
        return None
    ratios = []
    for _ in range(repeats):
        start = time.perf_counter()
        _spin(iterations)
        one = time.perf_counter() - start
        start = time.perf_counter()
        children = []
        for _ in range(jobs):
            pid = os.fork()
            if pid == 0:  # the child: the loop, then out without running the parent's cleanup
                _spin(iterations)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        ratios.append(jobs * one / (time.perf_counter() - start))
    return sorted(ratios)[len(ratios) // 2]


def parse_docs(value: str) -> list[int]:
    """`10k,100k` or `10000` -> sizes; presets are 10k, 100k and 1m."""
    sizes = []
    for part in value.split(","):
        part = part.strip().lower()
        sizes.append(PRESETS[part] if part in PRESETS else int(part))
    return sizes


def parse_samples(value: str) -> dict[str, int]:
    """`datasketch=2000,datasketch-batch=0` -> per-peer document caps (0: whole corpus)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, count = part.partition("=")
        out[name] = int(count)
    return out


def input_bytes(path: Path, limit: int | None) -> int:
    """Bytes of the first `limit` records of the dump (the whole file when no limit)."""
    if limit is None:
        return path.stat().st_size
    total = seen = 0
    with path.open("rb") as fh:
        for line in fh:
            if seen >= limit:
                break
            total += len(line)
            seen += bool(line.strip())
    return total


class Truth:
    """Planted pairs and the "families" they form (a source and all copies made of it)."""

    def __init__(self, pairs: Sequence[PlantedPair], near_misses: Sequence[PlantedPair] = ()) -> None:
        self.pairs = list(pairs)
        self.near_misses = list(near_misses)
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for p in self.pairs:
            ra, rb = find(p.copy), find(p.source)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        self.family = {doc: find(doc) for doc in list(parent)}

    @classmethod
    def load(cls, path: Path) -> Truth:
        return cls(load_truth(path), load_truth(path, "near_misses"))

    def same_family(self, a: int, b: int) -> bool:
        fa = self.family.get(a)
        return fa is not None and fa == self.family.get(b)


def score(clusters: list[list[int]], scope: int, truth: Truth, corpus: Path, threshold: float) -> dict[str, Any]:
    """Recall of planted pairs within the first `scope` docs, precision of predicted pairs.

    A predicted pair is right if both docs come from one planted family or their exact 5-gram
    Jaccard is >= threshold; the latter is computed (on a sample beyond MAX_EXACT_CHECKS).
    """
    cluster_of: dict[int, int] = {}
    for ci, members in enumerate(clusters):
        for doc in members:
            if doc < scope:
                cluster_of[doc] = ci

    def together(p: PlantedPair) -> bool:
        return p.copy in cluster_of and cluster_of[p.copy] == cluster_of.get(p.source)

    planted = [p for p in truth.pairs if p.copy < scope and p.source < scope]
    found = sum(1 for p in planted if together(p))
    by_jaccard: dict[str, float] = {}
    for lo, hi in ((0.0, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)):
        bucket = [p for p in planted if lo <= p.jaccard < hi]
        if bucket:
            by_jaccard[f"{lo:.2f}-{min(hi, 1.0):.2f} ({len(bucket)})"] = sum(map(together, bucket)) / len(bucket)
    misses = [p for p in truth.near_misses if p.copy < scope and p.source < scope]

    total_pairs = right = 0
    unknown: list[tuple[int, int]] = []
    rng = random.Random(0)
    for members in clusters:
        inside = [d for d in members if d < scope]
        for a, b in combinations(inside, 2):
            total_pairs += 1
            if truth.same_family(a, b):
                right += 1
            elif len(unknown) < MAX_EXACT_CHECKS:
                unknown.append((a, b))
            else:  # reservoir sample of the pairs we must check exactly
                k = rng.randrange(total_pairs - right)
                if k < MAX_EXACT_CHECKS:
                    unknown[k] = (a, b)
    unknown_total = total_pairs - right
    estimated = unknown_total > len(unknown)
    if unknown:
        need = {d for pair in unknown for d in pair}
        sets = {i: shingles(text) for i, _, text in iter_records(corpus) if i in need}
        ok = sum(1 for a, b in unknown if jaccard(sets[a], sets[b]) >= threshold)
        right += round(ok * unknown_total / len(unknown))
    return {
        "recall": found / len(planted) if planted else None,
        "recall_pairs": len(planted),
        "recall_by_jaccard": by_jaccard,
        "near_miss_merged": sum(map(together, misses)) / len(misses) if misses else None,
        "precision": right / total_pairs if total_pairs else None,
        "predicted_pairs": total_pairs,
        "precision_estimated": estimated,
    }


def ids_to_indices(corpus: Path, cluster_ids: list[list[str]]) -> list[list[int]]:
    """Map the CLI's document ids back to positions in the dump."""
    index = {doc_id: i for i, doc_id, _ in iter_records(corpus)}
    return [sorted(index[d] for d in c if d in index) for c in cluster_ids]


def run_peer(
    key: str, corpus: Corpus, docs: int, limit: int | None, jobs: int, args: argparse.Namespace
) -> tuple[Row, list[list[int]] | None]:
    """Run one peer in a fresh interpreter; its scored Row and its clusters (None if it failed)."""
    label = LABELS[key] + (f" --jobs {jobs}" if jobs != 1 else "")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, str(HERE / "peers.py"), key, str(corpus.path), str(result_path)]
        cmd += ["--ngram", str(args.ngram), "--num-perm", str(args.num_perm)]
        cmd += ["--threshold", str(args.threshold), "--seed", "1", "--jobs", str(jobs)]
        cmd += ["--rensa-bands", str(args.rensa_bands)]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        print(f"  running {label} ...", file=sys.stderr, flush=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=args.timeout or None)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the peer and anything it started, nothing else
            proc.communicate()
            return Row(key, label, "timeout", reason=f"stopped after --timeout {args.timeout} s"), None
        if proc.returncode != 0 or not result_path.exists():
            tail = " | ".join(stderr.strip().splitlines()[-3:])
            return Row(key, label, "error", reason=f"peer process exited {proc.returncode}: {tail}"), None
        result = json.loads(result_path.read_text())
    row = Row(
        key,
        label,
        result["status"],
        reason=result.get("reason", ""),
        docs=result["docs"],
        corpus_docs=docs,
        input_bytes=input_bytes(corpus.path, limit),
        text_bytes=result["text_bytes"],
        stages=result["stages"],
        total=result["total"],
        cpu=result["cpu"],
        rss_peak=result["rss_peak"],
        rss_base=result["rss_base"],
        sampled=limit is not None and limit < docs,
        jobs=jobs,
        notes=result["notes"],
    )
    if result.get("traceback"):
        print(result["traceback"], file=sys.stderr)
    clusters = result.get("clusters")
    if clusters is None and result.get("cluster_ids") is not None:
        clusters = ids_to_indices(corpus.path, result["cluster_ids"])
    if row.ok and clusters is not None:
        row.clusters = len(clusters)
        row.clustered_docs = sum(len(c) for c in clusters)
        if corpus.truth_path is not None:
            scope = min(row.docs, docs) if row.docs else docs
            truth = Truth.load(corpus.truth_path)
            for name, value in score(clusters, scope, truth, corpus.path, args.threshold).items():
                setattr(row, name, value)
    if row.sampled:
        row.notes.append(f"sample: first {row.docs} of {docs} docs; docs/s assumed to hold for all")
    return row, clusters if row.ok else None


# ----------------------------------------------------------------------------- presentation


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _stage(row: Row, name: str) -> str:
    if name == "sign" and "api" in row.stages:
        return f"{row.stages['api']:.2f}*"
    return f"{row.stages[name]:.2f}" if name in row.stages else "—"


RESULT_COLUMNS = (
    "peer", "docs", "read s", "sign s", "LSH s", "clust s", "total s", "docs/s", "MB/s",
    "CPU s", "RSS MB", "B/doc", "clusters", "recall", "prec.",
)  # fmt: skip


def result_cells(row: Row) -> list[str]:
    if not row.ok:
        return [row.label, row.status, *["—"] * (len(RESULT_COLUMNS) - 2)]
    docs = f"{row.docs}/{row.corpus_docs}" if row.sampled else str(row.docs)
    precision = _f(row.precision) + ("~" if row.precision_estimated else "")
    stages = [_stage(row, name) for name in ("read", "sign", "lsh", "cluster")]
    return [
        row.label,
        docs,
        *stages,
        f"{row.total:.2f}",
        f"{row.docs_per_s:,.0f}",
        f"{row.mb_per_s:.2f}",
        f"{row.cpu:.2f}",
        f"{row.rss_peak / MB:,.0f}",
        f"{row.bytes_per_doc:,.0f}",
        "n/a" if row.clusters is None else str(row.clusters),
        _f(row.recall),
        precision,
    ]


@dataclass
class Ratio:
    """One line of the ratio table: dedupe's docs/s over a peer's, with the target it must meet."""

    what: str
    ratio: float | None
    target: float | None
    recall_ok: bool | None
    note: str = ""
    cpu_ratio: float | None = None

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "n/a"
        if self.target is None:
            return "info"
        speed = self.target is None or self.ratio >= self.target
        if self.recall_ok is False:
            return "FAIL (recall)"
        return "ok" if speed else "FAIL"


def ratios(rows: Sequence[Row], ceiling: float | None = None) -> list[Ratio]:
    """The targets from the design brief, each as dedupe's rate over the peer's, same run;
    `ceiling` is what the machine's processes give on ideal work (`parallel_ceiling`)."""
    by_key = {(r.key, r.jobs): r for r in rows}
    api = by_key.get(("dedupe", 1))
    targets = {"rensa": 2.0, "datasketch": 50.0, "datasketch-batch": None}
    out: list[Ratio] = []
    for peer, target in targets.items():
        theirs = by_key.get((peer, 1))
        if theirs is None:
            continue
        what = f"dedupe (API) vs {theirs.label}"
        if api is None or not api.ok or not theirs.ok:
            missing = "dedupe" if api is None or not api.ok else theirs.label
            out.append(Ratio(what, None, target, None, f"{missing} unavailable"))
            continue
        ours = api.recall_by_scope.get(theirs.docs, api.recall) if theirs.sampled else api.recall
        recall_ok = None
        if target is not None and ours is not None and theirs.recall is not None:
            recall_ok = ours >= theirs.recall - 1e-9
        note = f"recall {_f(ours)} vs {_f(theirs.recall)}"
        if theirs.sampled:
            note += f" (on the first {theirs.docs} docs)"
        if theirs.sampled:
            note += f"; its rate from a {theirs.docs}-doc sample"
        cpu = api.docs_per_cpu_s / theirs.docs_per_cpu_s if theirs.docs_per_cpu_s else None
        out.append(Ratio(what, api.docs_per_s / theirs.docs_per_s, target, recall_ok, note, cpu))
    for (key, jobs), row in by_key.items():
        if jobs == 1:
            continue
        single = by_key.get((key, 1))
        what = f"{row.label} vs 1 process"
        if single is None or not single.ok or not row.ok:
            out.append(Ratio(what, None, 1.7 if jobs == 2 else None, None, "unavailable"))
        else:
            target = 1.7 if jobs == 2 else None
            note = f"{jobs} processes"
            if ceiling is not None:
                note += f"; ideal work gets {ceiling:.2f}x on this machine"
            out.append(Ratio(what, row.docs_per_s / single.docs_per_s, target, None, note))
    if ceiling is not None:
        jobs = max(j for _, j in by_key)
        out.append(Ratio(f"machine: {jobs} processes vs 1 on ideal work", ceiling, None, None,
                         "a pure CPU loop per process, nothing serial: the ceiling of the rows above"))
    rensa = by_key.get(("rensa", 1))
    for key, target, note in (
        ("dedupe-full", 1.0, "same footing as rensa (imports before the clock, reading timed); the pipeline also "
                             "does paragraphs, chrome and stories"),
        ("dedupe-cli", None, "information only: the command as a user runs it, interpreter start-up and imports in"),
    ):
        full = by_key.get((key, 1))
        if full is None or rensa is None:
            continue
        ok = full.ok and rensa.ok
        out.append(
            Ratio(
                f"{full.label} vs rensa",
                full.docs_per_s / rensa.docs_per_s if ok else None,
                target,
                None,
                note if ok else "unavailable",
                full.docs_per_cpu_s / rensa.docs_per_cpu_s if ok and rensa.docs_per_cpu_s else None,
            )
        )
    return out


def scaling(out_dir: Path, seed: int) -> dict[str, dict[int, dict[str, float]]]:
    """Per-document cost by corpus size from the latest saved run of each size (same seed).

    Runs of different sizes are usually separate invocations, so this reads the saved JSON.
    """
    latest: dict[int, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("results-synthetic-*.json")):
        data = json.loads(path.read_text())
        corpus = data.get("corpus", {})
        if corpus.get("seed") != seed or corpus.get("synthetic") is not True:
            continue
        latest[corpus["docs"]] = data  # sorted by timestamp in the name: last one wins
    table: dict[str, dict[int, dict[str, float]]] = {}
    for size, data in sorted(latest.items()):
        for row in data["rows"]:
            if row["status"] != "ok" or row["sampled"] or not row["docs"]:
                continue
            table.setdefault(row["label"], {})[size] = {
                "us_per_doc": row["total"] / row["docs"] * 1e6,
                "cpu_us_per_doc": row["cpu"] / row["docs"] * 1e6,
                "rss_peak": row["rss_peak"],
            }
    return table


def _print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], plain: bool) -> None:
    rows = list(rows)
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if plain:
        print(f"\n{title}")
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right", overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def markdown(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [f"#### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    """What the numbers were measured on, so a results table can be read later."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("datasketch", "rensa", "numpy", "psutil", "dedupe"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    rev = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_rev": rev,
    }


def median_runs(rounds: list[list[tuple[Row, list[list[int]] | None]]], ceilings: list[float | None]
                ) -> tuple[list[Row], list[list[list[int]] | None], float | None, dict[str, list[float]]]:
    """Of `--repeat` rounds of the same runs: each run's median round by total time (the row shown,
    all its figures from that one run, with the spread of its totals in a note), the median
    machine ceiling, and each ratio as measured within each round (peers of one round ran minutes
    apart, so a round's ratio is less exposed to the machine's slow and fast phases)."""
    rows, clusters = [], []
    for k in range(len(rounds[0])):
        tries = sorted((r[k] for r in rounds), key=lambda t: t[0].total if t[0].ok else float("inf"))
        row, found = tries[(len(tries) - 1) // 2]
        if len(tries) > 1 and row.ok:
            totals = sorted(t[0].total for t in tries if t[0].ok)
            row.notes.append(f"{len(tries)} runs: total {totals[0]:.2f}-{totals[-1]:.2f} s, the median run shown")
        rows.append(row)
        clusters.append(found)
    known = sorted(c for c in ceilings if c is not None)
    ceiling = known[(len(known) - 1) // 2] if known else None
    spread: dict[str, list[float]] = {}
    if len(rounds) > 1:
        for r, c in zip(rounds, ceilings or [None] * len(rounds), strict=True):
            for ratio in ratios([row for row, _ in r], c):
                if ratio.ratio is not None:
                    spread.setdefault(ratio.what, []).append(ratio.ratio)
    return rows, clusters, ceiling, spread


def report(corpus: Corpus, docs: int, rows: list[Row], args: argparse.Namespace, ceiling: float | None,
           spread: dict[str, list[float]] | None = None) -> None:
    """Print both tables (plus scaling, when other sizes were run) and save JSON + Markdown;
    `spread`: each ratio as measured in each round of a `--repeat` run."""
    text_bytes = max((r.text_bytes / r.docs for r in rows if r.ok and r.docs and r.text_bytes), default=0.0)
    truth = Truth.load(corpus.truth_path) if corpus.truth_path else None
    header = f"corpus {corpus.name}: {docs:,} docs, {corpus.path.stat().st_size / MB:,.1f} MB"
    if text_bytes:
        header += f", text {text_bytes:,.0f} B/doc"
    if truth is not None:
        header += f", {len(truth.pairs):,} planted pairs"
    else:
        header += "; no truth (real dump): recall and precision are n/a"
    print(f"\n{header}")
    result_rows = [result_cells(r) for r in rows]
    _print_table("Results", RESULT_COLUMNS, result_rows, args.plain)
    notes = ["sign s marked *: dedupe's API shingles, signs, indexes and clusters in one call; all of it is there."]
    notes += [f"{r.label}: {n}" for r in rows for n in r.notes]
    for r in rows:
        if r.recall_by_jaccard:
            buckets = ", ".join(f"{k} {v:.2f}" for k, v in r.recall_by_jaccard.items())
            merged = f"; near-misses merged {_f(r.near_miss_merged)}" if r.near_miss_merged is not None else ""
            notes.append(f"{r.label}: recall by true Jaccard (pairs): {buckets}{merged}")
    notes += [f"{r.label}: {r.reason}" for r in rows if not r.ok]
    if any(r.precision_estimated for r in rows):
        notes.append(f"~ precision estimated from {MAX_EXACT_CHECKS:,} exact Jaccard checks")
    for n in notes:
        print(f"  {n}")

    ratio_list = ratios(rows, ceiling)
    for k, r in enumerate(ratio_list):
        per_round = sorted((spread or {}).get(r.what, []))
        if len(per_round) > 1:
            within = f"in each of {len(per_round)} rounds: {', '.join(f'{x:.2f}x' for x in per_round)}"
            ratio_list[k] = dataclasses.replace(r, note=f"{r.note}; {within}" if r.note else within)
    ratio_cols = ("comparison", "docs/s ratio", "docs/CPU-s ratio", "target", "verdict", "note")
    ratio_rows = [
        [
            r.what,
            "n/a" if r.ratio is None else f"{r.ratio:.2f}x",
            "—" if r.cpu_ratio is None else f"{r.cpu_ratio:.2f}x",
            f"{r.target:.1f}x" if r.target else "—",
            r.verdict,
            r.note,
        ]
        for r in ratio_list
    ]
    _print_table("Ratios (same run)", ratio_cols, ratio_rows, args.plain)

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = args.out_dir / f"results-{corpus.name}-{stamp}"
    info = machine()
    payload = {
        "created": stamp,
        "corpus": {
            "name": corpus.name,
            "path": str(corpus.path),
            "docs": docs,
            "bytes": corpus.path.stat().st_size,
            "synthetic": truth is not None,
            "seed": args.seed,
            "planted_pairs": len(truth.pairs) if truth else None,
        },
        "task": {"ngram": args.ngram, "num_perm": args.num_perm, "threshold": args.threshold},
        "machine": {**info, "parallel_ceiling": {"jobs": args.jobs, "ratio": ceiling}},
        "rows": [
            {
                **asdict(r),
                "docs_per_s": r.docs_per_s,
                "mb_per_s": r.mb_per_s,
                "bytes_per_doc": r.bytes_per_doc,
            }
            for r in rows
        ],
        "ratios": [{**asdict(r), "verdict": r.verdict} for r in ratio_list],
        "repeat": args.repeat,
        "ratios_by_round": spread or {},
    }
    base.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    md = f"{header}\n\nmachine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
    md += f"load average {info['load_avg'][0]:.2f} at the end, git {info['git_rev']}\n\n"
    md += markdown("Results", RESULT_COLUMNS, result_rows)
    md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n\n" + markdown("Ratios", ratio_cols, ratio_rows)

    if truth is not None:
        table = scaling(args.out_dir, args.seed)
        sizes = sorted({s for per in table.values() for s in per})
        if len(sizes) > 1:
            cols = [
                "peer",
                *(f"µs/doc (CPU) @{s:,}" for s in sizes),
                *(f"RSS MB @{s:,}" for s in sizes),
                "marginal B/doc",
                "µs/doc largest ÷ smallest (CPU)",
            ]
            srows = []
            for label, per in table.items():
                cells = [label]
                cells += [
                    f"{per[s]['us_per_doc']:,.0f} ({per[s]['cpu_us_per_doc']:,.0f})" if s in per else "—" for s in sizes
                ]
                cells += [f"{per[s]['rss_peak'] / MB:,.0f}" if s in per else "—" for s in sizes]
                have = [s for s in sizes if s in per]
                if len(have) > 1:
                    small, large = per[have[0]], per[have[-1]]
                    cells.append(f"{(large['rss_peak'] - small['rss_peak']) / (have[-1] - have[0]):,.0f}")
                    wall = large["us_per_doc"] / small["us_per_doc"]
                    cpu = large["cpu_us_per_doc"] / small["cpu_us_per_doc"]
                    growth = f"{wall:.2f} ({cpu:.2f})"
                else:
                    cells.append("—")
                    growth = "n/a"
                cells.append(growth + (" target ≤ 1.20" if label.startswith("dedupe") else ""))
                srows.append(cells)
            _print_table("Scaling (latest saved run of each size)", cols, srows, args.plain)
            md += "\n" + markdown("Scaling", cols, srows)
    base.with_suffix(".md").write_text(md)
    print(f"\nsaved {base.with_suffix('.json')} and .md")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="10k", help="corpus size(s): 10k, 100k, 1m or a number; comma list")
    parser.add_argument("--peers", default=",".join(ALL_PEERS), help=f"comma list from {', '.join(ALL_PEERS)}")
    parser.add_argument("--input", type=Path, help="a real JSONL dump ({id, text} per line) instead of synthetic")
    parser.add_argument("--jobs", type=int, default=1, help="also run dedupe's rows with N processes")
    parser.add_argument("--baseline-sample", type=int, default=2000, help="docs for datasketch per-shingle (0: all)")
    parser.add_argument("--sample", default="", help="other caps, e.g. datasketch-batch=20000 (0: all)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed")
    parser.add_argument("--timeout", type=float, default=0, help="seconds before a peer is stopped (0: never)")
    parser.add_argument("--rensa-bands", type=int, default=16, help="rensa LSH bands; must divide --num-perm")
    parser.add_argument("--ngram", type=int, default=5)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--plain", action="store_true", help="plain-text tables instead of rich")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every peer N times, in rounds; each row shows its median run")
    args = parser.parse_args(argv)

    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = set(peers) - set(ALL_PEERS)
    if unknown:
        parser.error(f"unknown peer(s): {', '.join(sorted(unknown))}")
    samples = {"datasketch": args.baseline_sample, **parse_samples(args.sample)}

    if args.input is not None:
        if not args.input.exists():
            parser.error(f"no such file: {args.input}")
        n = sum(1 for line in args.input.open("rb") if line.strip())
        corpora = [(Corpus(args.input.resolve(), None, args.input.stem), n)]
    else:
        corpora = []
        for size in parse_docs(args.docs):
            print(f"corpus: {size:,} docs (generated once, then reused from {args.out_dir})", file=sys.stderr)
            corpora.append((synthetic(size, args.seed, args.out_dir), size))

    for corpus, docs in corpora:
        runs = [(key, jobs) for key in peers
                for jobs in ((1, args.jobs) if args.jobs != 1 and key in JOBS_PEERS else (1,))]
        rounds: list[list[tuple[Row, list[list[int]] | None]]] = []
        ceilings: list[float | None] = []
        for r in range(args.repeat):
            if args.jobs != 1:
                print(f"  measuring what {args.jobs} processes give this machine on ideal work ...", file=sys.stderr)
                ceilings.append(parallel_ceiling(args.jobs))
            # Every other round runs the peers in reverse, so a machine growing faster or slower
            # over the run does not favour the peers that come first.
            done = {}
            for key, jobs in runs if r % 2 == 0 else runs[::-1]:
                cap = samples.get(key, 0)
                done[key, jobs] = run_peer(key, corpus, docs, cap if cap and cap < docs else None, jobs, args)
            rounds.append([done[run] for run in runs])
        rows, clusters, ceiling, spread = median_runs(rounds, ceilings)
        if corpus.truth_path is not None:
            # dedupe's recall on exactly the documents a sampled peer saw, for a like-for-like check
            truth = Truth.load(corpus.truth_path)
            for row, found in zip(rows, clusters, strict=True):
                if row.key.startswith("dedupe") and found is not None:
                    for other in rows:
                        if other.sampled and other.ok:
                            scope = other.docs
                            row.recall_by_scope[scope] = score(found, scope, truth, corpus.path, args.threshold)[
                                "recall"
                            ]
        report(corpus, docs, rows, args, ceiling, spread)
    return 0


if __name__ == "__main__":
    sys.exit(main())
