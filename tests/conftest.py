"""Shared test data: small dumps the tests build themselves."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"

_WORDS = ("archive board budget council court dispute election energy export factory farmer festival "
          "harbour hospital inquiry investor island minister museum opposition parliament pension police "
          "railway reactor refinery regulator river senator shipyard strike summit tariff teacher tourism "
          "treaty tribunal union university village vote wage weather minister coalition ferry airport "
          "bridge cargo drought flood forest glacier harvest highway mayor mine protest reform satellite").split()


def random_text(rng: random.Random, n_words: int) -> str:
    """Prose-like text: sentences of random words, so shingles rarely repeat by chance."""
    words = [rng.choice(_WORDS) for _ in range(n_words)]
    sentences, k = [], 0
    while k < len(words):
        step = rng.randint(8, 16)
        sentences.append(" ".join(words[k : k + step]).capitalize() + ".")
        k += step
    return " ".join(sentences)


def edit_words(rng: random.Random, text: str, rate: float) -> str:
    """Replace a share of the words, as light copy edits do."""
    words = text.split()
    return " ".join(rng.choice(_WORDS) if rng.random() < rate else w for w in words)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)
