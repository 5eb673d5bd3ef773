"""Stages 4-6, copies: paragraph copy groups, document copy groups over content only (exact
content, near copies, copies cut from the bottom), and the copy each group keeps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import xxhash

from . import kernels, kernels_rows
from .archive import Archive, ArchivedDocs, ArchiveRows
from .arrays import range_indices, shared_key_pairs, unique_pairs, unique_sorted
from .cluster import Group, Groups, cluster, cluster_groups
from .features import ParagraphFeatures
from .lsh import band_keys, candidate_pairs, lsh_params, normalise_pairs
from .minhash import EMPTY, estimate_jaccard
from .model import Document
from .settings import KeepPolicy, Settings


def equal_key_pairs(hi: np.ndarray, lo: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
    """Star pairs linking every item to the first item with the same 128-bit key."""
    index = np.arange(len(hi)) if active is None else np.flatnonzero(active)
    if len(index) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    order = index[np.lexsort((index, lo[index], hi[index]))]
    same = (hi[order][1:] == hi[order][:-1]) & (lo[order][1:] == lo[order][:-1])
    run_id = np.concatenate([[0], np.cumsum(~same)])
    first = order[np.searchsorted(run_id, run_id)]
    keep = first != order
    return np.stack([first[keep], order[keep]], axis=1)


def verified_lsh_pairs(sigs: np.ndarray, threshold: float, num_perm: int) -> np.ndarray:
    """LSH candidates among non-empty signatures whose estimated Jaccard reaches the threshold."""
    bands, rows = lsh_params(threshold, num_perm)
    active = sigs[:, 0] != EMPTY if len(sigs) else np.zeros(0, dtype=bool)
    cands = candidate_pairs(band_keys(sigs, bands, rows), active)
    if len(cands) == 0:
        return cands
    sim = estimate_jaccard(sigs, cands[:, 0], cands[:, 1])
    return cands[sim >= threshold]


def paragraph_pairs(feats: ParagraphFeatures, settings: Settings) -> np.ndarray:
    """`paragraph_groups`' verified LSH pairs (positions among the signed paragraphs), which need
    only the signatures: under `--jobs` another process finds them while this one does chrome."""
    nodes = np.flatnonzero(feats.sig_row >= 0)
    if len(nodes) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    return verified_lsh_pairs(_signed_signatures(feats, nodes), settings.threshold, settings.num_perm)


def paragraph_groups(feats: ParagraphFeatures, rank: np.ndarray, settings: Settings,
                     pairs: np.ndarray | None = None) -> Groups:
    """Clusters of signed paragraphs (members are indices into the feature arrays), chrome or not:
    a recurring long paragraph is worth reporting either way; document candidates use only the
    content ones. `pairs` are `paragraph_pairs`' when they were found elsewhere."""
    nodes = np.flatnonzero(feats.sig_row >= 0)
    if len(nodes) < 2:
        return Groups.joined([])
    sigs = _signed_signatures(feats, nodes)
    if pairs is None:
        pairs = verified_lsh_pairs(sigs, settings.threshold, settings.num_perm)
    para_rank = np.argsort(np.lexsort((feats.index[nodes], rank[feats.doc[nodes]])))

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return estimate_jaccard(sigs, np.full(len(others), rep), others)

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return estimate_jaccard(sigs, first, second)

    local = cluster_groups(len(nodes), pairs, para_rank, similarity, settings.threshold, pair_similarity)
    return Groups(local.starts, nodes[local.members], local.similarity)


def _signed_signatures(feats: ParagraphFeatures, nodes: np.ndarray) -> np.ndarray:
    """The signatures of the signed paragraphs `nodes`, in their order: the table itself when its
    rows are numbered 0, 1, 2, ... as the features stage numbers them (no copy then)."""
    rows = feats.sig_row[nodes]
    return feats.signatures if np.array_equal(rows, np.arange(len(feats.signatures))) else feats.signatures[rows]


