"""The terminal report, drawn with rich from the same dictionary as the JSON report.

Text from the dump (ids, sites, previews, lines, bad-record reasons) goes in as `Text`, never as
markup: a site called "[/x]" would otherwise end the report in a MarkupError. A lone surrogate
escape (kept by the readers) is spelled as its escape, as the stream prints it, so that rich
measures what is printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_KIND_STYLE = {"exact": "bold red", "near": "yellow", "story": "cyan"}


def shown(text: str) -> str:
    """`text` as the terminal shows it: lone surrogates as their backslash escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def summary(report: Mapping[str, Any]) -> Table:
    stats = report["stats"]
    table = Table(title="dedupe report", show_header=False, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("documents", f"{stats['documents']:,}")
    table.add_row("paragraphs", f"{stats['paragraphs']:,}")
    for level in ("document", "paragraph"):
        counts = stats[f"{level}_clusters"]
        table.add_row(f"{level} clusters",
                      ", ".join(f"[{_KIND_STYLE[k]}]{counts[k]:,} {k}[/]" for k in ("exact", "near", "story")))
    table.add_row("clean would remove",
                  f"{stats['removable_documents']:,} documents ({_human_bytes(stats['removable_bytes'])})")
    table.add_row("chrome stripped",
                  f"{stats['chrome_paragraphs']:,} paragraphs ({_human_bytes(stats['chrome_bytes'])})")
    bad = stats["bad_records"]
    table.add_row("bad records skipped", f"[red]{bad:,}[/]" if bad else "0")
    return table


def clusters_block(clusters: list[Mapping[str, Any]], title: str, top: int, member_limit: int = 8,
                   total: int | None = None) -> Text:
    """Each cluster as a heading line (id, kind, size, representative's opening words) and one line
    per member with its similarity to the representative (or to the member it names: a cluster
    joined across batches, which also names the earlier clusters joined into it), marked when
    found in the index (and when archived there as a removed copy, of which kept document); reads
    well in a narrow terminal too.
    `total`: how many clusters there are, when `clusters` holds only the largest (a run in batches)."""
    out = Text()
    out.append(f"{title}\n", style="bold underline")
    for c in clusters[:top]:
        out.append(f"{shown(c['id']):<6}", style="bold")
        out.append(f"{c['kind']:<6}", style=_KIND_STYLE[c["kind"]])
        out.append(f"{c['size']} {c['level']}s  ", style="dim")
        out.append(f"\u201c{shown(c['preview'][:60])} \u2026\u201d\n", style="italic")
        if c.get("joined_ids"):
            out.append(f"      joined {', '.join(map(shown, c['joined_ids']))} of earlier batches\n", style="dim")
        for k, m in enumerate(c["members"][:member_limit]):
            where = f" #{m['paragraph']}" if "paragraph" in m else ""
            out.append(f"      {m['similarity']:.2f}  {shown(m['id'])}{where}")
            notes = ["representative"] if k == 0 else []
            if m.get("compared_with"):
                notes.append(f"to {shown(m['compared_with'])}")
            if m.get("archived"):
                notes.append(f"archived copy of {shown(m['copy_of'])}" if m.get("copy_of") else "archived")
            out.append(f"  ({'; '.join(notes)})\n" if notes else "\n", style="dim")
        if len(c["members"]) > member_limit:
            out.append(f"      \u2026 {len(c['members']) - member_limit} more\n", style="dim")
    total = max(len(clusters), total or 0)
    if total > top:
        out.append(f"\u2026 {total - top} more clusters (--top, or --json for all)\n", style="dim")
    return out


def chrome_block(chrome: Mapping[str, list[Mapping[str, Any]]], per_site: int = 5) -> Text:
    """Per site, its most widespread chrome lines: pages stripped on, the line, and why."""
    out = Text()
    out.append("chrome found per site\n", style="bold underline")
    for site, lines in chrome.items():
        out.append(shown(site) or "(one site)", style="bold")
        out.append(f"  {len(lines)} distinct lines\n", style="dim")
        for line in lines[:per_site]:
            pages = line["pages"]
            out.append(f"  {pages:>5} {'page ' if pages == 1 else 'pages'}  ")
            out.append(shown(line["text"][:48]))
            out.append(f"  ({shown(line['reason'])})\n", style="dim")
        if len(lines) > per_site:
            out.append(f"  \u2026 {len(lines) - per_site} more (--json for all)\n", style="dim")
    return out


def sites_table(sites: Mapping[str, Mapping[str, int]], top: int = 15) -> Table:
    table = Table(title="removal per site", title_justify="left")
    table.add_column("site")
    table.add_column("documents", justify="right")
    table.add_column("removed", justify="right")
    table.add_column("text removed", justify="right")
    ranked = sorted(sites.items(), key=lambda kv: (-(kv[1]["removed_chars"] + kv[1]["chrome_chars"]), kv[0]))
    for site, s in ranked[:top]:
        share = (s["removed_chars"] + s["chrome_chars"]) / max(1, s["chars"])
        table.add_row(Text(shown(site) or "(one site)"), f"{s['documents']:,}", f"{s['removed_documents']:,}",
                      f"{share:.0%}")
    return table


def render(report: Mapping[str, Any], console: Console, top: int = 10) -> None:
    """Print the whole human report."""
    parts: list[Any] = [summary(report)]
    for level in ("document", "paragraph"):
        if report[f"{level}_clusters"]:
            total = sum(report["stats"][f"{level}_clusters"].values())
            parts.append(clusters_block(report[f"{level}_clusters"], f"largest {level} clusters", top, total=total))
    if report.get("chrome"):
        parts.append(chrome_block(report["chrome"]))
    if report.get("sites") and (report["stats"]["removable_documents"] or report["stats"]["chrome_paragraphs"]):
        parts.append(sites_table(report["sites"]))
    if report["bad_records"]:
        bad = report["bad_records"]
        lines = [shown(f"{b['source']}:{b['line']}: {b['reason']}") for b in bad[:10]]
        if len(bad) > 10:
            lines.append(f"… {len(bad) - 10} more")
        parts.append(Panel(Text("\n".join(lines)), title="bad records skipped", title_align="left", border_style="red"))
    for part in parts:
        console.print(part)
        console.print()

