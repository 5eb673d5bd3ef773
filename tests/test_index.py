"""The persistent index: the archive behaviours of test_archive.py through `SQLiteIndex` and
`PostgresIndex` and through `dedupe clean --index`, plus what unattended runs need (crash safety, one
writer, bad input). Every test taking `backend` runs against both (see conftest.IndexBackend); the
PostgreSQL ones skip, saying why, where no server can be had."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from dedupe import Document, Settings, copies, scan, writers
from dedupe.archive import MemoryArchive
from dedupe.chrome import ChromeStats
from dedupe.cli import main
from dedupe.errors import DedupeError
from dedupe.index import IndexBase, IndexWriteError, SQLiteIndex, from_signed, to_signed
from dedupe.normalize import line_key

from .conftest import REPO, IndexBackend, article, edit_words, foreign_text, make_backend, page, site_dump

BATCH = 7  # site_dump has 20 documents: three nightly batches


def _docs(records: list[dict]) -> list[Document]:
    return [Document(r["id"], r["text"], r["site"]) for r in records]


def _run(index: IndexBase, docs: list[Document], settings: Settings, run_id: str = "r") -> set[str]:
    result = scan(docs, settings, archive=index)
    rows = result.rows_to_archive()
    assert rows is not None
    index.add(rows, result.chrome_stats, run_id)
    return {o.id for o in result.outcomes if o.kept}


# -- the Archive behaviours, through each index ------------------------------------------------

def test_incremental_batches_keep_what_one_shot_keeps(backend: IndexBackend, rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    settings = Settings(keep="first", story=False)
    one_shot = {o.id for o in scan(docs, settings).outcomes if o.kept}
    kept: set[str] = set()
    with backend.open(settings=settings) as index:
        for lo in range(0, len(docs), BATCH):
            kept |= _run(index, docs[lo : lo + BATCH], settings, f"night{lo}")
        assert index.count() == len(docs) and index.count(copies=True) == 2  # the copies, for matching
    assert kept == one_shot and len(kept) == len(docs) - 2


def test_candidates_equal_the_reference_archive(backend: IndexBackend, rng: random.Random) -> None:
    records = site_dump(rng)
    later = {"daily.example/5", "herald.example/5", "wire.example/5", "herald.example/copy"}
    old, new = _docs([r for r in records if r["id"] not in later]), _docs([r for r in records if r["id"] in later])
    memory = MemoryArchive()
    result = scan(old, Settings())
    memory.add(result.rows_to_archive(), result.chrome_stats)  # type: ignore[arg-type]
    with backend.open() as index:
        index.add(result.rows_to_archive(), result.chrome_stats, "r1")  # type: ignore[arg-type]
        rows = scan(new + old, Settings()).archive_rows  # (the old ones find the archived copies too)
        assert rows is not None
        got, want = index.candidates(rows), memory.candidates(rows)
        assert got.ids and sorted(got.ids) == sorted(want.ids)
        order = [got.ids.index(i) for i in want.ids]
        assert np.array_equal(got.signatures[order], want.signatures)
        assert np.array_equal(got.key_hi[order], want.key_hi) and np.array_equal(got.sizes[order], want.sizes)
        assert [got.page_groups[k] for k in order] == want.page_groups
        assert [got.copy_of[k] for k in order] == want.copy_of and {*want.copy_of} - {None}  # copies found too
        assert index.chrome_stats().merge(ChromeStats()) == memory.chrome_stats()  # type: ignore[union-attr]


def test_copy_of_an_archived_document_is_removed_in_its_favour(backend: IndexBackend, rng: random.Random) -> None:
    records = site_dump(rng)
    copy = next(r for r in records if r["id"] == "daily.example/copy")
    others = [r for r in records if r["id"] not in (copy["id"], "herald.example/copy")]
    with backend.open() as index:
        _run(index, _docs(others), Settings())
        result = scan(_docs([copy]), Settings(), archive=index)
    [outcome] = result.outcomes
    assert not outcome.kept and outcome.duplicate_of == "wire.example/0"
    assert "archived" in (outcome.reason or "")


def _copy_chain(rng: random.Random) -> tuple[Document, Document, Document]:
    """A wire story, a copy edited from it, and a copy edited from that copy, on three sites."""
    story = article(rng)
    edited = [edit_words(rng, p, 0.06) for p in story]
    again = [edit_words(rng, p, 0.06) for p in edited]
    a, b, c = (Document(f"{site}/story", "\n\n".join(text), site) for site, text in
               (("wire.example", story), ("daily.example", edited), ("herald.example", again)))
    return a, b, c


def test_a_copy_of_a_removed_copy_is_removed_in_a_later_night_as_in_one_run(backend: IndexBackend,
                                                                           rng: random.Random) -> None:
    """A wire story (A), a copy edited from it (B) and a copy edited from B (C): A and C are too far
    apart to match, but one run clusters all three around B and keeps A. Run as two nights (A and B,
    then C), B is removed on the first and archived as A's copy, so C matches it and is removed as
    A's copy too; with only the kept documents archived, C was kept. C itself is not archived."""
    a, b, c = _copy_chain(rng)
    settings = Settings(keep="first")
    assert [o.kept for o in scan([a, c], settings).outcomes] == [True, True]
    assert [o.kept for o in scan([a, b, c], settings).outcomes] == [True, False, False]
    with backend.open(settings=settings) as index:
        first = scan([a, b], settings, archive=index)
        assert [o.kept for o in first.outcomes] == [True, False]
        only_kept = MemoryArchive()
        only_kept.add(first.kept_rows(), first.chrome_stats)  # type: ignore[arg-type]
        assert scan([c], settings, archive=only_kept).outcomes[0].kept
        index.add(first.rows_to_archive(), first.chrome_stats, "night1")  # type: ignore[arg-type]
        assert index.count(copies=True) == 1
        second = scan([c], settings, archive=index)
        # not archived in turn: a chain of copies across nights stays one hop from the kept document
        assert second.rows_to_archive().ids == []  # type: ignore[union-attr]
    [outcome] = second.outcomes
    assert not outcome.kept and outcome.duplicate_of == a.id and outcome.through == b.id
    assert outcome.reason == f"near duplicate of {a.id} (archived; matched through {b.id}, archived as its copy)"


