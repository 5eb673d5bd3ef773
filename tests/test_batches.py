"""Runs in batches (`--in-batches N`): bounded memory, one set of outputs and one report."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dedupe import Settings, scan
from dedupe.batch_report import joined_cluster
from dedupe.batches import ClusterIds, earlier_batches, scan_in_batches
from dedupe.cli import main
from dedupe.model import BadRecord, Cluster, Document, Member

from .conftest import SEEDS, article, edit_words, random_text, site_dump


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder for this test: what a run leaves there can be seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def dump(tmp_path: Path, rng: random.Random) -> Path:
    """Six sites' pages with their chrome, then the wire story's two syndicated copies last."""
    records = [{k: v for k, v in r.items() if k != "body"} for r in site_dump(rng)]
    return write_jsonl(tmp_path / "dump.jsonl", records)


def _report_without_run(path: Path) -> dict:
    report = json.loads(path.read_text(encoding="utf-8"))
    for key in ("run_id", "timings", "batches", "output"):
        report.pop(key, None)
    return report


def test_one_batch_gives_what_one_pass_gives(tmp_path: Path, dump: Path, temp_folder: Path) -> None:
    """A batch holding the whole dump: the same outputs byte for byte, and the same report, which
    here is streamed from the cluster spool instead of encoded whole."""
    outs = {}
    for name, extra in (("one", []), ("batched", ["--in-batches", "1000"])):
        folder = tmp_path / name
        folder.mkdir()
        result = run("clean", str(dump), "-o", str(folder / "out.jsonl"), "--removed", str(folder / "removed.jsonl"),
                     "--stripped", str(folder / "stripped.jsonl"), "--json", str(folder / "report.json"), *extra)
        assert result.exit_code == 0
        outs[name] = folder, result.output
    one, batched = outs["one"][0], outs["batched"][0]
    for name in ("out.jsonl", "removed.jsonl", "stripped.jsonl"):
        assert (one / name).read_bytes() == (batched / name).read_bytes()
    assert _report_without_run(one / "report.json") == _report_without_run(batched / "report.json")
    report = json.loads((batched / "report.json").read_text())
    assert report["batches"] == {"size": 1000, "count": 1}
    assert outs["one"][1] == outs["batched"][1]  # the terminal report too
    assert list(temp_folder.iterdir()) == []  # the temporary index and the spool are gone


def test_copies_in_later_batches_are_removed_for_the_earlier_document(tmp_path: Path, dump: Path,
                                                                       temp_folder: Path) -> None:
    """The wire story's copies come in the last batch: they are found in the earlier batches'
    temporary index and removed in favour of the wire article, as one pass removes them."""
    one_removed, removed = tmp_path / "one-removed.jsonl", tmp_path / "removed.jsonl"
    assert run("clean", str(dump), "-o", str(tmp_path / "one.jsonl"), "--removed", str(one_removed),
               "-q").exit_code == 0
    result = run("clean", str(dump), "-o", str(tmp_path / "out.jsonl"), "--removed", str(removed),
                 "--json", str(tmp_path / "report.json"), "--in-batches", "5", "-q")
    assert result.exit_code == 0
    by_id = {r["id"]: r for r in read_jsonl(removed)}
    assert {i: (r["kept"], r["cluster"]) for i, r in by_id.items()} == {
        i: (r["kept"], by_id[i]["cluster"]) for i, r in ((r["id"], r) for r in read_jsonl(one_removed))}
    assert {"daily.example/copy", "herald.example/copy"} <= set(by_id)
    assert "(archived)" in by_id["daily.example/copy"]["reason"]  # found in an earlier batch
    report = json.loads((tmp_path / "report.json").read_text())
    records = read_jsonl(dump)
    assert report["stats"]["documents"] == len(records)
    assert report["batches"] == {"size": 5, "count": (len(records) + 4) // 5}
    assert len(read_jsonl(tmp_path / "out.jsonl")) == len(records) - len(by_id)
    ids = [c["id"] for level in ("document_clusters", "paragraph_clusters") for c in report[level]]
    assert len(ids) == len(set(ids))  # cluster ids run on across batches
    [wire] = [c for c in report["document_clusters"] if by_id["daily.example/copy"]["cluster"] == c["id"]]
    assert wire["representative"]["archived"] is True  # the wire article, read in an earlier batch
    assert {m["id"] for m in wire["members"]} >= {"daily.example/copy", by_id["daily.example/copy"]["kept"]}
    assert sum(report["stats"]["document_clusters"].values()) == len(report["document_clusters"])
    assert list(temp_folder.iterdir()) == []


def test_a_record_read_again_in_a_later_batch_is_a_duplicate(tmp_path: Path, dump: Path) -> None:
    """The same id and text twice in a dump is a duplicate record in one pass; in batches it must
    not pass as a re-run of the earlier batch (which an `--index` run would take it for)."""
    records = read_jsonl(dump)
    write_jsonl(dump, [*records, records[0]])
    for extra in ([], ["--in-batches", "4"]):
        removed = tmp_path / "removed.jsonl"
        assert run("clean", str(dump), "-o", str(tmp_path / "out.jsonl"), "--removed", str(removed), "-q",
                   *extra).exit_code == 0
        again = [r for r in read_jsonl(removed) if r["id"] == records[0]["id"]]
        assert len(again) == 1 and again[0]["reason"].startswith("exact duplicate of")


def test_max_removed_is_checked_on_the_totals_and_nothing_is_written(tmp_path: Path, dump: Path,
                                                                    temp_folder: Path) -> None:
    out, removed = tmp_path / "out.jsonl", tmp_path / "removed.jsonl"
    result = run("clean", str(dump), "-o", str(out), "--removed", str(removed), "--in-batches", "5",
                 "--max-removed", "0.01", "-q")
    assert result.exit_code == 3
    assert not out.exists() and not removed.exists()
    assert list(tmp_path.iterdir()) == [dump, temp_folder] and list(temp_folder.iterdir()) == []


def test_standard_output_gets_every_batch(tmp_path: Path, dump: Path) -> None:
    one = run("clean", str(dump), "-o", "-", "--keep", "first")
    batched = run("clean", str(dump), "-o", "-", "--keep", "first", "--in-batches", "3")
    assert one.exit_code == batched.exit_code == 0
    kept = [json.loads(line)["id"] for line in batched.output.splitlines()]
    assert kept == [json.loads(line)["id"] for line in one.output.splitlines()]


def test_bad_records_are_counted_in_every_batch(tmp_path: Path) -> None:
    lines = []
    for k in range(8):
        lines.append(json.dumps({"id": f"d{k}", "text": f"Document number {k} says something of its own here."}))
        if k % 3 == 1:
            lines.append("{not json")
    lines.append('{"id": "no text"}')  # after the last document
    dump = tmp_path / "dump.jsonl"
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report_path = tmp_path / "report.json"
    assert run("scan", str(dump), "--in-batches", "2", "--json", str(report_path), "-q").exit_code == 0
    report = json.loads(report_path.read_text())
    assert [b["line"] for b in report["bad_records"]] == [3, 7, 11, 12]
    assert report["stats"]["bad_records"] == 4 and report["stats"]["documents"] == 8
    assert report["batches"]["count"] == 4  # the bad records after the last document go with its batch


def test_a_record_read_again_after_its_sites_chrome_was_learned_is_still_a_duplicate(tmp_path: Path,
                                                                                     rng: random.Random) -> None:
    """A short page read first, alone, keeps its site's long chrome lines (nothing is known of the
    site yet); read again after the site's other pages, it is stripped to its few words and matches
    nothing. One pass removes the second copy as an exact duplicate; so must a run in batches."""
    chrome = [random_text(rng, 16) for _ in range(3)]
    pages = [{"id": f"blog.example/{k}", "site": "blog.example", "text": "\n".join([*chrome, *article(rng)])}
             for k in range(6)]
    brief = {"id": "blog.example/brief", "site": "blog.example", "text": "\n".join([*chrome, random_text(rng, 12)])}
    dump = write_jsonl(tmp_path / "dump.jsonl", [brief, *pages, brief])
    removed = tmp_path / "removed.jsonl"
    result = run("clean", str(dump), "-o", str(tmp_path / "out.jsonl"), "--removed", str(removed), "--in-batches", "1",
                 "--json", str(tmp_path / "report.json"), "-q")
    assert result.exit_code == 0
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")].count(brief["id"]) == 1
    [again] = read_jsonl(removed)
    assert (again["id"], again["kept"], again["line"]) == (brief["id"], brief["id"], 8)
    assert "read in an earlier batch" in again["reason"]
    stats = json.loads((tmp_path / "report.json").read_text())["stats"]
    assert (stats["documents"], stats["removable_documents"]) == (8, 1)


def test_text_folder_in_batches(tmp_path: Path) -> None:
    """A folder of text files in batches of one page: a folder out, as one pass writes it."""
    outs = {}
    for name, extra in (("one", []), ("batched", ["--in-batches", "1"])):
        out = tmp_path / name
        assert run("clean", str(SEEDS), "-o", str(out), "-q", *extra).exit_code == 0
        outs[name] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert outs["one"] == outs["batched"]


@pytest.mark.parametrize("command, args, message", [
    ("scan", ["--engine", "dask"], "applies to the local engine"),
    ("clean", ["--max-removed", "0.5", "-o", "-"], "cannot write to standard output"),
    ("clean", ["--in-batches", "0"], "0 is not in the range"),
    ("clean", ["--wait", "5"], "--wait only applies with --index"),
])
def test_usage_errors(tmp_path: Path, dump: Path, command: str, args: list[str], message: str) -> None:
    base = [command, str(dump), "--in-batches", "4"]
    if command == "clean" and "-o" not in args:
        base += ["-o", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_cluster_ids_run_on_from_the_earlier_batches_in_clusters_and_outcomes(dump: Path) -> None:
    docs = [Document(r["id"], r["text"], site=r["site"]) for r in read_jsonl(dump)]
    result = scan(docs)
    ids = ClusterIds()
    ids.documents, ids.paragraphs = 10, 100
    moved = ids.assign(result)
    assert [c.id for c in moved.document_clusters] == [f"d{int(c.id[1:]) + 10}" for c in result.document_clusters]
    assert [c.id for c in moved.paragraph_clusters] == [f"p{int(c.id[1:]) + 100}" for c in result.paragraph_clusters]
    assert [o.cluster for o in moved.outcomes] == [
        None if o.cluster is None else f"{o.cluster[0]}{int(o.cluster[1:]) + (10 if o.cluster[0] == 'd' else 100)}"
        for o in result.outcomes]
    assert any(o.cluster for o in result.outcomes)
    assert (ids.documents, ids.paragraphs) == (10 + len(result.document_clusters), 100 + len(result.paragraph_clusters))


@pytest.fixture
def spread_copies(tmp_path: Path, rng: random.Random) -> tuple[Path, list[str]]:
    """Ten unrelated articles, and one story's seven lightly edited copies spread over them two by
    two, so that in batches of four every batch holds copies of it."""
    story = "\n".join(article(rng, 8))
    copies = [{"id": f"copy-{k}", "text": edit_words(rng, story, 0.005)} for k in range(7)]
    others = [{"id": f"other-{k}", "text": "\n".join(article(rng, 8))} for k in range(10)]
    records = []
    for k in range(10):
        records.append(others[k])
        if k < 7:
            records.append(copies[k])
    return write_jsonl(tmp_path / "spread.jsonl", records), [c["id"] for c in copies]


def test_copies_of_one_document_across_batches_are_one_cluster(tmp_path: Path, spread_copies) -> None:
    """One pass finds the seven copies as one cluster; in batches of four, each later batch's copies
    cluster with the earlier ones (marked archived). The report joins the parts into one cluster
    under the first part's id, counted once, and the removed records name that id."""
    dump, copies = spread_copies
    reports = {}
    for name, extra in (("one", []), ("batched", ["--in-batches", "4"])):
        removed = tmp_path / f"{name}-removed.jsonl"
        assert run("clean", str(dump), "-o", str(tmp_path / f"{name}.jsonl"), "--removed", str(removed),
                   "--json", str(tmp_path / f"{name}.json"), "-q", *extra).exit_code == 0
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text()), read_jsonl(removed)
    [one] = [c for c in reports["one"][0]["document_clusters"] if c["kind"] != "story"]
    assert sorted(m["id"] for m in one["members"]) == copies
    report, removed = reports["batched"]
    assert report["batches"]["count"] == 5
    [joined] = [c for c in report["document_clusters"] if c["kind"] != "story"]
    assert sorted(m["id"] for m in joined["members"]) == copies  # each copy once
    assert joined["size"] == 7 and joined["kind"] == "near"
    assert report["stats"]["document_clusters"]["near"] == 1
    assert sum(report["stats"]["document_clusters"].values()) == len(report["document_clusters"])
    assert {r["id"]: r["cluster"] for r in removed} == {i: joined["id"] for i in copies[1:]}
    # Each later part's representative was the first copy, read in the first batch.
    assert joined["representative"]["id"] == "copy-0"
    assert all("compared_with" not in m and 0.8 <= m["similarity"] <= 1.0 for m in joined["members"])


