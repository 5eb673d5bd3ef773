"""The `dedupe` command through click's runner: reports, outputs, bad input and exit codes."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dedupe import cli as cli_module
from dedupe.cli import main
from dedupe.writers import FOLDER_MARK

from .conftest import SEEDS, site_dump


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def dump(tmp_path: Path, rng: random.Random) -> Path:
    records = [{k: v for k, v in r.items() if k != "body"} for r in site_dump(rng)]
    for k, r in enumerate(records):
        r["date"] = f"2025-07-{k % 28 + 1:02d}"
    return write_jsonl(tmp_path / "dump.jsonl", records)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- scan ---------------------------------------------------------------------------------------

def test_scan_seeds_shows_the_akazawa_story_cluster() -> None:
    result = run("scan", str(SEEDS))
    assert result.exit_code == 0
    assert "1 story" in result.output  # one paragraph-level story cluster in the summary
    assert "News from Japan Society" in result.output  # the Jiji paragraph opens it
    report = json.loads(run("scan", str(SEEDS), "--json", "-").output)
    [story] = [c for c in report["paragraph_clusters"] if c["kind"] == "story"]
    assert {m["paragraph"] for m in story["members"]} == {17, 27}  # Jiji and NHK, not the summit (22)


def test_scan_json_report_schema(tmp_path: Path, dump: Path) -> None:
    out = tmp_path / "report.json"
    result = run("scan", str(dump), "--json", str(out), "--quiet")
    assert result.exit_code == 0 and result.output == ""
    report = json.loads(out.read_text())
    assert report["version"] == 1
    assert {"settings", "stats", "document_clusters", "paragraph_clusters", "chrome", "sites"} <= report.keys()
    near = [c for c in report["document_clusters"] if c["kind"] == "near"]
    assert len(near) == 1
    cluster = near[0]
    assert {"id", "kind", "representative", "members"} <= cluster.keys()
    assert all({"id", "similarity"} <= m.keys() for m in cluster["members"])
    assert all("paragraph" in m for c in report["paragraph_clusters"] for m in c["members"])
    assert report["stats"]["removable_documents"] == 2


def test_scan_json_to_stdout_is_pure_json(dump: Path) -> None:
    result = run("scan", str(dump), "--json", "-")
    assert result.exit_code == 0
    assert json.loads(result.output)["stats"]["documents"] == 20


def test_scan_json_report_is_compressed_by_its_suffix(tmp_path: Path, dump: Path) -> None:
    plain, packed = tmp_path / "report.json", tmp_path / "report.json.gz"
    for target in (plain, packed):
        assert run("scan", str(dump), "--json", str(target), "-q").exit_code == 0
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(packed.read_bytes()))["stats"] == json.loads(plain.read_text())["stats"]


def test_scan_reads_stdin(dump: Path) -> None:
    result = run("scan", "-", "--json", "-", input=dump.read_bytes())
    assert result.exit_code == 0
    assert json.loads(result.output)["stats"]["documents"] == 20


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "dedupe", "scan", str(SEEDS), "--json", "-"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stats"]["documents"] == 2


# -- bad input ----------------------------------------------------------------------------------

@pytest.fixture
def bad_dump(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "ok", "text": "A perfectly fine document with a few words in it."})
    path.write_bytes(b"\n".join([
        good.encode(),
        b"{not json",
        json.dumps({"id": "no-text", "body": "x"}).encode(),
        b'{"id": "latin", "text": "caf\xe9"}',
        b"[1, 2, 3]",
        good.replace('"ok"', '"ok2"').encode(),
    ]) + b"\n")
    return path


def test_bad_records_are_skipped_counted_and_located(bad_dump: Path) -> None:
    result = run("scan", str(bad_dump), "--json", "-")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["stats"]["documents"] == 2
    assert report["stats"]["bad_records"] == 4
    assert [b["line"] for b in report["bad_records"]] == [2, 3, 4, 5]
    assert all(b["source"].endswith("bad.jsonl") for b in report["bad_records"])


def test_the_terminal_report_shows_dump_text_that_looks_like_markup_as_it_is(tmp_path: Path) -> None:
    """Site names, ids and bad-record reasons are the dump's text, not rich markup: a site named
    "[/x]" ended the report in a MarkupError traceback."""
    body = "The council said on {} that the bridge would reopen next week after repairs to its deck."
    records = [{"id": f"[b]{k}", "site": site, "text": f"Menu\n{body.format(day)}"}
               for k, (site, day) in enumerate([("[/x]", "Monday"), ("[/x]", "Monday"), ("[bold]s", "Friday"),
                                                 ("[bold]s", "Sunday")])]
    path = write_jsonl(tmp_path / "odd.jsonl", records)
    with path.open("a", encoding="utf-8") as f:
        f.write('{"id": "[red]broken", "text": "never [/red] closed')  # the last line, unterminated
    result = run("scan", str(path), "--site-field", "site", "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert "[/x]" in result.output and "[bold]s" in result.output and "[b]0" in result.output
    assert "bad records skipped" in result.output
    [bad] = json.loads((tmp_path / "r.json").read_text())["bad_records"]
    assert bad["line"] == 5 and bad["reason"] == "invalid JSON: unterminated string starting at column 31"


def test_strict_stops_at_the_first_bad_record_with_65(bad_dump: Path) -> None:
    result = run("scan", str(bad_dump), "--strict")
    assert result.exit_code == 65
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "bad.jsonl:2" in lines[0]
    assert "Traceback" not in result.output


def test_missing_path_exits_66_with_one_line(tmp_path: Path) -> None:
    result = run("scan", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 66
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope.jsonl" in lines[0]


def test_empty_file_is_a_bad_record(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run("scan", str(empty), "--json", "-")
    assert result.exit_code == 0
    assert json.loads(result.output)["bad_records"][0]["reason"] == "empty file"
    assert run("scan", str(empty), "--strict").exit_code == 65


def test_usage_error_exits_2(dump: Path) -> None:
    assert CliRunner().invoke(main, ["scan", str(dump), "--threshold", "7"]).exit_code == 2


@pytest.mark.parametrize("outputs", [["-o", "-", "--json", "-"],
                                     ["-o", "x.jsonl", "--removed", "-", "--stripped", "-"]])
def test_two_outputs_on_stdout_are_a_usage_error(dump: Path, outputs: list[str]) -> None:
    result = CliRunner().invoke(main, ["clean", str(dump), *outputs])
    assert result.exit_code == 2 and "only one output can go to stdout" in result.output
    assert "{" not in result.output  # nothing was written


# -- clean --------------------------------------------------------------------------------------

def test_clean_writes_one_copy_without_chrome_and_keeps_fields(tmp_path: Path, dump: Path) -> None:
    out, removed = tmp_path / "clean.jsonl", tmp_path / "removed.jsonl"
    result = run("clean", str(dump), "-o", str(out), "--removed", str(removed), "--quiet")
    assert result.exit_code == 0
    rows = read_jsonl(out)
    ids = {r["id"] for r in rows}
    assert len(rows) == 18 and "wire.example/0" in ids
    assert not {"daily.example/copy", "herald.example/copy"} & ids
    assert all({"site", "story", "date"} <= r.keys() for r in rows)
    assert all("Sign up for our newsletter" not in r["text"] for r in rows)
    gone = read_jsonl(removed)
    assert {g["id"]: g["kept"] for g in gone} == {"daily.example/copy": "wire.example/0",
                                                  "herald.example/copy": "wire.example/0"}
    assert all(g["similarity"] >= 0.8 and g["reason"] for g in gone)
    lines = dump.read_text().splitlines()  # where each removed record was read, an id may repeat
    assert all(g["source"] == str(dump) and json.loads(lines[g["line"] - 1])["id"] == g["id"] for g in gone)


def test_clean_keep_policies(tmp_path: Path, dump: Path) -> None:
    kept = {}
    for policy in ("first", "longest", "earliest"):
        out = tmp_path / f"{policy}.jsonl"
        assert run("clean", str(dump), "-o", str(out), "--keep", policy, "--quiet").exit_code == 0
        kept[policy] = {r["id"] for r in read_jsonl(out)} & {"wire.example/0", "daily.example/copy",
                                                           "herald.example/copy"}
    assert kept["longest"] == {"wire.example/0"}  # the uncut original
    assert kept["first"] == {"wire.example/0"}  # it comes first in the file
    records = read_jsonl(dump)
    dates = {r["id"]: r["date"] for r in records}
    earliest = min(["wire.example/0", "daily.example/copy", "herald.example/copy"], key=lambda i: (dates[i], i))
    assert kept["earliest"] == {earliest}


def test_clean_annotate_keeps_everything_and_says_why(tmp_path: Path, dump: Path) -> None:
    out = tmp_path / "annotated.jsonl"
    assert run("clean", str(dump), "-o", str(out), "--annotate", "--quiet").exit_code == 0
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert len(rows) == 20
    copy = rows["daily.example/copy"]["dedupe"]
    assert copy["kept"] is False and copy["duplicate_of"] == "wire.example/0"
    assert any(s["text"] == "Sign up for our newsletter" for s in copy["stripped"])
    assert rows["wire.example/0"]["dedupe"]["kept"] is True


def test_removal_guard_refuses_with_3_and_writes_nothing(tmp_path: Path, dump: Path) -> None:
    out = tmp_path / "clean.jsonl"
    out.write_text("previous output\n")
    result = run("clean", str(dump), "-o", str(out), "--max-removed", "0.01")
    assert result.exit_code == 3
    assert "refusing to write" in result.output
    assert out.read_text() == "previous output\n"


def test_clean_folder_in_folder_out(tmp_path: Path) -> None:
    src = tmp_path / "pages"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    text = (SEEDS / "000_a7f39e1f9174dd03.txt").read_text()
    (src / "a" / "one.txt").write_text(text)
    (src / "b" / "two.txt").write_text(text)
    out = tmp_path / "cleaned"
    result = run("clean", str(src), "-o", str(out), "--quiet")
    assert result.exit_code == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) == 2 and files[0] == FOLDER_MARK and files[1] in ("a/one.txt", "b/two.txt")
    cleaned = (out / files[1]).read_text()
    assert "Try Our AI Features" not in cleaned
    assert "Kallas: EU, US together supporting Ukraine can push Russia into ceasefire" in cleaned
    assert run("clean", str(src), "-o", str(out), "--quiet").exit_code == 0  # its own earlier output: replaced


def test_clean_folder_to_stdout_writes_jsonl_not_a_folder_named_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("clean", str(SEEDS), "-o", "-", "--quiet")
    records = [json.loads(line) for line in result.stdout_bytes.decode().splitlines()]
    assert result.exit_code == 0 and not (tmp_path / "-").exists()
    assert len(records) == 2 and {Path(r["path"]).name for r in records} == {p.name for p in SEEDS.glob("*.txt")}
    assert all("Try Our AI Features" not in r["text"] for r in records)


@pytest.mark.parametrize("command", [["scan", "--json"], ["clean", "-o"], ["clean", "-o", "{tmp}/o.jsonl", "--index"]])
def test_an_output_in_a_missing_folder_fails_before_the_scan(tmp_path: Path, dump: Path, command: list[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scan ran before the outputs were checked")

    monkeypatch.setattr(cli_module, "_run_scan", no_scan)
    args = [a.format(tmp=tmp_path) for a in command]
    result = run(args[0], str(dump), *args[1:], str(tmp_path / "missing" / "out.x"))
    assert result.exit_code == 1 and f"folder {tmp_path / 'missing'} does not exist" in result.output


def test_an_index_or_output_inside_a_folder_output_is_a_usage_error(tmp_path: Path) -> None:
    src, out = tmp_path / "pages", tmp_path / "cleaned"
    src.mkdir()
    (src / "one.txt").write_text((SEEDS / "000_a7f39e1f9174dd03.txt").read_text())
    assert run("clean", str(src), "-o", str(out), "--quiet").exit_code == 0
    for option in ("--index", "--removed"):  # the folder is replaced whole on the next run
        result = run("clean", str(src), "-o", str(out), option, str(out / "kept.db"), "--quiet")
        assert result.exit_code == 2 and f"{option} ({out / 'kept.db'}) lies inside -o" in result.output
    assert sorted(p.name for p in out.iterdir()) == [FOLDER_MARK, "one.txt"]


def test_clean_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    src, out = tmp_path / "pages", tmp_path / "mine"
    src.mkdir()
    (src / "one.txt").write_text((SEEDS / "000_a7f39e1f9174dd03.txt").read_text())
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    result = run("clean", str(src), "-o", str(out), "--quiet")
    assert result.exit_code == 1 and "refusing to replace a folder dedupe did not write" in result.output
    assert [p.name for p in out.iterdir()] == ["thesis.docx"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("clean", str(src), "-o", str(empty), "--quiet").exit_code == 0


def test_clean_refuses_to_write_onto_its_input(dump: Path) -> None:
    before = dump.read_bytes()
    result = run("clean", str(dump), "-o", str(dump))
    assert result.exit_code != 0
    assert dump.read_bytes() == before


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_scan_refuses_a_json_report_onto_its_input(dump: Path, engine: str) -> None:
    before = dump.read_bytes()
    result = run("scan", str(dump), "--json", str(dump), "--engine", engine)
    assert result.exit_code == 1 and "refusing to overwrite input" in result.output
    assert dump.read_bytes() == before


@pytest.mark.parametrize("clash", [["--removed", "{out}"], ["--json", "{out}"], ["--stripped", "{dir}/./out.jsonl"],
                                   ["--index", "{out}"]])
def test_two_outputs_naming_one_file_are_a_usage_error(tmp_path: Path, dump: Path, clash: list[str]) -> None:
    out = tmp_path / "out.jsonl"
    option, path = clash[0], clash[1].format(out=out, dir=tmp_path)
    result = run("clean", str(dump), "-o", str(out), option, path)
    assert result.exit_code == 2 and f"-o and {option} name the same file" in result.output
    assert not out.exists()


def test_clean_seeds_keeps_the_kallas_article_and_strips_the_prompts(tmp_path: Path) -> None:
    out = tmp_path / "seeds-clean"
    assert run("clean", str(SEEDS), "-o", str(out), "--quiet").exit_code == 0
    cleaned = (out / "000_a7f39e1f9174dd03.txt").read_text().splitlines()
    original = (SEEDS / "000_a7f39e1f9174dd03.txt").read_text().splitlines()
    start = original.index("Kallas: EU, US together supporting Ukraine can push Russia into ceasefire")
    end = next(i for i, line in enumerate(original) if line.startswith("As for the EU-Japan relationship"))
    for line in original[start : end + 1]:
        assert line in cleaned
    for chrome in ("Try Our AI Features", "Explore what Daily8 AI can do for you:", "No comments yet..."):
        assert chrome not in cleaned


def test_clean_stripped_records_every_chrome_line_it_took(tmp_path: Path, dump: Path) -> None:
    out, stripped = tmp_path / "clean.jsonl", tmp_path / "stripped.jsonl"
    assert run("clean", str(dump), "-o", str(out), "--stripped", str(stripped), "--quiet").exit_code == 0
    records = {r["id"]: r for r in read_jsonl(stripped)}
    cleaned = {r["id"]: r["text"] for r in read_jsonl(out)}
    original = {r["id"]: r["text"] for r in read_jsonl(dump)}
    assert set(records) <= set(cleaned)  # only kept documents lose lines
    for doc_id, record in records.items():
        lines = original[doc_id].splitlines()
        for entry in record["lines"]:
            assert lines[entry["line"] - 1] == entry["text"] and entry["reason"]
            assert entry["text"] not in cleaned[doc_id].splitlines()
    # nothing is lost without a trace: kept text plus stripped lines give back every original line
    for doc_id, text in cleaned.items():
        taken = [e["text"] for e in records.get(doc_id, {"lines": []})["lines"]]
        assert sorted(text.splitlines() + taken) == sorted(line for line in original[doc_id].splitlines() if line)


def test_lone_surrogates_in_texts_and_ids_are_scanned_reported_and_written_back(tmp_path: Path) -> None:
    """A "\\ud800" escape outside a pair is kept by the readers (records round-trip); it is no
    character, but hashing, counting, the terminal report, the JSON report and clean's outputs must
    take it: it comes out as the same escape."""
    body = "The minister said on Tuesday that the talks would resume next week \ud800 and that both sides agreed."
    records = [{"id": f"p{k}\ud800", "site": "x.example",
                "text": f"Menu\nHeadline {k}\n{body}\nRelated \udc00 Articles"} for k in range(4)]
    source = tmp_path / "s.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))  # ASCII: the surrogates as escapes
    report_path = tmp_path / "r.json"
    scanned = run("scan", str(source), "--site-field", "site", "--json", str(report_path))
    assert scanned.exit_code == 0 and "p0\\ud800" in scanned.output
    report = json.loads(report_path.read_text())
    assert report["chrome"]["x.example"][0]["text"] == "Related \udc00 Articles"
    to_stdout = run("scan", str(source), "--site-field", "site", "--json", "-")
    on_stdout = json.loads(to_stdout.stdout_bytes)
    assert to_stdout.exit_code == 0 and on_stdout.keys() == report.keys()
    assert [k for k in report if on_stdout[k] != report[k]] in (["run_id"], ["run_id", "timings"])  # timings may tie
    assert [len(c["members"]) for c in report["document_clusters"]] == [4]
    cleaned = tmp_path / "c.jsonl"
    assert run("clean", str(source), "--site-field", "site", "-q", "-o", str(cleaned)).exit_code == 0
    [kept] = read_jsonl(cleaned)
    assert kept["id"] == "p0\ud800" and body in kept["text"] and "Related" not in kept["text"]
    index = str(tmp_path / "archive.db")  # archived by a nightly run, and known to the next
    for night in ("n1.jsonl", "n2.jsonl"):
        assert run("clean", str(source), "--site-field", "site", "-q", "-o", str(tmp_path / night),
                   "--index", index).exit_code == 0
    assert read_jsonl(tmp_path / "n2.jsonl") == read_jsonl(tmp_path / "n1.jsonl") == [kept]
    exported = run("index", "export", index)
    assert exported.exit_code == 0
    rows = [json.loads(line) for line in exported.output.splitlines()]
    assert [(r["id"], r["site"]) for r in rows if r["copy_of"] is None] == [("p0\ud800", "x.example")]
    assert sorted((r["id"], r["copy_of"]) for r in rows if r["copy_of"]) == [(f"p{k}\ud800", "p0\ud800")
                                                                           for k in (1, 2, 3)]