def test_forgetting_a_document_forgets_the_removed_copies_that_stood_for_it(backend: IndexBackend,
                                                                          rng: random.Random) -> None:
    """A is archived on night 1, B removed as its copy on night 2 (archived standing for A). Forget
    night 1 and B goes too: C, a copy of B, is then kept, not removed in favour of a forgotten A."""
    a, b, c = _copy_chain(rng)
    settings = Settings(keep="first")
    with backend.open(settings=settings) as index:
        _run(index, [a], settings, "night1")
        assert _run(index, [b], settings, "night2") == set() and index.count(copies=True) == 1
        assert index.forget(run="night1") == 2 and index.count() == 0
        [outcome] = scan([c], settings, archive=index).outcomes
    assert outcome.kept


def test_a_cut_and_edited_copy_of_an_archived_story_is_found_through_its_paragraphs_sketch_keys(
        backend: IndexBackend, rng: random.Random, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later night's copy keeps half of an archived story, with a word edited in every paragraph:
    too little of the story for the document bands, and no paragraph's exact key is left. One run
    clusters the two through paragraph LSH; against an index, the paragraphs' sketch keys find it."""
    story = article(rng, 8)

    def one_edit(paragraph: str) -> str:
        words = paragraph.split()
        words[len(words) // 2] = "changed"
        return " ".join(words)

    wire = Document("wire.example/story", "\n\n".join(story), "wire.example")
    cut = Document("daily.example/story", "\n\n".join(one_edit(p) for p in story[:4]), "daily.example")
    assert [o.kept for o in scan([wire, cut], Settings()).outcomes] == [True, False]
    first = scan([wire], Settings())
    with monkeypatch.context() as patch:  # the archive's paragraph keys as they were: exact keys only
        patch.setattr(copies, "SKETCH_BANDS", 0)
        exact_only = MemoryArchive()
        exact_only.add(scan([wire], Settings()).rows_to_archive(), None)  # type: ignore[arg-type]
        assert scan([cut], Settings(), archive=exact_only).outcomes[0].kept
    with backend.open() as index:
        index.add(first.rows_to_archive(), first.chrome_stats, "night1")  # type: ignore[arg-type]
        [outcome] = scan([cut], Settings(), archive=index).outcomes
    assert not outcome.kept and outcome.duplicate_of == wire.id and outcome.through is None


def test_rerunning_an_archived_batch_gives_the_same_output_and_adds_nothing(backend: IndexBackend,
                                                                           rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    with backend.open() as index:
        first = _run(index, docs, Settings())
        assert _run(index, docs, Settings(), "again") == first
        assert index.count() - index.count(copies=True) == len(first) and index.count(copies=True) == 2


def test_rerunning_a_night_after_its_copy_was_archived_keeps_the_document(backend: IndexBackend,
                                                                          rng: random.Random) -> None:
    """Night 1 keeps A; night 2 removes B as A's copy and archives it so. Night 1 run again finds
    A itself (a re-run) and B, archived for A: A stays kept, not removed as a copy of itself."""
    a, b, _ = _copy_chain(rng)
    settings = Settings(keep="first")
    with backend.open(settings=settings) as index:
        _run(index, [a], settings, "night1")
        assert _run(index, [b], settings, "night2") == set()
        again = scan([a], settings, archive=index)
    [outcome] = again.outcomes
    assert outcome.kept, outcome.reason


def test_an_archived_document_whose_text_changed_is_not_what_its_new_self_is_removed_for(
        backend: IndexBackend, rng: random.Random) -> None:
    """Run again with two more paragraphs (as with chrome learned since: the text differs), a
    document is too far from its archived self to pass as a re-run, yet clusters with it: it is
    kept, not removed as a copy of itself."""
    story = article(rng)
    before = Document("wire.example/story", "\n\n".join(story), "wire.example")
    after = Document(before.id, "\n\n".join([*story, *article(rng, 2)]), before.site)
    settings = Settings(keep="first")
    with backend.open(settings=settings) as index:
        _run(index, [before], settings, "night1")
        again = scan([after], settings, archive=index)
    [cluster] = again.document_clusters
    assert {m.id for m in cluster.members} == {before.id} and len(cluster.members) == 2  # its archived self
    [outcome] = again.outcomes
    assert outcome.kept, outcome.reason
    # read twice in a run in batches: the first is that document again, the second a duplicate record
    record = {"id": after.id, "site": after.site, "text": after.text}
    dump = write_jsonl(backend.folder / "twice.jsonl", [record, record])
    code, _ = cli("clean", dump, "-o", backend.folder / "out.jsonl", "--removed", backend.folder / "removed.jsonl",
                  "--keep", "first", "--in-batches", "1", "--index", backend.spec(), "-q")
    assert code == 0 and ids(backend.folder / "out.jsonl") == [after.id]
    [removed] = [json.loads(line) for line in (backend.folder / "removed.jsonl").read_text().splitlines()]
    assert removed["line"] == 2


def test_a_record_removed_for_a_document_of_its_own_id_is_not_archived_as_its_copy(rng: random.Random) -> None:
    """The same id again with an edited text (in batches, the same record read where more chrome
    was known) is removed as a near copy, but not archived as a copy of itself."""
    a, b, _ = _copy_chain(rng)
    result = scan([a, Document(a.id, b.text, a.site)], Settings(keep="first"))
    assert [(o.kept, o.duplicate_of) for o in result.outcomes] == [(True, None), (False, a.id)]
    rows = result.rows_to_archive()
    assert rows is not None and rows.ids == [a.id] and rows.copies_of() == [None]


def test_a_page_printed_again_under_a_new_address_is_removed_as_a_copy_of_the_archived_one(backend: IndexBackend,
                                                                                        rng: random.Random) -> None:
    """Night 1 archives a site's pages; night 2 brings one of them again under another id. Its
    lines now recur on two groups of the site (the archive's and the new page's), but it is the
    archived page printed again: removed as its copy, not kept with its article stripped as chrome."""
    records = site_dump(rng)
    original = next(r for r in records if r["id"] == "daily.example/3")
    with backend.open() as index:
        _run(index, _docs(records), Settings())
        result = scan([Document("daily.example/3?amp", original["text"], "daily.example")], Settings(),
                      archive=index)
    [outcome] = result.outcomes
    assert not outcome.kept and outcome.duplicate_of == "daily.example/3", outcome
    assert not any(p.text in original["body"] for p in outcome.stripped)


def test_a_page_printed_again_with_an_update_keeps_its_article_and_is_removed_as_a_copy(backend: IndexBackend,
                                                                                      rng: random.Random) -> None:
    """Night 1 archives a site's pages, written in a language the stop-word list does not cover (so
    only recurrence tells its chrome); night 2 brings one article again with a paragraph added.
    Its article lines recur on the archived page and on this one, which has prose of its own, so
    before page groups were archived they were stripped as the site's recurring lines (all seven)
    and the page was kept. It is counted in the archived page's group now: its article stays whole,
    and it is removed as a copy of the archived page."""
    site = "daily.example"
    bodies = [[foreign_text(rng, 9).rstrip(".")] + [foreign_text(rng, rng.randint(40, 80)) for _ in range(6)]
              for _ in range(6)]
    night1 = [Document(f"{site}/{k}", page(site, body, rng.randint(1, 12)), site) for k, body in enumerate(bodies)]
    added = foreign_text(rng, 40)
    update = Document(f"{site}/3?updated", page(site, [*bodies[3], added], 14), site)
    with backend.open() as index:
        _run(index, night1, Settings())
        result = scan([update], Settings(), archive=index)
    [outcome] = result.outcomes
    assert not any(p.text in bodies[3] or p.text == added for p in outcome.stripped), outcome.stripped
    assert {p.text for p in outcome.stripped} >= {"Home", "Related Articles"}  # its chrome still goes
    assert not outcome.kept and outcome.duplicate_of == f"{site}/3", outcome


@pytest.mark.parametrize("version", [1, 2])
def test_an_index_of_an_earlier_schema_is_read_as_it_is_and_upgraded_when_written(
        backend: IndexBackend, rng: random.Random, version: int) -> None:
    """Version 1 stored no page groups, and versions 1 and 2 no removed copies: read-only, its
    documents' page groups are their ids (version 1), none is a copy, and it is left as it is;
    opened for writing, the columns are added and later runs store theirs."""
    records = site_dump(rng)
    old, new = _docs(records[:BATCH]), _docs(records[BATCH:])
    with backend.open() as index:
        _run(index, old, Settings(), "monday")
    backend.sql("DELETE FROM documents WHERE copy_of IS NOT NULL")  # what an older dedupe archived
    backend.sql("ALTER TABLE documents DROP COLUMN copy_of")
    if version == 1:
        backend.sql("ALTER TABLE documents DROP COLUMN page_group")
    backend.sql(f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'")
    with backend.open(readonly=True) as index:
        rows = scan(old, Settings()).archive_rows
        assert rows is not None
        found = index.candidates(rows)
        assert found.ids and found.copy_of == [None] * len(found.ids)
        assert version == 2 or found.page_groups == found.ids
        exported = list(index.export())
        assert {r["copy_of"] for r in exported} == {None}
        if version == 1:
            assert {r["page_group"] for r in exported} == {r["id"] for r in exported}
    assert backend.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(version),)]
    with backend.open() as index:
        kept = _run(index, new, Settings(), "tuesday")
        groups = {r["id"]: r["page_group"] for r in index.export()}
    assert backend.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    unset = len(exported) if version == 1 else 0
    assert backend.sql("SELECT count(*) FROM documents WHERE page_group IS NULL") == [(unset,)]
    assert set(groups) >= {r["id"] for r in exported} | kept and all(groups[d] for d in kept)


def test_archived_chrome_is_recognised_on_a_sites_first_new_page(backend: IndexBackend, rng: random.Random) -> None:
    daily = [r for r in site_dump(rng) if r["site"] == "daily.example"]
    with backend.open() as index:
        _run(index, _docs(daily[:-1]), Settings())
    with backend.open(readonly=True) as index:  # a new process, the statistics from storage
        result = scan(_docs(daily[-1:]), Settings(), archive=index)
    assert {"Sign up for our newsletter", "Related Articles"} <= {p.text for p in result.outcomes[0].stripped}


def test_stored_chrome_equals_merging_every_runs_statistics(backend: IndexBackend, rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    merged = ChromeStats()
    with backend.open() as index:
        for lo in range(0, len(docs), BATCH):
            result = scan(docs[lo : lo + BATCH], Settings(), archive=index)
            index.add(result.kept_rows(), result.chrome_stats, f"r{lo}")  # type: ignore[arg-type]
            merged = merged.merge(result.chrome_stats)  # type: ignore[arg-type]
        archived = index.chrome_stats()
        assert archived is not None
        assert archived == merged
        assert ChromeStats().merge(archived) == merged  # either side of a merge


def test_narrowed_statistics_answer_as_the_whole_archive_does_about_a_runs_lines(backend: IndexBackend,
                                                                                 rng: random.Random) -> None:
    """A scan fetches the archive's statistics of its own sites and lines once (`narrowed`) and
    merges them with its own: every count it asks about equals the whole archive's."""
    records = site_dump(rng)
    with backend.open() as index:
        _run(index, _docs(records[:12]), Settings())
        learned = index.chrome_stats()
        assert learned is not None
        new = ChromeStats()
        for r in records[12:]:
            new.add_page(r["site"], r["id"], [line_key(line) for line in r["text"].split("\n")])
        asked = {site: [int(h, 16) for h in entry["keys"]] for site, entry in new.to_dict()["sites"].items()}
        narrowed, whole = learned.narrowed(asked).merge(new), learned.merge(new).merge(ChromeStats())
        assert type(narrowed) is ChromeStats  # held in memory: no query after the fetch
        for site, hashes in asked.items():
            assert narrowed.site_groups(site) == whole.site_groups(site) > 0
            assert narrowed.recurrences_of_hashes(site, hashes) == whole.recurrences_of_hashes(site, hashes)
            assert max(whole.recurrences_of_hashes(site, hashes)) >= 2  # the archive's pages count


def test_ids_and_sites_no_database_takes_as_text_are_stored_and_given_back_unchanged(backend: IndexBackend,
                                                                                  rng: random.Random) -> None:
    # a lone surrogate escape and a NUL are valid JSON that the readers keep; the escape's own
    # character and its spelled-out form must stay distinct from the surrogate they could stand for
    odd = {"daily.example": "daily\ud800.example", "herald.example": "herald\x00.example",
           "wire.example": "wire\ufdd0d800.example"}
    records = site_dump(rng)
    for r in records:
        r["id"] = r["id"].replace(r["site"], odd.get(r["site"], r["site"]))
        r["site"] = odd.get(r["site"], r["site"])
    copy = next(r for r in records if r["id"].startswith("daily\ud800.example/copy"))
    daily = [r for r in records if r["site"] == odd["daily.example"]]
    settings = Settings(keep="first", story=False)
    one_shot = {o.id for o in scan(_docs(records), settings).outcomes if o.kept}
    with backend.open(settings=settings) as index:
        archived = _docs([r for r in records if r is not copy and r is not daily[-1]])
        kept = _run(index, archived, settings, "night")
        exported = list(index.export())
        assert {r["id"] for r in exported if r["copy_of"] is None} == kept
        assert {r["site"] for r in exported} >= set(odd.values())
        assert {r["copy_of"] for r in exported} - {None} <= kept  # a removed copy names its kept document as given
        assert _run(index, archived, settings, "again") == kept  # known by id and content, chrome merged by site
        assert index.count() == len(exported)
        assert set(odd.values()) <= set(index.all_chrome().sites())  # type: ignore[union-attr]
    with backend.open(readonly=True, settings=settings) as index:
        result = scan(_docs([copy, daily[-1]]), settings, archive=index)
    removed, new_page = result.outcomes
    assert not removed.kept and removed.duplicate_of == "wire\ufdd0d800.example/0"
    assert {"Sign up for our newsletter", "Related Articles"} <= {p.text for p in new_page.stripped}
    assert one_shot - {copy["id"], daily[-1]["id"]} == kept


def test_a_full_disk_under_the_index_is_a_write_error_that_leaves_it_as_it_was(tmp_path: Path,
                                                                               rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    with SQLiteIndex(tmp_path / "idx", Settings()) as index:
        _run(index, docs[:BATCH], Settings())
        count, conn = index.count(), index._db()
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0] + 1}")  # "full"
        result = scan(docs[BATCH:], Settings(), archive=index)
        with pytest.raises(IndexWriteError, match="cannot write: database or disk is full") as raised:
            index.add(result.kept_rows(), result.chrome_stats, "full")  # type: ignore[arg-type]
        assert raised.value.exit_code == 74 and index.count() == count
        conn.execute("PRAGMA max_page_count = 1073741823")  # room again: the same run goes through
        assert index.add(result.kept_rows(), result.chrome_stats, "again") > 0  # type: ignore[arg-type]


def test_uint64_keys_round_trip_through_signed_integers() -> None:
    keys = np.array([0, 1, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)
    assert all(-(2**63) <= k < 2**63 for k in to_signed(keys))
    assert np.array_equal(from_signed(to_signed(keys)), keys)


def test_forget_vacuum_export_and_stats(backend: IndexBackend, rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    with backend.open() as index:
        _run(index, docs[:BATCH], Settings(), "monday")
        _run(index, docs[BATCH:], Settings(), "tuesday")
        total = index.count()
        exported = list(index.export())
        assert len(exported) == total and {"id", "key", "signature", "run_id", "added_at"} <= exported[0].keys()
        assert index.forget(run="monday") == BATCH and index.count() == total - BATCH
        assert index.forget(before="1970-01-01") == 0
        assert index.forget(before="2999-01-01") == total - BATCH and index.count() == 0
        assert index.stats()["runs"] == 2
        before, after = index.vacuum()
        assert after <= before
        # forgotten documents are new again: nothing of them is left to match
        assert _run(index, docs[:BATCH], Settings(), "again") == {d.id for d in docs[:BATCH]}
    assert backend.integrity() == "ok"


def _edited_copy(record: dict, rng: random.Random) -> Document:
    """A copy with a few words changed in every paragraph: no exact key in common, only LSH bands."""
    lines = [edit_words(rng, line, 0.02) if len(line.split()) > 20 else line for line in record["text"].split("\n")]
    return Document("copy-of-" + record["id"], "\n".join(lines), record["site"])


def test_the_index_keeps_its_own_banding_until_rebuilt(backend: IndexBackend, rng: random.Random,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    records = site_dump(rng)
    original = next(r for r in records if r["id"] == "herald.example/1")
    copy = _edited_copy(original, rng)
    monkeypatch.setattr("dedupe.index_base.lsh_params", lambda threshold, num_perm: (8, 16))
    with backend.open() as index:  # built by a dedupe that banded 8 x 16
        _run(index, _docs(records), Settings())
    monkeypatch.undo()  # this dedupe bands otherwise: lookups still use the index's 8 x 16
    with backend.open() as index:
        scanned = scan([copy], Settings()).archive_rows
        assert scanned is not None  # keep only the signature, so only a band can match
        rows = dataclasses.replace(scanned, key_hi=scanned.key_hi ^ np.uint64(1),
                                   paragraph_keys=np.zeros(0, np.uint64), paragraph_offsets=np.zeros(2, np.int64))
        assert "herald.example/1" in index.candidates(rows).ids
        assert index.rebuild_bands() != (8, 16)
        assert "herald.example/1" in index.candidates(rows).ids
        assert index.stats()["banding"] != "8x16"


def test_a_changed_band_key_function_asks_for_a_rebuild(backend: IndexBackend, rng: random.Random) -> None:
    with backend.open() as index:
        _run(index, _docs(site_dump(rng))[:3], Settings())
    backend.sql("UPDATE meta SET value = 'stale' WHERE key = 'band_probe'")
    with pytest.raises(DedupeError, match="run `dedupe index rebuild"):
        backend.open()
    code, out = cli("index", "rebuild", backend.spec())
    assert code == 0 and "recomputed" in out
    backend.open().close()
    assert backend.integrity() == "ok"


# -- refusing what is not our index ---------------------------------------------------------------

def test_other_settings_are_refused_with_a_clear_error(backend: IndexBackend, rng: random.Random) -> None:
    with backend.open() as index:
        _run(index, _docs(site_dump(rng))[:3], Settings())
    with pytest.raises(DedupeError, match=r"other settings: num_perm=128 \(this run: 64\)"):
        backend.open(settings=Settings(num_perm=64))
    backend.sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(DedupeError, match="schema version 99"):
        backend.open()


def test_signatures_from_another_shingle_hash_are_refused(backend: IndexBackend, rng: random.Random) -> None:
    with backend.open() as index:
        _run(index, _docs(site_dump(rng))[:3], Settings())
    backend.sql("UPDATE meta SET value = '1' WHERE key = 'hash_version'")
    with pytest.raises(DedupeError, match="shingle hash version 1"):
        backend.open()


def test_a_file_that_is_not_an_index_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    with pytest.raises(DedupeError, match="not a dedupe index"):
        SQLiteIndex(text)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(DedupeError, match="another application"):
        SQLiteIndex(other)
    assert text.read_text() == "not a database\n" * 100


def test_read_only_never_creates_or_writes(backend: IndexBackend, rng: random.Random) -> None:
    with backend.open("missing", readonly=True) as index:
        result = scan(_docs(site_dump(rng)), Settings(), archive=index)
        assert index.count() == 0 and len(result.outcomes) == 20
        with pytest.raises(DedupeError, match="read-only"):
            index.vacuum()
    assert not backend.exists("missing")
    assert cli("index", "stats", backend.spec("missing"))[0] == 66  # and stats do not create it either
    assert not backend.exists("missing")


# -- the CLI -------------------------------------------------------------------------------------

def cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "body"}) + "\n" for r in records))
    return path


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


@pytest.fixture
def batches(tmp_path: Path, rng: random.Random) -> list[Path]:
    records = site_dump(rng)
    write_jsonl(tmp_path / "all.jsonl", records)
    return [write_jsonl(tmp_path / f"night{k}.jsonl", records[lo : lo + BATCH])
            for k, lo in enumerate(range(0, len(records), BATCH))]


def test_cli_removed_record_names_the_archived_copy_a_later_copy_matched(tmp_path: Path, rng: random.Random,
                                                                         backend: IndexBackend) -> None:
    a, b, c = _copy_chain(rng)
    nights = [write_jsonl(tmp_path / f"n{k}.jsonl", [{"id": d.id, "site": d.site, "text": d.text} for d in docs])
              for k, docs in enumerate([[a, b], [c]])]
    for k, night in enumerate(nights):
        assert cli("clean", night, "-o", tmp_path / f"o{k}.jsonl", "--index", backend.spec(), "--keep", "first",
                   "--site-field", "site", "--removed", tmp_path / f"r{k}.jsonl", "-q")[0] == 0
    [record] = [json.loads(line) for line in (tmp_path / "r1.jsonl").read_text().splitlines()]
    assert (record["id"], record["kept"], record["through"]) == (c.id, a.id, b.id)
    assert not (tmp_path / "o1.jsonl").read_text()
    code, out = cli("index", "stats", backend.spec(), "--json")
    assert code == 0 and (json.loads(out)["documents"], json.loads(out)["copies"]) == (2, 1)
    # a read-only scan shows the archived copy for what it is, in the JSON report and the terminal
    code, out = cli("scan", nights[1], "--index", backend.spec(), "--site-field", "site", "--json", "-", "-q")
    [cluster] = json.loads(out)["document_clusters"]
    assert code == 0 and {(m["id"], m.get("copy_of")) for m in cluster["members"] if m.get("archived")} >= {
        (b.id, a.id)}
    code, out = cli("scan", nights[1], "--index", backend.spec(), "--site-field", "site")
    assert code == 0 and f"{b.id} (representative; archived copy of {a.id})" in " ".join(out.split())


def test_cli_nightly_batches_keep_what_one_shot_clean_keeps(tmp_path: Path, batches: list[Path],
                                                           backend: IndexBackend) -> None:
    index = backend.spec()
    assert cli("clean", tmp_path / "all.jsonl", "-o", tmp_path / "once.jsonl", "--keep", "first", "-q")[0] == 0
    kept: list[str] = []
    for k, batch in enumerate(batches):
        code, _ = cli("clean", batch, "-o", tmp_path / f"out{k}.jsonl", "--index", index, "--keep", "first", "-q",
                      "--json", tmp_path / f"report{k}.json")
        assert code == 0
        kept += ids(tmp_path / f"out{k}.jsonl")
    assert sorted(kept) == sorted(ids(tmp_path / "once.jsonl"))
    report = json.loads((tmp_path / "report2.json").read_text())
    assert report["index"]["documents"] == len(kept) + 2 and report["index"]["size_bytes"] > 0  # and the copies
    assert report["run_id"]
    assert {"read", "sign", "clusters", "story", "write", "index_commit", "total"} <= report["timings"].keys()
    # re-running the last night gives the same output and archives nothing twice
    assert cli("clean", batches[2], "-o", tmp_path / "again.jsonl", "--index", index, "--keep", "first", "-q")[0] == 0
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "out2.jsonl").read_text()
    assert backend.count(kept_only=True) == len(kept) and backend.count() == len(kept) + 2
    # a read-only scan sees the archive and changes nothing
    before = backend.fingerprint()
    code, out = cli("scan", batches[2], "--index", index, "--json", "-", "-q")
    assert code == 0 and json.loads(out)["stats"]["removable_documents"] == 2
    assert backend.fingerprint() == before and backend.count() == len(kept) + 2