def test_joined_cluster_keeps_the_first_representative_and_names_what_later_members_were_compared_with() -> None:
    first = {"id": "d2", "kind": "exact", "level": "document", "size": 2, "preview": "Story",
             "representative": {"id": "a", "similarity": 1.0},
             "members": [{"id": "a", "similarity": 1.0}, {"id": "b", "similarity": 1.0}]}
    later = {"id": "d2", "kind": "near", "level": "document", "size": 4, "preview": "Other",
             "representative": {"id": "c", "similarity": 1.0},
             "members": [{"id": "c", "similarity": 1.0}, {"id": "b", "similarity": 0.91, "archived": True},
                         {"id": "a", "similarity": 0.88, "archived": True}, {"id": "d", "similarity": 0.85}]}
    joined = joined_cluster([first, later])
    assert joined["representative"] == {"id": "a", "similarity": 1.0} and joined["preview"] == "Story"
    assert joined["members"] == [
        {"id": "a", "similarity": 1.0}, {"id": "b", "similarity": 1.0},
        {"id": "c", "similarity": 0.91, "compared_with": "b"},  # met the cluster through b
        {"id": "d", "similarity": 0.85, "compared_with": "c"}]
    assert (joined["kind"], joined["size"]) == ("near", 4)
    assert joined_cluster([first, {**first, "members": [*first["members"], {"id": "b", "similarity": 1.0,
                                                                             "archived": True}]}])["kind"] == "exact"


