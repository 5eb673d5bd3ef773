"""What a scan returns (`ScanResult`: clusters, chrome lines, per-document outcomes, stats) and
how it is assembled from the stages' arrays: one Python object per cluster member, outcome and
chrome line, made once the stages are done."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import chrome as chrome_stage
from .archive import ArchiveRows
from .cluster import Group, Groups
from .copies import (
    DocTable,
)
from .features import ParagraphFeatures
from .model import BadRecord, Cluster, ClusterKind, Document, Member
from .normalize import utf8
from .segment import paragraph_text
from .settings import Settings
from .stripped import StrippedParagraph, StrippedStore


@dataclass(frozen=True, slots=True)
class DocumentOutcome:
    """What `clean` does with one input document. (`stripped` reads its paragraphs from the
    document's text when iterated, so an outcome keeps its document's text alive.)"""

    id: str
    site: str
    kept: bool
    cluster: str | None
    duplicate_of: str | None
    similarity: float | None
    reason: str | None
    stripped: Sequence[StrippedParagraph]  # made when read (`stripped.StrippedParagraphs`)
    chars: int
    through: str | None = None  # the archived removed copy it matched, standing for `duplicate_of`


@dataclass(frozen=True, slots=True)
class ChromeLine:
    """A chrome line found on a site: its text (first seen), pages it was stripped on, a sample page."""

    site: str
    text: str
    pages: int
    sample: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stats:
    """The run in numbers: what the terminal report's summary and the JSON report's `stats` show."""

    documents: int
    paragraphs: int
    bad_records: int
    document_clusters: dict[str, int]
    paragraph_clusters: dict[str, int]
    removable_documents: int
    removable_bytes: int
    chrome_paragraphs: int
    chrome_bytes: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Everything a scan found: clusters at both levels, chrome lines, what `clean` does with each
    document, and, for an index, this run's chrome statistics and the documents' archive rows."""

    settings: Settings
    stats: Stats
    document_clusters: list[Cluster]
    paragraph_clusters: list[Cluster]
    chrome: list[ChromeLine]
    outcomes: list[DocumentOutcome]
    bad: list[BadRecord] = field(default_factory=list)
    chrome_stats: chrome_stage.ChromeStats | None = None
    archive_rows: ArchiveRows | None = None

    def kept_rows(self) -> ArchiveRows | None:
        """Archive rows of the documents this run keeps."""
        if self.archive_rows is None:
            return None
        return self.archive_rows.take(np.array([k for k, o in enumerate(self.outcomes) if o.kept], dtype=np.int64))

    def rows_to_archive(self) -> ArchiveRows | None:
        """What an index adds after `clean`: the kept documents' rows, and those of the documents
        removed as near copies, each marked with the kept document it was removed for (`copy_of`).

        A later run's copy of a removed copy is then found through it: the two may match where the
        later copy and the kept document do not (their edits add up), as one run over both would
        have clustered the three around the middle one. A copy removed from an exact cluster, or
        with a kept document's content, is left out: it would match nothing new. So is one removed
        for a document of its own id (the same record again, read in a later batch that knew more
        chrome): its kept self stands for it. So is one removed through an archived copy: a chain
        of copies across nights stays one hop from a kept document, as a cluster in one run is a
        star around its representative."""
        if self.archive_rows is None:
            return None
        rows, outcomes = self.archive_rows, self.outcomes
        exact = {c.id for c in self.document_clusters if c.kind == "exact"}
        keys = list(zip(rows.key_hi.tolist(), rows.key_lo.tolist(), strict=True))
        kept_keys = {keys[k] for k, o in enumerate(outcomes) if o.kept}
        chosen = [k for k, o in enumerate(outcomes)
                  if o.kept or (o.duplicate_of not in (None, o.id) and o.through is None and o.cluster not in exact
                                and keys[k] not in kept_keys)]
        copy_of = [None if outcomes[k].kept else outcomes[k].duplicate_of for k in chosen]
        return rows.take(np.array(chosen, dtype=np.int64), copy_of)


_PREVIEW_WORDS = 12


def first_words(text: str, words: int = _PREVIEW_WORDS) -> str:
    """The first `words` words of `text` (split no further than needed: texts can be whole pages)."""
    return " ".join(text.split(None, words)[:words])


def row_text(docs: Sequence[Document], feats: ParagraphFeatures, row: int) -> str:
    """The text of the paragraph in row `row` of the features, from its document's text."""
    return paragraph_text(docs[int(feats.doc[row])].text, int(feats.start[row]), int(feats.stop[row]),
                          bool(feats.end[row] != feats.line[row]))