def test_cli_clean_in_batches_against_an_index_archives_every_batch_in_one_run(tmp_path: Path, batches: list[Path],
                                                                              backend: IndexBackend) -> None:
    """`clean --in-batches --index` on a new index: the outputs of a run in batches against its
    temporary index, every batch archived and the run recorded once. A record read again in a
    later batch is a duplicate (archived by this run), not a re-run of an earlier run."""
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    dump = write_jsonl(tmp_path / "dump.jsonl", [*records, records[0]])
    args = ["--in-batches", BATCH, "--keep", "first", "-q"]
    assert cli("clean", dump, "-o", tmp_path / "temp.jsonl", "--removed", tmp_path / "temp-removed.jsonl",
               *args)[0] == 0
    code, _ = cli("clean", dump, "-o", tmp_path / "out.jsonl", "--removed", tmp_path / "removed.jsonl", *args,
                  "--index", backend.spec(), "--json", tmp_path / "report.json")
    assert code == 0
    for name in ("out.jsonl", "removed.jsonl"):
        assert (tmp_path / name).read_bytes() == (tmp_path / f"temp-{name}".replace("temp-out", "temp")).read_bytes()
    removed = [json.loads(line) for line in (tmp_path / "removed.jsonl").read_text().splitlines()]
    assert any(r["id"] == records[0]["id"] and r["kept"] == records[0]["id"] for r in removed)
    kept = ids(tmp_path / "out.jsonl")
    assert backend.count(kept_only=True) == len(kept) and backend.count() == len(kept) + 2  # and the copies
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["index"]["documents"] == backend.count() and report["index"]["added"] == backend.count()
    assert report["batches"]["count"] == 3
    with backend.open(readonly=True) as index:
        [run] = index.stats()["recent_runs"]
    assert (run["status"], run["documents_in"], run["kept"], run["added"]) == (
        "ok", len(records) + 1, len(kept), backend.count())
    # run again: every batch a re-run of itself, the same documents kept and nothing archived twice (the
    # text may differ: the first batches now know chrome learned from the later ones)
    assert cli("clean", dump, "-o", tmp_path / "again.jsonl", *args, "--index", backend.spec())[0] == 0
    assert ids(tmp_path / "again.jsonl") == kept
    texts = [[json.loads(line)["text"] for line in (tmp_path / name).read_text().splitlines()]
             for name in ("out.jsonl", "again.jsonl")]
    changed = sum(a != b for a, b in zip(*texts, strict=True))
    assert backend.count() == len(kept) + 2 + changed