def test_a_later_cluster_meeting_two_earlier_ones_joins_them(tmp_path: Path, rng: random.Random) -> None:
    """Two stories sharing their first paragraphs, each with a copy, in two batches; then a copy of
    those paragraphs alone, cut from the bottom of both, in a third. Its cluster holds both
    earlier clusters' documents, so the report shows one cluster: each member once, the second
    cluster's id listed as joined (its removed record names it), counted once; and no id sits
    in two copy clusters."""
    shared, ends = article(rng, 6), [article(rng, 4)[1:] for _ in range(2)]
    stories = ["\n".join(shared + end) for end in ends]
    records = []
    for name, text in zip("ab", stories, strict=True):
        records += [{"id": name, "site": f"{name}.example", "text": text},
                    {"id": f"{name}-copy", "site": f"{name}-copy.example", "text": edit_words(rng, text, 0.005)}]
    records.append({"id": "cut", "site": "cut.example", "text": "\n".join(shared)})
    dump = write_jsonl(tmp_path / "dump.jsonl", records)
    removed = tmp_path / "removed.jsonl"
    assert run("clean", str(dump), "-o", str(tmp_path / "out.jsonl"), "--removed", str(removed), "--in-batches", "2",
               "--json", str(tmp_path / "report.json"), "-q").exit_code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    [joined] = [c for c in report["document_clusters"] if c["kind"] != "story"]
    assert sorted(m["id"] for m in joined["members"]) == ["a", "a-copy", "b", "b-copy", "cut"]
    assert joined["size"] == 5 and joined["joined_ids"] == ["d2"] and joined["id"] == "d1"
    assert report["stats"]["document_clusters"]["near"] == 1
    names = {joined["id"], *joined["joined_ids"]}
    assert {r["id"] for r in read_jsonl(removed)} == {"a", "b", "cut"}
    assert {r["cluster"] for r in read_jsonl(removed)} == names  # the second batch's record names d2
    # The second cluster's representative met the cluster through the third batch's cut copy.
    linked = {m["id"]: m for m in joined["members"]}
    assert linked["b"]["compared_with"] == "cut" and 0.7 <= linked["b"]["similarity"] <= 1.0
    assert "compared_with" not in linked["cut"]  # it met the first cluster's representative itself
    shown = run("scan", str(dump), "--in-batches", "2", "--top", "1")
    assert shown.exit_code == 0 and "joined d2 of earlier batches" in shown.output


