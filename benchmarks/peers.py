"""One peer, one process: `bench.py` runs `python peers.py PEER ...` for every row of the table.

A separate process per peer gives each its own peak RSS and keeps caches, imports and allocator
state from leaking between peers. The child times its own stages (so interpreter start-up and
imports are not charged to anyone), writes a JSON result, and exits.

Every library peer does the same task: read the JSONL, lowercase + whitespace-split, word 5-gram
shingles, 128-permutation MinHash, LSH at threshold 0.8, keep candidate pairs whose MinHash
estimate is >= the threshold, and union them into clusters.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from corpus import read_texts, tokens

REPO_ROOT = Path(__file__).resolve().parent.parent
CHUNK = 2_000  # documents shingled per batch call, so no peer holds every shingle list at once


class Unavailable(Exception):
    """The peer cannot run here (not installed, API missing); reported as a row, not a crash."""


@dataclass
class Params:
    """The task every peer is asked to do."""

    ngram: int = 5
    num_perm: int = 128
    threshold: float = 0.8
    seed: int = 1
    jobs: int = 1
    rensa_bands: int = 16


@dataclass
class Outcome:
    """What a peer hands back: clusters plus whatever it wants to say about how it ran."""

    clusters: list[list[int]] | None = None
    cluster_ids: list[list[str]] | None = None
    stages: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    docs: int = 0
    text_bytes: int = 0
    texts: Sequence[str] = ()  # counted into text_bytes once the clock has stopped (harness bookkeeping)
    # What a peer made, held until the clock has stopped: freeing a peer's results (millions of
    # objects for the full pipeline, an index for rensa and datasketch) is not part of its work,
    # as a program's exit is not; every library peer hands its results over here alike.
    held: Any = None
    # Harness bookkeeping to run once the clock has stopped (reading the clusters out of a report).
    after: Callable[[], None] | None = None
    scratch: Path | None = None  # a folder made before the clock and removed after it, for a report file
    rss_base: int | None = None
    wall: float | None = None  # when set, the peer's own timed part (the CLI's command alone)...
    cpu: float | None = None  # ...and the CPU seconds it used


class _Stages:
    """Stage stopwatch; the stage names are the table's columns."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start