def test_cli_scan_in_batches_against_an_index_reports_what_clean_in_batches_does(tmp_path: Path, batches: list[Path],
                                                                                backend: IndexBackend) -> None:
    """`scan --in-batches --index` (the archive read-only, the earlier batches in a temporary
    index) reports the clusters, outcomes and chrome that `clean --in-batches --index` acts on, and
    changes nothing. The dump holds the archived night again (re-runs: its second batch, with the wire
    article whose copies come in the third) and a record twice."""
    assert cli("clean", batches[1], "-o", tmp_path / "out1.jsonl", "--index", backend.spec(), "-q")[0] == 0
    records = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    dump = write_jsonl(tmp_path / "dump.jsonl", [*records, records[9]])
    before = backend.fingerprint()
    reports = {}
    for command, extra in (("scan", []), ("clean", ["-o", tmp_path / "out.jsonl"])):
        code, _ = cli(command, dump, *extra, "--in-batches", BATCH, "--index", backend.spec(), "-q",
                      "--json", tmp_path / f"{command}.json")
        assert code == 0
        if command == "scan":
            assert backend.fingerprint() == before
        report = json.loads((tmp_path / f"{command}.json").read_text())
        reports[command] = {k: v for k, v in report.items() if k not in ("run_id", "timings", "index", "output")}
    assert reports["scan"] == reports["clean"]
    assert reports["scan"]["stats"]["removable_documents"] > 0