def row_texts(docs: Sequence[Document], feats: ParagraphFeatures, rows: np.ndarray) -> list[str]:
    """`row_text` of many rows, where they lie read for all at once (a cluster list's previews)."""
    where = zip(feats.doc[rows].tolist(), feats.start[rows].tolist(), feats.stop[rows].tolist(),
                (feats.end[rows] != feats.line[rows]).tolist(), strict=True)
    return [paragraph_text(docs[d].text, start, stop, wrapped) for d, start, stop, wrapped in where]


def _flattened(groups: Groups, key_hi: np.ndarray, key_lo: np.ndarray
               ) -> tuple[list[int], np.ndarray, np.ndarray, list[bool], list[float]]:
    """Every group's members at once (a Python object per member is the cost of a cluster list):
    each group's size, all members in one array, each representative, whether all of a group's
    members have its representative's key (an `exact` group), and every member's similarity."""
    sizes, members = np.diff(groups.starts), groups.members
    reps = members[groups.starts[:-1]]
    rep_of = np.repeat(reps, sizes)
    same = (key_hi[members] == key_hi[rep_of]) & (key_lo[members] == key_lo[rep_of])
    exact = np.logical_and.reduceat(same, groups.starts[:-1]).tolist()
    return sizes.tolist(), members, reps, exact, groups.similarity.tolist()


def document_clusters(table: DocTable, groups: list[Group], previews: Callable[[int], str]) -> list[Cluster]:
    """Copy groups of documents as `Cluster`s (d1, d2, ...): `exact` when every member has the
    representative's content key, else `near`; archived members are marked and not previewed."""
    if not groups:
        return []
    sizes, members, reps, exact, sims = _flattened(Groups.of(groups), table.key_hi, table.key_lo)
    ids = [table.ids[m] for m in members.tolist()]
    archived = (members >= table.n_new).tolist()
    copy_of = [table.copy_of[m] for m in members.tolist()]
    out = []
    at = 0
    for k, (rep, size) in enumerate(zip(reps.tolist(), sizes, strict=True)):
        kind: ClusterKind = "exact" if exact[k] else "near"
        cluster = tuple(Member(ids[m], round(sims[m], 4), archived=archived[m], copy_of=copy_of[m])
                        for m in range(at, at + size))
        preview = previews(rep) if rep < table.n_new else "(archived)"
        out.append(Cluster(f"d{k + 1}", kind, "document", cluster[0], cluster, preview))
        at += size
    return out


def content_previews(docs: Sequence[Document], feats: ParagraphFeatures,
                     content: np.ndarray) -> Callable[[int], str]:
    """The preview of a document's text with chrome paragraphs left out (of its whole text if
    nothing is left), made when asked: only clusters' representatives need one, and a copy of
    every document's content text would cost about as much memory as the dump."""
    bounds = np.searchsorted(feats.doc, np.arange(len(docs) + 1))

    def preview(d: int) -> str:
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        first = lo + int(content[lo:hi].argmax()) if hi > lo else lo
        text = docs[d].text
        if first == hi or not content[first]:
            return first_words(text)
        words: list[str] = []
        for row in range(first, hi):  # most often the first content paragraph has the words already
            if len(words) >= _PREVIEW_WORDS:
                break
            if content[row]:
                words.extend(row_text(docs, feats, row).split(None, _PREVIEW_WORDS)[:_PREVIEW_WORDS])
        return " ".join(words[:_PREVIEW_WORDS])

    return preview


def paragraph_clusters(docs: Sequence[Document], feats: ParagraphFeatures,
                       groups: Groups) -> list[Cluster]:
    """Copy groups of paragraphs as `Cluster`s (p1, p2, ...), each member a document and the
    paragraph's index in it: `exact` when every member has the representative's exact key."""
    if not len(groups):
        return []
    sizes, members, reps, exact, sims = _flattened(groups, feats.key_hi, feats.key_lo)
    ids = [docs[d].id for d in feats.doc[members].tolist()]
    index = feats.index[members].tolist()
    every = _paragraph_members(ids, _rounded(sims), index)
    out = []
    at = 0
    for k, (size, text) in enumerate(zip(sizes, row_texts(docs, feats, reps), strict=True)):
        kind: ClusterKind = "exact" if exact[k] else "near"
        cluster = tuple(every[at : at + size])
        out.append(Cluster(f"p{k + 1}", kind, "paragraph", cluster[0], cluster, first_words(text)))
        at += size
    return out


