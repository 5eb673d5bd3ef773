"""The Dask engine: `scan` over input partitions on a Dask scheduler, with the local engine's results.

The stages are the local engine's pure functions, placed on Dask collections:

1. read + segment + sign: one task per input partition (`signing.sign`); persisted there;
2. page groups: exact page keys and page band keys are shuffled on the key (Dask dataframe
   shuffles), candidate pairs built in each bucket as `lsh.candidate_pairs` builds them, verified
   by a join with both ends' signatures, then connected components (`dask_graph.components`);
3. chrome: per-partition `ChromeStats` merged by a tree reduction (a per-site aggregation; the
   merged statistics are small and go to every partition), then pages classified in place;
4. paragraph clusters: paragraph band keys shuffled, candidates verified, components, and each
   component clustered (`cluster.cluster`, the chaining guard) in one task with its nodes' data;
5. document clusters over content: exact content keys, document band keys and shared content
   paragraph clusters give candidates, verified with exact shared-shingle counts, components,
   and per component the clusters, the kept copy (`keep_choice`) and similarities to it;
6. outcomes per partition, and `clean`'s shards written where the partitions are.

Ties are broken by (id, input position) as in the local engine, with input positions numbered
across partitions in input order, so clusters and kept copies do not depend on partitioning or
worker count. The driver holds only small things: partition sizes, per-site chrome statistics,
the edge list while scipy does the components, and cluster membership for the report.
7. story clusters: each partition picks its story units (kept documents, paragraphs that are not
   copies) with their term hashes; pairs and clusters are worked out on the driver by the local
   engine's `story_groups` over the units in global input order, so they are the same.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import chrome as chrome_stage
from . import kernels_rows
from . import story as story_stage
from .cluster import cluster
from .copies import content_keys, content_shingles, copy_similarity, document_date, keep_choice, overlap_pairs
from .dask_graph import (
    PAIRS_META,
    ComponentsMethod,
    ComponentsRun,
    bucket_candidates,
    components,
    equal_key_stars,
    pairs_frame,
    unique_pairs,
    verify,
)
from .dask_io import read_partition, shard_folder, shard_name
from .features import ParagraphFeatures
from .lsh import band_keys, lsh_params
from .minhash import EMPTY, estimate_jaccard
from .model import BadRecord, Cluster, ClusterKind, Document, Member
from .normalize import line_key, utf8
from .page_chrome import classify_pages, page_stats
from .readers import ReadOptions
from .report import count_site_outcome
from .results import (
    ChromeLine,
    DocumentOutcome,
    ScanResult,
    Stats,
    content_previews,
    first_words,
    row_text,
    row_texts,
)
from .settings import Settings
from .signing import sign
from .story_levels import story_groups
from .stripped import StrippedStore
from .writers import write_jsonl


@dataclass(frozen=True, slots=True)
class DaskOptions:
    """How the Dask engine partitions and where it finds components.

    shuffle_partitions: output partitions of every shuffle (0: one per input partition).
    shuffle_method: Dask's "tasks" or "p2p" (None: Dask's choice, p2p on a distributed cluster).
    components: "auto" (scipy on the driver up to `max_driver_edges` edges, large-star/small-star
        on the cluster beyond), or "scipy" / "star" to force one.
    collect_outcomes: bring every document's outcome to the driver (tests, small dumps); otherwise
        outcomes stay in the partitions and the report's per-site figures are summed there.
    """

    shuffle_partitions: int = 0
    shuffle_method: str | None = None
    components: ComponentsMethod = "auto"
    max_driver_edges: int = 20_000_000
    collect_outcomes: bool = False


@dataclass
class DaskScan:
    """A Dask scan: the result (clusters, chrome, stats; outcomes if collected), per-site figures,
    stage timings, and the persisted partitions `write_shards` writes from."""

    result: ScanResult
    sites: dict[str, dict[str, int]]
    timings: dict[str, float]
    components: dict[str, ComponentsRun]
    partitions: list[Any] = field(repr=False)

    def write_shards(self, target: Path, what: str = "documents", text_field: str = "text",
                     annotate: bool = False) -> int:
        """Write one JSONL shard per input partition into folder `target` (replaced whole, atomically):
        `documents` (the cleaned dump), `removed` or `stripped` records. Returns the records written."""
        import dask
        from dask import delayed

        with shard_folder(target) as folder:
            tasks = [delayed(_write_shard)(part, str(folder / shard_name(p)), what, text_field, annotate)
                     for p, part in enumerate(self.partitions)]
            return int(sum(dask.compute(*tasks)))


# -- per-partition state ---------------------------------------------------------------------------

@dataclass
class _Part:
    """One input partition as it moves through the stages (held where it was read)."""

    docs: list[Document]
    feats: ParagraphFeatures
    bad: list[BadRecord]
    doc0: int = 0
    para0: int = 0
    content: np.ndarray | None = None
    stripped: StrippedStore | None = None
    outcomes: list[DocumentOutcome] | None = None


def _load(path: str, options: ReadOptions, settings: Settings) -> _Part:
    docs, bad = read_partition(path, options)
    feats = sign([d.text for d in docs], replace(settings, jobs=1), lambda stage, done, total: None)
    return _Part(docs, feats, bad)


def _sizes(part: _Part) -> tuple[int, int]:
    return len(part.docs), len(part.feats.doc)


def _place(part: _Part, doc0: int, para0: int) -> _Part:
    return replace(part, doc0=doc0, para0=para0)


# -- frames built in each partition --------------------------------------------------------------

_KEYS_META = pd.DataFrame({"hi": np.zeros(0, np.uint64), "lo": np.zeros(0, np.uint64), "node": np.zeros(0, np.int64)})
_BANDS_META = pd.DataFrame({"band": np.zeros(0, np.int64), "key": np.zeros(0, np.uint64),
                            "node": np.zeros(0, np.int64)})
_SIGS_META = pd.DataFrame({"node": np.zeros(0, np.int64), "sig": pd.Series([], dtype=object)})
_IDS_META = pd.DataFrame({"node": np.zeros(0, np.int64), "id": pd.Series([], dtype=object)})
_PARA_META = pd.DataFrame({
    "node": np.zeros(0, np.int64), "sig": pd.Series([], dtype=object), "g": np.zeros(0, np.int64),
    "id": pd.Series([], dtype=object), "k": np.zeros(0, np.int64), "hi": np.zeros(0, np.uint64),
    "lo": np.zeros(0, np.uint64), "content": np.zeros(0, bool), "preview": pd.Series([], dtype=object)})
_DOC_META = pd.DataFrame({
    "node": np.zeros(0, np.int64), "id": pd.Series([], dtype=object), "hi": np.zeros(0, np.uint64),
    "lo": np.zeros(0, np.uint64), "size": np.zeros(0, np.int64), "shingles": pd.Series([], dtype=object),
    "chars": np.zeros(0, np.float64), "date": pd.Series([], dtype=object), "preview": pd.Series([], dtype=object)})


def _bands_frame(sigs: np.ndarray, nodes: np.ndarray, settings: Settings) -> pd.DataFrame:
    """(band, key, node) rows of the non-empty signatures: what the band shuffle moves."""
    active = sigs[:, 0] != EMPTY if len(sigs) else np.zeros(0, dtype=bool)
    sigs, nodes = sigs[active], nodes[active]
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    keys = band_keys(sigs, bands, rows)
    return pd.DataFrame({"band": np.tile(np.arange(bands, dtype=np.int64), len(nodes)),
                         "key": keys.reshape(-1), "node": np.repeat(nodes, bands)})


def _sigs_column(sigs: np.ndarray) -> pd.Series:
    return pd.Series([row.tobytes() for row in sigs], dtype=object)


def _page_signatures(part: _Part) -> np.ndarray:
    feats = part.feats
    signed = feats.sig_row >= 0
    return kernels_rows.merged_signatures(feats.signatures, feats.sig_row[signed], feats.doc[signed], len(part.docs))


def _page_keys(part: _Part) -> pd.DataFrame:
    hi, lo = content_keys(part.feats, np.ones(len(part.feats.doc), dtype=bool), len(part.docs))
    return pd.DataFrame({"hi": hi, "lo": lo, "node": part.doc0 + np.arange(len(part.docs), dtype=np.int64)})


def _page_bands(part: _Part, settings: Settings) -> pd.DataFrame:
    nodes = part.doc0 + np.arange(len(part.docs), dtype=np.int64)
    return _bands_frame(_page_signatures(part), nodes, settings)


def _page_sigs(part: _Part) -> pd.DataFrame:
    sigs = _page_signatures(part)
    return pd.DataFrame({"node": part.doc0 + np.arange(len(part.docs), dtype=np.int64), "sig": _sigs_column(sigs)})


def _ids(part: _Part) -> pd.DataFrame:
    return pd.DataFrame({"node": part.doc0 + np.arange(len(part.docs), dtype=np.int64),
                         "id": pd.Series([d.id for d in part.docs], dtype=object)})


def _para_nodes(part: _Part) -> np.ndarray:
    return np.flatnonzero(part.feats.sig_row >= 0)


def _para_bands(part: _Part, settings: Settings) -> pd.DataFrame:
    rows = _para_nodes(part)
    return _bands_frame(part.feats.signatures[part.feats.sig_row[rows]], part.para0 + rows, settings)


def _para_data(part: _Part) -> pd.DataFrame:
    feats, rows = part.feats, _para_nodes(part)
    assert part.content is not None
    docs, index = feats.doc[rows], feats.index[rows]
    return pd.DataFrame({
        "node": part.para0 + rows, "sig": _sigs_column(feats.signatures[feats.sig_row[rows]]),
        "g": part.doc0 + docs, "id": pd.Series([part.docs[d].id for d in docs], dtype=object), "k": index,
        "hi": feats.key_hi[rows], "lo": feats.key_lo[rows], "content": part.content[rows],
        "preview": pd.Series([first_words(text) for text in row_texts(part.docs, feats, rows)], dtype=object)})


def _doc_signatures(part: _Part) -> np.ndarray:
    feats = part.feats
    assert part.content is not None
    signed = part.content & (feats.sig_row >= 0)
    return kernels_rows.merged_signatures(feats.signatures, feats.sig_row[signed], feats.doc[signed], len(part.docs))


def _doc_keys(part: _Part) -> pd.DataFrame:
    assert part.content is not None
    hi, lo = content_keys(part.feats, part.content, len(part.docs))
    return pd.DataFrame({"hi": hi, "lo": lo, "node": part.doc0 + np.arange(len(part.docs), dtype=np.int64)})


def _doc_bands(part: _Part, settings: Settings) -> pd.DataFrame:
    return _bands_frame(_doc_signatures(part), part.doc0 + np.arange(len(part.docs), dtype=np.int64), settings)


def _doc_data(part: _Part, settings: Settings) -> pd.DataFrame:
    """Everything document verification and clustering read: content key, distinct content shingles,
    content characters (the `longest` policy), date, and a preview of the content text."""
    feats, n = part.feats, len(part.docs)
    assert part.content is not None
    content = part.content
    hi, lo = content_keys(feats, content, n)
    shingles, offsets = content_shingles(feats, content & (feats.sig_row >= 0), n)
    chars = np.bincount(feats.doc[content], weights=feats.chars[content], minlength=n).astype(np.float64)
    preview = content_previews(part.docs, feats, content)
    previews = [preview(d) for d in range(n)]
    return pd.DataFrame({
        "node": part.doc0 + np.arange(n, dtype=np.int64), "id": pd.Series([d.id for d in part.docs], dtype=object),
        "hi": hi, "lo": lo, "size": np.diff(offsets),
        "shingles": pd.Series([shingles[offsets[d]:offsets[d + 1]].tobytes() for d in range(n)], dtype=object),
        "chars": chars, "date": pd.Series([document_date(d, settings.date_field) for d in part.docs], dtype=object),
        "preview": pd.Series(previews, dtype=object)})


# -- verification checks (run where the joined pairs are) ---------------------------------------

def _stack(column: pd.Series, dtype: type) -> np.ndarray:
    return np.stack([np.frombuffer(b, dtype=dtype) for b in column]) if len(column) else np.zeros((0, 0), dtype)


def _check_estimate(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Pairs whose signatures' estimated Jaccard reaches the threshold (`verified_lsh_pairs`)."""
    if frame.empty:
        return PAIRS_META.copy()
    sigs = np.concatenate([_stack(frame["a_sig"], np.uint32), _stack(frame["b_sig"], np.uint32)])
    m = len(frame)
    sim = estimate_jaccard(sigs, np.arange(m), np.arange(m, 2 * m))
    return frame.loc[sim >= threshold, ["a", "b"]].reset_index(drop=True)


