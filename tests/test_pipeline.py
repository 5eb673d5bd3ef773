"""The whole scan on small dumps: clusters found, chrome stripped, decisions deterministic."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import Document, Settings, StorySettings, page_chrome, results, scan
from dedupe import story as story_stage

from .conftest import SEEDS, site_dump


def _docs(records: list[dict]) -> list[Document]:
    return [Document(r["id"], r["text"], r["site"]) for r in records]


@pytest.mark.parametrize(("field", "value"), [("threshold", 2.0), ("threshold", 0.0), ("containment", 1.5),
                                              ("jobs", 0), ("batch_size", 0), ("ngram", 0), ("num_perm", 0),
                                              ("min_words", -1), ("keep", "newest")])
def test_settings_no_scan_can_use_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"Settings.{field} must be"):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_seed_story_cluster_pairs_jiji_and_nhk_not_the_summit() -> None:
    docs = [Document(p.name, p.read_text()) for p in sorted(SEEDS.iterdir())]
    result = scan(docs)
    stories = [c for c in result.paragraph_clusters if c.kind == "story"]
    page = docs[0].text.splitlines()
    texts = {(m.id, m.paragraph): m for c in stories for m in c.members}
    from dedupe import split_paragraphs

    paragraphs = split_paragraphs(docs[0].text)
    jiji = next(i for i, p in enumerate(paragraphs) if "(Jiji Press)" in p.text)
    nhk = next(i for i, p in enumerate(paragraphs) if p.text.startswith("Japan's top negotiator for trade talks"))
    summit = next(i for i, p in enumerate(paragraphs) if p.text.startswith("TOKYO (Kyodo)"))
    pair = {(docs[0].id, jiji), (docs[0].id, nhk)}
    together = [c for c in stories if pair <= {(m.id, m.paragraph) for m in c.members}]
    assert len(together) == 1
    assert (docs[0].id, summit) not in texts
    assert page  # the seed is read as it is


def test_syndicated_copies_in_other_chrome_form_one_document_cluster(rng: random.Random) -> None:
    records = site_dump(rng)
    result = scan(_docs(records))
    near = [c for c in result.document_clusters if c.kind in ("exact", "near")]
    assert len(near) == 1
    members = {m.id for m in near[0].members}
    assert members == {"wire.example/0", "daily.example/copy", "herald.example/copy"}
    # the longest copy (the original, uncut) is kept; the two cut copies are removed
    removed = {o.id: o.duplicate_of for o in result.outcomes if not o.kept}
    assert removed == {"daily.example/copy": "wire.example/0", "herald.example/copy": "wire.example/0"}


def test_site_chrome_is_stripped_and_article_text_kept(rng: random.Random) -> None:
    records = site_dump(rng)
    result = scan(_docs(records))
    for record, outcome in zip(records, result.outcomes, strict=True):
        stripped = {p.text for p in outcome.stripped}
        assert "Sign up for our newsletter" in stripped or record["site"] != "daily.example"
        assert not stripped & set(record["body"]), record["id"]  # no article line lost
        assert any(p.text.endswith("hours ago") for p in outcome.stripped)


def test_exact_copies_of_one_page_are_an_exact_cluster(rng: random.Random) -> None:
    records = site_dump(rng)
    twin = dict(records[0], id="daily.example/0-again")
    result = scan(_docs([*records, twin]))
    exact = [c for c in result.document_clusters if c.kind == "exact"]
    assert [sorted(m.id for m in c.members) for c in exact] == [["daily.example/0", "daily.example/0-again"]]
    # a twin page's lines recur only inside its copy group: they must not turn into chrome
    first = next(o for o in result.outcomes if o.id == "daily.example/0")
    assert not {p.text for p in first.stripped} & set(records[0]["body"])


def test_removable_bytes_are_the_removed_copies_utf8_bytes(rng: random.Random) -> None:
    """ASCII pages are counted by their characters, the others encoded."""
    records = site_dump(rng)
    records[1]["text"] += "\n\nSociété Générale — новости, 東京"
    twins = [dict(records[k], id=f"{records[k]['id']}-again") for k in (0, 1)]
    docs = _docs([*records, *twins])
    result = scan(docs)
    removed = [d for d, o in zip(docs, result.outcomes, strict=True) if not o.kept]
    assert len(removed) >= 2 and any(not d.text.isascii() for d in removed)
    assert result.stats.removable_bytes == sum(len(d.text.encode("utf-8")) for d in removed)


def test_same_clusters_and_kept_copies_whatever_the_order(rng: random.Random) -> None:
    records = site_dump(rng)
    shuffled = list(records)
    random.Random(5).shuffle(shuffled)

    def summary(rs: list[dict]) -> tuple:
        res = scan(_docs(rs))
        clusters = sorted((c.kind, c.level, tuple(sorted((m.id, m.paragraph) for m in c.members)))
                          for c in res.document_clusters + res.paragraph_clusters)
        kept = sorted(o.id for o in res.outcomes if o.kept)
        return clusters, kept

    assert summary(records) == summary(shuffled)


def test_paragraphs_are_lines_unless_a_block_is_hard_wrapped_prose() -> None:
    from dedupe.segment import Paragraph, split_paragraphs

    text = ("Home | News | Sport\r\nRelated Articles\n\n  \n"
            "The minister said on Tuesday that the talks\nwould resume next week in Washington, and\n"
            "that both sides expected an agreement.\n\n\tSign up for our newsletter \n")
    assert split_paragraphs(text) == [
        Paragraph("Home | News | Sport", 1, 1), Paragraph("Related Articles", 2, 2),
        Paragraph("The minister said on Tuesday that the talks would resume next week in Washington, and that "
                  "both sides expected an agreement.", 5, 7),
        Paragraph("Sign up for our newsletter", 9, 9)]
    assert split_paragraphs("") == [] and split_paragraphs("\n \n") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Home", "a page", "x" * 70, "y" * 70 + ".", "The end.", "and so on", "z" * 59,
                                 "w" * 60 + " ", "Related Articles”"]), max_size=12))
def test_a_block_is_joined_exactly_when_most_of_its_breaks_fall_mid_sentence(lines: list[str]) -> None:
    """The majority rule, which stops reading a block once it is decided, gives what counting every break gives."""
    from itertools import pairwise

    from dedupe.segment import _SENTENCE_END, _looks_wrapped

    mid = sum(not a.rstrip().endswith(_SENTENCE_END) and (b[:1].islower() or len(a) >= 60) for a, b in pairwise(lines))
    assert _looks_wrapped(lines) == (len(lines) > 1 and 2 * mid > len(lines) - 1)


_PIECES = ["Home", "a page", "x" * 70, "The end.", "and so on", " ", "\t", "\u00a0", "é", "\n", "\r\n", "\r", "\n\n",
           "\x0b", "\x1c", "\x85", "\u2028", "  indented"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_a_paragraph_is_found_again_from_where_it_lies(pieces: list[str]) -> None:
    """Stages after segmentation keep a paragraph's place, not its text: the text read back from the
    document is the paragraph's, for every kind of line break, blank space and wrapped block."""
    from dedupe.segment import paragraph_text, split_paragraphs, split_spans

    text = "".join(pieces)
    paragraphs = split_paragraphs(text)
    found = split_spans(text)
    assert (found.texts, found.lines, found.ends) == ([p.text for p in paragraphs], [p.line for p in paragraphs],
                                                      [p.end for p in paragraphs])
    spans = list(zip(paragraphs, found.starts, found.stops, strict=True))
    assert [paragraph_text(text, a, b, p.end != p.line) for p, a, b in spans] == [p.text for p in paragraphs]
    assert all(text[a:b] == p.text for p, a, b in spans if p.line == p.end)


