"""The records that flow between stages.

Data flows one way: readers yield `Document`s, the pipeline turns them into `Cluster`s and a
`ScanResult`, the writers and the report consume those. Nothing downstream mutates what it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ClusterKind = Literal["exact", "near", "story"]
ClusterLevel = Literal["document", "paragraph"]


@dataclass(frozen=True, slots=True)
class Document:
    """One scraped page.

    `fields` keeps every other field of the input record so that writers can reproduce it;
    `source` and `line` say where the document came from, for error messages and reports.
    """

    id: str
    text: str
    site: str = ""
    source: str = ""
    line: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """An input record that was skipped: where it was and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a cluster: a document, or one paragraph of it (`paragraph` is its index).

    `archived` marks a document found in the persistent index rather than in this run's input;
    `copy_of`, an archived document that an earlier run removed as a copy of that kept document.
    """

    id: str
    similarity: float
    paragraph: int | None = None
    archived: bool = False
    copy_of: str | None = None


@dataclass(frozen=True, slots=True)
class Cluster:
    """A group of documents or paragraphs that are copies (exact, near) or retell one story.

    `representative` is the member every other member was compared with; each member's
    `similarity` is its similarity to the representative (1.0 for the representative itself).
    """

    id: str
    kind: ClusterKind
    level: ClusterLevel
    representative: Member
    members: tuple[Member, ...]
    preview: str = ""

    @property
    def size(self) -> int:
        return len(self.members)
