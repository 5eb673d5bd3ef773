"""Split a document's text into paragraphs.

Scraped dumps usually hold one block per line (an HTML block flattened to a line); prose files hold
paragraphs as blank-line separated blocks whose lines are hard-wrapped. A block is joined into one
paragraph only when it looks hard-wrapped (most of its line breaks fall mid-sentence); otherwise
every non-blank line is its own paragraph. This keeps a flattened page's headline, byline and
"Related Articles" lines apart, which chrome detection needs, while a wrapped essay still yields
whole paragraphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

_SENTENCE_END = tuple('.!?:;"”’)]…')


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph's text and the 1-based lines of the document it starts and ends on."""

    text: str
    line: int
    end: int


def _looks_wrapped(lines: list[str]) -> bool:
    """True when most breaks in the block fall mid-sentence, as in hard-wrapped prose. Stops as
    soon as the count decides it: a scraped page is one block of a hundred lines or more."""
    breaks = len(lines) - 1
    need = breaks // 2 + 1  # mid-sentence breaks that make a majority
    mid = 0
    for seen, (cur, nxt) in enumerate(pairwise(lines), 1):
        if (len(cur) >= 60 or nxt[:1].islower()) and not cur.rstrip().endswith(_SENTENCE_END):
            mid += 1
            if mid >= need:
                return True
        elif mid + breaks - seen < need:
            return False
    return False


def split_paragraphs(text: str) -> list[Paragraph]:
    """Paragraphs of `text` in order, with their starting line numbers; blank ones are dropped."""
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]  # each line stripped once; "" marks a blank line
    out: list[Paragraph] = []
    n, i = len(lines), 0
    while i < n:
        if not stripped[i]:
            i += 1
            continue
        j = i + 1  # the block is lines i..j-1 (0-based), up to the next blank line
        while j < n and stripped[j]:
            j += 1
        if j - i == 1:
            out.append(Paragraph(stripped[i], i + 1, i + 1))
        elif _looks_wrapped(lines[i:j]):
            out.append(Paragraph(" ".join(stripped[i:j]), i + 1, j))
        else:
            out.extend(Paragraph(stripped[k], k + 1, k + 1) for k in range(i, j))
        i = j
    return out
