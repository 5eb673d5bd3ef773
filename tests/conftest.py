"""Shared test data: small dumps the tests build themselves."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
_STOP = (
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "was", "with", "as", "by", "at",
    "from", "it", "his", "her", "they", "said", "has", "have", "but", "not", "which", "this",
    "were", "after", "their", "been", "who", "will", "would", "an", "are", "had",
)


def _vocabulary(size: int = 4000) -> list[str]:
    """Pseudo-words built from syllables: a vocabulary large enough that unrelated texts share few."""
    rng = random.Random(0)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


_WORDS = _vocabulary()


def random_text(rng: random.Random, n_words: int) -> str:
    """Prose-like text: sentences mixing stop words and content words, as running text does."""
    words = [rng.choice(_STOP) if rng.random() < 0.45 else rng.choice(_WORDS) for _ in range(n_words)]
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


SITE_CHROME = {
    "daily.example": (["Home", "* World", "* Business", "* Sport", "Sign up for our newsletter"],
                      ["Related Articles", "No comments yet...", "© 2025 Daily Example. All rights reserved."]),
    "herald.example": (["Skip to content", "Menu", "Subscribe now and get 3 months free"],
                       ["Share this article", "More from the Herald", "Terms of use | Privacy policy"]),
    "wire.example": (["Wire Example", "Latest news", "Log in"],
                     ["Follow us on social media", "Cookie settings", "Contact the newsroom"]),
}


def article(rng: random.Random, paragraphs: int = 6) -> list[str]:
    """A headline and paragraphs of running text."""
    headline = random_text(rng, 9).rstrip(".")
    return [headline] + [random_text(rng, rng.randint(40, 80)) for _ in range(paragraphs)]


def page(site: str, body: list[str], hours: int) -> str:
    """An article wrapped in its site's chrome, one block per line, with a digit-varying timestamp."""
    top, bottom = SITE_CHROME[site]
    return "\n".join([*top, f"{hours} hours ago", *body, *bottom])


def site_dump(rng: random.Random, pages_per_site: int = 6) -> list[dict]:
    """Records {id, site, text, story}: every site's own articles, plus one wire story syndicated to
    the other sites with a new headline, a byline, and its last paragraphs cut."""
    records = []
    for site in SITE_CHROME:
        for k in range(pages_per_site):
            body = article(rng)
            records.append({"id": f"{site}/{k}", "site": site, "text": page(site, body, rng.randint(1, 12)),
                            "story": f"{site}/{k}", "body": body})
    wire = records[2 * pages_per_site]  # an article of wire.example
    for n, site in enumerate(["daily.example", "herald.example"]):
        body = wire["body"]
        copy = ["Rewritten headline " + body[0][:20], "By Staff Writer", *body[1 : len(body) - 1 - n]]
        records.append({"id": f"{site}/copy", "site": site, "text": page(site, copy, 3 + n),
                        "story": wire["id"], "body": copy})
    return records
