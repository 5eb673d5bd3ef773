"""Chrome's page classification (`chrome.page_codes`) for many pages at once, compiled.

The pipeline classifies every line of every page: in Python that is a list of classes per page,
revised three times over (jusText's context pass), about 3 µs a line. Here the pages go in as
arrays over all their lines, the cues the features stage worked out (`text_flags`, the line key's
words and stop words, the length) plus each line's recurrence, and the same passes run compiled
over small integer classes. The result is the verdict code of every line, equal to
`chrome.page_codes` line for line (a test holds them to it); `classify_pages` runs that Python
function page by page when numba is not there.
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .chrome import (
    BOILERPLATE,
    CHROME_AFTER_ARTICLE,
    CHROME_BOILERPLATE,
    CHROME_LIST_ITEM,
    CHROME_RECURRING,
    CHROME_SHORT,
    COMMENT_META,
    CONTENT_HEADER,
    CONTENT_RECURRING,
    CONTENT_RUNNING,
    LIST_ITEM,
    NOT_HEADING,
    SECTION_END,
    SENTENCE,
    ChromeSettings,
    _line_of,
    page_codes,
    page_template,
)

_BAD, _SHORT, _NEARGOOD, _GOOD = 0, 1, 2, 3  # jusText's classes, ordered so that >= _NEARGOOD is prose


def classify_pages(flags: np.ndarray, chars: np.ndarray, words: np.ndarray, stops: np.ndarray, recs: np.ndarray,
                   bounds: np.ndarray, groups: np.ndarray, settings: ChromeSettings | None = None) -> np.ndarray:
    """Verdict code (int8) of every line of pages whose lines are [bounds[p], bounds[p + 1]) of the
    arrays: their `text_flags`, lengths, key words and stop words, and recurrence on their site,
    which has `groups[p]` groups. What `chrome.page_codes` gives page by page."""
    s = settings or ChromeSettings()
    if not kernels.AVAILABLE:
        out = np.zeros(len(flags), dtype=np.int8)
        for p in range(len(bounds) - 1):
            lo, hi = int(bounds[p]), int(bounds[p + 1])
            lines = [_line_of("", w, c, st, f) for f, c, w, st in zip(flags[lo:hi].tolist(), chars[lo:hi].tolist(),
                                                                      words[lo:hi].tolist(), stops[lo:hi].tolist(),
                                                                      strict=True)]
            out[lo:hi] = page_codes(lines, recs[lo:hi].tolist(), int(groups[p]), s)
        return out
    template = np.array([page_template(int(g), s) for g in groups.tolist()], dtype=np.int64)
    evidence = (np.asarray(groups) >= s.min_site_groups).astype(np.uint8)
    ints = np.array([s.length_low, s.length_high, s.max_heading_distance, s.min_article_chars, s.comment_window,
                     s.header_lines, s.max_header_chars, s.min_recurrence], dtype=np.int64)
    return _page_codes(np.ascontiguousarray(flags, dtype=np.uint8), np.ascontiguousarray(chars, dtype=np.int64),
                       np.ascontiguousarray(words, dtype=np.int64), np.ascontiguousarray(stops, dtype=np.int64),
                       np.ascontiguousarray(recs, dtype=np.int64), np.ascontiguousarray(bounds, dtype=np.int64),
                       template, evidence, ints, float(s.stopwords_low), float(s.stopwords_high))


if kernels.AVAILABLE:
    from .kernels import _jit

    @_jit
    def _context_free(flags: int, chars: int, words: int, stops: int, length_low: int, length_high: int,
                      stop_low: float, stop_high: float) -> int:  # pragma: no cover - compiled
        """`chrome._context_free`."""
        density = stops / words if words else 0.0
        if flags & BOILERPLATE and chars < length_high:
            return _BAD
        if flags & LIST_ITEM and not (flags & SENTENCE and density >= stop_low):
            return _SHORT
        if chars < length_low:
            return _SHORT
        if density >= stop_high:
            return _GOOD if chars > length_high else _NEARGOOD
        if density >= stop_low:
            return _NEARGOOD
        return _BAD

    @_jit
    def _neighbours(classes: np.ndarray, n: int, skip_near: bool, before: np.ndarray,
                    after: np.ndarray) -> None:  # pragma: no cover - compiled
        """`chrome._neighbours`: skipping short lines, and near-good ones too when `skip_near`."""
        last = _BAD
        for i in range(n):
            before[i] = last
            c = classes[i]
            if c != _SHORT and not (skip_near and c == _NEARGOOD):
                last = c
        last = _BAD
        for i in range(n - 1, -1, -1):
            after[i] = last
            c = classes[i]
            if c != _SHORT and not (skip_near and c == _NEARGOOD):
                last = c

    @_jit
    def _revise(cf: np.ndarray, classes: np.ndarray, n: int, flags: np.ndarray, chars: np.ndarray, heading: int,
                scratch: np.ndarray) -> int:  # pragma: no cover - compiled
        """`chrome._revise` of cf[:n] into classes[:n]; returns the characters of the good lines."""
        before, after, near_before, near_after = scratch[0], scratch[1], scratch[2], scratch[3]
        for i in range(n):
            classes[i] = cf[i]
        for i in range(n):  # a short heading close above good text is near-good
            if classes[i] != _SHORT or flags[i] & NOT_HEADING:
                continue
            distance = 0
            for j in range(i + 1, n):
                if classes[j] == _GOOD:
                    classes[i] = _NEARGOOD
                    break
                distance += chars[j]
                if distance > heading:
                    break
        _neighbours(classes, n, True, before, after)
        _neighbours(classes, n, False, near_before, near_after)
        for i in range(n):  # short lines take their neighbours' class (the arrays hold the old ones)
            if classes[i] != _SHORT:
                continue
            between_good = before[i] == _GOOD and after[i] == _GOOD
            by_near_good = ((before[i] == _BAD and near_before[i] == _NEARGOOD)
                            or (after[i] == _BAD and near_after[i] == _NEARGOOD))
            classes[i] = _GOOD if between_good or by_near_good else _BAD
        _neighbours(classes, n, True, before, after)
        good = 0
        for i in range(n):  # near-good lines are bad only between bad lines
            if classes[i] == _NEARGOOD:
                classes[i] = _BAD if before[i] == _BAD and after[i] == _BAD else _GOOD
            if classes[i] == _GOOD:
                good += chars[i]
        return good

    @_jit
    def _article_end(classes: np.ndarray, n: int, flags: np.ndarray, chars: np.ndarray, min_article: int,
                     window: int, next_run: np.ndarray, meta: np.ndarray) -> int:  # pragma: no cover - compiled
        """`chrome._article_end`."""
        next_run[n] = 0
        run = 0
        for i in range(n - 1, -1, -1):
            if classes[i] == _GOOD:
                run = chars[i] + (run if i + 1 < n and classes[i + 1] == _GOOD else 0)
                next_run[i] = run
            else:
                next_run[i] = next_run[i + 1]
        meta[0] = 0
        for i in range(n):
            meta[i + 1] = meta[i] + (1 if flags[i] & COMMENT_META else 0)
        good = 0
        for i in range(n):
            section_end = flags[i] & SECTION_END != 0
            if good >= min_article and (section_end or flags[i] & COMMENT_META):
                headers = meta[min(n, i + 1 + window)] - meta[i + 1]
                smaller = next_run[i + 1] < good
                if (section_end and (smaller or headers >= 2)) or (smaller and headers >= 2):
                    return i
            if classes[i] == _GOOD:
                good += chars[i]
        return n

    @_jit
    def _page_codes(flags: np.ndarray, chars: np.ndarray, words: np.ndarray, stops: np.ndarray, recs: np.ndarray,
                    bounds: np.ndarray, template: np.ndarray, evidence: np.ndarray, ints: np.ndarray,
                    stop_low: float, stop_high: float) -> np.ndarray:  # pragma: no cover - compiled
        length_low, length_high, heading, min_article = ints[0], ints[1], ints[2], ints[3]
        window, header_lines, header_chars, min_rec = ints[4], ints[5], ints[6], ints[7]
        codes = np.empty(len(flags), dtype=np.int8)
        longest = 0
        for p in range(len(bounds) - 1):
            longest = max(longest, bounds[p + 1] - bounds[p])
        cf = np.empty(longest, dtype=np.int8)
        free = np.empty(longest, dtype=np.int8)
        eff = np.empty(longest, dtype=np.int64)  # the recurrence each line is judged by
        classes = np.empty(longest, dtype=np.int8)
        scratch = np.empty((4, longest), dtype=np.int8)
        next_run = np.empty(longest + 1, dtype=np.int64)
        meta = np.empty(longest + 1, dtype=np.int64)
        header = np.empty(longest, dtype=np.uint8)
        for p in range(len(bounds) - 1):
            lo, n = bounds[p], bounds[p + 1] - bounds[p]
            fl, ch, rec = flags[lo:], chars[lo:], recs[lo:]
            tpl, ev = template[p], evidence[p] != 0
            for i in range(n):  # jusText's class, with recurrence folded in (`chrome._with_recurrence`)
                c = _context_free(fl[i], ch[i], words[lo + i], stops[lo + i], length_low, length_high, stop_low,
                                  stop_high)
                free[i] = c
                r = rec[i] if ev else 0
                eff[i] = r
                if r >= tpl:
                    c = _BAD
                elif r >= min_rec:
                    c = _SHORT if c >= _NEARGOOD else _BAD
                cf[i] = c
            own = False  # prose of the page's own; without any, a story printed again (`chrome._reprinted`)
            for i in range(n):
                own |= free[i] >= _NEARGOOD and eff[i] < min_rec
            start, run = 0, 0
            for i in range(n + 1):
                if i < n and not own and free[i] >= _NEARGOOD and min_rec <= eff[i] < tpl:
                    if run == 0:
                        start = i
                    run += ch[i]
                    continue
                if run >= min_article:
                    for j in range(start, i):
                        cf[j] = free[j]
                        eff[j] = 0
                run = 0
            good = _revise(cf, classes, n, fl, ch, heading, scratch)
            if good < min_article:  # no running text: relax (`chrome._promote`) where not recurring
                for i in range(n):
                    if eff[i] >= min_rec:
                        continue
                    if cf[i] == _NEARGOOD:
                        cf[i] = _GOOD
                    elif cf[i] == _SHORT and fl[i] & SENTENCE and not fl[i] & LIST_ITEM and words[lo + i] >= 5:
                        cf[i] = _NEARGOOD
                good = _revise(cf, classes, n, fl, ch, heading, scratch)
            if good < min_article and ev:  # still none: what the page does not share (`chrome._unique`)
                for i in range(n):
                    if eff[i] < min_rec and not fl[i] & (LIST_ITEM | BOILERPLATE):
                        cf[i] = _GOOD
                _revise(cf, classes, n, fl, ch, heading, scratch)
            end = _article_end(classes, n, fl, ch, min_article, window, next_run, meta)
            header[:n] = 0  # `chrome._headers`
            for i in range(end):
                if classes[i] != _GOOD or (i > 0 and classes[i - 1] == _GOOD):
                    continue
                j = i - 1
                while j > max(-1, i - 1 - header_lines):
                    if not (ev and eff[j] >= tpl):  # template lines are stepped over
                        if classes[j] == _GOOD or ch[j] > header_chars or fl[j] & NOT_HEADING:
                            break
                        header[j] = 1
                    j -= 1
            for i in range(n):
                r = eff[i]
                if header[i]:
                    code = CONTENT_HEADER
                elif ev and (r >= tpl or (r >= min_rec and classes[i] != _GOOD)):
                    code = CHROME_RECURRING
                elif i >= end:
                    code = CHROME_AFTER_ARTICLE
                elif classes[i] == _GOOD:
                    code = CONTENT_RECURRING if r >= min_rec else CONTENT_RUNNING
                elif fl[i] & BOILERPLATE:
                    code = CHROME_BOILERPLATE
                elif fl[i] & LIST_ITEM:
                    code = CHROME_LIST_ITEM
                else:
                    code = CHROME_SHORT
                codes[lo + i] = code
            if not ev:  # no article and no other page of the site: short lines stay (`chrome.page_codes`)
                content = False
                for i in range(n):
                    content |= codes[lo + i] < CHROME_RECURRING
                if not content:
                    for i in range(n):
                        if codes[lo + i] == CHROME_SHORT:
                            codes[lo + i] = CONTENT_RUNNING
        return codes
