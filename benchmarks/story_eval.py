"""Measure document-level story clustering against real news clusters, and its speed.

Reads a labelled JSONL (default: the MMDS English dev split, `../shared/eval/mmds_dev_en.jsonl`,
fields id, text, story), computes story pairs with `dedupe.story` over the documents' content terms,
clusters them (connected components, then the chaining guard: each component keeps its
representative, the member with the highest summed similarity, and the members whose own similarity
to it reaches the threshold) and scores the clusters with the eval folder's own `cluster_score.py`
(pair precision / recall / F1 and adjusted Rand index), imported at run time, never copied.

It prints the figures at the default `StorySettings`, a precision/recall table over thresholds, and
the default on the two halves of a split by story (a default tuned to one half should hold on the
other). Options:
  --synd SYND.jsonl   sanity check on the syndication set made by
                      `python EVAL_DIR/syndication.py EVAL_DIR/devset.jsonl.gz SYND.jsonl`: chrome
                      is not stripped there, so lines seen on 2+ pages of one site are dropped first
                      (the README's `linedf2` baseline); reports false pairs within and across sites
                      and the largest cluster.
  --speed N           story_pairs throughput on N synthetic texts (Zipf vocabulary, 150 terms each,
                      5% rewritten copies), and content_terms throughput on the dataset's texts.

Usage:
  python benchmarks/story_eval.py [DATASET] [--thresholds 0.25,0.3,...] [--synd F] [--speed N]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dedupe.normalize import line_key  # noqa: E402
from dedupe.story import StorySettings, content_terms, story_pairs  # noqa: E402

DEFAULT_DATASET = REPO.parent / "shared" / "eval" / "mmds_dev_en.jsonl"
Scores = tuple[float, float, float, float]


def load_scorer(path: Path) -> ModuleType:
    """Import the eval folder's cluster_score.py without copying it into the repository."""
    spec = importlib.util.spec_from_file_location("cluster_score", path)
    if spec is None or spec.loader is None or not path.exists():
        raise SystemExit(f"scorer not found: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def guarded_clusters(n: int, pairs: Sequence[tuple[int, int, float]], threshold: float) -> list[list[int]]:
    """Connected components of the pairs, each cut to its representative and its direct matches."""
    if not pairs:
        return []
    i, j, s = (np.array(col) for col in zip(*pairs, strict=True))
    graph = coo_matrix((s, (i, j)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()
    _, labels = connected_components(graph, directed=False)
    strength = np.asarray(graph.sum(axis=1)).ravel()
    out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < 2:
            continue
        rep = int(members[np.argmax(strength[members])])
        to_rep = graph[rep].toarray().ravel()
        kept = [int(m) for m in members if m == rep or to_rep[m] >= threshold]
        if len(kept) >= 2:
            out.append(kept)
    return out


Pairs = list[tuple[int, int, float]]


def score(scorer: ModuleType, docs: Sequence[dict[str, Any]], terms: Sequence[list[str]],
          settings: StorySettings, field: str = "story") -> tuple[Scores, list[list[int]], Pairs]:
    """Pair P/R/F1 and ARI of the guarded story clusters of `docs`."""
    pairs = story_pairs(terms, settings)
    clusters = guarded_clusters(len(docs), pairs, settings.min_similarity)
    ids = [[str(docs[k]["id"]) for k in c] for c in clusters]
    return scorer.score(docs, field, ids), clusters, pairs


def fmt(scores: Scores) -> str:
    p, r, f, a = scores
    return f"precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}  ARI {a:.3f}"


def report_mmds(scorer: ModuleType, docs: list[dict[str, Any]], thresholds: Sequence[float]) -> None:
    """Default figures, the threshold trade-off and a split-half check."""
    terms = [content_terms(d["text"]) for d in docs]
    default = StorySettings()
    print(f"{len(docs)} documents, {len({d['story'] for d in docs})} stories; defaults {default}")
    print(f"default (min_similarity {default.min_similarity}): {fmt(score(scorer, docs, terms, default)[0])}")
    print("\nthreshold  precision  recall  F1     ARI    clusters")
    for t in thresholds:
        (p, r, f, a), clusters, _ = score(scorer, docs, terms, replace(default, min_similarity=t))
        print(f"{t:9.3f}  {p:9.3f}  {r:6.3f}  {f:.3f}  {a:.3f}  {len(clusters):8d}")
    halves: dict[int, list[int]] = defaultdict(list)
    for k, d in enumerate(docs):
        halves[zlib.crc32(str(d["story"]).encode()) % 2].append(k)
    print("\nsplit by story: the lowest threshold with precision >= 0.9 on one half, scored on the other")
    for tune, test in ((0, 1), (1, 0)):
        chosen = _lowest_precise(scorer, docs, terms, halves[tune], thresholds)
        sub = [docs[k] for k in halves[test]]
        figures = score(scorer, sub, [terms[k] for k in halves[test]], replace(default, min_similarity=chosen))[0]
        print(f"  tuned on half {tune} ({len(halves[tune])} docs): {chosen:.3f};"
              f" half {test} ({len(sub)} docs): {fmt(figures)}")


def _lowest_precise(scorer: ModuleType, docs: Sequence[dict[str, Any]], terms: Sequence[list[str]],
                    rows: Sequence[int], thresholds: Sequence[float]) -> float:
    """The lowest threshold whose precision on docs[rows] (their own corpus) is at least 0.9."""
    sub, sub_terms = [docs[k] for k in rows], [terms[k] for k in rows]
    for t in sorted(thresholds):
        if score(scorer, sub, sub_terms, StorySettings(min_similarity=t))[0][0] >= 0.9:
            return t
    return max(thresholds)


def strip_recurring_lines(docs: Sequence[dict[str, Any]]) -> list[str]:
    """Each page without the lines (by line_key) that occur on 2+ pages of its site."""
    pages: dict[tuple[str, str], set[int]] = defaultdict(set)
    for k, d in enumerate(docs):
        for line in d["text"].splitlines():
            pages[(d["site"], line_key(line))].add(k)
    return ["\n".join(line for line in d["text"].splitlines()
                      if line.strip() and len(pages[(d["site"], line_key(line))]) < 2) for d in docs]


def report_synd(scorer: ModuleType, path: Path) -> None:
    """False merges on the syndication set after the linedf2 chrome baseline."""
    docs = scorer.read_jsonl(str(path))
    terms = [content_terms(t) for t in strip_recurring_lines(docs)]
    settings = StorySettings()
    scores, clusters, pairs = score(scorer, docs, terms, settings)
    wrong = [(i, j) for i, j, _ in pairs if docs[i]["story"] != docs[j]["story"]]
    same_site = sum(docs[i]["site"] == docs[j]["site"] for i, j in wrong)
    print(f"\nsyndication set ({len(docs)} pages, linedf2-stripped), defaults: {fmt(scores)}")
    print(f"  pairs {len(pairs)}, false pairs: {same_site} within a site, {len(wrong) - same_site} across sites;"
          f" largest cluster {max(map(len, clusters), default=0)}")


def synthetic_terms(n: int, length: int = 150, vocab: int = 300_000, seed: int = 0) -> list[list[str]]:
    """Texts of Zipf-distributed terms; 5% of them are rewrites keeping 40% of another's terms."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** 1.05
    tokens = rng.choice(vocab, size=(n, length), p=p / p.sum())
    m = n // 20
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    tokens[dst] = np.where(rng.random((m, length)) < 0.4, tokens[src], tokens[dst])
    names = np.array([f"t{k}" for k in range(vocab)])
    return [names[row].tolist() for row in tokens]


def report_speed(n: int, texts: Sequence[str]) -> None:
    """Throughput of story_pairs on synthetic texts and of content_terms on real ones."""
    terms = synthetic_terms(n)
    start = time.perf_counter()
    pairs = story_pairs(terms)
    took = time.perf_counter() - start
    print(f"\nstory_pairs on {n} synthetic texts: {took:.1f} s, {n / took:,.0f} texts/s, {len(pairs)} pairs")
    sample = list(texts) * max(1, 2000 // max(1, len(texts)))
    start = time.perf_counter()
    words = sum(len(t.split()) for t in sample)
    for t in sample:
        content_terms(t)
    took = time.perf_counter() - start
    print(f"content_terms: {len(sample) / took:,.0f} texts/s ({words / took:,.0f} words/s)")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--scorer", type=Path, help="cluster_score.py (default: next to the dataset)")
    ap.add_argument("--thresholds", default="0.2,0.25,0.3,0.35,0.4,0.45,0.5")
    ap.add_argument("--synd", type=Path, help="syndication JSONL from the eval folder's syndication.py")
    ap.add_argument("--speed", type=int, default=0, help="synthetic texts for the speed test")
    args = ap.parse_args(argv)
    if not args.dataset.exists():
        raise SystemExit(f"dataset not found: {args.dataset} (expected the shared eval folder beside the repo;"
                         " pass its path as the first argument)")
    scorer = load_scorer(args.scorer or args.dataset.parent / "cluster_score.py")
    docs = scorer.read_jsonl(str(args.dataset))
    report_mmds(scorer, docs, [float(t) for t in args.thresholds.split(",")])
    if args.synd:
        report_synd(scorer, args.synd)
    if args.speed:
        report_speed(args.speed, [d["text"] for d in docs])


if __name__ == "__main__":
    main()