def test_cluster_ids_join_earlier_clusters_that_a_later_one_meets() -> None:
    def copies(*ids: str, archived: tuple[str, ...] = ()) -> Cluster:
        members = tuple(Member(i, 1.0, archived=i in archived) for i in ids)
        return Cluster("d1", "near", "document", members[0], members, "")

    def batch(*clusters: Cluster) -> list[str]:
        result = scan([])
        numbered = [dataclasses.replace(c, id=f"d{k}") for k, c in enumerate(clusters, 1)]  # as one batch's scan
        return [c.id for c in ids.assign(dataclasses.replace(result, document_clusters=numbered)).document_clusters]

    ids = ClusterIds()
    assert batch(copies("a", "a2"), copies("b", "b2"), copies("c", "c2")) == ["d1", "d2", "d3"]
    assert batch(copies("x", "b", "c2", archived=("b", "c2"))) == ["d2"] and ids.joined == {"d3": "d2"}
    assert batch(copies("y", "a2", "c", archived=("a2", "c"))) == ["d1"]  # c's cluster is d2's now
    assert ids.joined == {"d2": "d1", "d3": "d1"}
    assert batch(copies("z", "x", archived=("x",)), copies("w", "w2")) == ["d1", "d4"]


def test_joined_cluster_links_an_earlier_cluster_joined_by_a_later_part() -> None:
    """The second part, an earlier cluster a later one joined, meets nothing when it comes: its
    representative is linked through its member the later part holds."""
    first = {"id": "d1", "kind": "near", "level": "document", "size": 2, "preview": "Story",
             "representative": {"id": "a", "similarity": 1.0},
             "members": [{"id": "a", "similarity": 1.0}, {"id": "a2", "similarity": 0.9}]}
    other = {**first, "id": "d2", "representative": {"id": "b", "similarity": 1.0},
             "members": [{"id": "b", "similarity": 1.0}, {"id": "b2", "similarity": 0.88}]}
    bridge = {**first, "representative": {"id": "c", "similarity": 1.0},
              "members": [{"id": "c", "similarity": 1.0}, {"id": "a", "similarity": 0.95, "archived": True},
                          {"id": "b2", "similarity": 0.83, "archived": True}]}
    joined = joined_cluster([first, other, bridge])
    assert joined["members"] == [
        {"id": "a", "similarity": 1.0}, {"id": "a2", "similarity": 0.9},
        {"id": "b", "similarity": 0.88, "compared_with": "b2"}, {"id": "b2", "similarity": 0.88, "compared_with": "b"},
        {"id": "c", "similarity": 0.95}]
    assert (joined["id"], joined["joined_ids"], joined["size"]) == ("d1", ["d2"], 5)
    held = joined_cluster([first, other, {**bridge, "members": [*bridge["members"],
                                                                {"id": "b", "similarity": 0.81, "archived": True}]}])
    assert held["members"][2] == {"id": "b", "similarity": 0.81, "compared_with": "c"}  # the later part held it
    assert "joined_ids" not in joined_cluster([first, bridge])