def _shared(a: bytes, b: bytes) -> int:
    """Shared shingles of two sorted distinct sets (as `copies.overlap_pairs` counts them)."""
    return int(np.intersect1d(np.frombuffer(a, np.uint32), np.frombuffer(b, np.uint32), assume_unique=True).size)


def _check_documents(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Document pairs passing on Jaccard or containment of their content shingles, counted exactly."""
    if frame.empty:
        return PAIRS_META.copy()
    shared = np.array([_shared(a, b) for a, b in zip(frame["a_shingles"], frame["b_shingles"], strict=True)],
                      dtype=np.float64)
    size_a = frame["a_size"].to_numpy().astype(np.float64)
    size_b = frame["b_size"].to_numpy().astype(np.float64)
    jac = shared / np.maximum(size_a + size_b - shared, 1.0)
    same = ((frame["a_hi"].to_numpy() == frame["b_hi"].to_numpy())
            & (frame["a_lo"].to_numpy() == frame["b_lo"].to_numpy()))
    sim = copy_similarity(jac, shared, size_a, size_b, same, settings)  # type: ignore[arg-type]
    passing = min(settings.threshold, settings.containment)
    return frame.loc[sim >= passing, ["a", "b"]].reset_index(drop=True)


# -- per-component clustering (one task holds whole components) -----------------------------------

_LEADER_META = pd.DataFrame({"node": np.zeros(0, np.int64), "leader": pd.Series([], dtype=object)})


def _leaders_local(frame: pd.DataFrame) -> pd.DataFrame:
    """Page group of each node: the id of its component's first document by (id, input position)."""
    if frame.empty:
        return _LEADER_META.copy()
    ordered = frame.sort_values(["label", "id", "node"], kind="stable")
    first = ordered.drop_duplicates("label").set_index("label")["id"]
    return pd.DataFrame({"node": frame["node"].to_numpy(),
                         "leader": pd.Series(first.reindex(frame["label"]).to_numpy(), dtype=object)})


def _partition_graph(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A partition's node rows in node order, and its edges as positions in that order.

    The partition holds whole components (nodes and edges were shuffled on the component label),
    and components are disjoint, so clustering all of them in one `cluster` call gives the groups
    the local engine's single call gives them; positions keep input order, as `cluster` expects.
    """
    nodes = nodes.sort_values("node", kind="stable").reset_index(drop=True)
    g = nodes["node"].to_numpy()
    pairs = edges[["a", "b"]].to_numpy().astype(np.int64).reshape(-1, 2)
    local = np.searchsorted(g, pairs) if len(g) else np.zeros_like(pairs)
    if len(pairs) and not (np.all(local < len(g)) and np.array_equal(g[np.minimum(local, len(g) - 1)], pairs)):
        raise RuntimeError("edges and nodes of a component were shuffled to different partitions")
    return nodes, local.astype(np.int64)


def _local_rank(keys: list[tuple[Any, ...]]) -> np.ndarray:
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    return rank


_PARA_ROWS = ["rep_id", "rep_g", "rep_k", "pos", "id", "k", "sim", "kind", "preview", "g"]


def _paragraph_groups_local(nodes: pd.DataFrame, edges: pd.DataFrame,
                            threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paragraph clusters of the components in one partition (`paragraph_groups`), and the document
    pairs sharing a content paragraph cluster, as stars to its first document (`_shared_paragraph_pairs`)."""
    rows: list[tuple[Any, ...]] = []
    stars: list[np.ndarray] = []
    if len(nodes):
        nodes, pairs = _partition_graph(nodes, edges)
        sigs = _stack(nodes["sig"], np.uint32)
        ids, gs, ks = nodes["id"].tolist(), nodes["g"].to_numpy(), nodes["k"].to_numpy()
        hi, lo, content = nodes["hi"].to_numpy(), nodes["lo"].to_numpy(), nodes["content"].to_numpy()
        previews = nodes["preview"].tolist()
        rank = _local_rank([(ids[i], int(gs[i]), int(ks[i])) for i in range(len(nodes))])

        def similarity(rep: int, others: np.ndarray) -> np.ndarray:
            return estimate_jaccard(sigs, np.full(len(others), rep), others)

        for grp in cluster(len(nodes), pairs, rank, similarity, threshold):
            rep = grp.representative
            same = (hi[grp.members] == hi[rep]) & (lo[grp.members] == lo[rep])
            kind = "exact" if same.all() else "near"
            head = (ids[rep], int(gs[rep]), int(ks[rep]))
            rows.extend((*head, pos, ids[m], int(ks[m]), float(s), kind, previews[rep], int(gs[m]))
                        for pos, (m, s) in enumerate(zip(grp.members, grp.similarity, strict=True)))
            docs = np.unique(gs[grp.members][content[grp.members]])
            if len(docs) >= 2:
                stars.append(np.stack([np.full(len(docs) - 1, docs[0]), docs[1:]], axis=1))
    star_pairs = np.concatenate(stars) if stars else np.zeros((0, 2), dtype=np.int64)
    return pd.DataFrame(rows, columns=_PARA_ROWS), pairs_frame(star_pairs)


_DOC_ROWS = ["rep_id", "rep_g", "pos", "g", "id", "sim", "kind", "keeper_g", "keeper_id", "keeper_sim", "preview"]


def _document_groups_local(nodes: pd.DataFrame, edges: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Document clusters of the components in one partition (`document_groups`), each with its kept
    copy (`choose_kept`) and every member's similarity to it (`document_outcomes`)."""
    rows: list[tuple[Any, ...]] = []
    if len(nodes) == 0:
        return pd.DataFrame(rows, columns=_DOC_ROWS)
    passing = min(settings.threshold, settings.containment)
    nodes, pairs = _partition_graph(nodes, edges)
    ids, gs = nodes["id"].tolist(), nodes["node"].to_numpy()
    hi, lo = nodes["hi"].to_numpy(), nodes["lo"].to_numpy()
    sizes = nodes["size"].to_numpy().astype(np.float64)
    sets = [np.frombuffer(b, np.uint32) for b in nodes["shingles"]]
    shingles = np.concatenate(sets) if sets else np.zeros(0, np.uint32)
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in sets])]).astype(np.int64)
    chars, dates, previews = nodes["chars"].to_numpy(), nodes["date"].tolist(), nodes["preview"].tolist()
    rank = _local_rank([(ids[i], int(gs[i])) for i in range(len(nodes))])

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        shared = overlap_pairs(shingles, offsets, np.full(len(others), rep), others).astype(np.float64)
        union = np.maximum(sizes[rep] + sizes[others] - shared, 1.0)
        same = (hi[others] == hi[rep]) & (lo[others] == lo[rep])
        return copy_similarity(shared / union, shared, sizes[rep], sizes[others], same, settings)

    for grp in cluster(len(nodes), pairs, rank, similarity, passing):
        rep = grp.representative
        members = [int(m) for m in grp.members]
        keeper = keep_choice(members, settings.keep, rank, chars, dates.__getitem__)
        to_keeper = similarity(keeper, np.array(members, dtype=np.int64))
        same = (hi[grp.members] == hi[rep]) & (lo[grp.members] == lo[rep])
        kind = "exact" if same.all() else "near"
        for pos, (m, s) in enumerate(zip(members, grp.similarity, strict=True)):
            rows.append((ids[rep], int(gs[rep]), pos, int(gs[m]), ids[m], float(s), kind, int(gs[keeper]),
                         ids[keeper], float(to_keeper[pos]), previews[rep]))
    return pd.DataFrame(rows, columns=_DOC_ROWS)


