"""One report for a run in batches (`batches`), without holding the dump's clusters in memory.

Figures are summed and chrome lines merged batch by batch; every cluster is encoded once, as the
JSON report will hold it, into a temporary spool file, with its size and number kept beside it. The
JSON report is then streamed from the spool in the order `build_report` sorts clusters, and comes
out byte for byte as `build_report` of one result holding all those clusters would; the terminal
report reads back only the clusters it shows. (1M documents make about 1.3M clusters.)
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

    def add(self, size: int, number: int, data: bytes) -> None:
        self.file.seek(0, 2)
        self.start.append(self.file.tell())
        self.file.write(data)
        self.length.append(len(data))
        self.size.append(size)
        self.number.append(number)

    def __len__(self) -> int:
        return len(self.size)

    def order(self) -> list[int]:
        """Positions by size (largest first), then number: `build_report`'s order."""
        if not len(self.size):
            return []
        return np.lexsort((np.frombuffer(self.number, dtype=np.int64),
                           -np.frombuffer(self.size, dtype=np.int64))).tolist()

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

    def __enter__(self) -> BatchReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def add(self, result: ScanResult) -> None:
        """Count one batch in: its figures, chrome lines, sites, bad records and clusters."""
        self.batches += 1
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

    def parts(self, extra: Mapping[str, Any]) -> Iterator[bytes]:
        """The JSON report, `report_json`'s bytes, a part at a time (`writers.write_encoded_parts`)."""
        return report_parts(self._fields({level: ListParts(spool.items()) for level, spool in self._spools.items()},
                                         extra))

    def shown(self, extra: Mapping[str, Any], top: int) -> dict[str, Any]:
        """The report as `render` draws it: each level's cluster list holds only its `top` largest
        (`render` counts the rest from the figures)."""
        clusters = {level: [json.loads(spool.read(k)) for k in spool.order()[:top]]
                    for level, spool in self._spools.items()}
        return dict(self._fields(clusters, extra))


def _summed(total: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """`Stats` as dictionaries added up, field by field (the cluster counts kind by kind)."""
    if total is None:
        return more
    return {key: _summed(total[key], value) if isinstance(value, dict) else total[key] + value
            for key, value in more.items()}
