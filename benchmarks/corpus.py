"""Deterministic synthetic corpus with planted near-duplicates, and the shared tokenisation.

Every peer must see the same text and split it the same way, otherwise speed and recall are not
comparable; that is why the tokeniser, the shingler and the exact Jaccard live here, beside the
generator, and nowhere else.

The generator is sequential and does not depend on the requested size, so the 10k corpus is a
prefix of the 100k one and per-document cost can be compared across sizes.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GENERATOR_VERSION = 2
VOCAB_SIZE = 50_000
ZIPF_EXPONENT = 1.07
BOILERPLATE_POOL = 300
DUPLICATE_RATE = 0.20
NEAR_MISS_RATE = 0.05  # edited copies kept below the threshold: clustering one is a false positive
SOURCE_WINDOW = 20_000  # copies pick a source among the last N originals, as syndication is bursty
TARGET_JACCARD = (0.80, 0.98)
NEAR_MISS_JACCARD = (0.50, 0.72)
NGRAM = 5

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


def tokens(text: str) -> list[str]:
    """The one tokenisation every peer uses: lowercase, then split on whitespace."""
    return text.lower().split()


def shingles(text: str, ngram: int = NGRAM) -> set[str]:
    """Word n-grams of `text`; a text shorter than `ngram` words is one shingle."""
    words = tokens(text)
    if len(words) < ngram:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two shingle sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass(frozen=True)
class Corpus:
    """A JSONL dump on disk and, for synthetic corpora, where its truth file is."""

    path: Path
    truth_path: Path | None
    name: str


@dataclass(frozen=True)
class PlantedPair:
    """Document `copy` was made from document `source`; `jaccard` is their exact 5-gram Jaccard."""

    copy: int
    source: int
    jaccard: float


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    """Read+parse stage shared by the library peers: one `json.loads` per line, keep `text`."""
    texts: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(texts) >= limit:
                break
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


def iter_records(path: Path) -> Iterator[tuple[int, str, str]]:
    """(index, id, text) for every record; the harness uses it for ids and exact Jaccard."""
    with path.open(encoding="utf-8") as fh:
        index = 0
        for line in fh:
            if line.strip():
                record = json.loads(line)
                yield index, str(record.get("id", index)), record["text"]
                index += 1


def load_truth(path: Path, key: str = "pairs") -> list[PlantedPair]:
    """Planted pairs (or, with key="near_misses", the planted non-duplicates) of a truth file."""
    data = json.loads(path.read_text())
    return [PlantedPair(int(c), int(s), float(j)) for c, s, j in data.get(key, [])]


class _Generator:
    """Zipf-vocabulary text source; one numpy Generator drives everything, in a fixed order."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.vocab = self._make_vocab()
        weights = 1.0 / np.arange(1, VOCAB_SIZE + 1, dtype=np.float64) ** ZIPF_EXPONENT
        self.cdf = np.cumsum(weights / weights.sum())
        self.boilerplate = [self._paragraph(int(self.rng.integers(15, 61))) for _ in range(BOILERPLATE_POOL)]
        bp_weights = 1.0 / np.arange(1, BOILERPLATE_POOL + 1, dtype=np.float64)
        self.bp_cdf = np.cumsum(bp_weights / bp_weights.sum())

    def _make_vocab(self) -> list[str]:
        """Pronounceable synthetic words; frequent (low-rank) words are shorter, as in real text."""
        seen: set[str] = set()
        vocab: list[str] = []
        while len(vocab) < VOCAB_SIZE:
            rank = len(vocab) + 1
            syllables = 1 + int(np.log10(rank)) + int(self.rng.integers(0, 2))
            cons = self.rng.integers(0, len(_CONSONANTS), syllables)
            vows = self.rng.integers(0, len(_VOWELS), syllables)
            word = "".join(_CONSONANTS[c] + _VOWELS[v] for c, v in zip(cons, vows, strict=True))
            if word not in seen:
                seen.add(word)
                vocab.append(word)
        return vocab

    def words(self, count: int) -> list[str]:
        idx = np.searchsorted(self.cdf, self.rng.random(count))
        vocab = self.vocab
        return [vocab[i] for i in np.minimum(idx, VOCAB_SIZE - 1).tolist()]

    def _paragraph(self, count: int) -> list[str]:
        words = self.words(count)
        words[0] = words[0].capitalize()
        words[-1] += "."
        return words

    def document(self) -> list[str]:
        """A body of 300-800 words in paragraphs, plus 0-3 recurring boilerplate paragraphs.

        A paragraph break is carried as a "\\n\\n" suffix on the paragraph's last word, so edits can
        work on one flat word list.
        """
        remaining = int(self.rng.integers(300, 801))
        paragraphs: list[list[str]] = []
        while remaining > 0:
            size = min(remaining, int(self.rng.integers(40, 121)))
            paragraphs.append(self._paragraph(size))
            remaining -= size
        if self.rng.random() < 0.6:
            for _ in range(int(self.rng.integers(1, 4))):
                k = int(np.searchsorted(self.bp_cdf, self.rng.random()))
                para = list(self.boilerplate[min(k, BOILERPLATE_POOL - 1)])
                if self.rng.random() < 0.5:
                    paragraphs.insert(0, para)
                else:
                    paragraphs.append(para)
        out: list[str] = []
        for para in paragraphs:
            out.extend(para[:-1])
            out.append(para[-1] + "\n\n")
        out[-1] = out[-1].rstrip("\n")
        return out

    def copy_of(self, source: list[str], target_range: tuple[float, float] = TARGET_JACCARD) -> list[str]:
        """An edited copy aiming at a 5-gram Jaccard in `target_range`.

        Cut a tail, then substitute/insert/delete single words. Each point edit breaks about 5
        shared shingles and adds about 5 new ones, so s edits give J ~ (n' - 5s) / (n + 5s).
        """
        lo, hi = target_range
        target = float(self.rng.uniform(lo, hi))
        n = max(len(source) - NGRAM + 1, 1)
        cut = int(len(source) * float(self.rng.uniform(0.0, 0.6 * (1.0 - target))))
        words = list(source[: len(source) - cut]) if cut else list(source)
        kept = max(len(words) - NGRAM + 1, 0)
        edits = max(0, int((kept - target * n) / (NGRAM * (1.0 + target))))
        edits = min(edits, len(words))
        positions = sorted(self.rng.choice(len(words), size=edits, replace=False).tolist(), reverse=True)
        ops = self.rng.integers(0, 3, size=edits).tolist()
        fresh = self.words(edits)
        for pos, op, word in zip(positions, ops, fresh, strict=True):
            if op == 0:
                words[pos] = word
            elif op == 1:
                words.insert(pos, word)
            elif len(words) > NGRAM:
                del words[pos]
        return words