# -- stage functions on partitions -----------------------------------------------------------------

def _learn(part: _Part, leaders: dict[int, str]) -> chrome_stage.ChromeStats:
    """This partition's share of the per-site recurrence statistics, pages counted by page group."""
    return page_stats(part.docs, [leaders.get(part.doc0 + i, d.id) for i, d in enumerate(part.docs)], part.feats)


def _merge(a: chrome_stage.ChromeStats, b: chrome_stage.ChromeStats) -> chrome_stage.ChromeStats:
    return a.merge(b)


def _classify(part: _Part, known: chrome_stage.ChromeStats | None) -> _Part:
    if known is None:
        return replace(part, content=np.ones(len(part.feats.doc), dtype=bool), stripped=StrippedStore.empty(part.docs))
    mask, stripped = classify_pages(part.docs, part.feats, known)
    return replace(part, content=~mask, stripped=stripped)


def _finalize(part: _Part, info: pd.DataFrame, clusters: dict[int, tuple[str, str]]) -> _Part:
    """Every document's outcome: kept, or removed in favour of its cluster's kept copy (`document_outcomes`)."""
    assert part.stripped is not None
    rows = {int(g): (int(rep), int(keeper), str(keeper_id), float(sim)) for g, rep, keeper, keeper_id, sim in zip(
        info["g"], info["rep_g"], info["keeper_g"], info["keeper_id"], info["keeper_sim"], strict=True)}
    outcomes = []
    for d, doc in enumerate(part.docs):
        g = part.doc0 + d
        row = rows.get(g)
        stripped = part.stripped.of(d)
        if row is None:
            outcomes.append(DocumentOutcome(doc.id, doc.site, True, None, None, None, None, stripped, len(doc.text)))
            continue
        rep, keeper_g, keeper, sim = row
        cluster_id, kind = clusters[rep]
        if keeper_g == g:
            outcomes.append(DocumentOutcome(doc.id, doc.site, True, cluster_id, None, None, None, stripped,
                                            len(doc.text)))
            continue
        outcomes.append(DocumentOutcome(doc.id, doc.site, False, cluster_id, keeper, round(sim, 4),
                                        f"{kind} duplicate of {keeper}", stripped, len(doc.text)))
    return replace(part, outcomes=outcomes)