class _RssSampler(threading.Thread):
    """Samples the summed RSS of this process tree: ru_maxrss alone misses worker pools."""

    def __init__(self, include_self: bool = True, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.include_self = include_self
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()
        self._proc = psutil.Process()

    def sample(self) -> int:
        procs = self._proc.children(recursive=True)
        if self.include_self:
            procs.append(self._proc)
        total = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        self.peak = max(self.peak, total)
        return total

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def shingle_lists(texts: Sequence[str], ngram: int) -> list[list[str]]:
    """Per-document shingle sets as lists (what the batch APIs take); same rule as corpus.shingles."""
    out: list[list[str]] = []
    for text in texts:
        words = tokens(text)
        if len(words) < ngram:
            out.append([" ".join(words)] if words else [])
        else:
            out.append(list(set(map(" ".join, zip(*(words[i:] for i in range(ngram)), strict=False)))))
    return out


def union_clusters(n: int, pairs: Iterator[tuple[int, int]]) -> list[list[int]]:
    """Union-find over verified pairs; clusters of size >= 2, members sorted."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [members for members in groups.values() if len(members) >= 2]


def _datasketch_lsh(params: Params) -> Any:
    from datasketch import MinHashLSH

    return MinHashLSH(threshold=params.threshold, num_perm=params.num_perm)


def _datasketch_query(lsh: Any, minhashes: Sequence[Any], threshold: float) -> Iterator[tuple[int, int]]:
    """Query every signature; keep pairs whose MinHash estimate clears the threshold."""
    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            if j > i and m.jaccard(minhashes[j]) >= threshold:
                yield i, j


def run_datasketch(texts: Sequence[str], params: Params, stage: _Stages, out: Outcome) -> None:
    """The common baseline: a fresh MinHash per document and one `update` call per shingle."""
    from datasketch import MinHash

    with stage("sign"):
        minhashes = []
        for text in texts:
            m = MinHash(num_perm=params.num_perm, seed=params.seed)
            for s in shingle_lists([text], params.ngram)[0]:
                m.update(s.encode("utf-8"))
            minhashes.append(m)
    lsh = _datasketch_lsh(params)
    with stage("lsh"):
        for i, m in enumerate(minhashes):
            lsh.insert(i, m, check_duplication=False)
        pairs = list(_datasketch_query(lsh, minhashes, params.threshold))
    with stage("cluster"):
        out.clusters = union_clusters(len(texts), iter(pairs))
    out.held = (minhashes, lsh, pairs)
    out.notes.append(f"datasketch MinHashLSH picked (bands, rows) = ({lsh.b}, {lsh.r})")


def run_datasketch_batch(texts: Sequence[str], params: Params, stage: _Stages, out: Outcome) -> None:
    """datasketch's fast path: `MinHash.generator` (shared permutations, `update_batch`) and an
    `insertion_session` for the index."""
    from datasketch import MinHash

    with stage("sign"):
        minhashes: list[Any] = []
        for start in range(0, len(texts), CHUNK):
            batch = shingle_lists(texts[start : start + CHUNK], params.ngram)
            encoded = [[s.encode("utf-8") for s in doc] for doc in batch]
            minhashes.extend(MinHash.generator(encoded, num_perm=params.num_perm, seed=params.seed))
    lsh = _datasketch_lsh(params)
    with stage("lsh"):
        with lsh.insertion_session() as session:
            for i, m in enumerate(minhashes):
                session.insert(i, m, check_duplication=False)
        pairs = list(_datasketch_query(lsh, minhashes, params.threshold))
    with stage("cluster"):
        out.clusters = union_clusters(len(texts), iter(pairs))
    out.held = (minhashes, lsh, pairs)
    out.notes.append(f"datasketch MinHashLSH picked (bands, rows) = ({lsh.b}, {lsh.r})")


def run_rensa(texts: Sequence[str], params: Params, stage: _Stages, out: Outcome) -> None:
    """rensa's R-MinHash: batch signing from token sets, `RMinHashLSH.insert_many` / `query_all`.

    Its faster "digest matrix" + duplicate-flag calls answer "is this row a duplicate of
    something", not "of what", so they cannot build clusters; this path can.
    """
    try:
        from rensa import RMinHash, RMinHashLSH
    except ImportError as exc:
        raise Unavailable(f"rensa not installed ({exc})") from exc

    with stage("sign"):
        minhashes: list[Any] = []
        for start in range(0, len(texts), CHUNK):
            batch = shingle_lists(texts[start : start + CHUNK], params.ngram)
            minhashes.extend(RMinHash.from_token_sets(batch, num_perm=params.num_perm, seed=params.seed))
    with stage("lsh"):
        lsh = RMinHashLSH(threshold=params.threshold, num_perm=params.num_perm, num_bands=params.rensa_bands)
        lsh.insert_many(minhashes, start_key=0)
        candidates = lsh.query_all(minhashes)
        threshold = params.threshold
        pairs = [
            (i, j)
            for i, cands in enumerate(candidates)
            for j in cands
            if j > i and minhashes[i].jaccard(minhashes[j]) >= threshold
        ]
    with stage("cluster"):
        out.clusters = union_clusters(len(texts), iter(pairs))
    out.held = (minhashes, lsh, candidates, pairs)
    rows = params.num_perm // params.rensa_bands
    out.notes.append(f"rensa RMinHashLSH with (bands, rows) = ({params.rensa_bands}, {rows})")


def run_dedupe_api(texts: Sequence[str], params: Params, stage: _Stages, out: Outcome) -> None:
    """dedupe's library call; it does signing, LSH and clustering in one go, timed as one stage."""
    try:
        from dedupe import find_near_duplicate_documents
    except Exception as exc:  # a half-written package can fail with anything, not only ImportError
        raise Unavailable(f"`from dedupe import find_near_duplicate_documents` failed: {exc!r}") from exc

    kwargs: dict[str, Any] = {
        "ngram": params.ngram,
        "num_perm": params.num_perm,
        "threshold": params.threshold,
        "seed": params.seed,
    }
    if params.jobs != 1:
        if "jobs" not in inspect.signature(find_near_duplicate_documents).parameters:
            raise Unavailable("find_near_duplicate_documents() has no `jobs` parameter yet")
        kwargs["jobs"] = params.jobs
    with stage("api"):
        clusters = find_near_duplicate_documents(texts, **kwargs)
    out.clusters = [sorted(int(i) for i in c) for c in clusters]
    out.held = clusters


# imported before the clock starts and before the idle RSS is taken: start-up is nobody's cost
# (dedupe's compiled kernels are loaded then too: see main)
PRELOAD = {"dedupe": "dedupe", "dedupe-full": "dedupe", "datasketch": "datasketch", "datasketch-batch": "datasketch",
           "rensa": "rensa"}

PeerFn = Callable[[Sequence[str], Params, _Stages, Outcome], None]
LIBRARY_PEERS: dict[str, PeerFn] = {
    "dedupe": run_dedupe_api,
    "datasketch": run_datasketch,
    "datasketch-batch": run_datasketch_batch,
    "rensa": run_rensa,
}


def _dedupe_command() -> list[str]:
    """The installed `dedupe` script if there is one, else the same entry point through this Python."""
    script = Path(sys.executable).parent / "dedupe"
    if script.exists():
        return [str(script)]
    found = shutil.which("dedupe")
    if found:
        return [found]
    shim = "import sys; from dedupe.cli import main; sys.argv[0] = 'dedupe'; sys.exit(main())"
    return [sys.executable, "-c", shim]


def _document_clusters(report: Any) -> list[list[str]] | None:
    """Document-level exact/near clusters from `dedupe scan --json`, or None if the shape is unknown.

    Reads "document_clusters" (report schema v1, docs/report.md), else "clusters", else a bare list:
    cluster objects with "kind" and "members" (objects with "id", or bare ids). Story clusters
    are retellings, not copies, so they are left out.
    """
    items = report
    if isinstance(report, dict):
        items = report.get("document_clusters", report.get("clusters"))
    if not isinstance(items, list):
        return None
    clusters: list[list[str]] = []
    for item in items:
        if not isinstance(item, dict) or "members" not in item:
            return None
        if item.get("level", "document") != "document" or item.get("kind", "near") not in ("exact", "near"):
            continue
        ids = [str(m["id"]) if isinstance(m, dict) else str(m) for m in item["members"]]
        if len(set(ids)) >= 2:
            clusters.append(sorted(set(ids)))
    return clusters


def run_dedupe_full(corpus: Path, params: Params, stage: _Stages, out: Outcome) -> None:
    """`dedupe scan INPUT --json OUT` in this process: dedupe's own reader, the whole default
    pipeline (paragraphs, chrome, stories) and the JSON report written as the CLI writes it, on the
    footing of the library peers: imports are done before the clock starts, reading the JSONL is
    timed. The report goes to the harness's scratch folder (removed after the clock, as a user keeps
    the file), and its document clusters are read out of it after the clock too: that is the
    harness's bookkeeping for recall, not the pipeline's work."""
    try:
        from dedupe import Settings, build_report, read_documents, scan
        from dedupe.gcpause import collector_paused
        from dedupe.report import report_json  # the report encoded exactly as the CLI encodes it
    except Exception as exc:
        raise Unavailable(f"dedupe's scan API failed to import: {exc!r}") from exc

    assert out.scratch is not None, "the harness makes the scratch folder before the clock"
    with collector_paused():  # as the CLI runs
        with stage("read"):
            docs, bad = read_documents([str(corpus)])
        with stage("scan"):
            result = scan(docs, Settings(jobs=params.jobs), bad=bad)
        with stage("report"):
            report = build_report(result, {})
            (out.scratch / "report.json").write_bytes(report_json(report))  # (the CLI also fsyncs)
    out.docs = len(docs)
    out.texts = [d.text for d in docs]
    out.held = (docs, result, report)

    def read_clusters() -> None:
        out.cluster_ids = _document_clusters(report)

    out.after = read_clusters


def run_dedupe_cli(corpus: Path, params: Params, stage: _Stages, out: Outcome) -> None:
    """`dedupe scan INPUT --json OUT`: the whole product (paragraphs, chrome, stories), end to end,
    as a user runs it. Only that command is timed: its interpreter start-up and imports are in,
    the idle baseline run (`dedupe --help`) and the counting of the corpus's lines are not."""
    command = _dedupe_command()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="dedupe-bench-") as tmp:
        report_path = Path(tmp) / "report.json"
        # idle baseline: the CLI's interpreter with its imports, measured by `dedupe --help`
        subprocess.run([*command, "--help"], capture_output=True, env=env, check=False)
        out.rss_base = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        args = [*command, "scan", str(corpus), "--json", str(report_path)]
        if params.jobs != 1:
            helptext = subprocess.run(
                [*command, "scan", "--help"], capture_output=True, text=True, env=env, check=False
            ).stdout
            if "--jobs" not in helptext:
                raise Unavailable("`dedupe scan` has no --jobs option yet")
            args += ["--jobs", str(params.jobs)]
        cpu_start, start = _cpu_seconds(), time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        out.wall, out.cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        stage.times["cli"] = out.wall
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise Unavailable(f"`dedupe scan` exited {proc.returncode}: {' | '.join(tail)}")
        try:
            out.cluster_ids = _document_clusters(json.loads(report_path.read_text()))
        except (OSError, ValueError) as exc:
            out.notes.append(f"could not read the --json report: {exc}")
        if out.cluster_ids is None:
            out.notes.append("document clusters not found in the --json report; recall n/a")
    out.notes.append("time includes interpreter start-up and imports; paragraph/chrome/story work too")
    out.docs = sum(1 for line in corpus.open(encoding="utf-8") if line.strip())