def content_keys(feats: ParagraphFeatures, content: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """128-bit key per document of its content paragraphs in order (all paragraphs if none is
    content): XXH3-128 of their exact keys' high halves, then their low halves (native byte order;
    archives hold these keys, so the bytes hashed must not change). The halves are laid out for
    every document at once, each document's block hashed from a view: no array per document."""
    has_content = np.bincount(feats.doc[content], minlength=n) > 0
    rows = np.flatnonzero(content | ~has_content[feats.doc])
    owner = feats.doc[rows]
    starts = np.searchsorted(owner, np.arange(n + 1))  # document d's rows: starts[d] .. starts[d + 1]
    at = starts[owner] + np.arange(len(rows))  # 2 * starts[d] + (its place among d's rows)
    halves = np.empty(2 * len(rows), dtype=np.uint64)
    halves[at] = feats.key_hi[rows]
    halves[at + np.diff(starts)[owner]] = feats.key_lo[rows]
    view = halves.data.cast("B")
    bounds = (16 * starts).tolist()
    digests = b"".join([xxhash.xxh3_128_digest(view[a:b]) for a, b in pairwise(bounds)])
    keys = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)  # canonical form: high half first
    return keys[:, 0].astype(np.uint64), keys[:, 1].astype(np.uint64)


_MAX_KEY_PAIRS = 256  # new x archived documents a paragraph key pairs; beyond, one new document stands for them

SKETCH_BANDS, SKETCH_ROWS = 2, 2
"""Sketch keys per long paragraph (`paragraph_keys`): `SKETCH_BANDS` bands of `SKETCH_ROWS` of its
MinHash values, each band mixed into 64 bits (LSH on one paragraph). Two paragraphs share a band
with probability J^rows (J their Jaccard similarity), so a lightly edited copy of a paragraph (one
edited word in 50 changes 5 of ~46 shingles: J ≈ 0.82) shares one of two bands of two rows with
probability 1 - (1 - J^2)^2 ≈ 0.89, where its exact key is lost; a copy sharing three such
paragraphs is found with probability 0.999. Within a run paragraph LSH finds such copies; against
an archive these keys do, for copies cut too short for the document bands (J < 0.8). Two rows, not
one: a single MinHash value is shared by every paragraph whose smallest shingle is a common phrase,
and on a 90k archive such keys fetched 16.5k candidates for a 10k night where two rows fetched
10.6k, with the same documents removed (2,402 and 2,400)."""


def paragraph_keys(feats: ParagraphFeatures, rows: np.ndarray) -> np.ndarray:
    """The archive's keys of the signed paragraphs `rows`: each one's exact key, then its
    `SKETCH_BANDS` sketch keys, row by row (a flat array of 1 + SKETCH_BANDS keys per row)."""
    first = np.ascontiguousarray(feats.signatures[feats.sig_row[rows], :SKETCH_BANDS * SKETCH_ROWS])
    sketch = band_keys(first, SKETCH_BANDS, SKETCH_ROWS)
    return np.concatenate([feats.key_hi[rows][:, None], sketch], axis=1).ravel()


def archive_rows(docs: Sequence[Document], feats: ParagraphFeatures, content: np.ndarray,
                 shingle_sets: tuple[np.ndarray, np.ndarray], page_groups: list[str],
                 settings: Settings) -> ArchiveRows:
    """Per-document content key, signature, size, band keys, long-paragraph keys and page group."""
    n = len(docs)
    signed = content & (feats.sig_row >= 0)
    sigs = kernels_rows.merged_signatures(feats.signatures, feats.sig_row[signed], feats.doc[signed], n)
    hi, lo = content_keys(feats, content, n)
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(feats.doc[signed], minlength=n) * (1 + SKETCH_BANDS), out=offsets[1:])
    shingle_offsets = shingle_sets[1]
    return ArchiveRows([d.id for d in docs], [d.site for d in docs], hi, lo, np.diff(shingle_offsets), sigs,
                       band_keys(sigs, bands, rows), paragraph_keys(feats, np.flatnonzero(signed)), offsets,
                       page_groups)