@dataclass(frozen=True)
class _StoryUnit:
    """What the story stage needs of one kept document or one paragraph (one per copy group)."""

    id: str
    g: int
    k: int  # paragraph index (-1 for a document)
    terms: np.ndarray  # story term hashes
    preview: str


def _story_units(part: _Part, copies: set[tuple[int, int]]) -> tuple[list[_StoryUnit], list[_StoryUnit]]:
    """This partition's story units as `story_levels.document_story_units` and `paragraph_story_units`
    choose them: every kept document (its content paragraphs' terms, or all its paragraphs' when
    chrome left none) and every signed paragraph that is not a copy in a paragraph cluster
    (`copies`: (document, paragraph) pairs)."""
    assert part.outcomes is not None and part.content is not None
    feats, content = part.feats, part.content
    bounds = np.searchsorted(feats.doc, np.arange(len(part.docs) + 1))
    previews = content_previews(part.docs, feats, content)
    empty = np.zeros(0, dtype=np.uint64)
    docs = []
    for d, (doc, outcome) in enumerate(zip(part.docs, part.outcomes, strict=True)):
        if not outcome.kept:
            continue
        rows = range(bounds[d], bounds[d + 1])
        chosen = [r for r in rows if content[r]] or list(rows)
        terms = np.concatenate([feats.terms(r) for r in chosen]) if chosen else empty
        docs.append(_StoryUnit(doc.id, part.doc0 + d, -1, terms, previews(d)))
    paragraphs = []
    for r in np.flatnonzero(feats.sig_row >= 0):
        d, k = int(feats.doc[r]), int(feats.index[r])
        if (part.doc0 + d, k) not in copies:
            paragraphs.append(_StoryUnit(part.docs[d].id, part.doc0 + d, k, feats.terms(int(r)),
                                         first_words(row_text(part.docs, feats, int(r)))))
    return docs, paragraphs


