"""What `clean` writes: cleaned documents, the removal record, and the guard for unattended runs.

Everything here is derived from a `ScanResult`; the decisions (what is chrome, which copy stays)
were made by the pipeline, so `scan` and `clean` always agree on what would go.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .errors import RemovalRefused
from .model import Document
from .report import site_removals
from .results import DocumentOutcome, ScanResult


def cleaned_text(document: Document, outcome: DocumentOutcome) -> str:
    """The document's text without its chrome lines; runs of blank lines left behind are collapsed."""
    if not outcome.stripped:
        return document.text
    drop = {n for p in outcome.stripped for n in range(p.line, p.end + 1)}
    out: list[str] = []
    for number, line in enumerate(document.text.splitlines(), start=1):
        if number in drop:
            continue
        if not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def output_records(documents: Sequence[Document], result: ScanResult, text_field: str = "text",
                   annotate: bool = False) -> Iterator[dict[str, Any]]:
    """JSONL records of the cleaned dump: every other input field kept, text stripped of chrome.

    With `annotate`, nothing is removed: every document comes out with its cluster, kept flag,
    the copy kept and the stripped lines as extra fields.
    """
    for doc, outcome in zip(documents, result.outcomes, strict=True):
        if not outcome.kept and not annotate:
            continue
        record: dict[str, Any] = dict(doc.fields) if doc.fields else {"id": doc.id}
        record.setdefault("id", doc.id)
        record[text_field] = cleaned_text(doc, outcome)
        if annotate:
            record["dedupe"] = annotation(outcome)
        yield record


def annotation(outcome: DocumentOutcome) -> dict[str, Any]:
    """The `dedupe` field `--annotate` adds: where the document went and what was stripped from it."""
    return {
        "cluster": outcome.cluster,
        "kept": outcome.kept,
        "duplicate_of": outcome.duplicate_of,
        "similarity": outcome.similarity,
        "stripped": stripped_lines(outcome),
    }


def stripped_lines(outcome: DocumentOutcome) -> list[dict[str, Any]]:
    """Each chrome line taken from a document: its line number, text and the reason."""
    return [{"line": p.line, "text": p.text, "reason": p.reason} for p in outcome.stripped]


def output_files(documents: Sequence[Document], result: ScanResult) -> Iterator[tuple[str, str]]:
    """(relative path, cleaned text) of each kept document read from a text folder."""
    for doc, outcome in zip(documents, result.outcomes, strict=True):
        if outcome.kept:
            yield str(doc.fields.get("path", doc.id)), cleaned_text(doc, outcome) + "\n"


def removed_records(docs: Sequence[Document], result: ScanResult) -> Iterator[dict[str, Any]]:
    """One record per removed document: its id, the copy kept, similarity and why (with an index,
    `through`: the archived removed copy it matched, which stands for the kept one), and where it
    was read (file, and line of a JSONL file): an id alone may be repeated or made up."""
    for doc, o in zip(docs, result.outcomes, strict=True):
        if not o.kept:
            where = {"source": doc.source, "line": doc.line} if doc.line else {"source": doc.source}
            through = {"through": o.through} if o.through else {}  # the archived copy it matched
            yield {"id": o.id, "kept": o.duplicate_of, "similarity": o.similarity, "reason": o.reason,
                   "cluster": o.cluster, "site": o.site, **through, **where}


def stripped_records(result: ScanResult) -> Iterator[dict[str, Any]]:
    """One record per kept document that lost chrome lines: which lines, where, and why."""
    for o in result.outcomes:
        if o.kept and o.stripped:
            yield {"id": o.id, "site": o.site, "lines": stripped_lines(o)}


def check_removal_guard(result: ScanResult, max_removed: float) -> None:
    """Refuse (RemovalRefused, exit 3) when any site would lose more than `max_removed` of its
    documents or of its text: a safety net for unattended runs against a bad input or a bad setting."""
    check_site_removals(site_removals(result), max_removed)


def check_site_removals(sites: dict[str, dict[str, int]], max_removed: float) -> None:
    """The `--max-removed` guard on per-site figures (`report.site_removals`), however they were summed."""
    offenders = []
    for site, s in sites.items():
        doc_share = s["removed_documents"] / max(1, s["documents"])
        text_share = (s["removed_chars"] + s["chrome_chars"]) / max(1, s["chars"])
        if doc_share > max_removed or text_share > max_removed:
            offenders.append(f"{site or '(one site)'} ({doc_share:.0%} of documents, {text_share:.0%} of text)")
    if offenders:
        shown = ", ".join(offenders[:5]) + (f" and {len(offenders) - 5} more" if len(offenders) > 5 else "")
        raise RemovalRefused(f"refusing to write: more than {max_removed:.0%} would be removed from {shown}; "
                             "nothing was written (raise --max-removed to allow it)")