@dataclass(frozen=True, slots=True)
class DocTable:
    """The documents compared at document level: this run's (first `n_new` rows) and the archived
    candidates found for them. Archived documents rank before new ones, so they stay kept.
    `copy_of` is, per row, the kept document an archived removed copy stands for (else None);
    `earlier_run`, per row, whether it was archived by an earlier run of an archive that can hold
    this run's own documents (`Archive.reruns`), not by this run's earlier batches.
    """

    ids: list[str]
    n_new: int
    copy_of: list[str | None]
    key_hi: np.ndarray
    key_lo: np.ndarray
    sizes: np.ndarray
    signatures: np.ndarray
    paragraph_keys: np.ndarray
    paragraph_owner: np.ndarray
    rank: np.ndarray
    earlier_run: np.ndarray

    @classmethod
    def build(cls, rows: ArchiveRows, archive: Archive | None, rank: np.ndarray, threshold: float) -> DocTable:
        n = len(rows.ids)
        old = archive.candidates(rows) if archive is not None else ArchivedDocs.empty(rows.signatures.shape[1])
        keep = np.ones(len(old.ids), dtype=bool)
        earlier_run = np.zeros(len(old.ids), dtype=bool)
        if archive is not None and archive.reruns:
            earlier_run = ~old.this_run_mask()  # this run's earlier batches': a duplicate, not a re-run
            keep = ~(_same_documents_again(rows, old, threshold) & earlier_run)
        sel = np.flatnonzero(keep)
        m = len(sel)
        old_owner = np.repeat(np.arange(len(old.ids)), np.diff(old.paragraph_offsets))
        old_par_keep = keep[old_owner] if len(old_owner) else np.zeros(0, dtype=bool)
        remap = np.full(len(old.ids), -1, dtype=np.int64)
        remap[sel] = np.arange(m) + n
        old_ids = [old.ids[k] for k in sel]
        old_rank = np.argsort(np.argsort(np.array(old_ids, dtype=object), kind="stable"), kind="stable")
        copy_of: list[str | None] = [None] * n
        copy_of += [old.copy_of[k] for k in sel]
        return cls(
            ids=list(rows.ids) + old_ids,
            n_new=n,
            copy_of=copy_of,
            key_hi=np.concatenate([rows.key_hi, old.key_hi[sel]]),
            key_lo=np.concatenate([rows.key_lo, old.key_lo[sel]]),
            sizes=np.concatenate([rows.sizes, old.sizes[sel]]),
            signatures=np.concatenate([rows.signatures, old.signatures[sel]]),
            paragraph_keys=np.concatenate([rows.paragraph_keys, old.paragraph_keys[old_par_keep]]),
            paragraph_owner=np.concatenate([np.repeat(np.arange(n), np.diff(rows.paragraph_offsets)),
                                            remap[old_owner[old_par_keep]]]),
            rank=np.concatenate([rank + m, old_rank]) if m else rank,
            earlier_run=np.concatenate([np.zeros(n, dtype=bool), earlier_run[sel]]),
        )

    def is_archived(self, k: int) -> bool:
        return k >= self.n_new

    def kept_id(self, k: int) -> str:
        """The id of the document row `k` stands for: an archived removed copy's kept document."""
        return self.copy_of[k] or self.ids[k]


def _same_documents_again(rows: ArchiveRows, old: ArchivedDocs, threshold: float) -> np.ndarray:
    """Per archived candidate: is it one of this run's documents archived before (a re-run)?

    Same id, and the same content or near it: chrome learned in later runs can strip a line more
    and change the content key, and that must not make a document a copy of its own archived self.
    """
    position = {doc_id: k for k, doc_id in enumerate(rows.ids)}
    same = np.zeros(len(old.ids), dtype=bool)
    for j, doc_id in enumerate(old.ids):
        k = position.get(doc_id)
        if k is None:
            continue
        if old.key_hi[j] == rows.key_hi[k] and old.key_lo[j] == rows.key_lo[k]:
            same[j] = True
            continue
        a, b = rows.signatures[k], old.signatures[j]
        same[j] = bool(np.mean((a == b) & (a != EMPTY)) >= threshold)
    return same