def _story_clusters(units: list[_StoryUnit], level: str, base: int) -> list[Cluster]:
    """Story clusters over all partitions' units, on the driver: the local engine's `story_groups`
    over the same units in the same order (global input order), so the same pairs and clusters."""
    if not units:
        return []
    order = sorted(range(len(units)), key=lambda i: (units[i].id, units[i].g, units[i].k))
    rank = np.empty(len(units), dtype=np.int64)
    rank[order] = np.arange(len(units))
    terms = story_stage.TermRows.of_arrays([u.terms for u in units])
    out = []
    for n, (members, sims) in enumerate(story_groups(terms, story_stage.StorySettings(), rank, 1)):
        mem = tuple(Member(units[m].id, round(s, 4), None if level == "document" else units[m].k)
                    for m, s in zip(members, sims, strict=True))
        prefix = "d" if level == "document" else "p"
        out.append(Cluster(f"{prefix}{base + n + 1}", "story", level, mem[0], mem,  # type: ignore[arg-type]
                           units[members[0]].preview))
    return out


@dataclass
class _Summary:
    """What the driver keeps of a finished partition."""

    bad: list[BadRecord]
    documents: int
    paragraphs: int
    sites: dict[str, dict[str, int]]
    chrome: dict[tuple[str, str], list[Any]]
    removable_documents: int
    removable_bytes: int
    chrome_paragraphs: int
    chrome_bytes: int
    outcomes: list[DocumentOutcome] | None


def _summary(part: _Part, collect: bool) -> _Summary:
    """Per-site figures, chrome lines and removal totals of one partition (`report.site_removals`,
    `chrome_report`, `scan_stats`), summed on the driver."""
    assert part.outcomes is not None and part.stripped is not None
    sites: dict[str, dict[str, int]] = {}
    chrome: dict[tuple[str, str], list[Any]] = {}
    removable = removable_bytes = chrome_paragraphs = chrome_bytes = 0
    for d, (doc, o) in enumerate(zip(part.docs, part.outcomes, strict=True)):
        count_site_outcome(sites, o)
        if not o.kept:
            removable += 1
            removable_bytes += len(utf8(doc.text))
        else:
            chrome_paragraphs += len(o.stripped)
            chrome_bytes += part.stripped.utf8_bytes(d)
        for p in o.stripped:
            entry = chrome.setdefault((doc.site, line_key(p.text)), [p.text, set(), doc.id, p.reason])
            entry[1].add(doc.id)
    for entry in chrome.values():
        entry[1] = len(entry[1])
    return _Summary(part.bad, len(part.docs), len(part.feats.doc), sites, chrome, removable, removable_bytes,
                    chrome_paragraphs, chrome_bytes, part.outcomes if collect else None)


