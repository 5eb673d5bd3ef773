"""Scanning against an archive of earlier runs (the in-memory reference archive)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dedupe import Document, Settings, scan
from dedupe.archive import MemoryArchive
from dedupe.arrays import shared_key_pairs

from .conftest import site_dump


def _docs(records: list[dict]) -> list[Document]:
    return [Document(r["id"], r["text"], r["site"]) for r in records]


def _run(archive: MemoryArchive, docs: list[Document], settings: Settings) -> set[str]:
    result = scan(docs, settings, archive=archive)
    rows = result.rows_to_archive()
    assert rows is not None
    archive.add(rows, result.chrome_stats)
    return {o.id for o in result.outcomes if o.kept}


def test_incremental_batches_keep_what_one_shot_keeps(rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    settings = Settings(keep="first", story=False)
    one_shot = {o.id for o in scan(docs, settings).outcomes if o.kept}
    archive = MemoryArchive()
    kept: set[str] = set()
    for lo in range(0, len(docs), 7):  # three nightly batches
        kept |= _run(archive, docs[lo : lo + 7], settings)
    assert kept == one_shot
    assert len(kept) == len(docs) - 2  # the two cut copies of the wire story


def test_copy_of_an_archived_document_is_removed_in_its_favour(rng: random.Random) -> None:
    records = site_dump(rng)
    original = next(r for r in records if r["id"] == "wire.example/0")
    copy = next(r for r in records if r["id"] == "daily.example/copy")
    others = [r for r in records if r["id"] not in (copy["id"], "herald.example/copy")]
    archive = MemoryArchive()
    _run(archive, _docs(others), Settings())
    result = scan(_docs([copy]), Settings(), archive=archive)
    [outcome] = result.outcomes
    assert not outcome.kept and outcome.duplicate_of == original["id"]
    assert "archived" in (outcome.reason or "")
    [cluster] = [c for c in result.document_clusters if c.kind != "story"]
    assert any(m.archived and m.id == original["id"] for m in cluster.members)


def test_rerunning_an_archived_batch_gives_the_same_output(rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    archive = MemoryArchive()
    first = _run(archive, docs, Settings())
    second = scan(docs, Settings(), archive=archive)
    assert {o.id for o in second.outcomes if o.kept} == first


def test_archived_chrome_is_recognised_on_a_new_sites_first_page(rng: random.Random) -> None:
    records = site_dump(rng)
    daily = [r for r in records if r["site"] == "daily.example"]
    archive = MemoryArchive()
    _run(archive, _docs(daily[:-1]), Settings())
    result = scan(_docs(daily[-1:]), Settings(), archive=archive)
    stripped = {p.text for p in result.outcomes[0].stripped}
    assert {"Sign up for our newsletter", "Related Articles"} <= stripped


def test_rescanning_an_older_batch_after_later_ones_does_not_remove_it(rng: random.Random) -> None:
    """Chrome learned from later batches may strip more of an old page; it is still itself."""
    records = site_dump(rng)
    daily = [r for r in records if r["site"] == "daily.example"]
    archive = MemoryArchive()
    first = _docs(daily[:1])  # one page: no recurrence yet, so less of its chrome is known
    _run(archive, first, Settings())
    _run(archive, _docs(daily[2:]), Settings())  # more pages of the site: more chrome known
    again = scan(first, Settings(), archive=archive)
    assert all(o.kept for o in again.outcomes)


@pytest.mark.parametrize(("most", "hub", "expected"), [
    (256, True, {(0, 10), (1, 10), (0, 11), (2, 12), (2, 13), (3, 12), (3, 13)}),
    (3, True, {(0, 10), (1, 10), (0, 11), (2, 12), (2, 13)}),  # key 12's four pairs: its first new owner only
    (3, False, {(0, 10), (1, 10), (0, 11)}),  # key 12 left out
])
def test_new_and_archived_owners_are_paired_on_every_shared_key(most: int, hub: bool,
                                                                 expected: set[tuple[int, int]]) -> None:
    """Keys 7 (new 0, 1; old 10), 9 (new 0; old 11) and 12 (new 2, 3; old 12, 13) are shared; 8 and
    99 are on one side only; a key twice on one owner counts once."""
    new_keys = np.array([7, 7, 9, 12, 12, 8, 7], dtype=np.uint64)
    new_owners = np.array([0, 1, 0, 2, 3, 4, 0])
    old_keys = np.array([7, 9, 12, 12, 99, 9], dtype=np.uint64)
    old_owners = np.array([10, 11, 12, 13, 14, 11])
    pairs = shared_key_pairs(new_keys, new_owners, old_keys, old_owners, most, hub)
    assert len(pairs) == len(expected) and set(map(tuple, pairs.tolist())) == expected