def _paragraph_members(ids: list[str], sims: list[float], index: list[int]) -> list[Member]:
    """The members of many paragraph clusters, made at once (one `map`, not a generator per cluster:
    a scan of 100k pages makes over 400k of them), their similarities already rounded."""
    return list(map(Member, ids, sims, index))


def _rounded(sims: list[float]) -> list[float]:
    """`round(s, 4)` of each similarity, each distinct value rounded once: copy clusters' are
    MinHash estimates, k / num_perm, so 400k members hold at most 129 values with 128 permutations
    (and a lookup is several times cheaper than a `round`)."""
    once = {s: round(s, 4) for s in set(sims)}
    return [once[s] for s in sims]


def document_story_clusters(docs: Sequence[Document], previews: Callable[[int], str], units: np.ndarray,
                            found: list[tuple[list[int], list[float]]], base: int) -> list[Cluster]:
    """The story stage's groups of documents (positions in `units`) as `story` clusters, numbered
    on from the copy clusters (`base`)."""
    out = []
    for k, (members, sims) in enumerate(found):
        mem = tuple(Member(docs[units[m]].id, round(s, 4)) for m, s in zip(members, sims, strict=True))
        out.append(Cluster(f"d{base + k + 1}", "story", "document", mem[0], mem, previews(int(units[members[0]]))))
    return out


@dataclass(frozen=True, slots=True)
class StoryMembers:
    """The story stage's groups of paragraphs as plain lists, for `paragraph_story_clusters`: each
    group's size, every member's document id, paragraph index and rounded similarity, each
    group's preview. Plain lists cross from a forked process cheaply, where the clusters' objects
    would cost more to send than to make."""

    sizes: list[int]
    ids: list[str]
    index: list[int]
    sims: list[float]
    previews: list[str]


def paragraph_story_members(docs: Sequence[Document], feats: ParagraphFeatures, units: np.ndarray,
                            found: list[tuple[list[int], list[float]]]) -> StoryMembers:
    """The story stage's groups of paragraphs (positions in `units`, rows of the features), every
    member at once (as `paragraph_clusters` does)."""
    if not found:
        return StoryMembers([], [], [], [], [])
    sizes = [len(members) for members, _ in found]
    rows = units[np.concatenate([np.asarray(members, dtype=np.int64) for members, _ in found])]
    ids = [docs[d].id for d in feats.doc[rows].tolist()]
    previews = [first_words(text) for text in row_texts(docs, feats, rows[np.cumsum([0, *sizes[:-1]])])]
    return StoryMembers(sizes, ids, feats.index[rows].tolist(), [round(s, 4) for _, sims in found for s in sims],
                        previews)


def paragraph_story_clusters(found: StoryMembers, base: int) -> list[Cluster]:
    """The story stage's groups of paragraphs as `story` clusters, numbered on from the paragraph
    copy clusters (`base`)."""
    every = _paragraph_members(found.ids, found.sims, found.index)
    out = []
    at = 0
    for k, (size, preview) in enumerate(zip(found.sizes, found.previews, strict=True)):
        mem = tuple(every[at : at + size])
        out.append(Cluster(f"p{base + k + 1}", "story", "paragraph", mem[0], mem, preview))
        at += size
    return out


def document_outcomes(docs: Sequence[Document], table: DocTable, groups: list[Group], clusters: list[Cluster],
                      kept: dict[int, int], similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      stripped: StrippedStore, doc_chars: list[int]) -> list[DocumentOutcome]:
    """What `clean` does with each document: kept, or removed as a copy of its group's kept copy
    (with the reason and its similarity to it), and the chrome stripped from it.

    With an archive, a group kept for an archived removed copy (its kept document stands for it),
    or built around one, was matched through that copy: the outcome names it (`through`), and the
    similarity is to it."""
    where: dict[int, int] = {m: k for k, g in enumerate(groups) for m in g.members.tolist()}
    via = {k: _archived_copy_matched(table, kept[k], g.representative) for k, g in enumerate(groups)}
    # Each removed document's similarity to the document it was matched with, all in one call.
    removed = [(kept[k] if via[k] is None else via[k], m) for k, g in enumerate(groups) for m in g.members.tolist()
               if m != kept[k] and m < len(docs)]
    pairs = np.array(removed, dtype=np.int64).reshape(-1, 2)
    sims = similarity(pairs[:, 0], pairs[:, 1]).tolist() if len(pairs) else []
    sim_to_kept = dict(zip(pairs[:, 1].tolist(), sims, strict=True))
    out = []
    for d, doc in enumerate(docs):
        k = where.get(d)
        keeper = kept[k] if k is not None else d
        if keeper == d:
            out.append(DocumentOutcome(doc.id, doc.site, True, clusters[k].id if k is not None else None, None,
                                       None, None, stripped.of(d), doc_chars[d]))
            continue
        assert k is not None
        sim = sim_to_kept[d]
        kept_id = table.kept_id(keeper)
        matched = via[k]
        through = table.ids[matched] if matched is not None else None
        reason = f"{clusters[k].kind} duplicate of {kept_id}"
        if table.is_archived(keeper):
            reason += f" (archived; matched through {through}, archived as its copy)" if through else " (archived)"
        out.append(DocumentOutcome(doc.id, doc.site, False, clusters[k].id, kept_id, round(sim, 4),
                                   reason, stripped.of(d), doc_chars[d], through))
    return out


