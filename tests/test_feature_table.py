"""The feature table that batches write into must hold exactly what joining the finished batches
(`features.concat`) gives, whatever the order the batches arrive in and whether they fit."""

from __future__ import annotations

import random
import threading
from dataclasses import fields

import numpy as np
import pytest

from dedupe import MinHasher
from dedupe.feature_table import FeatureTable
from dedupe.features import ParagraphFeatures, analyse, concat

from .conftest import random_text

# NFKC spells each of these as a parenthesised letter or number, "(a)", so a paragraph of them has
# twice as many words as characters: more than any text's (chars + 1) // 2 the table reserves for.
_LENGTHENED = "".join(map(chr, range(0x249C, 0x24B6))) + "".join(map(chr, range(0x2474, 0x2488)))


def _texts(rng: random.Random, lengthened: bool) -> list[str]:
    texts = [random_text(rng, rng.randint(0, 300)) for _ in range(40)]
    texts[5] = ""
    texts[6] = "\n\n  \n"  # lines, and no paragraph: the region reserved for them stays empty
    if lengthened:  # all of the fourth batch of 7
        texts[21:28] = [f"{_LENGTHENED} {k}" for k in range(7)]
    return [t.replace(". ", ".\n\n", 2).replace(". ", ".\n", 2) for t in texts]


def _same(got: ParagraphFeatures, want: ParagraphFeatures) -> list[str]:
    """Names of the fields that differ in value or dtype."""
    return [f.name for f in fields(ParagraphFeatures)
            if getattr(got, f.name).dtype != getattr(want, f.name).dtype
            or not np.array_equal(getattr(got, f.name), getattr(want, f.name))]


@pytest.mark.parametrize(("shared", "jobs"), [(False, 1), (True, 1), (True, 2)])
@pytest.mark.parametrize("lengthened", [False, True])
@pytest.mark.parametrize("extras", [False, True])
def test_table_holds_what_joining_the_batches_gives(rng: random.Random, shared: bool, jobs: int, lengthened: bool,
                                                    extras: bool) -> None:
    """In shared memory the batches arrive last first, each in a thread of its own, and wait for
    the earlier ones to be counted; with `jobs` 2 a forked process renumbers half the terms."""
    texts = _texts(rng, lengthened)
    spans = [(lo, min(len(texts), lo + 7)) for lo in range(0, len(texts), 7)]
    parts = [analyse(texts[lo:hi], MinHasher(64, 3), 5, 4, key_cues=extras, terms=extras) for lo, hi in spans]
    table = FeatureTable(texts, spans, 64, key_cues=extras, terms=extras, shared=shared, slack=0)
    written = {}
    if shared:
        def write(k: int) -> None:
            written[k] = table.write(k, parts[k])

        threads = [threading.Thread(target=write, args=(k,)) for k in range(len(spans) - 1, -1, -1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    else:
        written = {k: table.write(k, parts[k]) for k in range(len(spans))}
    joined = table.join([written[k] for k in range(len(spans))], jobs)
    want = concat(parts, [lo for lo, _ in spans])
    assert _same(joined, want) == []
    # The lengthened batch outgrows what its own texts' bounds reserve, but not the table: the
    # other batches leave room.
    assert [k for k, w in written.items() if w.whole is not None] == []
    starts = np.cumsum([0, *(len(p.doc) for p in parts)])[:-1]
    assert [w.at[0] for _, w in sorted(written.items())] == starts.tolist()  # each batch after the one before
    assert len(joined.doc) > 100 and len(joined.signatures) > 50 and (len(joined.term_ids) > 100) == extras


@pytest.mark.parametrize("shared", [False, True])
def test_batches_past_the_end_of_the_table_come_back_whole(shared: bool) -> None:
    shuffled = random.Random(5).sample  # distinct shingles, so that they are many
    texts = [f"word{k} and more" for k in range(4)]
    texts += [" ".join("".join(shuffled(_LENGTHENED, len(_LENGTHENED))) for _ in range(3)) for _ in range(5)]
    spans = [(0, 4), (4, 9)]
    parts = [analyse(texts[lo:hi], MinHasher(64, 3), 5, 4, terms=True) for lo, hi in spans]
    table = FeatureTable(texts, spans, 64, key_cues=False, terms=True, shared=shared, slack=0)
    written = [table.write(k, part) for k, part in enumerate(parts)]
    # The lengthened texts outgrow the whole table's bounds (counted by lines in private memory,
    # by characters alone in shared memory), the first batch's fit.
    assert [w.whole is not None for w in written] == [False, True]
    assert _same(table.join(written), concat(parts, [0, 4])) == []


def test_table_of_no_documents() -> None:
    table = FeatureTable([], [(0, 0)], 128, key_cues=True, terms=True, shared=True)
    joined = table.join([table.write(0, analyse([], MinHasher(128, 1), 5, 8, key_cues=True, terms=True))])
    assert len(joined.doc) == 0 and joined.signatures.shape == (0, 128) and joined.term_offsets.tolist() == [0]


@pytest.mark.parametrize("shared", [False, True])
def test_giving_back_a_shared_array_frees_its_pages_at_once(rng: random.Random, shared: bool) -> None:
    """In shared memory the pages go now (a forked process's mapping would keep them), so the array
    reads as zeros after; a private array is left to its references."""
    from dedupe.feature_table import give_back

    texts = _texts(rng, False)
    table = FeatureTable(texts, [(0, len(texts))], 64, key_cues=False, terms=False, shared=shared)
    joined = table.join([table.write(0, analyse(texts, MinHasher(64, 3), 5, 4))])
    before = joined.signatures.copy()
    give_back(joined.signatures[:3])  # a view: the whole array's pages go
    assert before.any() and np.array_equal(joined.signatures, np.zeros_like(before) if shared else before)
    give_back(np.arange(5))  # not a table's: nothing happens


def test_a_refused_sparse_table_is_sized_by_lines(rng: random.Random, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared memory sizes the table by characters alone (a large, sparse reservation); where that
    address space is refused (`ulimit -v`), the lines are counted and the smaller table used."""
    from dedupe import feature_table

    allocate, calls = feature_table._allocate, []

    def refused_once(layout: dict, shared: bool) -> tuple:
        calls.append(layout["doc"][0][0])
        if len(calls) == 1:
            raise OSError(12, "Cannot allocate memory")
        return allocate(layout, shared)

    monkeypatch.setattr(feature_table, "_allocate", refused_once)
    texts = _texts(rng, False)
    spans = [(lo, min(len(texts), lo + 7)) for lo in range(0, len(texts), 7)]
    parts = [analyse(texts[lo:hi], MinHasher(64, 3), 5, 4, terms=True) for lo, hi in spans]
    table = FeatureTable(texts, spans, 64, key_cues=False, terms=True, shared=True)
    lines = sum(len(t.splitlines()) for t in texts)
    assert calls[1] == lines < calls[0] and table.capacity[0] == lines
    joined = table.join([table.write(k, part) for k, part in enumerate(parts)])
    assert _same(joined, concat(parts, [lo for lo, _ in spans])) == []