def test_settings_switch_stages_off(rng: random.Random) -> None:
    result = scan(_docs(site_dump(rng)), Settings(chrome=False, story=False))
    assert result.stats.chrome_paragraphs == 0
    assert not [c for c in result.document_clusters if c.kind == "story"]


def test_worker_processes_give_the_same_result(rng: random.Random, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _docs(site_dump(rng)) + [Document(p.name, p.read_text()) for p in sorted(SEEDS.iterdir())]
    # Small work units, so that signing, chrome verdicts and story blocks are all split among workers
    # (with two, the paragraph level runs in a forked process beside the copy stages and the story's
    # document level; with three, each level's blocks are split).
    monkeypatch.setattr(page_chrome, "_CHROME_SPAN", 3)
    monkeypatch.setattr(story_stage, "StorySettings", functools.partial(StorySettings, block_rows=4))

    def summary(settings: Settings) -> tuple:
        res = scan(docs, settings)
        return ([(c.kind, [(m.id, m.paragraph, m.similarity) for m in c.members]) for c in res.document_clusters
                 + res.paragraph_clusters], [(o.kept, o.stripped) for o in res.outcomes])

    one = summary(Settings(batch_size=4))
    assert any(c[0] == "story" for c in one[0]) and any(stripped for _, stripped in one[1])
    assert one == summary(Settings(batch_size=4, jobs=2))
    assert one == summary(Settings(batch_size=4, jobs=3))


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_documents_sharing_no_paragraph_scan_in_any_number_of_processes(jobs: int) -> None:
    docs = [Document("a", "The council approved the new harbour budget after a long debate on Monday."),
            Document("b", "Heavy snow closed the mountain pass and stranded dozens of lorries overnight.")]
    result = scan(docs, Settings(jobs=jobs))
    assert result.document_clusters == [] and result.paragraph_clusters == []
    assert [o.kept for o in result.outcomes] == [True, True]


@pytest.mark.parametrize("seed", range(3))
def test_a_preview_is_the_first_words_of_the_text(seed: int) -> None:
    """`_preview` splits no further than it needs to, and gives what splitting everything gives."""
    rng = random.Random(seed)
    pieces = ["word", "Wörd", " ", "  ", "\t", "\n", "\u00a0", "\u2003", "x.y"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        words = rng.randint(0, 15)
        assert results.first_words(text, words) == " ".join(text.split()[:words])


def test_chrome_lines_count_the_distinct_pages_each_line_was_stripped_on(rng: random.Random) -> None:
    """The report's chrome lines, recounted from what each page had stripped: one per (site, line
    key), its first stripped text and reason, a sample page, and the distinct page ids (a page given
    twice under one id counts once)."""
    from dedupe.normalize import line_key

    records = site_dump(rng)
    records.append(dict(records[0]))  # the same page again, under the same id
    res = scan([Document(r["id"], r["text"], r["site"]) for r in records])
    want: dict[tuple[str, str], list] = {}
    for o in res.outcomes:
        for p in o.stripped:
            entry = want.setdefault((o.site, line_key(p.text)), [p.text, set(), o.id, p.reason])
            entry[1].add(o.id)
    expected = sorted(((site, text, len(ids), sample, reason)
                       for (site, _), (text, ids, sample, reason) in want.items()), key=lambda c: (c[0], -c[2], c[1]))
    got = [(c.site, c.text, c.pages, c.sample, c.reason) for c in res.chrome]
    assert got == expected and len(got) > 10
    assert any(c.pages > 1 for c in res.chrome)


def test_stripped_paragraphs_read_back_as_the_lines_the_page_held(rng: random.Random) -> None:
    """Outcomes keep stripped chrome as numbers and make `StrippedParagraph`s when read: what is
    read is each stripped line of the page, equal to a tuple of them, the same when pickled; the
    byte count of the stats is that of the texts (non-ASCII chrome included)."""
    import pickle

    from dedupe import StrippedParagraph

    records = site_dump(rng)
    for r in records[:8]:  # a chrome line in a script of several bytes a character, on a few pages of one site
        r["text"] += "\n\n© Société Générale — новости\n"
    result = scan(_docs(records))
    with_chrome = [(r, o) for r, o in zip(records, result.outcomes, strict=True) if len(o.stripped) > 2]
    assert len(with_chrome) > 10
    for record, outcome in with_chrome:
        lines = record["text"].splitlines()
        paragraphs = tuple(outcome.stripped)
        assert all(isinstance(p, StrippedParagraph) and p.text == lines[p.line - 1].strip() and p.line == p.end
                   for p in paragraphs)
        assert outcome.stripped == paragraphs and paragraphs == tuple(outcome.stripped)
        assert hash(outcome.stripped) == hash(paragraphs) and len(outcome.stripped) == len(paragraphs)
        assert outcome.stripped[-1] == paragraphs[-1] and outcome.stripped[1:3] == paragraphs[1:3]
        assert pickle.loads(pickle.dumps(outcome)).stripped == paragraphs
    assert any("новости" in p.text for _, o in with_chrome for p in o.stripped)
    kept = [p for o in result.outcomes if o.kept for p in o.stripped]
    assert result.stats.chrome_paragraphs == len(kept)
    assert result.stats.chrome_bytes == sum(len(p.text.encode("utf-8")) for p in kept)


def test_chrome_report_counts_the_distinct_pages_a_line_was_stripped_from(rng: random.Random) -> None:
    """Each reported chrome line: per site and line key (digits masked), worded as first seen, on
    as many pages as distinct ids stripped it (a dump can repeat an id), the first such page its sample."""
    from dedupe.normalize import line_key

    records = site_dump(rng)
    records[3] = {**records[3], "id": records[2]["id"]}  # the same id twice on one site
    docs = _docs(records)
    result = scan(docs)
    want: dict[tuple[str, str], tuple[str, set[str], str]] = {}
    for doc, outcome in zip(docs, result.outcomes, strict=True):
        for p in outcome.stripped:
            entry = want.setdefault((doc.site, line_key(p.text)), (p.text, set(), doc.id))
            entry[1].add(doc.id)
    got = {(c.site, line_key(c.text)): (c.text, c.pages, c.sample) for c in result.chrome}
    assert got == {key: (text, len(ids), sample) for key, (text, ids, sample) in want.items()}
    assert any(c.pages > 2 for c in result.chrome) and len(got) > 20
