"""Quality of the default settings on the development sets, measured through the real CLI.

    python benchmarks/quality.py [--eval-dir ../shared/eval] [--only chrome,syndication,story,updates] [--nights N]

- chrome: `dedupe clean devset.jsonl.gz --annotate` (every page kept, chrome stripped), scored by
  `chrome_score.py` (bag-of-words P/R/F1 against the human gold text, macro over pages);
- syndication: `syndication.py` builds wire copies inside other sites' chrome; `dedupe clean` of it
  with default settings, its `exact`/`near` document clusters (the ones clean acts on) scored by
  `cluster_score.py` (pair P/R/F1, ARI);
- story: `dedupe scan mmds_dev_en.jsonl`, its document clusters of every kind (a story's copies and
  retellings together) scored by `cluster_score.py` against the news-event labels;
- updates: a scheduled run's next night: the dev set cleaned into an index, then 150 of its pages
  again, each with a paragraph added after its article, cleaned against it (`updates`); chrome F1
  of those pages and how many are removed as copies of their archived originals. Always two
  nights, whatever `--nights`.

`--nights N` runs chrome and syndication as a scheduled job would: the set's records shuffled (a
fixed seed) and dealt into N batches, each cleaned with `--index` against the archive the earlier
ones built; the union of the outputs, and the clusters of every night's report (archived members
included, which is how one night's copy joins an earlier night's), are scored as above.

The development sets are read where they are and never copied into the repository.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

DEFAULT_EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dedupe(*args: str) -> float:
    """Run the CLI, return its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dedupe", *args, "--quiet"], check=True)
    return time.perf_counter() - start