def document_groups(table: DocTable, feats: ParagraphFeatures, content: np.ndarray,
                    shingle_sets: tuple[np.ndarray, np.ndarray], para_groups: Groups, settings: Settings
                    ) -> tuple[list[Group], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Exact and near document clusters over content, and the similarity of pairs they were verified with."""
    sigs, sizes, hi, lo = table.signatures, table.sizes.astype(np.float64), table.key_hi, table.key_lo
    shingles, offsets = shingle_sets

    def pair_similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        # Shared shingles: counted exactly between this run's documents (their sets are at hand),
        # estimated from signatures against archived ones (J = |A∩B| / |A∪B| solved for |A∩B|).
        jac = estimate_jaccard(sigs, first, second)
        shared = jac * (sizes[first] + sizes[second]) / (1.0 + jac)
        local = (first < table.n_new) & (second < table.n_new)
        if local.any():
            shared[local] = overlap_pairs(shingles, offsets, first[local], second[local])
            union = np.maximum(sizes[first[local]] + sizes[second[local]] - shared[local], 1.0)
            jac[local] = shared[local] / union
        same = (hi[second] == hi[first]) & (lo[second] == lo[first])
        return copy_similarity(jac, shared, sizes[first], sizes[second], same, settings)

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return pair_similarity(np.full(len(others), rep, dtype=np.int64), others)

    cands = [equal_key_pairs(hi, lo)]
    bands, rows = lsh_params(settings.threshold, settings.num_perm)
    cands.append(candidate_pairs(band_keys(sigs, bands, rows), sigs[:, 0] != EMPTY))
    cands.append(_shared_paragraph_pairs(feats, content, para_groups))
    if table.n_new < len(table.ids):
        keys, owner = table.paragraph_keys, table.paragraph_owner
        new = owner < table.n_new
        cands.append(shared_key_pairs(keys[new], owner[new], keys[~new], owner[~new], _MAX_KEY_PAIRS, hub=True))
    pairs = normalise_pairs(np.concatenate(cands))
    passing = min(settings.threshold, settings.containment)
    if len(pairs):
        pairs = pairs[pair_similarity(pairs[:, 0], pairs[:, 1]) >= passing]
    return cluster(len(table.ids), pairs, table.rank, similarity, passing, pair_similarity), pair_similarity


def copy_similarity(jac: np.ndarray, shared: np.ndarray, size: float, sizes: np.ndarray, same_key: np.ndarray,
                    settings: Settings) -> np.ndarray:
    """Document similarity of one document (`size` shingles) to others, from Jaccard and shared shingles.

    A pair passes on Jaccard, or failing that on containment; the value reported is the measure it
    passed on, 0 when it passes on neither, and 1 for the same content key. Shared by the engines.
    """
    small = np.minimum(size, sizes)
    contained = np.where(small >= settings.min_containment_shingles,
                         np.minimum(1.0, shared / np.maximum(small, 1.0)), 0.0)
    sim = np.where(jac >= settings.threshold, jac,
                   np.where(contained >= settings.containment, contained, 0.0))
    return np.where(same_key, 1.0, sim)


def content_shingles(feats: ParagraphFeatures, signed: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each document's distinct content shingle hashes, sorted, as a flat array with offsets."""
    rows = feats.sig_row[signed]
    docs = feats.doc[signed]
    starts, ends = feats.shingle_offsets[rows], feats.shingle_offsets[rows + 1]
    lengths = ends - starts
    if kernels.AVAILABLE:  # paragraphs come in document order: each document's are consecutive ranges
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=n), out=offsets[1:])
        return kernels_rows.distinct_of_ranges(feats.shingle_hashes, starts, lengths, offsets)
    idx = range_indices(starts, lengths)
    owner = np.repeat(docs.astype(np.uint64), lengths)
    combined = unique_sorted((owner << np.uint64(32)) | feats.shingle_hashes[idx].astype(np.uint64))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount((combined >> np.uint64(32)).astype(np.int64), minlength=n), out=offsets[1:])
    return (combined & np.uint64(0xFFFFFFFF)).astype(np.uint32), offsets


