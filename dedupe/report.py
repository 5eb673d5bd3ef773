"""The machine-readable report: a `ScanResult` as plain JSON-able data (schema in docs/report.md).

The terminal report (`dedupe.render`) is drawn from the same dictionary, so both always agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

from .model import Cluster, Member
from .results import DocumentOutcome, ScanResult
from .stripped import stripped_chars

SCHEMA_VERSION = 1


def _member(m: Member) -> dict[str, Any]:
    out: dict[str, Any] = {"id": m.id, "similarity": m.similarity}
    if m.paragraph is not None:
        out["paragraph"] = m.paragraph
    if m.archived:
        out["archived"] = True
    if m.copy_of is not None:
        out["copy_of"] = m.copy_of
    return out


def cluster_dict(c: Cluster) -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind,
        "level": c.level,
        "size": c.size,
        "representative": _member(c.representative),
        "preview": c.preview,
        "members": [_member(m) for m in c.members],
    }


def site_removals(result: ScanResult) -> dict[str, dict[str, int]]:
    """Per site: documents, documents removed, bytes removed, chrome paragraphs stripped from kept ones."""
    sites: dict[str, dict[str, int]] = {}
    for o in result.outcomes:
        count_site_outcome(sites, o)
    return dict(sorted(sites.items()))


def count_site_outcome(sites: dict[str, dict[str, int]], o: DocumentOutcome) -> None:
    """Add one document's outcome to its site's figures (engines sum these per partition)."""
    s = sites.setdefault(o.site, {"documents": 0, "removed_documents": 0, "chars": 0, "removed_chars": 0,
                                  "chrome_paragraphs": 0, "chrome_chars": 0})
    s["documents"] += 1
    s["chars"] += o.chars
    if not o.kept:
        s["removed_documents"] += 1
        s["removed_chars"] += o.chars
    else:
        s["chrome_paragraphs"] += len(o.stripped)
        s["chrome_chars"] += stripped_chars(o.stripped)


def build_report(result: ScanResult, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report as a dictionary: version, settings, stats, clusters, chrome, sites, bad records."""
    clusters = sorted(result.document_clusters, key=lambda c: (-c.size, _order(c.id)))
    paragraphs = sorted(result.paragraph_clusters, key=lambda c: (-c.size, _order(c.id)))
    chrome: dict[str, list[dict[str, Any]]] = {}
    for line in result.chrome:
        chrome.setdefault(line.site, []).append(
            {"text": line.text, "pages": line.pages, "sample": line.sample, "reason": line.reason})
    report: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "settings": asdict(result.settings),
        "stats": asdict(result.stats),
        "document_clusters": [cluster_dict(c) for c in clusters],
        "paragraph_clusters": [cluster_dict(c) for c in paragraphs],
        "chrome": chrome,
        "sites": site_removals(result),
        "bad_records": [{"source": b.source, "line": b.line, "reason": b.reason} for b in result.bad],
    }
    if extra:
        report.update(extra)
    return report


def _order(cluster_id: str) -> int:
    """Numeric part of a cluster id, so d2 sorts before d10."""
    digits = cluster_id[1:]  # the ids this package makes: a letter and a number
    if not (digits.isascii() and digits.isdigit()):
        digits = "".join(ch for ch in cluster_id if ch.isdigit())
    return int(digits) if digits else 0


def report_json(report: Mapping[str, Any]) -> bytes:
    """The report as indented JSON in UTF-8 (two spaces per level, a newline at the end).

    orjson (the `fast` extra) writes the same text ~20x faster than the standard library, whose C
    encoder is bypassed whenever `indent` is given, and hands back bytes, so a large report is not
    decoded and encoded again to be written."""
    return indented_json(report) + b"\n"


def indented_json(value: Any, depth: int = 0) -> bytes:
    """`value` as `report_json` writes it when it lies `depth` levels down: every line after the
    first indented by two spaces per level. A report can so be written a part at a time and come
    out byte for byte as if encoded whole (`report_parts`)."""
    try:
        import orjson

        data = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (ImportError, TypeError):  # TypeError: a lone surrogate (orjson refuses it); the standard library writes it
        data = json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8", REPORT_ERRORS)
    return data.replace(b"\n", b"\n" + b"  " * depth) if depth else data


# A lone surrogate (a "\ud800" escape of the input, kept so records round-trip) has no UTF-8;
# backslashreplace writes it back as that very JSON escape, as the JSONL writers do.
REPORT_ERRORS = "backslashreplace"


def report_parts(fields: Iterator[tuple[str, Any]]) -> Iterator[bytes]:
    """`report_json` of the report whose (key, value) fields come one by one, as bytes to write in
    turn. A value may be a `ListParts`: a list whose items (already `indented_json` at depth 2)
    are produced as they are written, so the whole list is never held."""
    yield b"{"
    first = True
    for key, value in fields:
        yield (b"\n  " if first else b",\n  ") + indented_json(key) + b": "
        first = False
        if isinstance(value, ListParts):
            items = iter(value)
            head = next(items, None)
            if head is None:
                yield b"[]"
                continue
            yield b"[\n    " + head
            for item in items:
                yield b",\n    " + item
            yield b"\n  ]"
        else:
            yield indented_json(value, 1)
    yield b"\n}\n" if not first else b"}\n"


class ListParts:
    """A report list produced item by item for `report_parts` (each item `indented_json` at depth 2)."""

    def __init__(self, items: Iterator[bytes]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[bytes]:
        return self._items
