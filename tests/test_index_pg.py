"""What only the PostgreSQL index has: URLs (schemas, redaction, a missing driver, an unreachable
server), the advisory writer lock between connections, and the same archive as the SQLite index.
The behaviours both indexes share are tested against both in test_index.py."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dedupe import Settings, scan
from dedupe.errors import DedupeError
from dedupe.index import SQLiteIndex, index_name, open_index
from dedupe.index_base import IndexBusy, IndexWriteError

from .conftest import IndexBackend, _free_port, site_dump
from .test_index import BATCH, _docs, _run, cli, write_jsonl


@pytest.fixture
def pg(postgres_url: str, tmp_path: Path) -> Iterator[IndexBackend]:
    made = IndexBackend("postgres", tmp_path, postgres_url)
    try:
        yield made
    finally:
        made.drop()


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, host = parts.netloc.rsplit("@", 1) if "@" in parts.netloc else ("postgres", parts.netloc)
    return parts._replace(netloc=f"{user.split(':', 1)[0]}:{password}@{host}").geturl()


# -- URLs ----------------------------------------------------------------------------------------------

def test_a_url_without_psycopg_installed_is_a_one_line_usage_error(tmp_path: Path, rng: random.Random,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails, as when not installed
    batch = write_jsonl(tmp_path / "night.jsonl", site_dump(rng)[:BATCH])
    for args in (["clean", batch, "-o", tmp_path / "o.jsonl"], ["scan", batch], []):
        code, out = cli(*args, "--index", "postgresql://news:hunter2@db.example/archive", "-q") if args else \
            cli("index", "stats", "postgres://news:hunter2@db.example/archive")
        assert code == 2 and "Traceback" not in out and "hunter2" not in out, out
        [line] = [ln for ln in out.splitlines() if "psycopg" in ln]
        assert "pip install 'dedupe[postgres]'" in line
    assert not (tmp_path / "o.jsonl").exists()


def test_an_unreachable_server_exits_75_without_showing_the_password(tmp_path: Path, rng: random.Random) -> None:
    pytest.importorskip("psycopg", reason="needs psycopg: pip install 'dedupe[postgres]'")
    batch = write_jsonl(tmp_path / "night.jsonl", site_dump(rng)[:BATCH])
    url = f"postgresql://news:hunter2@127.0.0.1:{_free_port()}/archive?password=hunter2&schema=nightly"
    code, out = cli("clean", batch, "-o", tmp_path / "o.jsonl", "--index", url, "-q")
    assert code == 75 and "hunter2" not in out and "Traceback" not in out
    assert [ln for ln in out.splitlines() if "cannot connect" in ln and "news:***@127.0.0.1" in ln]
    assert not (tmp_path / "o.jsonl").exists()


def test_redacted_names_keep_everything_but_the_password() -> None:
    assert index_name("postgresql://u:p%40ss@h:5433/db?schema=news&sslmode=require") == \
        "postgresql://u:***@h:5433/db?schema=news&sslmode=require"
    assert index_name("postgres://h/db?password=x&schema=a") == "postgres://h/db?password=***&schema=a"
    assert index_name("/var/lib/dedupe/archive.idx") == "/var/lib/dedupe/archive.idx"


def test_a_bad_schema_name_is_a_one_line_error(tmp_path: Path, rng: random.Random) -> None:
    pytest.importorskip("psycopg", reason="needs psycopg: pip install 'dedupe[postgres]'")
    batch = write_jsonl(tmp_path / "night.jsonl", site_dump(rng)[:BATCH])
    code, out = cli("scan", batch, "--index", "postgresql://h/db?schema=bad;drop", "-q")
    assert code == 1 and "Traceback" not in out
    assert [ln for ln in out.splitlines() if "'bad;drop' is not a plain name" in ln]


def test_passwords_never_reach_logs_reports_or_stats(pg: IndexBackend, tmp_path: Path, rng: random.Random) -> None:
    assert pg.url is not None
    password = urlsplit(pg.url).password or "not-checked-by-trust-auth"
    url = _with_password(pg.spec(), password)
    try:
        open_index(url, readonly=True).close()
    except DedupeError:
        pytest.skip("the test server checks passwords and its URL has none")
    batch = write_jsonl(tmp_path / "night.jsonl", site_dump(rng)[:BATCH])
    code, out = cli("clean", batch, "-o", tmp_path / "o.jsonl", "--index", url, "--log-format", "json",
                    "--json", tmp_path / "report.json")
    assert code == 0
    report = (tmp_path / "report.json").read_text()
    assert json.loads(report)["index"]["path"] == index_name(url) and ":***@" in index_name(url)
    outputs = [out, report, cli("index", "stats", url, "--json")[1], cli("index", "stats", url)[1],
               cli("index", "vacuum", url)[1], cli("index", "forget", url, "--before", "1970-01-01")[1]]
    assert all(password not in text for text in outputs)


# -- the writer lock -------------------------------------------------------------------------------------

def test_a_second_connection_is_busy_until_the_writer_lets_go(pg: IndexBackend) -> None:
    from dedupe.index_pg import PostgresLock

    first = PostgresLock(pg.spec(), run_id="night-1")
    first.acquire()
    try:
        with pytest.raises(IndexBusy, match=r"in use by pid \d+ on .* since .*, run night-1") as busy:
            PostgresLock(pg.spec()).acquire()
        assert busy.value.exit_code == 75
        started = time.monotonic()
        with pytest.raises(IndexBusy, match=r"after waiting 0\.3s"):
            PostgresLock(pg.spec(), wait=0.3).acquire()
        assert time.monotonic() - started >= 0.3
        with PostgresLock(pg.spec("another")):  # another schema is another index: its own lock
            pass
        threading.Timer(0.3, first.release).start()
        with PostgresLock(pg.spec(), wait=10):  # --wait: taken once the first writer lets go
            pass
    finally:
        first.release()


def test_a_stop_request_ends_the_wait_for_the_lock(pg: IndexBackend) -> None:
    from dedupe.index_pg import PostgresLock

    class Stop(Exception):
        pass

    def stop() -> None:
        raise Stop

    with PostgresLock(pg.spec()), pytest.raises(Stop):
        PostgresLock(pg.spec(), wait=30, should_stop=stop).acquire()


# -- schemas ---------------------------------------------------------------------------------------------

def test_several_indexes_share_one_database_one_schema_each(pg: IndexBackend, rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    with pg.open("news") as news, pg.open("blogs") as blogs:
        _run(news, docs[:BATCH], Settings(), "n1")
        # the same batch again, in the other index: archived there too (one shared archive would add nothing)
        assert _run(blogs, docs[:BATCH], Settings(), "b1") == {d.id for d in docs[:BATCH]}
        assert (news.count(), blogs.count()) == (BATCH, BATCH)
        assert [r["run_id"] for r in news.stats()["recent_runs"]] == ["n1"]
    assert pg.integrity("news") == "ok" and pg.integrity("blogs") == "ok"


def test_a_schema_of_other_tables_is_refused_and_left_alone(pg: IndexBackend) -> None:
    other = pg.not_an_index()
    for readonly in (True, False):
        with pytest.raises(DedupeError, match=r"not a dedupe index .*holds other tables: t"):
            open_index(other, readonly=readonly)
    pg.sql("CREATE TABLE meta (key text, value text)", "other")
    pg.sql("INSERT INTO meta VALUES ('schema_version', '1')", "other")
    with pytest.raises(DedupeError, match="meta table of another application"):
        open_index(other)
    assert sorted(pg.sql("SELECT count(*) FROM t", "other")) == [(0,)]


# -- the same archive in both backends ----------------------------------------------------------------

def test_a_write_the_server_refuses_rolls_back_and_is_one_line_error(pg: IndexBackend) -> None:
    with pg.open() as index:
        with pytest.raises(IndexWriteError, match="cannot write") as refused, index._transaction() as conn:
            conn.execute("INSERT INTO meta VALUES ('half', 'done')")
            conn.execute("SELECT no_such_column FROM meta")
        assert refused.value.exit_code == 74
        assert index._query("SELECT count(*) FROM meta WHERE key = 'half'") == [(0,)]
        with pytest.raises(IndexWriteError, match="cannot write") as lost, index._transaction() as conn:
            conn.execute("INSERT INTO meta VALUES ('half', 'done')")
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the server ends the session
        assert lost.value.exit_code == 75  # a later attempt may find the server back
    with pg.open(readonly=True) as index:
        assert index._query("SELECT count(*) FROM meta WHERE key = 'half'") == [(0,)]


def test_sqlite_and_postgres_archive_the_same_rows(pg: IndexBackend, tmp_path: Path, rng: random.Random) -> None:
    docs = _docs(site_dump(rng))
    settings = Settings(keep="first", story=False)
    one_shot = {o.id for o in scan(docs, settings).outcomes if o.kept}
    with SQLiteIndex(tmp_path / "idx", settings) as lite, pg.open(settings=settings) as post:
        kept = {"sqlite": set(), "postgres": set()}
        for lo in range(0, len(docs), BATCH):
            for name, index in (("sqlite", lite), ("postgres", post)):
                kept[name] |= _run(index, docs[lo : lo + BATCH], settings, f"night{lo}")
        assert kept["sqlite"] == kept["postgres"] == one_shot

        def rows(index: object) -> list[dict]:
            return [{k: v for k, v in r.items() if k != "added_at"} for r in index.export()]  # type: ignore[attr-defined]

        assert rows(lite) == rows(post)
        assert lite.all_chrome() == post.all_chrome()
        assert lite.settings == post.settings
        lite_stats, post_stats = lite.stats(), post.stats()
        for key in ("documents", "sites", "chrome_sites", "chrome_lines", "runs", "banding"):
            assert lite_stats[key] == post_stats[key], key
        assert [r["run_id"] for r in lite_stats["recent_runs"]] == [r["run_id"] for r in post_stats["recent_runs"]]
        new = scan(docs[-3:], settings).archive_rows
        assert new is not None
        assert sorted(lite.candidates(new).ids) == sorted(post.candidates(new).ids) != []
        # lookups plan as index probes only for themselves: the session's planner settings are untouched
        assert post._query("SELECT current_setting('enable_hashjoin'), current_setting('jit')") == \
            [(*pg.sql("SELECT current_setting('enable_hashjoin'), current_setting('jit')")[0],)]
