"""Chrome detection on small multi-page dumps built here, plus the seed page acceptance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import Document, scan
from dedupe.chrome import ChromeStats, ChromeVerdict, classify_page, learn_chrome
from dedupe.normalize import line_key
from dedupe.segment import split_paragraphs

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

TOWNS = ["Leeds", "Bristol", "Cardiff", "Dundee", "Exeter", "Galway", "Hull", "Inverness", "Kendal"]
THINGS = ["library", "bridge", "clinic", "market", "school", "harbour", "theatre", "museum", "depot"]
PEOPLE = [
    "Ada Moreau",
    "Bram Okafor",
    "Carla Jensen",
    "Dev Patel",
    "Elin Berg",
    "Femi Ade",
    "Gus Li",
    "Hana Sato",
    "Ivo Kral",
]

NAV = ["* Home", "* World", "* Business", "* Sport", "* Weather", "Share this page", "* Facebook"]
FOOTER = ["About us", "Contact the newsroom", "© 2024 Example Media. All rights reserved."]


def article(n: int) -> list[str]:
    """A distinct article: headline, byline, prose paragraphs and one short in-text paragraph."""
    town, thing, person = TOWNS[n % len(TOWNS)], THINGS[n % len(THINGS)], PEOPLE[n % len(PEOPLE)]
    return [
        f"{town} opens its new {thing} after a long wait",
        f"By {person}",
        f"The council in {town} said on Monday that the new {thing} would open to residents after a "
        f"delay of almost a year, and that the cost of the work had been met from the budget it had "
        f"set aside for repairs to the old building on the edge of the town centre.",
        f"Residents who had campaigned for the {thing} said they were relieved. {person} told the "
        f"meeting that the people of {town} had waited long enough, and that the council should now "
        f"make sure that the building is looked after so that it does not fall into disrepair again.",
        f"But not everyone in {town} is happy.",
        f"Some shop owners near the {thing} in {town} have said that the work has kept customers away "
        f"for most of the year, and they want the council to help them with the losses they have had "
        f"while the roads around the site were closed to traffic during the building work.",
    ]


def page(n: int) -> list[str]:
    return [*NAV, *article(n), *FOOTER]


def verdicts_by_text(paragraphs: list[str], site: str, stats: ChromeStats) -> dict[str, ChromeVerdict]:
    return dict(zip(paragraphs, classify_page(paragraphs, site, stats), strict=True))


def test_recurring_lines_stripped_and_article_kept() -> None:
    pages = [("news.example", i, page(i)) for i in range(6)]
    stats = learn_chrome(pages)
    verdicts = verdicts_by_text(page(0), "news.example", stats)
    for line in NAV + FOOTER:
        assert verdicts[line].is_chrome, line
    assert verdicts["* Home"].recurrence == 6
    assert "recurs on 6 of 6 pages of news.example" in verdicts["* Home"].reason
    for line in article(0):
        assert not verdicts[line].is_chrome, line


def test_headline_byline_and_short_paragraph_kept() -> None:
    stats = learn_chrome([("news.example", i, page(i)) for i in range(6)])
    verdicts = verdicts_by_text(page(3), "news.example", stats)
    headline, byline, *_ = article(3)
    assert not verdicts[headline].is_chrome
    assert not verdicts[byline].is_chrome
    assert not verdicts[article(3)[4]].is_chrome
    assert article(3)[4] == "But not everyone in Dundee is happy."


def test_digit_variants_count_as_one_line() -> None:
    pages = [("news.example", i, [f"{i + 3} hours ago", *article(i)]) for i in range(5)]
    stats = learn_chrome(pages)
    assert line_key("4 hours ago") == line_key("5 hours ago")
    verdicts = classify_page(pages[1][2], "news.example", stats)
    assert verdicts[0].is_chrome
    assert verdicts[0].recurrence == 5


def test_paragraph_recurring_only_within_a_copy_group_is_kept() -> None:
    copies = [("news.example", "story-7", page(7)) for _ in range(4)]  # one article crawled 4 times
    others = [("news.example", f"story-{i}", page(i)) for i in range(3)]
    stats = learn_chrome(copies + others)
    assert stats.site_groups("news.example") == 4
    verdicts = classify_page(page(7), "news.example", stats)
    by_text = dict(zip(page(7), verdicts, strict=True))
    for line in article(7):
        assert not by_text[line].is_chrome, line
    assert by_text[article(7)[2]].recurrence == 1  # four pages, but one group
    assert by_text["* Home"].is_chrome


def test_a_story_the_site_printed_again_keeps_its_text_on_both_pages_but_a_teaser_does_not() -> None:
    """One story on two pages of a site that are no copies of each other (another address, another
    template), so its prose recurs on two groups. A page whose prose all recurs is the story printed
    again, not a teaser: it keeps its article, and the copy stages keep one of the two. Its lead
    shown as a teaser on a page with an article of its own is still chrome."""
    story = article(7)
    first, again = [*NAV, *story, *FOOTER], ["Print edition", *story, "Back to top"]
    teaser = [*NAV, *article(1), "More from the news desk", story[2], *FOOTER]
    pages = [("news.example", i, page(i)) for i in (2, 3, 4, 5)]
    stats = learn_chrome([*pages, ("news.example", "first", first), ("news.example", "again", again),
                          ("news.example", "teaser", teaser)])
    for paragraphs in (first, again):
        verdicts = verdicts_by_text(paragraphs, "news.example", stats)
        assert [line for line in story if verdicts[line].is_chrome] == []
        assert verdicts[story[2]].recurrence == 3
    verdicts = verdicts_by_text(teaser, "news.example", stats)
    assert verdicts[story[2]].is_chrome and "recurs on 3 of 7 pages" in verdicts[story[2]].reason
    assert not any(verdicts[line].is_chrome for line in article(1)[2:])
    assert all(verdicts[line].is_chrome for line in NAV)


def test_syndicated_paragraphs_on_other_sites_are_kept() -> None:
    wire = article(8)[2:]  # the same story printed by two sites, inside their own chrome
    a_chrome, b_chrome = ["* Front page", "* Opinion"], ["Menu", "Sign up for our newsletter"]
    site_a = [("a.example", i, [*a_chrome, *article(i), "Related Articles"]) for i in range(4)]
    site_b = [("b.example", i, [*b_chrome, *article(i + 4)]) for i in range(4)]
    a_page = [*a_chrome, "Wire story", *wire, "Related Articles"]
    b_page = [*b_chrome, "Wire story", *wire]
    stats = learn_chrome([*site_a, *site_b, ("a.example", "w", a_page), ("b.example", "w", b_page)])
    for site, paragraphs, chrome in (("a.example", a_page, a_chrome), ("b.example", b_page, b_chrome)):
        verdicts = verdicts_by_text(paragraphs, site, stats)
        assert all(not verdicts[line].is_chrome for line in wire)
        assert all(verdicts[line].is_chrome for line in chrome)
        assert verdicts[wire[0]].recurrence == 1


def test_single_page_without_recurrence_uses_page_cues() -> None:
    paragraphs = [
        *NAV,
        *article(2),
        "12 Comments",
        "Sam Jones says:",
        "March 3, 2024 at 4:05 pm",
        "I agree with every word of this and I think that the council should have done it years ago.",
        "Reply",
        "Ann Lee says:",
        "March 3, 2024 at 5:10 pm",
        "Nonsense, the money would have been better spent on the roads, which are in a terrible state.",
        "Reply",
    ]
    verdicts = verdicts_by_text(paragraphs, "", ChromeStats())
    assert all(not verdicts[line].is_chrome for line in article(2))
    assert all(verdicts[line].is_chrome for line in paragraphs[len(NAV) + len(article(2)) :])
    assert all(verdicts[line].is_chrome for line in NAV)


def test_a_page_without_article_or_site_evidence_keeps_its_short_lines() -> None:
    """"Short line outside the article text" needs an article, or other pages of the site showing
    the line is template: a lone short post keeps its text, while boilerplate phrases still go."""
    post = "Just one document with a few words in it for the test here."
    verdicts = classify_page([post, "Sign up for our newsletter"], "x", ChromeStats())
    assert [v.is_chrome for v in verdicts] == [False, True]
    result = scan([Document("a", post)])  # a one-document dump: its only page keeps its text
    assert [list(o.stripped) for o in result.outcomes] == [[]]


def test_empty_page() -> None:
    assert classify_page([], "x", ChromeStats()) == []


def _parts() -> list[ChromeStats]:
    pages = [("news.example", i, page(i)) for i in range(6)] + [("b.example", i, article(i)) for i in range(3)]
    return [learn_chrome(pages[0:4]), learn_chrome(pages[3:7]), learn_chrome(pages[6:])]


def test_merge_is_associative_order_independent_and_does_not_double_count() -> None:
    a, b, c = _parts()
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert left == right
    assert c.merge(a).merge(b) == left == b.merge(c).merge(a)
    assert left.merge(left) == left
    assert left.merge(ChromeStats()) == left
    whole = learn_chrome(
        [("news.example", i, page(i)) for i in range(6)] + [("b.example", i, article(i)) for i in range(3)]
    )
    assert left == whole  # pages 3 and 6 are in two parts, yet counted once
    assert left.site_groups("news.example") == 6
    assert left.recurrence("news.example", line_key("* Home")) == 6


def test_merge_refuses_different_sketch_sizes() -> None:
    with pytest.raises(ValueError):
        ChromeStats(k=8).merge(ChromeStats(k=16))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 8)), max_size=40), st.randoms())
def test_merge_of_any_partition_equals_learning_everything(records: list[tuple[int, int, int]], rnd) -> None:
    pages = [(f"site{s}", g, [f"line {w}", THINGS[w % len(THINGS)]]) for s, g, w in records]
    parts: list[list[tuple[str, int, list[str]]]] = [[], [], []]
    for p in pages:
        parts[rnd.randrange(3)].append(p)
    learned = [learn_chrome(p) for p in parts]
    rnd.shuffle(learned)
    merged = learned[0].merge(learned[1]).merge(learned[2])
    assert merged == learn_chrome(pages)


def test_to_dict_from_dict_round_trip_through_json() -> None:
    stats = _parts()[0].merge(_parts()[1])
    restored = ChromeStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert restored == stats
    assert restored.recurrence("news.example", line_key("* Home")) == stats.recurrence(
        "news.example", line_key("* Home")
    )
    with pytest.raises(ValueError):
        ChromeStats.from_dict({"version": 999})


def test_group_counts_beyond_sketch_size_are_estimated() -> None:
    stats = ChromeStats(k=16)
    for g in range(400):
        stats.add_page("big.example", g, ["menu"])
    assert 400 * 0.6 <= stats.site_groups("big.example") <= 400 * 1.4
    assert stats.recurrence("big.example", "menu") == stats.site_groups("big.example")


def test_seed_page_keeps_the_article_and_strips_the_prompts() -> None:
    text = (SEEDS / "000_a7f39e1f9174dd03.txt").read_text(encoding="utf-8")
    paragraphs = [p.text for p in split_paragraphs(text)]
    stats = learn_chrome([("", "seed-000", paragraphs)])
    verdicts = classify_page(paragraphs, "", stats)
    first = next(i for i, p in enumerate(paragraphs) if p.startswith("Kallas: EU, US together"))
    last = next(i for i, p in enumerate(paragraphs) if p.startswith("As for the EU-Japan relationship"))
    assert last - first >= 8
    for i in range(first, last + 1):
        assert not verdicts[i].is_chrome, paragraphs[i]
    by_text = dict(zip(paragraphs, verdicts, strict=True))
    for prompt in ("Try Our AI Features", "Explore what Daily8 AI can do for you:", "No comments yet..."):
        assert by_text[prompt].is_chrome, prompt
        assert by_text[prompt].reason


_PAGES = st.lists(st.tuples(st.sampled_from(["a.com", "b.org", "c.net"]), st.integers(0, 9),
                            st.lists(st.integers(0, 12), max_size=8)), max_size=30)


@settings(max_examples=80, deadline=None)
@given(_PAGES, st.sampled_from([1, 3, 32]), _PAGES)
def test_pages_added_at_once_count_as_pages_added_one_by_one(pages, k: int, before) -> None:
    """`add_hashed_pages` (one sort, into empty statistics; one page at a time into others) gives
    the statistics of `add_hashed_page` per page: repeated keys and groups, sketches cut at k."""
    import numpy as np

    def one_by_one(stats: ChromeStats, pages) -> ChromeStats:
        for site, group, keys in pages:
            stats.add_hashed_page(site, group, [key * 7919 + 1 for key in keys])
        return stats

    def at_once(stats: ChromeStats, pages) -> ChromeStats:
        page = np.repeat(np.arange(len(pages)), [len(keys) for _, _, keys in pages])
        hashes = np.array([key * 7919 + 1 for _, _, keys in pages for key in keys], dtype=np.uint64)
        stats.add_hashed_pages([p[0] for p in pages], [p[1] for p in pages], page, hashes)
        return stats

    assert at_once(ChromeStats(k=k), pages) == one_by_one(ChromeStats(k=k), pages)
    stats = at_once(ChromeStats(k=k), pages)
    asked = [key * 7919 + 1 for key in range(14)]
    for _ in range(2):  # asked about key by key, then (past an eighth of the keys) from the worked-out estimates...
        for site in ("a.com", "b.org", "c.net", "d.io"):
            for h in asked:
                assert stats.recurrences_of_hashes(site, [h]) == [stats.recurrence_of_hash(site, h)]
            assert stats.recurrences_of_hashes(site, asked) == [stats.recurrence_of_hash(site, h) for h in asked]
        one_by_one(stats, before)  # ...which pages added afterwards must not leave stale
    assert at_once(one_by_one(ChromeStats(k=k), before), pages) == one_by_one(ChromeStats(k=k), before + pages)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["Related Articles", "5 hours ago", "Posted by: Dave", "© 2024 Jiji Press",
                                 "• Home", "He said the talks would go on.", "Reply", "x" * 250 + " said",
                                 "Subscribe to our newsletter"]) | st.text(max_size=40), max_size=30),
       st.integers(1, 8))
def test_text_flags_of_a_batch_equal_each_lines_flags_however_often_lines_repeat(texts: list[str],
                                                                                 limit: int) -> None:
    """Remembered flags are the flags: for repeated lines, long lines, and after the memory starts afresh."""
    import dedupe.chrome as chrome

    with pytest.MonkeyPatch.context() as m:
        m.setattr(chrome, "_FLAGS", {})
        m.setattr(chrome, "_FLAGS_LIMIT", limit)
        for batch in (texts, texts[::-1], texts):
            assert chrome.text_flags_of(batch) == [chrome.text_flags(t) for t in batch]
            assert len(chrome._FLAGS) <= limit + len(batch)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a.com", "b.org", ""]), st.integers(0, 12),
                          st.lists(st.integers(0, 6), max_size=6)), max_size=40),
       st.integers(1, 5))
def test_page_recurrences_answer_as_the_statistics_do(pages: list[tuple[str, int, list[int]]], k: int) -> None:
    """Every key's recurrence worked out from one sort equals the statistics' answer, the sketch's
    estimate included (a small k puts many keys past it), whatever the order of the pages."""
    import numpy as np

    from dedupe.chrome import page_recurrences

    sites = [site for site, _, _ in pages]
    groups = [f"g{group}" for _, group, _ in pages]
    page = np.array([p for p, (_, _, keys) in enumerate(pages) for _ in keys], dtype=np.int64)
    hashes = np.array([7919 * key + 3 for _, _, keys in pages for key in keys], dtype=np.uint64)
    stats = ChromeStats(k=k)
    stats.add_hashed_pages(sites, groups, page, hashes)
    got = page_recurrences(sites, groups, page, hashes, k)
    assert got.tolist() == [stats.recurrence_of_hash(sites[p], h) for p, h in zip(page.tolist(), hashes.tolist(),
                                                                                 strict=True)]


def test_page_recurrences_estimate_a_key_met_in_more_groups_than_the_sketch_holds() -> None:
    import numpy as np

    from dedupe.chrome import page_recurrences

    sites, groups = ["a.com"] * 40, [f"g{p}" for p in range(40)]
    page, hashes = np.arange(40, dtype=np.int64), np.full(40, 5, dtype=np.uint64)  # one key on every page
    stats = ChromeStats(k=4)
    stats.add_hashed_pages(sites, groups, page, hashes)
    got = page_recurrences(sites, groups, page, hashes, 4)
    assert set(got.tolist()) == {stats.recurrence_of_hash("a.com", 5)}
    assert got[0] not in (4, 40)  # an estimate, neither the sketch's size nor the exact count


def test_pages_chrome_answers_site_groups_unbuilt_and_is_the_eager_statistics_when_built() -> None:
    import numpy as np

    from dedupe.chrome import PagesChrome

    sites = ["a.com", "a.com", "b.org", "a.com"]
    groups = ["g1", "g1", "g2", "g3"]
    page = np.array([0, 0, 1, 2, 3, 3], dtype=np.int64)
    hashes = np.array([10, 11, 10, 12, 10, 13], dtype=np.uint64)
    eager = ChromeStats()
    eager.add_hashed_pages(sites, groups, page, hashes)
    lazy = PagesChrome(sites, groups, page, hashes)
    assert [lazy.site_groups(s) for s in ("a.com", "b.org", "c.net")] == [2, 1, 0]
    assert lazy._full is None  # not built by that
    assert lazy == eager and lazy.recurrence_of_hash("a.com", 10) == 2
    assert lazy.merge(ChromeStats()) == eager


def test_a_scan_without_an_index_strips_what_the_eager_statistics_would() -> None:
    """The scan's chrome verdicts with each paragraph's recurrence worked out at once are those of
    the statistics asked key by key (the path a scan against an index still takes)."""
    from dedupe import page_chrome
    from dedupe.settings import Settings

    chrome_line = "Sign up for our newsletter and get the latest stories"
    docs = [Document(f"d{k}", "\n\n".join([f"Story {k} opens with a line of its own about item {k}.",
                                             chrome_line, "Related Articles", f"Body text number {k} " * 12]),
                     site="news.example") for k in range(12)]
    result = scan(docs, Settings(story=False))
    assert result.stats.chrome_paragraphs >= 24
    with pytest.MonkeyPatch.context() as m:  # the statistics asked key by key, as with an archive

        def key_by_key(docs, groups, feats, settings, learned):  # type: ignore[no-untyped-def]
            stats = page_chrome.page_stats(docs, groups, feats)
            mask, stripped = page_chrome.classify_pages(docs, feats, stats)
            return mask, stripped, stats

        m.setattr(page_chrome, "strip_chrome", key_by_key)
        eager = scan(docs, Settings(story=False))
    stripped = [list(o.stripped) for o in result.outcomes]
    assert stripped == [list(o.stripped) for o in eager.outcomes] and all(stripped)
    assert result.chrome_stats == eager.chrome_stats