def _write_shard(part: _Part, path: str, what: str, text_field: str, annotate: bool) -> int:
    from .clean import output_records, removed_records, stripped_records

    assert part.outcomes is not None
    result = ScanResult(Settings(), _EMPTY_STATS, [], [], [], part.outcomes)
    if what == "removed":
        return write_jsonl(path, removed_records(part.docs, result))
    if what == "stripped":
        return write_jsonl(path, stripped_records(result))
    return write_jsonl(path, output_records(part.docs, result, text_field, annotate=annotate))


_EMPTY_STATS = Stats(0, 0, 0, {}, {}, 0, 0, 0, 0)


# -- the scan --------------------------------------------------------------------------------------

_SETTINGS, _READ, _OPTIONS = Settings(), ReadOptions(), DaskOptions()


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self.last, 3)
        self.last = now


def scan_dask(paths: Sequence[str], settings: Settings = _SETTINGS, read_options: ReadOptions = _READ,
              options: DaskOptions = _OPTIONS) -> DaskScan:
    """Scan the input partitions `paths` (one partition each, in this order) on the current Dask
    scheduler (see `dask_io.dask_scheduler`): the local engine's document clusters, kept copies,
    chrome, paragraph and story clusters for the same documents in the same order."""
    import dask

    if options.shuffle_method:
        with dask.config.set({"dataframe.shuffle.method": options.shuffle_method}):
            return _scan_dask(paths, settings, read_options, options)
    return _scan_dask(paths, settings, read_options, options)


def _scan_dask(paths: Sequence[str], settings: Settings, read_options: ReadOptions, options: DaskOptions) -> DaskScan:
    import dask
    from dask import delayed

    timings: dict[str, float] = {}
    clock = _Clock(timings)
    runs: dict[str, ComponentsRun] = {}
    shuffles = options.shuffle_partitions or max(1, len(paths))

    parts = list(dask.persist(*[delayed(_load)(p, read_options, settings) for p in paths]))
    sizes = dask.compute(*[delayed(_sizes)(p) for p in parts])
    doc0 = np.concatenate([[0], np.cumsum([s[0] for s in sizes])]).astype(np.int64)
    para0 = np.concatenate([[0], np.cumsum([s[1] for s in sizes])]).astype(np.int64)
    parts = list(dask.persist(*[delayed(_place)(p, int(doc0[k]), int(para0[k])) for k, p in enumerate(parts)]))
    clock("read + sign")

    def frame(fn: Any, meta: pd.DataFrame, *args: Any) -> Any:
        import dask.dataframe as dd
        return dd.from_delayed([delayed(fn)(p, *args) for p in parts], meta=meta, verify_meta=False)

    def slices(table: pd.DataFrame, column: str) -> list[pd.DataFrame]:
        """Rows of `table` for each partition, by the global document index in `column`."""
        table = table.sort_values(column, kind="stable")
        cuts = np.searchsorted(table[column].to_numpy(), doc0)
        return [table.iloc[cuts[k]:cuts[k + 1]] for k in range(len(parts))]

    total = int(doc0[-1])
    stats: chrome_stage.ChromeStats | None = None
    prows = pd.DataFrame(columns=_PARA_ROWS)
    drows = pd.DataFrame(columns=_DOC_ROWS)
    if total:
        # 2. page groups
        leaders = page_groups(frame, settings, options, shuffles, runs)
        leader_maps = [dict(zip(s["node"].astype(int), s["leader"], strict=True)) for s in slices(leaders, "node")]
        clock("page groups")
        # 3. chrome
        known: Any = None
        if settings.chrome:
            learned = [delayed(_learn)(p, m) for p, m in zip(parts, leader_maps, strict=True)]
            while len(learned) > 1:
                learned = [delayed(_merge)(learned[i], learned[i + 1]) if i + 1 < len(learned) else learned[i]
                           for i in range(0, len(learned), 2)]
            (known,) = dask.persist(learned[0])
            stats = known.compute()
        parts = list(dask.persist(*[delayed(_classify)(p, known) for p in parts]))
        clock("chrome")
        # 4. paragraph clusters
        prows, para_pairs = _paragraph_stage(frame, settings, options, shuffles, runs)
        clock("paragraph clusters")
        # 5. document clusters
        drows = _document_stage(frame, para_pairs, settings, options, shuffles, runs)
        clock("document clusters")
    else:
        parts = list(dask.persist(*[delayed(_classify)(p, None) for p in parts]))

    doc_clusters, cluster_of = _assemble_documents(drows)
    para_clusters = _assemble_paragraphs(prows)
    info = slices(drows[["g", "rep_g", "keeper_g", "keeper_id", "keeper_sim"]], "g")
    parts = list(dask.persist(*[delayed(_finalize)(p, i, cluster_of) for p, i in zip(parts, info, strict=True)]))
    summaries: list[_Summary] = list(dask.compute(*[delayed(_summary)(p, options.collect_outcomes) for p in parts]))
    clock("outcomes")
    if settings.story and total:
        # 7. story clusters: each partition picks its units; the pairs and clusters are worked out on
        # the driver over the units' term hashes (8 bytes per term).
        copy_rows = prows[(prows["g"] != prows["rep_g"]) | (prows["k"] != prows["rep_k"])]
        copies = set(zip(copy_rows["g"].astype(int), copy_rows["k"].astype(int), strict=True))
        by_part = [{(g, k) for g, k in copies if doc0[i] <= g < doc0[i + 1]} for i in range(len(parts))]
        units = dask.compute(*[delayed(_story_units)(p, c) for p, c in zip(parts, by_part, strict=True)])
        doc_clusters = doc_clusters + _story_clusters([u for d, _ in units for u in d], "document",
                                                      len(doc_clusters))
        para_clusters = para_clusters + _story_clusters([u for _, ps in units for u in ps], "paragraph",
                                                        len(para_clusters))
        clock("story clusters")
    result, sites = _result(settings, summaries, doc_clusters, para_clusters, stats)
    return DaskScan(result, sites, timings, runs, parts)