def _text(words: list[str]) -> str:
    return " ".join(words).replace("\n\n ", "\n\n")


def synthetic(docs: int, seed: int, out_dir: Path) -> Corpus:
    """Write (or reuse) the seeded corpus of `docs` documents and its truth file under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"synthetic-n{docs}-seed{seed}-v{GENERATOR_VERSION}"
    path = out_dir / f"{name}.jsonl"
    truth_path = out_dir / f"{name}.truth.json"
    if path.exists() and truth_path.exists():
        return Corpus(path, truth_path, name)

    gen = _Generator(seed)
    originals: dict[int, list[str]] = {}
    window: deque[int] = deque()
    pairs: list[tuple[int, int, float]] = []
    near_misses: list[tuple[int, int, float]] = []
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i in range(docs):
            while window and window[0] < i - SOURCE_WINDOW:
                originals.pop(window.popleft(), None)
            draw = gen.rng.random()
            if window and draw < DUPLICATE_RATE + NEAR_MISS_RATE:
                duplicate = draw < DUPLICATE_RATE
                source = window[int(gen.rng.integers(0, len(window)))]
                words = gen.copy_of(originals[source], TARGET_JACCARD if duplicate else NEAR_MISS_JACCARD)
                text = _text(words)
                j = jaccard(shingles(text), shingles(_text(originals[source])))
                (pairs if duplicate else near_misses).append((i, source, round(j, 4)))
            else:
                words = gen.document()
                text = _text(words)
                originals[i] = words
                window.append(i)
            fh.write(json.dumps({"id": f"syn-{i:07d}", "text": text}, ensure_ascii=False))
            fh.write("\n")
    truth = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "docs": docs,
        "ngram": NGRAM,
        "pairs_note": "[copy_index, source_index, exact 5-gram Jaccard]",
        "pairs": pairs,
        "near_misses_note": "edited copies aimed below the threshold: [doc, source, exact Jaccard]",
        "near_misses": near_misses,
    }
    truth_tmp = truth_path.with_suffix(".tmp")
    truth_tmp.write_text(json.dumps(truth))
    os.replace(tmp, path)
    os.replace(truth_tmp, truth_path)
    return Corpus(path, truth_path, name)
