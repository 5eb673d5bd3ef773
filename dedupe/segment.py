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
from typing import NamedTuple

_SENTENCE_END = tuple('.!?:;"”’)]…')
_WRAP_CHARS = 60  # a line this long breaks mid-sentence unless it ends one (`_looks_wrapped`)


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
        if (len(cur) >= _WRAP_CHARS or nxt[:1].islower()) and not cur.rstrip().endswith(_SENTENCE_END):
            mid += 1
            if mid >= need:
                return True
        elif mid + breaks - seen < need:
            return False
    return False


class Spans(NamedTuple):
    """A document's paragraphs as parallel lists: text, first and last line (1-based), and where it
    lies in the document, [start, stop) from its first line's first non-blank character to its
    last line's last (`paragraph_text` gives the text back from the document alone)."""

    texts: list[str]
    lines: list[int]
    ends: list[int]
    starts: list[int]
    stops: list[int]


def split_paragraphs(text: str) -> list[Paragraph]:
    """Paragraphs of `text` in order, with their starting line numbers; blank ones are dropped."""
    found = split_spans(text)
    return [Paragraph(*p) for p in zip(found.texts, found.lines, found.ends, strict=True)]


def split_spans(text: str) -> Spans:
    """`split_paragraphs` as parallel lists, with where each paragraph lies: no object per
    paragraph, so later stages keep numbers, not a copy of every paragraph's text."""
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]  # each line stripped once; "" marks a blank line
    out = Spans([], [], [], [], [])
    find, starts, stops = text.find, out.starts, out.stops
    n, i, pos = len(lines), 0, 0
    while i < n:
        if not stripped[i]:
            i += 1
            continue
        j = i + 1  # the block is lines i..j-1 (0-based), up to the next blank line
        while j < n and stripped[j]:
            j += 1
        wrapped = j - i > 1 and _looks_wrapped(lines[i:j])
        first = len(starts)
        for line in stripped[i:j]:
            # Only blank space lies between the last line read and this one's first character.
            start = find(line[0], pos)
            pos = start + len(line)
            starts.append(start)
            stops.append(pos)
        if wrapped:  # one paragraph from the block's first character to its last
            del starts[first + 1 :], stops[first : j - i + first - 1]
            out.texts.append(" ".join(stripped[i:j]))
            out.lines.append(i + 1)
            out.ends.append(j)
        else:
            out.texts.extend(stripped[i:j])
            out.lines.extend(range(i + 1, j + 1))
            out.ends.extend(range(i + 1, j + 1))
        i = j
    return out


def paragraph_text(text: str, start: int, stop: int, wrapped: bool) -> str:
    """The text of the paragraph at [start, stop) of `text` (`split_spans`): that slice, or for a
    hard-wrapped block (its last line after its first) the block's lines stripped and joined."""
    piece = text[start:stop]
    return " ".join(line.strip() for line in piece.splitlines()) if wrapped else piece
