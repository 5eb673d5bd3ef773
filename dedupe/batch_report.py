"""One report for a run in batches (`batches`), without holding the dump's clusters in memory.

Figures are summed and chrome lines merged batch by batch; every cluster is encoded once, as the
JSON report will hold it, into a temporary spool file, with its size and number kept beside it. The
JSON report is then streamed from the spool in the order `build_report` sorts clusters, and comes
out byte for byte as `build_report` of one result holding all those clusters would; the terminal
report reads back only the clusters it shows. (1M documents make about 1.3M clusters.)

A copy cluster continued in a later batch comes with the earlier part's id (`batches.ClusterIds`);
the parts of one id are joined into one cluster (`joined_cluster`) before the report is written,
and the figures count it once.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .model import BadRecord
from .report import SCHEMA_VERSION, ListParts, cluster_dict, count_site_outcome, indented_json, report_parts
from .results import ScanResult

_LEVELS = ("document", "paragraph")


class _Spool:
    """One level's clusters: their JSON (depth 2 of the report) in a temporary file, and per
    cluster its size, number and where its bytes lie."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.size, self.number, self.start, self.length = array("q"), array("q"), array("q"), array("q")
        self.hidden: set[int] = set()  # positions of parts joined into a later entry

    def add(self, size: int, number: int, data: bytes) -> None:
        self.file.seek(0, 2)
        self.start.append(self.file.tell())
        self.file.write(data)
        self.length.append(len(data))
        self.size.append(size)
        self.number.append(number)

    def order(self) -> list[int]:
        """Positions by size (largest first), then number: `build_report`'s order."""
        if not len(self.size):
            return []
        order = np.lexsort((np.frombuffer(self.number, dtype=np.int64), -np.frombuffer(self.size, dtype=np.int64)))
        return [k for k in order.tolist() if k not in self.hidden] if self.hidden else order.tolist()

    def join_parts(self, renamed: Mapping[int, int]) -> list[tuple[list[str], str]]:
        """Join the entries spooled under one number (or under numbers `renamed` to it) into one
        entry (the parts hidden); returns the parts' kinds and the joined cluster's kind, for
        each cluster joined."""
        numbers = np.array(self.number, dtype=np.int64)  # a copy: the spool grows below
        for old, new in renamed.items():
            numbers[numbers == old] = new
        kinds: list[tuple[list[str], str]] = []
        if not len(numbers):
            return kinds
        order = np.argsort(numbers, kind="stable")  # the parts of a number in the order they came
        ordered = numbers[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            if b - a < 2:
                continue
            group = order[a:b].tolist()
            parts = [json.loads(self.read(k)) for k in group]
            joined = joined_cluster(parts)
            self.hidden.update(group)
            self.add(joined["size"], int(ordered[a]), indented_json(joined, 2))
            kinds.append(([part["kind"] for part in parts], joined["kind"]))
        return kinds

    def read(self, k: int) -> bytes:
        self.file.seek(self.start[k])
        return self.file.read(self.length[k])

    def items(self) -> Iterator[bytes]:
        for k in self.order():
            yield self.read(k)


class BatchReport:
    """The report of a run in batches: `add` each batch's result (its cluster ids already run on
    from the batches before it), then `parts` for the JSON report or `shown` for the terminal.
    Close it (or use it as a context manager) to remove the spool."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._file = tempfile.TemporaryFile(prefix="dedupe-report-", dir=folder)  # noqa: SIM115 - closed by close()
        self._spools = {level: _Spool(self._file) for level in _LEVELS}
        self.settings: dict[str, Any] | None = None
        self.stats: dict[str, Any] | None = None
        self.sites: dict[str, dict[str, int]] = {}
        self._chrome: dict[tuple[str, str], list[Any]] = {}  # (site, text) -> [pages, sample, reason]
        self.bad: list[BadRecord] = []
        self.batches = 0
        self._renamed: dict[int, int] = {}  # document clusters joined into another: number -> its number
        self._joined = False

    def __enter__(self) -> BatchReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def add(self, result: ScanResult, joined: Mapping[str, str] | None = None) -> None:
        """Count one batch in: its figures, chrome lines, sites, bad records and clusters. `joined`
        gives the earlier document clusters joined into another so far (`batches.Batch.joined`)."""
        if self._joined:
            raise RuntimeError("the report has been read: add every batch before reading it")
        self.batches += 1
        self._renamed.update((int(old[1:]), int(new[1:])) for old, new in (joined or {}).items())
        if self.settings is None:
            self.settings = dataclasses.asdict(result.settings)
        self.stats = _summed(self.stats, dataclasses.asdict(result.stats))
        for o in result.outcomes:
            count_site_outcome(self.sites, o)
        for line in result.chrome:  # the same line in several batches: its pages add up
            seen = self._chrome.get((line.site, line.text))
            if seen is None:
                self._chrome[(line.site, line.text)] = [line.pages, line.sample, line.reason]
            else:
                seen[0] += line.pages
        self.bad.extend(result.bad)
        for level, clusters in zip(_LEVELS, (result.document_clusters, result.paragraph_clusters), strict=True):
            spool = self._spools[level]
            for c in clusters:
                spool.add(c.size, int(c.id[1:]), indented_json(cluster_dict(c), 2))

    def _chrome_by_site(self) -> dict[str, list[dict[str, Any]]]:
        """Chrome lines per site, most widespread first, as `build_report` gives them."""
        chrome: dict[str, list[dict[str, Any]]] = {}
        for (site, text), (pages, sample, reason) in sorted(self._chrome.items(),
                                                            key=lambda kv: (kv[0][0], -kv[1][0], kv[0][1])):
            chrome.setdefault(site, []).append({"text": text, "pages": pages, "sample": sample, "reason": reason})
        return chrome

    def _fields(self, clusters: Mapping[str, Any], extra: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        yield "version", SCHEMA_VERSION
        yield "settings", self.settings
        yield "stats", self.stats
        yield "document_clusters", clusters["document"]
        yield "paragraph_clusters", clusters["paragraph"]
        yield "chrome", self._chrome_by_site()
        yield "sites", dict(sorted(self.sites.items()))
        yield "bad_records", [{"source": b.source, "line": b.line, "reason": b.reason} for b in self.bad]
        yield from extra.items()

    def _join_parts(self) -> None:
        """Join each cluster continued across batches into one, and count it once in the figures."""
        if self._joined:
            return
        self._joined = True
        for level, spool in self._spools.items():
            counts = self.stats[f"{level}_clusters"] if self.stats else None
            for kinds, kind in spool.join_parts(self._renamed if level == "document" else {}):
                if counts is not None:
                    for part in kinds:
                        counts[part] -= 1
                    counts[kind] += 1

    def parts(self, extra: Mapping[str, Any]) -> Iterator[bytes]:
        """The JSON report, `report_json`'s bytes, a part at a time (`writers.write_encoded_parts`)."""
        self._join_parts()
        return report_parts(self._fields({level: ListParts(spool.items()) for level, spool in self._spools.items()},
                                         extra))

    def shown(self, extra: Mapping[str, Any], top: int) -> dict[str, Any]:
        """The report as `render` draws it: each level's cluster list holds only its `top` largest
        (`render` counts the rest from the figures)."""
        self._join_parts()
        clusters = {level: [json.loads(spool.read(k)) for k in spool.order()[:top]]
                    for level, spool in self._spools.items()}
        return dict(self._fields(clusters, extra))


def joined_cluster(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One cluster of its parts from several batches (as the report encodes them, in the order they
    came), the first part's representative and preview kept. A later part holds members of the
    earlier ones marked archived; those are not repeated. Its other members' similarities were
    measured against its own representative, named as `compared_with` where it is not the joined
    cluster's; the later part's representative itself gets its similarity to the member it met
    the cluster through (its most similar one already there).

    Parts under other ids are earlier clusters a later one joined (`batches.ClusterIds.joined`),
    listed as `joined_ids`. Such a part can come before the part that joined it and then meets
    nothing already there: its representative is linked through a member a later part holds (its
    similarity to that member, measured in its own part, or the later part's to it)."""
    first = parts[0]
    joined = {**first, "members": [dict(m) for m in first["members"]]}
    representative = first["representative"]["id"]
    present = {m["id"] for m in joined["members"]}
    unlinked: list[tuple[int, dict[str, Any]]] = []  # (part, its representative's entry) met nothing
    for k, part in enumerate(parts[1:], 1):
        own = part["representative"]
        met = [m for m in part["members"] if m.get("archived") and m["id"] in present]
        through = max(met, key=lambda m: m["similarity"]) if met else None
        for m in part["members"]:
            if m.get("archived") and m["id"] in present:
                continue
            member = dict(m)
            if m == own and through is not None:  # the part's representative: how it meets the cluster
                member["similarity"] = through["similarity"]
                compared_with = through["id"]
            elif m == own:
                unlinked.append((k, member))
                compared_with = representative
            else:
                compared_with = own["id"]
            if compared_with != representative:
                member["compared_with"] = compared_with
            joined["members"].append(member)
            present.add(m["id"])
    for k, member in unlinked:
        _link(member, parts[k], parts[k + 1:])
    others = {p["id"] for p in parts[1:]} - {first["id"]}
    if others:
        joined["joined_ids"] = sorted(others, key=lambda i: int(i[1:]))
    joined["kind"] = "exact" if all(p["kind"] == "exact" for p in parts) else "near"
    joined["size"] = len(joined["members"])
    return joined


def _link(member: dict[str, Any], part: dict[str, Any], later: list[dict[str, Any]]) -> None:
    """Give `member`, the representative of `part`, which met nothing when it was joined, its
    similarity to a member of the cluster: the later part holding it archived, if one does, else
    the member of `part` most similar to it that a later part holds."""
    own = {m["id"]: m["similarity"] for m in part["members"]}
    held = {m["id"]: (m["similarity"], p["representative"]["id"]) for p in later for m in p["members"]
            if m.get("archived") and m["id"] in own}
    if member["id"] in held:
        member["similarity"], member["compared_with"] = held[member["id"]]
    elif held:
        best = max(sorted(held), key=lambda i: own[i])
        member["similarity"], member["compared_with"] = own[best], best


def _summed(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """`Stats` as dictionaries added up, field by field (the cluster counts kind by kind)."""
    if total is None:
        return more
    return {key: _summed(total[key], value) if isinstance(value, dict) else total[key] + value
            for key, value in more.items()}
