"""Throughput of document signing and of the whole document-level task, with or without numba.

    python benchmarks/sign_speed.py [--docs 10000] [--repeat 3] [--no-numba] [--non-ascii 0.0]
                                    [--input DUMP.jsonl] [--profile]

Synthetic documents are 300-800 words drawn from a Zipf vocabulary (exponent 1.07, 50k pseudo-words),
in capitalised sentences with punctuation and blank-line separated paragraphs, 20% of them edited
copies of earlier ones, so the near-duplicate search has clusters to build. Also timed: the
pipeline's per-paragraph features (`features.analyse`, batches of 1024 documents).

`--non-ascii` turns that share of documents non-ASCII (one accented word each), which sends them
through the Unicode path. `--no-numba` hides numba before dedupe is imported, as if it were not
installed. Each timing is repeated; best and median rates by wall clock and by process CPU time are
printed (CPU time is the steadier figure on a shared machine). The first call (JIT compile or cache
load) is timed separately.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


def synthetic_texts(docs: int, seed: int = 1, non_ascii: float = 0.0) -> list[str]:
    """Deterministic Zipf documents of 300-800 words; a fifth are lightly edited copies of earlier ones."""
    rng = np.random.default_rng(seed)
    vocab: list[str] = []
    seen: set[str] = set()
    while len(vocab) < 50_000:
        n = 1 + int(np.log10(len(vocab) + 1)) + int(rng.integers(0, 2))
        word = "".join(_CONSONANTS[c] + _VOWELS[v] for c, v in zip(rng.integers(0, 18, n), rng.integers(0, 5, n),
                                                                   strict=True))
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.07
    cdf = np.cumsum(weights / weights.sum())
    word_lists: list[list[str]] = []
    for _ in range(docs):
        if word_lists and rng.random() < 0.2:
            words = list(word_lists[int(rng.integers(0, len(word_lists)))])
            for pos in rng.choice(len(words), size=int(rng.integers(1, 8)), replace=False):
                words[pos] = vocab[int(np.searchsorted(cdf, rng.random()))]
        else:
            idx = np.minimum(np.searchsorted(cdf, rng.random(int(rng.integers(300, 801)))), len(vocab) - 1)
            words = [vocab[i] for i in idx.tolist()]
        word_lists.append(words)
    texts = []
    for words in word_lists:
        out, k = [], 0
        while k < len(words):
            step = int(rng.integers(8, 17))
            sentence = words[k : k + step]
            out.append(" ".join([sentence[0].capitalize(), *sentence[1:]]) + rng.choice([".", ",", ";", "!"]))
            out.append("\n\n" if rng.random() < 0.15 else " ")  # paragraphs of about 80 words
            k += step
        text = "".join(out).strip()
        if non_ascii and rng.random() < non_ascii:
            text = text.replace("a", "á", 1)
        texts.append(text)
    return texts


def read_jsonl(path: Path, limit: int) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) >= limit:
                break
    return texts


def _time(fn: Callable[[], object], repeat: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each run; on a shared machine CPU time is the steadier of the two."""
    times = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def _report(name: str, n: int, times: Sequence[tuple[float, float]]) -> None:
    wall = [w for w, _ in times]
    cpu = [c for _, c in times]
    print(f"{name:30s} wall: best {n / min(wall):8,.0f} median {n / statistics.median(wall):8,.0f} docs/s | "
          f"CPU: best {n / min(cpu):8,.0f} median {n / statistics.median(cpu):8,.0f} docs/CPU-s "
          f"({len(times)} runs)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--non-ascii", type=float, default=0.0, help="share of documents made non-ASCII")
    ap.add_argument("--input", type=Path, help="a JSONL dump with a `text` field instead of synthetic text")
    ap.add_argument("--no-numba", action="store_true", help="hide numba, as if it were not installed")
    ap.add_argument("--profile", action="store_true", help="cProfile one document_signatures call")
    args = ap.parse_args()
    if args.no_numba:
        sys.modules["numba"] = None  # type: ignore[assignment]  # makes `import numba` raise ImportError

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    t0 = time.perf_counter()
    import dedupe
    from dedupe import find_near_duplicate_documents
    from dedupe.features import analyse
    from dedupe.minhash import MinHasher
    from dedupe.near import document_signatures
    from dedupe.segment import split_paragraphs

    import_s = time.perf_counter() - t0
    try:
        from dedupe import kernels

        fast = kernels.AVAILABLE
    except ImportError:
        fast = False
    texts = read_jsonl(args.input, args.docs) if args.input else synthetic_texts(args.docs, args.seed, args.non_ascii)
    words = sum(len(t.split()) for t in texts)
    print(f"dedupe from {Path(dedupe.__file__).parent}, numba kernels: {'on' if fast else 'off'}; "
          f"import {import_s:.2f} s; {len(texts):,} docs, {words / len(texts):.0f} words/doc, "
          f"{sum(not t.isascii() for t in texts):,} non-ASCII")
    first = _time(lambda: document_signatures(texts[:100]), 1)[0][0]
    print(f"first call (100 docs, includes any JIT compile/cache load): {first:.3f} s")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(document_signatures, texts)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    _report("document_signatures", len(texts), _time(lambda: document_signatures(texts), args.repeat))
    _report("find_near_duplicate_documents", len(texts),
            _time(lambda: find_near_duplicate_documents(texts), args.repeat))
    pages = [split_paragraphs(t) for t in texts]
    hasher = MinHasher(128, 1)

    def features() -> None:
        for lo in range(0, len(pages), 1024):
            analyse(pages[lo : lo + 1024], hasher, 5, 8)

    _report(f"analyse ({sum(map(len, pages)) / len(pages):.1f} paragraphs/doc)", len(texts),
            _time(features, args.repeat))
    clusters = find_near_duplicate_documents(texts)
    print(f"clusters: {len(clusters):,} covering {sum(len(c) for c in clusters):,} docs")


if __name__ == "__main__":
    main()
