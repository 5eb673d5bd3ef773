"""The compiled page classification gives `chrome.page_codes`' verdict for every line."""

from __future__ import annotations

import numpy as np
import pytest

from dedupe import kernels
from dedupe.chrome import (
    BOILERPLATE,
    CHROME_RECURRING,
    COMMENT_META,
    LIST_ITEM,
    SECTION_END,
    SENTENCE,
    ChromeSettings,
    ChromeStats,
    _line_of,
    classify_page,
    page_codes,
    text_flags,
)
from dedupe.chrome_compiled import classify_pages
from dedupe.kernels_lines import line_keys_with_cues
from dedupe.normalize import line_key, normalize


def _random_pages(seed: int, n_pages: int) -> dict[str, np.ndarray]:
    """Pages of lines with every mix of cues: lengths around the class bounds, stop-word shares
    around the density marks, every flag, recurrence from none to template, sites with 0-40 groups."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 40, n_pages)
    n = int(sizes.sum())
    chars = np.where(rng.random(n) < 0.5, rng.integers(1, 90, n), rng.integers(60, 400, n))
    words = rng.integers(0, 60, n)
    stops = (words * rng.choice([0.0, 0.15, 0.25, 0.3, 0.4, 0.6], n)).astype(np.int64)
    flags = np.zeros(n, dtype=np.uint8)
    for bit, share in ((SENTENCE, 0.5), (LIST_ITEM, 0.15), (BOILERPLATE, 0.1), (SECTION_END, 0.05),
                       (COMMENT_META, 0.1)):
        flags |= np.where(rng.random(n) < share, bit, 0).astype(np.uint8)
    groups = rng.choice([0, 1, 2, 3, 10, 40], n_pages)
    owner = np.repeat(np.arange(n_pages), sizes)
    # Recurrence up to the site's groups, and beyond on sites without evidence (which must ignore it).
    reach = np.maximum(groups[owner], 4) + 1
    recs = np.where(rng.random(n) < 0.6, 0, (rng.random(n) * reach).astype(np.int64))
    # and every fourth page with all its lines recurring: a story its site printed again (`chrome._reprinted`)
    recs = np.where((owner % 4 == 0) & (recs < 2), 2, recs)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return {"flags": flags, "chars": chars, "words": words, "stops": stops, "recs": recs, "bounds": bounds,
            "groups": groups}


def _python_codes(pages: dict[str, np.ndarray], settings: ChromeSettings) -> list[int]:
    out: list[int] = []
    b = pages["bounds"]
    for p in range(len(b) - 1):
        lo, hi = b[p], b[p + 1]
        lines = [_line_of("", int(w), int(c), int(s), int(f)) for f, c, w, s in
                 zip(pages["flags"][lo:hi], pages["chars"][lo:hi], pages["words"][lo:hi], pages["stops"][lo:hi],
                     strict=True)]
        out.extend(page_codes(lines, pages["recs"][lo:hi].tolist(), int(pages["groups"][p]), settings))
    return out


@pytest.mark.skipif(not kernels.AVAILABLE, reason="needs numba")
@pytest.mark.parametrize("settings", [ChromeSettings(), ChromeSettings(length_low=40, min_article_chars=600,
                                                                       header_lines=2, comment_window=3)])
@pytest.mark.parametrize("seed", range(4))
def test_compiled_codes_equal_python_codes(seed: int, settings: ChromeSettings) -> None:
    pages = _random_pages(seed, 400)
    compiled = classify_pages(settings=settings, **pages)
    expected = _python_codes(pages, settings)
    assert compiled.tolist() == expected
    assert len(set(expected)) == 8  # every verdict code was exercised


def test_classify_pages_on_real_lines_agrees_with_classify_page() -> None:
    """From texts: the flags, lengths and key cues the features stage would hand over."""
    site_pages = [
        ["Home | World | Sport", "Storm hits the coast",
         "The storm that hit the coast on Monday was the strongest in a decade, and it left thousands "
         "of homes without power while the emergency services worked through the night to reach the "
         "villages that the floods had cut off from the main roads.",
         "Related Articles", "Another story about the weather", "© 2024 Example News. All rights reserved."],
        ["Home | World | Sport", "Markets rally",
         "Shares rose on Tuesday as investors bet that the central bank would hold rates where they are, "
         "and the rally was led by the banks and the miners, which had fallen sharply over the last month "
         "of trading on the exchange.",
         "© 2024 Example News. All rights reserved."],
    ]
    stats = ChromeStats()
    for g, page in enumerate(site_pages):
        stats.add_page("news.example", g, [line_key(p) for p in page])
    for page in site_pages:
        keys = line_keys_with_cues([normalize(p) for p in page])
        cues = list(zip(keys.words.tolist(), keys.stops.tolist(), keys.hashes.tolist(), keys.chars.tolist(),
                        strict=True))
        verdicts = classify_page(page, "news.example", stats, cues=cues)
        recs = np.array([stats.recurrence_of_hash("news.example", c[2]) for c in cues], dtype=np.int64)
        codes = classify_pages(np.array([text_flags(p) for p in page], dtype=np.uint8),
                               np.array([len(p) for p in page]), keys.words, keys.stops, recs,
                               np.array([0, len(page)]), np.array([stats.site_groups("news.example")]))
        assert [code >= CHROME_RECURRING for code in codes.tolist()] == [v.is_chrome for v in verdicts]
        assert verdicts[0].is_chrome and not verdicts[2].is_chrome  # the menu goes, the story stays