def page_groups(frame: Any, settings: Settings, options: DaskOptions, shuffles: int,
                 runs: dict[str, ComponentsRun]) -> pd.DataFrame:
    """(node, leader id) of every document in a page group of two or more (`page_groups`)."""
    import dask.dataframe as dd

    exact = frame(_page_keys, _KEYS_META).shuffle(on="hi", npartitions=shuffles).map_partitions(
        equal_key_stars, meta=PAIRS_META)
    candidates = unique_pairs(frame(_page_bands, _BANDS_META, settings).shuffle(on="key", npartitions=shuffles)
                              .map_partitions(bucket_candidates, meta=PAIRS_META), shuffles)
    verified = verify(candidates, frame(_page_sigs, _SIGS_META), _check_estimate, shuffles,
                      threshold=settings.threshold)
    labels, runs["page groups"] = components(dd.concat([exact, verified]), shuffles, options.components,
                                             options.max_driver_edges)
    return labels.merge(frame(_ids, _IDS_META), on="node", how="inner", npartitions=shuffles).shuffle(
        on="label", npartitions=shuffles).map_partitions(_leaders_local, meta=_LEADER_META).compute()


def _per_component(labels: Any, edges: Any, data: Any, shuffles: int, fn: Any, **kwargs: Any) -> list[Any]:
    """`fn(nodes, edges, **kwargs)` on every partition of components: node rows (with their data)
    and edges are both shuffled on the component label, so each component is whole in one task."""
    import dask
    from dask import delayed

    nodes = labels.merge(data, on="node", how="inner", npartitions=shuffles)
    edges = edges.merge(labels.rename(columns={"node": "a"}), on="a", how="inner", npartitions=shuffles)
    node_parts = nodes.shuffle(on="label", npartitions=shuffles).to_delayed()
    edge_parts = edges.shuffle(on="label", npartitions=shuffles).to_delayed()
    return list(dask.persist(*[delayed(fn)(n, e, **kwargs) for n, e in zip(node_parts, edge_parts, strict=True)]))


def _paragraph_stage(frame: Any, settings: Settings, options: DaskOptions, shuffles: int,
                     runs: dict[str, ComponentsRun]) -> tuple[pd.DataFrame, Any]:
    """Paragraph cluster rows (to the driver) and the document pairs sharing a content cluster (a frame)."""
    import dask
    import dask.dataframe as dd
    from dask import delayed

    candidates = unique_pairs(frame(_para_bands, _BANDS_META, settings).shuffle(on="key", npartitions=shuffles)
                              .map_partitions(bucket_candidates, meta=PAIRS_META), shuffles)
    data = frame(_para_data, _PARA_META).persist()
    verified = verify(candidates, data[["node", "sig"]], _check_estimate, shuffles,
                      threshold=settings.threshold).persist()
    labels, runs["paragraph clusters"] = components(verified, shuffles, options.components, options.max_driver_edges)
    outs = _per_component(labels, verified, data, shuffles, _paragraph_groups_local, threshold=settings.threshold)
    rows = dask.compute(*[delayed(operator.getitem)(o, 0) for o in outs])
    pairs = dd.from_delayed([delayed(operator.getitem)(o, 1) for o in outs], meta=PAIRS_META, verify_meta=False)
    return pd.concat([pd.DataFrame(columns=_PARA_ROWS), *rows], ignore_index=True), pairs


def _document_stage(frame: Any, para_pairs: Any, settings: Settings, options: DaskOptions, shuffles: int,
                    runs: dict[str, ComponentsRun]) -> pd.DataFrame:
    """Document cluster rows, one per member, with the cluster's kept copy."""
    import dask
    import dask.dataframe as dd

    exact = frame(_doc_keys, _KEYS_META).shuffle(on="hi", npartitions=shuffles).map_partitions(
        equal_key_stars, meta=PAIRS_META)
    lsh = frame(_doc_bands, _BANDS_META, settings).shuffle(on="key", npartitions=shuffles).map_partitions(
        bucket_candidates, meta=PAIRS_META)
    candidates = unique_pairs(dd.concat([exact, lsh, para_pairs]), shuffles)
    data = frame(_doc_data, _DOC_META, settings).persist()
    verified = verify(candidates, data[["node", "hi", "lo", "size", "shingles"]], _check_documents, shuffles,
                      settings=settings).persist()
    labels, runs["document clusters"] = components(verified, shuffles, options.components, options.max_driver_edges)
    outs = _per_component(labels, verified, data, shuffles, _document_groups_local, settings=settings)
    rows = dask.compute(*outs)
    return pd.concat([pd.DataFrame(columns=_DOC_ROWS), *rows], ignore_index=True)