def overlap_pairs(shingles: np.ndarray, offsets: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Exact number of shingles each pair (first[k], second[k]) shares (sorted distinct sets)."""
    if kernels.AVAILABLE:
        return kernels_rows.shared_counts(shingles, offsets, np.asarray(first, dtype=np.int64),
                                          np.asarray(second, dtype=np.int64))
    out = np.zeros(len(first), dtype=np.int64)
    for k, (a, b) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        mine, theirs = shingles[offsets[a] : offsets[a + 1]], shingles[offsets[b] : offsets[b + 1]]
        if len(mine) and len(theirs):
            pos = np.searchsorted(mine, theirs)
            out[k] = int(np.count_nonzero(mine[np.minimum(pos, len(mine) - 1)] == theirs))
    return out


def _shared_paragraph_pairs(feats: ParagraphFeatures, content: np.ndarray, para_groups: Groups) -> np.ndarray:
    """Document pairs that share a content paragraph cluster: candidates for copies cut or re-wrapped.

    Each cluster's documents are linked to the cluster's first document (a star), so a paragraph
    shared by many documents adds pairs linearly, not quadratically.
    """
    if not len(para_groups):
        return np.zeros((0, 2), dtype=np.int64)
    members = para_groups.members
    group = np.repeat(np.arange(len(para_groups)), np.diff(para_groups.starts))
    keep = content[members]
    rows = unique_pairs(group[keep], feats.doc[members[keep]])
    if len(rows) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    first_of_group = np.concatenate([[True], rows[1:, 0] != rows[:-1, 0]])
    hub = rows[np.maximum.accumulate(np.where(first_of_group, np.arange(len(rows)), 0)), 1]
    spokes = ~first_of_group
    return np.stack([hub[spokes], rows[spokes, 1]], axis=1)


def choose_kept(docs: Sequence[Document], table: DocTable, groups: list[Group], feats: ParagraphFeatures,
                content: np.ndarray, settings: Settings) -> dict[int, int]:
    """For each group (by position), the member kept: an archived copy if there is one (it is
    already archived; a kept one before a removed copy archived for its kept document), unless
    this run holds the document it stands for again, else the keep policy's choice among this
    run's documents; deterministic."""
    content_chars = np.bincount(feats.doc[content], weights=feats.chars[content], minlength=len(docs))
    rank = table.rank
    kept: dict[int, int] = {}
    for k, g in enumerate(groups):
        members = [int(m) for m in g.members]
        archived = [m for m in members if table.is_archived(m)]
        if archived:
            choice = min(archived, key=lambda m: (table.copy_of[m] is not None, rank[m]))
            # The document the archived one stands for (itself, or the one a removed copy was archived
            # for), if an earlier run archived it and this run holds it again: that one, not a copy of
            # itself. (An archived document of a new one's id and content is left out as a re-run before
            # this; this catches one whose text changed, e.g. with chrome learned since, yet clusters
            # with its new self. Archived by this run's earlier batches too, the new one is a
            # duplicate record of that.)
            stands_for = table.kept_id(choice)
            if table.earlier_run[choice] and not any(
                    not table.earlier_run[m] and table.kept_id(m) == stands_for for m in archived):
                again = [m for m in members if not table.is_archived(m) and table.ids[m] == stands_for]
                choice = min(again, default=choice)
        else:
            choice = keep_choice(members, settings.keep, rank, content_chars,
                                 lambda m: document_date(docs[m], settings.date_field))
        kept[k] = choice
    return kept


def keep_choice(members: Sequence[int], keep: KeepPolicy, rank: np.ndarray, content_chars: np.ndarray,
                date_of: Callable[[int], str]) -> int:
    """The member the keep policy keeps; `members` are input positions (the `first` order), ties by rank."""
    if keep == "first":
        return min(members)
    if keep == "earliest":
        return min(members, key=lambda m: (date_of(m), m))
    return min(members, key=lambda m: (-content_chars[m], rank[m]))


def document_date(doc: Document, field_name: str) -> str:
    """Sortable date of a document; documents without one sort last."""
    value = doc.fields.get(field_name)
    return str(value) if value not in (None, "") else "\uffff"