def _archived_copy_matched(table: DocTable, keeper: int, representative: int) -> int | None:
    """The archived removed copy a group was matched through: the one kept for it, else the
    representative it was built around, if either is one."""
    for row in (keeper, representative):
        if table.copy_of[row] is not None:
            return row
    return None


def chrome_report(docs: Sequence[Document], stripped: StrippedStore, feats: ParagraphFeatures) -> list[ChromeLine]:
    """Chrome lines per site (one per line key, told apart by its hash), most widespread first;
    each worded as first seen, with the number of distinct document ids it was stripped from.
    Grouped by sorting the stripped rows' (site, key, id) numbers, not row by row."""
    if not len(stripped):
        return []
    sites: dict[str, int] = {}
    ids: dict[str, int] = {}
    site_of = np.fromiter((sites.setdefault(d.site, len(sites)) for d in docs), dtype=np.int64, count=len(docs))
    id_of = np.fromiter((ids.setdefault(d.id, len(ids)) for d in docs), dtype=np.int64, count=len(docs))
    bounds = np.searchsorted(feats.doc, np.arange(len(docs) + 1))
    doc = stripped.doc.astype(np.int64)
    site, key, page = site_of[doc], feats.key_hashes[bounds[doc] + stripped.index.astype(np.int64)], id_of[doc]
    order = np.lexsort((page, key, site))  # by line, then page id; equal rows stay in row order
    site, key, page = site[order], key[order], page[order]
    new_line = np.concatenate([[True], (site[1:] != site[:-1]) | (key[1:] != key[:-1])])
    new_page = new_line | np.concatenate([[True], page[1:] != page[:-1]])
    starts = np.flatnonzero(new_line)
    pages = np.add.reduceat(new_page.astype(np.int64), starts).tolist()
    first = np.minimum.reduceat(order, starts)  # each line's first row: as first seen
    # Read for all lines at once: a dump's chrome report has 100k lines or more.
    where = zip(doc[first].tolist(), stripped.texts_at(first), stripped.reason_ids[first].tolist(), pages,
                strict=True)
    lines = []
    for d, text, reason, count in where:
        doc_d = docs[d]
        lines.append(ChromeLine(doc_d.site, text, count, doc_d.id, stripped.reasons[reason]))
    lines.sort(key=lambda c: (c.site, -c.pages, c.text))
    return lines


def scan_stats(docs: Sequence[Document], feats: ParagraphFeatures, bad: Sequence[BadRecord],
               doc_clusters: list[Cluster], para_clusters: list[Cluster], outcomes: list[DocumentOutcome],
               stripped: StrippedStore) -> Stats:
    """The run in numbers (`Stats`), from the clusters, the outcomes and the stripped chrome."""

    def by_kind(clusters: list[Cluster]) -> dict[str, int]:
        counts = {"exact": 0, "near": 0, "story": 0}
        for c in clusters:
            counts[c.kind] += 1
        return counts

    is_kept = np.fromiter((o.kept for o in outcomes), dtype=bool, count=len(outcomes))
    removed = np.flatnonzero(~is_kept).tolist()
    texts = [docs[d].text for d in removed]
    removable_bytes = sum(len(t) if t.isascii() else len(utf8(t)) for t in texts)
    kept = np.flatnonzero(is_kept)
    return Stats(
        documents=len(docs),
        paragraphs=len(feats.doc),
        bad_records=len(bad),
        document_clusters=by_kind(doc_clusters),
        paragraph_clusters=by_kind(para_clusters),
        removable_documents=len(removed),
        removable_bytes=removable_bytes,
        chrome_paragraphs=sum(len(outcomes[d].stripped) for d in kept.tolist()),
        chrome_bytes=stripped.utf8_bytes_of(kept),
    )