def test_scan_in_batches_of_nothing_gives_one_empty_batch(tmp_path: Path) -> None:
    bad = [BadRecord("x.jsonl", 1, "empty file")]
    with earlier_batches(Settings(), tmp_path) as archive:
        [batch] = list(scan_in_batches([], lambda: bad, Settings(), 10, archive))
    assert batch.documents == [] and batch.result.bad == bad and batch.result.stats.documents == 0
    assert list(tmp_path.iterdir()) == []


def test_a_run_stopped_between_batches_leaves_the_previous_outputs_and_no_temporary_files(
        tmp_path: Path, dump: Path) -> None:
    """SIGTERM while the first batch is being written: exit 143, the previous output as it was,
    no new one, and neither the temporary index nor the report spool left behind."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out.jsonl"
    out.write_text("previous output\n")
    env = {**os.environ, "DEDUPE_TEST_PAUSE_AT": "writing-output", "DEDUPE_TEST_PAUSE_SECONDS": "30",
           "TMPDIR": str(temp), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "dedupe", "clean", str(dump), "-o", str(out), "--removed",
                             str(tmp_path / "removed.jsonl"), "--in-batches", "5", "-q"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "paused at writing-output" in proc.stderr.readline()
        assert any(temp.iterdir())  # the temporary index is there while the run lasts
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert "stopped by SIGTERM" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert out.read_text() == "previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.jsonl", "out.jsonl", "tmp"]
    assert list(temp.iterdir()) == []