# -- assembling on the driver ----------------------------------------------------------------------

def _groups(rows: pd.DataFrame, keys: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each group of rows sharing `keys`, with `rows` sorted by `keys` and then `pos`."""
    values = [rows[k].tolist() for k in keys]
    heads = list(zip(*values, strict=True))
    starts = [i for i in range(len(heads)) if i == 0 or heads[i] != heads[i - 1]]
    return list(zip(starts, [*starts[1:], len(heads)], strict=True))


def _sorted_rows(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    sort_keys = list(zip(*[rows[k].tolist() for k in [*keys, "pos"]], strict=True))
    order = sorted(range(len(rows)), key=sort_keys.__getitem__)
    return rows.iloc[order].reset_index(drop=True)


def _assemble_documents(rows: pd.DataFrame) -> tuple[list[Cluster], dict[int, tuple[str, str]]]:
    """Document clusters numbered by their representative's (id, input position), as `cluster` sorts
    them; and (cluster id, kind) by representative."""
    clusters: list[Cluster] = []
    cluster_of: dict[int, tuple[str, str]] = {}
    if rows.empty:
        return clusters, cluster_of
    rows = _sorted_rows(rows, ["rep_id", "rep_g"])
    ids, sims, kinds = rows["id"].tolist(), rows["sim"].tolist(), rows["kind"].tolist()
    reps, previews = rows["rep_g"].tolist(), rows["preview"].tolist()
    for k, (a, b) in enumerate(_groups(rows, ["rep_id", "rep_g"])):
        kind: ClusterKind = kinds[a]
        members = tuple(Member(str(ids[i]), round(float(sims[i]), 4)) for i in range(a, b))
        clusters.append(Cluster(f"d{k + 1}", kind, "document", members[0], members, str(previews[a])))
        cluster_of[int(reps[a])] = (f"d{k + 1}", kind)
    return clusters, cluster_of


def _assemble_paragraphs(rows: pd.DataFrame) -> list[Cluster]:
    """Paragraph clusters numbered by their representative's (document id, position, paragraph)."""
    clusters: list[Cluster] = []
    if rows.empty:
        return clusters
    rows = _sorted_rows(rows, ["rep_id", "rep_g", "rep_k"])
    ids, sims, kinds = rows["id"].tolist(), rows["sim"].tolist(), rows["kind"].tolist()
    paragraphs, previews = rows["k"].tolist(), rows["preview"].tolist()
    for k, (a, b) in enumerate(_groups(rows, ["rep_id", "rep_g", "rep_k"])):
        kind: ClusterKind = kinds[a]
        members = tuple(Member(str(ids[i]), round(float(sims[i]), 4), int(paragraphs[i])) for i in range(a, b))
        clusters.append(Cluster(f"p{k + 1}", kind, "paragraph", members[0], members, str(previews[a])))
    return clusters


def _result(settings: Settings, summaries: list[_Summary], doc_clusters: list[Cluster], para_clusters: list[Cluster],
            stats: chrome_stage.ChromeStats | None) -> tuple[ScanResult, dict[str, dict[str, int]]]:
    sites: dict[str, dict[str, int]] = {}
    found: dict[tuple[str, str], list[Any]] = {}
    for s in summaries:
        for site, figures in s.sites.items():
            into = sites.setdefault(site, dict.fromkeys(figures, 0))
            for name, value in figures.items():
                into[name] += value
        for key, (text, pages, sample, reason) in s.chrome.items():
            entry = found.setdefault(key, [text, 0, sample, reason])
            entry[1] += pages
    lines = [ChromeLine(site, text, pages, sample, reason)
             for (site, _), (text, pages, sample, reason) in found.items()]
    lines.sort(key=lambda c: (c.site, -c.pages, c.text))

    def by_kind(clusters: list[Cluster]) -> dict[str, int]:
        counts = {"exact": 0, "near": 0, "story": 0}
        for c in clusters:
            counts[c.kind] += 1
        return counts

    bad = [b for s in summaries for b in s.bad]
    totals = Stats(
        documents=sum(s.documents for s in summaries),
        paragraphs=sum(s.paragraphs for s in summaries),
        bad_records=len(bad),
        document_clusters=by_kind(doc_clusters),
        paragraph_clusters=by_kind(para_clusters),
        removable_documents=sum(s.removable_documents for s in summaries),
        removable_bytes=sum(s.removable_bytes for s in summaries),
        chrome_paragraphs=sum(s.chrome_paragraphs for s in summaries),
        chrome_bytes=sum(s.chrome_bytes for s in summaries),
    )
    outcomes = [o for s in summaries for o in (s.outcomes or [])]
    result = ScanResult(replace(settings, jobs=1), totals, doc_clusters, para_clusters, lines, outcomes,
                        bad, stats)
    return result, dict(sorted(sites.items()))