FilePeerFn = Callable[[Path, Params, _Stages, Outcome], None]
FILE_PEERS: dict[str, FilePeerFn] = {"dedupe-full": run_dedupe_full, "dedupe-cli": run_dedupe_cli}
"""Peers that read the corpus file themselves (the library peers are handed its texts)."""


def _pin_threads(jobs: int) -> None:
    """Pin native thread pools (rensa's rayon, BLAS) so a "single process" row uses one core."""
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(jobs))


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=[*LIBRARY_PEERS, *FILE_PEERS])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents (sampling)")
    parser.add_argument("--ngram", type=int, default=5)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--rensa-bands", type=int, default=16)
    args = parser.parse_args(argv)
    params = Params(args.ngram, args.num_perm, args.threshold, args.seed, args.jobs, args.rensa_bands)
    _pin_threads(params.jobs)
    if args.peer in ("dedupe", "dedupe-full"):
        sys.path.insert(0, str(REPO_ROOT))
    if args.peer in PRELOAD:
        with contextlib.suppress(Exception):  # the peer itself reports a failed import as unavailable
            importlib.import_module(PRELOAD[args.peer])
    loaded = None
    if args.peer in ("dedupe", "dedupe-full"):
        # numba loads the kernels' cached machine code at their first call, where rensa's is loaded
        # by its import: both are start-up, before the clock (the CLI row keeps its start-up in)
        with contextlib.suppress(Exception):
            began = time.perf_counter()
            if args.peer == "dedupe-full" and importlib.util.find_spec("dedupe.allocator"):
                # as `scan` and `clean` set the process up: freed blocks kept for reuse, small pages
                allocator = importlib.import_module("dedupe.allocator")
                getattr(allocator, "tune_for_batches", allocator.reuse_freed_blocks)()
            if args.peer == "dedupe-full" and importlib.util.find_spec("dedupe.kernel_cache"):
                # as `scan` and `clean` make them ready (on a first run, compiled in a child process)
                importlib.import_module("dedupe.kernel_cache").prepare()
            else:
                importlib.import_module("dedupe.kernels").warm_up()
            loaded = time.perf_counter() - began

    is_cli = args.peer == "dedupe-cli"
    sampler = _RssSampler(include_self=not is_cli)
    rss_base = sampler.sample()
    cpu_start = _cpu_seconds()
    result: dict[str, Any] = {"peer": args.peer, "params": vars(params), "limit": args.limit}
    out = Outcome()
    if loaded is not None:
        out.notes.append(f"compiled kernels loaded before the clock, as an extension is by its import ({loaded:.2f} s)")
    stage = _Stages()
    scratch = Path(tempfile.mkdtemp(prefix="dedupe-bench-"))
    out.scratch = scratch
    rss_after_read = rss_base
    sampler.start()
    start = time.perf_counter()
    try:
        if args.peer in FILE_PEERS:
            FILE_PEERS[args.peer](args.corpus, params, stage, out)
        else:
            with stage("read"):
                texts = read_texts(args.corpus, args.limit)
            out.docs = len(texts)
            out.texts = texts
            rss_after_read = sampler.sample()
            LIBRARY_PEERS[args.peer](texts, params, stage, out)
        result["status"] = "ok"
    except Unavailable as exc:
        result["status"] = "unavailable"
        result["reason"] = str(exc)
    except Exception as exc:
        result["status"] = "error"
        result["reason"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    total = time.perf_counter() - start if out.wall is None else out.wall
    cpu = _cpu_seconds() - cpu_start if out.cpu is None else out.cpu
    peak = max(sampler.stop(), sampler.sample())
    if out.after is not None and result.get("status") == "ok":
        out.after()
    out.held = None
    shutil.rmtree(scratch, ignore_errors=True)
    if out.texts and not out.text_bytes:  # the corpus's size in bytes, for MB/s: not the peer's work
        out.text_bytes = sum(len(t.encode("utf-8")) for t in out.texts)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    result.update(
        total=total,
        cpu=cpu,
        stages={**out.stages, **stage.times},
        docs=out.docs,
        text_bytes=out.text_bytes,
        rss_base=out.rss_base if out.rss_base is not None else rss_base,
        rss_after_read=rss_after_read,
        rss_peak=max(peak, kids if is_cli else own),
        clusters=out.clusters,
        cluster_ids=out.cluster_ids,
        notes=out.notes,
    )
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