def test_cli_clean_in_batches_stopped_before_its_commit_leaves_the_index_as_it_was(tmp_path: Path,
                                                                                  batches: list[Path],
                                                                                  backend: IndexBackend) -> None:
    """SIGTERM once every batch is in the index's open transaction and the outputs are in place:
    exit 143, none of the batches archived, the run recorded as interrupted."""
    assert cli("clean", batches[0], "-o", tmp_path / "out0.jsonl", "--index", backend.spec(), "-q")[0] == 0
    before = backend.count()
    env = {**os.environ, "DEDUPE_TEST_PAUSE_AT": "before-index-commit", "DEDUPE_TEST_PAUSE_SECONDS": "30",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "dedupe", "clean", str(tmp_path / "all.jsonl"), "-o",
                             str(tmp_path / "out.jsonl"), "--in-batches", str(BATCH), "--index", backend.spec(), "-q"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_pause(proc, "before-index-commit")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "index was not updated" in err
    assert backend.count() == before
    with backend.open(readonly=True) as index:
        assert index.stats()["recent_runs"][0]["status"] == "interrupted"
    assert (tmp_path / "out.jsonl").exists()  # the outputs came first, as in one pass
    assert cli("clean", tmp_path / "all.jsonl", "-o", tmp_path / "again.jsonl", "--in-batches", BATCH, "--index",
               backend.spec(), "-q", "--wait", "10")[0] == 0
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()
    assert backend.count() > before


def test_cli_index_errors_are_one_line(tmp_path: Path, batches: list[Path], backend: IndexBackend) -> None:
    index = backend.spec()
    assert cli("clean", batches[0], "-o", tmp_path / "o.jsonl", "--index", index, "-q")[0] == 0
    code, out = cli("clean", batches[1], "-o", tmp_path / "o.jsonl", "--index", index, "--num-perm", "64", "-q")
    assert code == 1 and "Traceback" not in out
    [line] = [ln for ln in out.splitlines() if "other settings" in ln]
    assert "num_perm=128 (this run: 64)" in line
    code, out = cli("scan", batches[1], "--index", backend.not_an_index(), "-q")
    assert code == 1 and [ln for ln in out.splitlines() if "not a dedupe index" in ln]
    assert cli("scan", batches[1], "--wait", "3")[0] == 2  # --wait belongs to clean --index


def test_bad_input_in_a_nightly_batch_is_skipped_counted_and_the_run_succeeds(tmp_path: Path, batches: list[Path],
                                                                              backend: IndexBackend) -> None:
    with batches[0].open("a") as fh:
        fh.write('{"id": "broken", "text": \n{"id": "no-text"}\n')
    index = backend.spec()
    code, out = cli("clean", batches[0], "-o", tmp_path / "o.jsonl", "--index", index, "--log-format", "json",
                    "--json", tmp_path / "r.json")
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["stats"]["bad_records"] == 2
    logs = [json.loads(ln) for ln in out.splitlines() if ln.startswith('{"time"')]
    assert [e["bad_records"] for e in logs if e.get("event") == "bad-records"] == [2]
    assert logs[-1]["status"] == "ok" and logs[-1]["added"] == BATCH
    with backend.open(readonly=True) as idx:
        [night] = idx.stats()["recent_runs"]
    assert (night["status"], night["bad_records"], night["added"]) == ("ok", 2, BATCH)


def test_a_refused_run_archives_nothing_and_is_recorded(tmp_path: Path, batches: list[Path],
                                                       backend: IndexBackend) -> None:
    index = backend.spec()
    for k in (0, 1):  # the wire original is archived on night 1
        assert cli("clean", batches[k], "-o", tmp_path / f"o{k}.jsonl", "--index", index, "-q")[0] == 0
    code, _ = cli("clean", batches[2], "-o", tmp_path / "o2.jsonl", "--index", index, "-q", "--max-removed", "0.01")
    assert code == 3 and not (tmp_path / "o2.jsonl").exists() and backend.count() == 2 * BATCH
    with backend.open(readonly=True) as idx:
        last = idx.stats()["recent_runs"][0]
    assert (last["status"], last["exit_code"], last["documents_in"], last["removed"]) == ("refused", 3, 6, 2)
    # in batches: every batch already in the index's open transaction, all rolled back
    code, _ = cli("clean", batches[2], "-o", tmp_path / "o2.jsonl", "--index", index, "-q", "--max-removed", "0.01",
                  "--in-batches", "2")
    assert code == 3 and not (tmp_path / "o2.jsonl").exists() and backend.count() == 2 * BATCH
    with backend.open(readonly=True) as idx:
        last = idx.stats()["recent_runs"][0]
    assert (last["status"], last["exit_code"], last["documents_in"], last["removed"]) == ("refused", 3, 6, 2)


def test_an_output_the_disk_refuses_archives_nothing_and_exits_74(tmp_path: Path, batches: list[Path],
                                                                   backend: IndexBackend,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    index = backend.spec()
    assert cli("clean", batches[0], "-o", tmp_path / "o0.jsonl", "--index", index, "-q")[0] == 0
    real = writers._fsync_path

    def full_for_removed(path: Path) -> None:  # the main output is written; the removal list is not
        if ".removed.jsonl." in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    monkeypatch.setattr(writers, "_fsync_path", full_for_removed)
    code, output = cli("clean", batches[1], "-o", tmp_path / "o1.jsonl", "--removed", tmp_path / "o1.removed.jsonl",
                       "--index", index, "-q")
    assert code == 74 and "o1.removed.jsonl: cannot write: No space left on device" in output
    assert "Traceback" not in output and not (tmp_path / "o1.removed.jsonl").exists()
    assert backend.count() == BATCH  # the index took nothing from the failed run
    with backend.open(readonly=True) as idx:
        last = idx.stats()["recent_runs"][0]
    assert (last["status"], last["exit_code"], last["added"]) == ("failed", 74, 0)


def test_maintenance_of_a_missing_index_leaves_no_lock_file_and_an_unwritable_folder_is_one_line(
        tmp_path: Path, batches: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for command in (["vacuum"], ["rebuild"], ["forget", "--run", "r1"]):
        code, output = cli("index", command[0], tmp_path / "typo.db", *command[1:])
        assert code == 66 and "typo.db does not exist" in output
    assert not list(tmp_path.glob("typo*"))
    real_open = os.open

    def read_only(path: Any, *args: Any) -> int:
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args)

    monkeypatch.setattr(os, "open", read_only)
    code, output = cli("clean", batches[0], "-o", tmp_path / "o.jsonl", "--index", tmp_path / "idx.db", "-q")
    assert code == 74 and "cannot create its lock file" in output and "read-only file system" in output
    assert "Traceback" not in output and not (tmp_path / "o.jsonl").exists()


def test_export_onto_the_index_itself_is_refused(tmp_path: Path, batches: list[Path]) -> None:
    index = tmp_path / "idx.db"
    assert cli("clean", batches[0], "-o", tmp_path / "o.jsonl", "--index", index, "-q")[0] == 0
    for target in (index, f"{index}-wal"):
        code, output = cli("index", "export", index, "-o", target)
        assert code == 1 and "refusing to overwrite" in output
    code, output = cli("index", "stats", index, "--json")
    assert code == 0 and json.loads(output)["documents"] == BATCH


def test_export_read_in_part_through_a_pipe_ends_quietly(tmp_path: Path, batches: list[Path]) -> None:
    """`dedupe index export PATH | head -1`: the reader goes away, and the export stops without a
    word on stderr (its database cursor is closed before the index)."""
    index = tmp_path / "idx.db"
    assert cli("clean", batches[0], "-o", tmp_path / "o.jsonl", "--index", index, "-q")[0] == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    export = subprocess.Popen([sys.executable, "-m", "dedupe", "index", "export", str(index)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert export.stdout is not None and export.stderr is not None
    assert json.loads(export.stdout.readline())["id"]
    export.stdout.close()  # as `head -1` does
    assert export.wait(timeout=60) in (0, 1) and export.stderr.read() == b""


def test_index_subcommands(tmp_path: Path, batches: list[Path], backend: IndexBackend) -> None:
    index = backend.spec()
    for k, batch in enumerate(batches):
        assert cli("clean", batch, "-o", tmp_path / f"o{k}.jsonl", "--index", index, "-q")[0] == 0
    code, out = cli("index", "stats", index, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["documents"] == 20 and stats["copies"] == 2 and stats["runs"] == 3
    assert stats["bytes_per_document"] > 0
    code, out = cli("index", "stats", index)  # the terminal view, 80 columns wide as in cron mail
    header = next(line for line in out.splitlines() if "started" in line)
    assert code == 0 and "20 documents (2 of them removed copies" in " ".join(out.split())
    assert header.split() == ["run", "started", "(UTC)", "status", "exit", "in", "kept", "removed", "added"]
    assert all(len(line) <= 80 for line in out.splitlines())
    code, out = cli("index", "export", index)
    assert code == 0 and len(out.splitlines()) == 20
    first_run = stats["recent_runs"][-1]["run_id"]
    code, out = cli("index", "forget", index, "--run", first_run)
    assert code == 0 and "forgot 7 documents; 13 remain" in out
    assert cli("index", "vacuum", index)[0] == 0
    assert cli("index", "forget", index)[0] == 2
    assert cli("index", "forget", index, "--before", "last tuesday")[0] == 2
    assert cli("index", "stats", backend.spec("nope"))[0] == 66
    assert cli("index", "vacuum", backend.spec("nope"))[0] == 66 and not backend.exists("nope")
    assert backend.integrity() == "ok"


# -- crash safety and overlapping runs (real processes, killed at named points) -------------------

PAUSES = {"writing": "writing-output", "commit": "before-index-commit", "term": "before-index-commit"}
PREVIOUS = "previous output\n"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def paused(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Night 1 archived, then night 2 started in one process per pause point, all paused at once
    (imports dominate a process start, so they are started together). Each process has its own copy
    of the index (`idx_NAME`), holding night 1; `idx_expected` holds both nights, run uninterrupted."""
    base = tmp_path_factory.mktemp("nights")
    backend = make_backend(request.param, base, request)
    records = site_dump(random.Random(1234))
    write_jsonl(base / "night1.jsonl", records[:10])
    write_jsonl(base / "night2.jsonl", records[10:])
    (base / "out2.jsonl").write_text(PREVIOUS)
    expected = base / "expected"
    procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    try:
        for name in ("expected", *PAUSES):
            work = base / name
            shutil.copytree(base, work, ignore=shutil.ignore_patterns("expected", *PAUSES))
            assert cli("clean", work / "night1.jsonl", "-o", work / "out1.jsonl", "--index",
                       backend.spec(f"idx_{name}"), "-q")[0] == 0
        assert cli("clean", expected / "night2.jsonl", "-o", expected / "out2.jsonl", "--index",
                   backend.spec("idx_expected"), "-q")[0] == 0
        for name, point in PAUSES.items():
            # stderr: the pause line (read below), then anything else; -q keeps the log to warnings
            env = {**os.environ, "DEDUPE_TEST_PAUSE_AT": point, "DEDUPE_TEST_PAUSE_SECONDS": "30",
                   "PYTHONPATH": str(REPO)}
            procs[name] = (subprocess.Popen(
                [sys.executable, "-m", "dedupe", "clean", "night2.jsonl", "-o", "out2.jsonl", "--index",
                 backend.spec(f"idx_{name}"), "-q"], cwd=base / name, env=env, stderr=subprocess.PIPE, text=True),
                base / name)
        for name, (proc, _) in procs.items():
            _wait_for_pause(proc, PAUSES[name])
        yield {**procs, "expected": expected, "backend": backend}
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stderr.close()  # type: ignore[union-attr]
        backend.drop()


def _wait_for_pause(proc: subprocess.Popen[str], point: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            if f"paused at {point}" in line:
                return
            assert line, f"process ended before pausing at {point}"
    raise AssertionError(f"no pause at {point}")


def _assert_recovers(paused: dict[str, Any], name: str) -> None:
    """Index intact and unchanged, output whole; a re-run gives exactly the uninterrupted result."""
    backend, work, expected = paused["backend"], paused[name][1], paused["expected"]
    index = backend.spec(f"idx_{name}")
    assert backend.integrity(f"idx_{name}") == "ok"
    night1 = backend.count("idx_expected", kept_only=True) - len(ids(expected / "out2.jsonl"))
    assert backend.count(f"idx_{name}", kept_only=True) == night1
    assert (work / "out2.jsonl").read_text() in (PREVIOUS, (expected / "out2.jsonl").read_text())
    # --wait: PostgreSQL ends a killed client's session (and its lock) a moment after the kill
    assert cli("clean", work / "night2.jsonl", "-o", work / "out2.jsonl", "--index", index, "-q",
               "--wait", "10")[0] == 0
    assert (work / "out2.jsonl").read_text() == (expected / "out2.jsonl").read_text()
    assert backend.count(f"idx_{name}") == backend.count("idx_expected")
    assert backend.integrity(f"idx_{name}") == "ok"


def test_a_second_writer_exits_75_naming_the_holder_and_sigkill_before_commit_loses_nothing(paused: dict) -> None:
    holder, work = paused["commit"]  # paused inside its index transaction, outputs already in place
    index = paused["backend"].spec("idx_commit")
    code, out = cli("clean", work / "night2.jsonl", "-o", work / "other.jsonl", "--index", index, "-q")
    assert code == 75 and f"pid {holder.pid}" in out and not (work / "other.jsonl").exists()
    started = time.monotonic()
    code, _ = cli("clean", work / "night2.jsonl", "-o", work / "other.jsonl", "--index", index, "-q",
                  "--wait", "0.3")
    assert code == 75 and time.monotonic() - started >= 0.3
    assert cli("index", "vacuum", index)[0] == 75
    assert cli("scan", work / "night2.jsonl", "--index", index, "-q")[0] == 0  # readers never wait
    holder.kill()
    holder.wait()
    assert (work / "out2.jsonl").read_text() == (paused["expected"] / "out2.jsonl").read_text()
    _assert_recovers(paused, "commit")


def test_sigkill_while_writing_leaves_the_previous_output(paused: dict) -> None:
    proc, work = paused["writing"]
    proc.kill()
    proc.wait()
    assert (work / "out2.jsonl").read_text() == PREVIOUS
    _assert_recovers(paused, "writing")


def test_sigterm_stops_with_143_and_rolls_the_index_back(paused: dict) -> None:
    proc, _ = paused["term"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "index was not updated" in err
    with paused["backend"].open("idx_term", readonly=True) as index:
        assert index.stats()["recent_runs"][0]["status"] == "interrupted"
    _assert_recovers(paused, "term")
