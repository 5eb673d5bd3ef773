"""The Dask engine gives the local engine's results: kept documents, chrome, document, paragraph and
story clusters, whatever the partitioning, the components method or the scheduler."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dedupe import engine_dask
from dedupe.cli import main
from dedupe.dask_graph import scipy_labels, star_labels
from dedupe.dask_io import dask_scheduler
from dedupe.engine_dask import DaskOptions, scan_dask
from dedupe.errors import DedupeError, OutputError
from dedupe.pipeline import ScanResult, Settings, scan
from dedupe.readers import read_documents
from dedupe.writers import FOLDER_MARK

from .conftest import SEEDS, edit_words, random_text, site_dump

dd = pytest.importorskip("dask.dataframe")


def corpus(rng: random.Random) -> list[dict]:
    """Sites with chrome, a wire story syndicated and cut, whole-page copies, light edits of
    articles (near copies), and ids that do not follow input order (tie-breaks by id matter)."""
    records = [{k: v for k, v in r.items() if k not in ("body", "story")} for r in site_dump(rng)]
    extra = []
    for k, r in enumerate(records[:4]):
        extra.append({**r, "id": f"a-copy-{k}"})  # the same page again: exact, ranks before the original
    for k, r in enumerate(records[4:10]):
        extra.append({**r, "id": f"edit-{k}", "text": edit_words(rng, r["text"], 0.015)})
    loose = [{"id": f"z-{k}", "site": "blog.example", "text": random_text(rng, 120)} for k in range(6)]
    loose.append({**loose[0], "id": "b-loose-copy", "text": loose[0]["text"] + " And one more sentence here."})
    # The seed page carries the Akazawa story twice in other words: a paragraph story cluster.
    seeds = [{"id": f"seed-{p.name}", "site": "daily8.example", "text": p.read_text(encoding="utf-8")}
             for p in sorted(SEEDS.glob("*.txt"))]
    out = records + extra + loose + seeds
    rng.shuffle(out)
    for r in out:
        r["date"] = f"2025-07-{rng.randint(1, 28):02d}"
    return out


def shards(tmp_path: Path, records: list[dict], count: int) -> list[str]:
    """Records split into `count` consecutive JSONL shards, in input order."""
    folder = tmp_path / f"shards-{count}"
    folder.mkdir()
    bounds = np.linspace(0, len(records), count + 1).astype(int)
    paths = []
    for k in range(count):
        path = folder / f"part-{k:02d}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records[bounds[k]:bounds[k + 1]]), encoding="utf-8")
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return corpus(random.Random(20261123))


def local_scan(paths: list[str], settings: Settings) -> ScanResult:
    docs, bad = read_documents(paths)
    return scan(docs, settings, bad=bad)


def dask_scan(paths: list[str], settings: Settings, scheduler: object = "sync", **options: object) -> ScanResult:
    with dask_scheduler(scheduler):
        return scan_dask(paths, settings, options=DaskOptions(collect_outcomes=True, **options)).result  # type: ignore[arg-type]


def assert_same(local: ScanResult, other: ScanResult) -> None:
    assert other.document_clusters == local.document_clusters
    assert other.paragraph_clusters == local.paragraph_clusters
    assert other.outcomes == local.outcomes  # kept flags, copies kept, similarities, stripped chrome
    assert other.chrome == local.chrome
    assert other.chrome_stats == local.chrome_stats
    assert other.stats == local.stats
    assert other.bad == local.bad


@pytest.mark.parametrize("keep", ["longest", "first", "earliest"])
def test_dask_engine_gives_the_local_engines_clusters_and_kept_documents(tmp_path: Path, records: list[dict],
                                                                         keep: str) -> None:
    settings = Settings(keep=keep)  # type: ignore[arg-type]
    paths = shards(tmp_path, records, 3)
    local = local_scan(paths, settings)
    kinds = {c.kind for c in local.document_clusters}
    assert {"exact", "near"} <= kinds and local.stats.removable_documents >= 8 and local.stats.chrome_paragraphs > 50
    assert local.stats.paragraph_clusters["story"] >= 1
    assert_same(local, dask_scan(paths, settings))


def test_results_do_not_depend_on_partitions_or_components_method(tmp_path: Path, records: list[dict]) -> None:
    settings = Settings()
    one = dask_scan(shards(tmp_path, records, 1), settings)
    many = dask_scan(shards(tmp_path, records, 5), settings, shuffle_partitions=7, components="star")
    assert len(one.document_clusters) >= 8
    assert_same(one, many)


def test_two_worker_local_cluster_gives_the_local_engines_results(tmp_path: Path, records: list[dict]) -> None:
    distributed = pytest.importorskip("distributed")
    settings = Settings()
    paths = shards(tmp_path, records, 4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        result = dask_scan(paths, settings, scheduler=client)
    assert_same(local_scan(paths, settings), result)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_star_small_star_finds_scipys_components(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    edges = rng.integers(0, n, size=(300, 2)) * 7  # sparse node ids, many small components, some chains
    chain = np.stack([np.arange(50, 90), np.arange(51, 91)], axis=1) * 7
    pairs = np.concatenate([edges, chain])
    frame = dd.from_pandas(pd.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1]}), npartitions=3)
    with dask_scheduler("sync"):
        labels, rounds = star_labels(frame, npartitions=4)
        star = labels.compute().sort_values("node").reset_index(drop=True)
    expected = scipy_labels(pairs[pairs[:, 0] != pairs[:, 1]]).sort_values("node").reset_index(drop=True)
    assert rounds >= 2
    pd.testing.assert_frame_equal(star, expected, check_dtype=False)


def test_parquet_shards_read_like_jsonl(tmp_path: Path, records: list[dict]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    paths = shards(tmp_path, records, 2)
    parquet = []
    for k, path in enumerate(paths):
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
        target = tmp_path / f"part-{k}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), target)
        parquet.append(str(target))
    settings = Settings(story=False)
    assert_same(dask_scan(paths, settings), dask_scan(parquet, settings))


# -- the command ----------------------------------------------------------------------------------

def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_clean_writes_one_shard_per_partition_with_the_local_output(tmp_path: Path, records: list[dict]) -> None:
    paths = shards(tmp_path, records, 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.jsonl").write_text("{}\n")  # a previous output is replaced whole
    (out / FOLDER_MARK).write_text("")
    result = run("clean", str(Path(paths[0]).parent / "*.jsonl"), "-o", str(out), "--engine", "dask",
                 "--removed", str(tmp_path / "removed"), "--json", str(tmp_path / "report.json"), "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [FOLDER_MARK, "part-00000.jsonl", "part-00001.jsonl",
                                                     "part-00002.jsonl"]
    assert run("clean", *paths, "-o", str(tmp_path / "local.jsonl"), "--removed", str(tmp_path / "removed.jsonl"),
               "--no-story", "-q").exit_code == 0
    sharded = "".join((out / f"part-{k:05d}.jsonl").read_text(encoding="utf-8") for k in range(3))
    assert sharded == (tmp_path / "local.jsonl").read_text(encoding="utf-8")
    removed = "".join(p.read_text(encoding="utf-8") for p in sorted((tmp_path / "removed").glob("part-*")))
    assert removed == (tmp_path / "removed.jsonl").read_text(encoding="utf-8") and removed
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["engine"]["name"] == "dask" and report["settings"]["story"] is True
    assert report["stats"]["paragraph_clusters"]["story"] >= 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_failed_write_leaves_the_previous_output_whole(tmp_path: Path, records: list[dict],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    paths = shards(tmp_path, records, 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.jsonl").write_text("{}\n")
    (out / FOLDER_MARK).write_text("")
    real = engine_dask._write_shard

    def failing(part, path, *args):  # type: ignore[no-untyped-def]
        if path.endswith("part-00002.jsonl"):
            raise OSError("disk full")
        return real(part, path, *args)

    monkeypatch.setattr(engine_dask, "_write_shard", failing)
    with dask_scheduler("sync"):
        done = scan_dask(paths, Settings(story=False))
        with pytest.raises(OutputError, match="out: cannot write: disk full"):  # one line, exit 74
            done.write_shards(out)
    assert sorted(p.name for p in out.iterdir()) == [FOLDER_MARK, "previous.jsonl"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--scheduler", "sync", "--engine", "local"], 2, "--scheduler only applies with --engine dask"),
    (["--scheduler", "bogus"], 1, "unknown --scheduler 'bogus'"),
    (["--scheduler", "local:0"], 1, "at least 1"),
    (["--engine", "dask", "--index", "INDEX"], 1, "--index is not supported with --engine dask"),
])
def test_engine_usage_errors_are_one_line(tmp_path: Path, records: list[dict], args: list[str], code: int,
                                          message: str) -> None:
    path = shards(tmp_path, records, 1)[0]
    args = [str(tmp_path / "i.idx") if a == "INDEX" else a for a in args]
    result = run("scan", path, "-q", *args)
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output


def test_inputs_the_dask_engine_cannot_read_are_refused(tmp_path: Path, records: list[dict]) -> None:
    path = shards(tmp_path, records, 1)[0]
    missing = run("scan", str(tmp_path / "nothing-*.jsonl"), "--engine", "dask", "-q")
    assert missing.exit_code == 66 and "no file matches" in missing.output
    stdin = run("scan", "-", "--engine", "dask", "-q")
    assert stdin.exit_code == 1 and "not standard input" in stdin.output
    onto = run("clean", str(Path(path).parent / "*.jsonl"), "-o", str(Path(path).parent), "--engine", "dask", "-q")
    assert onto.exit_code == 1 and "refusing to replace a folder that holds input" in onto.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "fine text here"}\nnot json\n')
    strict = run("scan", str(bad), "--engine", "dask", "--strict", "-q")
    assert strict.exit_code == 65 and "bad.jsonl:2" in strict.output


def test_missing_dask_names_the_extra(tmp_path: Path, records: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    path = shards(tmp_path, records, 1)[0]
    monkeypatch.setitem(sys.modules, "dask", None)
    result = run("scan", path, "--scheduler", "local:2", "-q")
    assert result.exit_code == 1
    assert "pip install 'dedupe[dask]'" in result.output


def test_scheduler_spec_errors_do_not_start_anything() -> None:
    with pytest.raises(DedupeError, match="whole number"), dask_scheduler("local:two"):
        pass