def merged_clusters(reports: Iterable[dict], kinds: set[str]) -> list[list[str]]:
    """Document clusters of the given kinds, overlapping ones merged (a kept copy can sit in a near
    cluster and a story cluster at once, an archived copy in clusters of several nights). Reports
    are read one at a time, so they may come from a generator (`batched.py`'s are ~100 MB each)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in (c for report in reports for c in report["document_clusters"]):
        if c["kind"] in kinds:
            ids = [m["id"] for m in c["members"]]
            for other in ids[1:]:
                parent[find(other)] = find(ids[0])
    groups: dict[str, list[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return [g for g in groups.values() if len(g) > 1]


def _batches(path: Path, nights: int, work: Path) -> list[Path]:
    """The dump itself, or its records shuffled (seed 7) and dealt into `nights` batch files."""
    if nights <= 1:
        return [path]
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")) as f:
        lines = [line for line in f if line.strip()]
    random.Random(7).shuffle(lines)
    out = []
    for k in range(nights):
        batch = work / f"{path.name.split('.')[0]}-night{k}.jsonl"
        batch.write_text("".join(lines[k::nights]), encoding="utf-8")
        out.append(batch)
    return out


def _clean_nightly(batches: list[Path], work: Path, name: str, *options: str) -> tuple[list[Path], list[Path], float]:
    """`dedupe clean` of each batch (against one index when there are several): outputs, reports, seconds."""
    index = ["--index", str(work / f"{name}-index.db")] if len(batches) > 1 else []
    outputs, reports, seconds = [], [], 0.0
    for k, batch in enumerate(batches):
        outputs.append(work / f"{name}-clean{k}.jsonl")
        reports.append(work / f"{name}-report{k}.json")
        seconds += _dedupe("clean", str(batch), "-o", str(outputs[-1]), "--json", str(reports[-1]), *options, *index)
    return outputs, reports, seconds


def _how(nights: int) -> str:
    return f"{nights} nightly batches, " if nights > 1 else ""


def chrome(eval_dir: Path, work: Path, nights: int) -> str:
    dev = eval_dir / "devset.jsonl.gz"
    outputs, _, seconds = _clean_nightly(_batches(dev, nights, work), work, "dev", "--annotate")
    scorer = _load(eval_dir / "chrome_score.py")
    dump = scorer.read_jsonl(str(dev))
    cleaned = {str(r["id"]): r.get("text", "") for out in outputs for r in scorer.read_jsonl(str(out))}
    p, r, f = scorer.score(dump, cleaned)
    return (f"chrome       precision {p:.3f} recall {r:.3f} F1 {f:.3f}  "
            f"({len(dump)} pages, {_how(nights)}{seconds:.1f} s)")


def syndication(eval_dir: Path, work: Path, nights: int) -> str:
    synd = work / "synd.jsonl"
    subprocess.run([sys.executable, str(eval_dir / "syndication.py"), str(eval_dir / "devset.jsonl.gz"), str(synd)],
                   check=True, capture_output=True)
    _, reports, seconds = _clean_nightly(_batches(synd, nights, work), work, "synd")
    scorer = _load(eval_dir / "cluster_score.py")
    docs = scorer.read_jsonl(str(synd))
    clusters = merged_clusters([json.loads(r.read_text()) for r in reports], {"exact", "near"})
    p, r, f, a = scorer.score(docs, "story", clusters)
    return (f"syndication  pair precision {p:.3f} recall {r:.3f} F1 {f:.3f} ARI {a:.3f}  "
            f"({len(docs)} documents, {_how(nights)}{seconds:.1f} s)")


def story(eval_dir: Path, work: Path, nights: int) -> str:
    if nights > 1:
        return "story        (one-shot only: story clusters are not matched against the archive)"
    data = eval_dir / "mmds_dev_en.jsonl"
    report_path = work / "mmds-report.json"
    seconds = _dedupe("scan", str(data), "--json", str(report_path))
    report = json.loads(report_path.read_text())
    scorer = _load(eval_dir / "cluster_score.py")
    docs = scorer.read_jsonl(str(data))
    p, r, f, a = scorer.score(docs, "story", merged_clusters([report], {"exact", "near", "story"}))
    return (f"story        pair precision {p:.3f} recall {r:.3f} F1 {f:.3f} ARI {a:.3f}  "
            f"({len(docs)} articles, {seconds:.1f} s)")


def updates(eval_dir: Path, work: Path, nights: int) -> str:
    """Pages printed again the next night with a paragraph added (a story updated on its site).

    Night 1 is the dev set, cleaned into an index; night 2 is 150 of its pages (seed 11; those
    whose gold text has three long lines) again under a new id, each with one long line of another
    site's gold text added after its article's last line, cleaned against that index with
    `--annotate`. Scored: chrome F1 of night 2's pages against their gold text plus the added line,
    and how many are removed as a copy of their archived original."""
    with gzip.open(eval_dir / "devset.jsonl.gz", "rt", encoding="utf-8") as f:
        pages = [json.loads(line) for line in f]
    night1, night2 = work / "updates-night1.jsonl", work / "updates-night2.jsonl"
    night1.write_text("".join(json.dumps({k: p[k] for k in ("id", "site", "text")}) + "\n" for p in pages),
                      encoding="utf-8")
    rng = random.Random(11)
    truth: dict[str, tuple[str, str]] = {}
    with night2.open("w", encoding="utf-8") as out:
        for p in rng.sample(pages, 150):
            gold = {line.strip() for line in p["gold"].splitlines() if len(line.split()) >= 8}
            lines = p["text"].splitlines()
            last = max((i for i, line in enumerate(lines) if line.strip() in gold), default=None)
            other = rng.choice([q for q in pages if q["site"] != p["site"]])
            added = [line for line in other["gold"].splitlines() if len(line.split()) >= 15]
            if len(gold) < 3 or last is None or not added:
                continue
            update = f"UPDATE: {added[0]}"
            record = {"id": f"{p['id']}?updated", "site": p["site"],
                      "text": "\n".join([*lines[: last + 1], update, *lines[last + 1 :]])}
            out.write(json.dumps(record) + "\n")
            truth[record["id"]] = (p["id"], f"{p['gold']}\n{update}")
    index = str(work / "updates-index.db")
    seconds = _dedupe("clean", str(night1), "-o", str(work / "updates-clean1.jsonl"), "--index", index)
    cleaned = work / "updates-clean2.jsonl"
    seconds += _dedupe("clean", str(night2), "-o", str(cleaned), "--annotate", "--index", index)
    scorer = _load(eval_dir / "chrome_score.py")
    records = scorer.read_jsonl(str(cleaned))
    f1 = sum(scorer.prf(r["text"], truth[r["id"]][1])[2] for r in records) / len(records)
    copies = sum(r["dedupe"].get("duplicate_of") == truth[r["id"]][0] for r in records)
    return (f"updates      chrome F1 {f1:.3f} of {len(records)} pages printed again the next night with a paragraph "
            f"added; {copies} removed as copies of their archived originals  ({seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--only", default="chrome,syndication,story,updates")
    parser.add_argument("--nights", type=int, default=1, help="run as N nightly batches against an index")
    args = parser.parse_args()
    if not (args.eval_dir / "devset.jsonl.gz").exists():
        sys.exit(f"quality: no development sets at {args.eval_dir} (pass --eval-dir)")
    runs = {"chrome": chrome, "syndication": syndication, "story": story, "updates": updates}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            print(runs[name](args.eval_dir, Path(tmp), args.nights), flush=True)


if __name__ == "__main__":
    main()
