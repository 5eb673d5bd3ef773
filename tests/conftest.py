"""Shared test data: small dumps the tests build themselves."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    return _sentences(rng, [rng.choice(_STOP) if rng.random() < 0.45 else rng.choice(_WORDS) for _ in range(n_words)])


def _sentences(rng: random.Random, words: list[str]) -> str:
    """The words cut into sentences of 8 to 16, each capitalised and closed by a full stop."""
    sentences, k = [], 0
    while k < len(words):
        step = rng.randint(8, 16)
        sentences.append(" ".join(words[k : k + step]).capitalize() + ".")
        k += step
    return " ".join(sentences)


def foreign_text(rng: random.Random, n_words: int) -> str:
    """Sentences with no English stop word: prose of a language the stop-word list does not cover,
    so page cues cannot tell it from chrome and only recurrence can."""
    return _sentences(rng, [rng.choice(_WORDS) for _ in range(n_words)])


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


# --- index backends: SQLite files and a PostgreSQL server -------------------------------------------

POSTGRES_ENV = "DEDUPE_TEST_POSTGRES_URL"


def _postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), if installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent.parent.name)
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(args: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the index tests: $DEDUPE_TEST_POSTGRES_URL, else a throwaway cluster
    started here when the server programs are installed, else the tests skip saying why."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("PostgreSQL index tests need psycopg: pip install 'dedupe[postgres]'")
    url = os.environ.get(POSTGRES_ENV)
    if url:
        with psycopg.connect(url, connect_timeout=10):  # set but unreachable: an error, not a skip
            pass
        yield url
        return
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} or install PostgreSQL (initdb, pg_ctl)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("no PostgreSQL server: running as root without runuser to start one as postgres")
    base = Path(tempfile.mkdtemp(prefix="dedupe-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                    "-E", "UTF8", "--locale=C", "--no-sync"]), check=True, capture_output=True)
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off")
    subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                                    "-o", options, "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


class IndexBackend:
    """Where a test's indexes live: files under a folder (sqlite), or schemas of one PostgreSQL
    database unique to the test (postgres), dropped afterwards."""

    def __init__(self, kind: str, folder: Path, url: str | None = None) -> None:
        self.kind, self.folder, self.url = kind, folder, url
        self.prefix = f"t{uuid.uuid4().hex[:12]}"

    def spec(self, name: str = "idx") -> str:
        """The `--index` value of the index called `name`."""
        if self.url is None:
            return str(self.folder / name)
        return with_schema(self.url, f"{self.prefix}_{name}")

    def open(self, name: str = "idx", settings: Any = None, *, readonly: bool = False,
             check_banding: bool = True) -> Any:
        from dedupe.index import open_index

        return open_index(self.spec(name), settings, readonly=readonly, check_banding=check_banding)

    def sql(self, statement: str, name: str = "idx") -> list[tuple[Any, ...]]:
        """Run SQL both databases speak on the index's tables, outside dedupe, and commit it."""
        if self.url is None:
            with contextlib.closing(sqlite3.connect(self.folder / name)) as conn, conn:
                return conn.execute(statement).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.prefix}_{name}"')
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def count(self, name: str = "idx", kept_only: bool = False) -> int:
        """Archived rows (`kept_only`: not those of removed copies)."""
        where = " WHERE copy_of IS NULL" if kept_only else ""
        return int(self.sql(f"SELECT count(*) FROM documents{where}", name)[0][0])

    def exists(self, name: str = "idx") -> bool:
        from dedupe.index import index_exists

        return index_exists(self.spec(name))

    def integrity(self, name: str = "idx") -> str:
        """"ok" if the storage is sound and every archived document has all its rows (a run's
        transaction committed whole or not at all); else what is wrong."""
        problems = []
        if self.url is None:
            problems += [r[0] for r in self.sql("PRAGMA integrity_check", name) if r[0] != "ok"]
        bands = int(self.sql("SELECT value FROM meta WHERE key = 'bands'", name)[0][0])
        checks = {
            "band rows without a document": "SELECT count(*) FROM bands b WHERE NOT EXISTS "
                                            "(SELECT 1 FROM documents d WHERE d.doc_id = b.doc_id)",
            "paragraph keys without a document": "SELECT count(*) FROM paragraph_keys p WHERE NOT EXISTS "
                                                 "(SELECT 1 FROM documents d WHERE d.doc_id = p.doc_id)",
            "documents with a partial set of band keys": "SELECT count(*) FROM documents d WHERE (SELECT count(*) "
                                                         f"FROM bands b WHERE b.doc_id = d.doc_id) NOT IN (0, {bands})",
            "chrome lines without a site": "SELECT count(*) FROM chrome_keys k WHERE NOT EXISTS "
                                           "(SELECT 1 FROM chrome c WHERE c.site_id = k.site_id)",
        }
        for what, statement in checks.items():
            found = int(self.sql(statement, name)[0][0])
            if found:
                problems.append(f"{found} {what}")
        return "; ".join(problems) or "ok"

    def fingerprint(self, name: str = "idx") -> tuple[Any, ...]:
        """Changes whenever anything is written to the index."""
        if self.url is None:
            stat = (self.folder / name).stat()
            return stat.st_mtime_ns, stat.st_size
        return tuple(self.sql(f"SELECT (SELECT count(*) FROM {table}), (SELECT md5(string_agg(t::text, ',' ORDER BY "
                              f"t::text)) FROM {table} t)", name)[0]
                     for table in ("meta", "documents", "bands", "paragraph_keys", "chrome", "chrome_keys", "runs"))

    def not_an_index(self) -> str:
        """The spec of something that is not a dedupe index: a text file, or a schema of other tables."""
        if self.url is None:
            other = self.folder / "notes.txt"
            other.write_text("not a database\n" * 100)
            return str(other)
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.prefix}_other"')
            conn.execute(f'CREATE TABLE "{self.prefix}_other".t (x int)')
        return self.spec("other")

    def drop(self) -> None:
        if self.url is None:
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                          (f"{self.prefix}\\_%",)).fetchall():
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_backend(kind: str, folder: Path, request: pytest.FixtureRequest) -> IndexBackend:
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    return IndexBackend(kind, folder, url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexBackend]:
    """Each index test runs against an SQLite file and against a PostgreSQL schema."""
    made = make_backend(request.param, tmp_path, request)
    try:
        yield made
    finally:
        made.drop()
