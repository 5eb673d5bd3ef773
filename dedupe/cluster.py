"""From verified pairs to clusters, with a guard against chaining.

Connected components of the verified pairs (scipy's union-find-style graph routine) can chain:
A~B and B~C put A and C together even when A and C have nothing in common, and a long chain glues
unrelated texts into one giant cluster. So every component is peeled into stars: the member with
the most verified links (ties broken by a caller-given rank, so the result does not depend on
input order) becomes the representative; every member whose own similarity to the representative
reaches the threshold joins it; whatever is left is split into components again and peeled the
same way. Each reported member's similarity is its similarity to its representative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .arrays import pieces, range_indices

SimilarityToMany = Callable[[int, np.ndarray], np.ndarray]
SimilarityOfPairs = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Group:
    """A cluster by index: its representative, and all members (representative first) with similarity."""

    representative: int
    members: np.ndarray
    similarity: np.ndarray


@dataclass(frozen=True, slots=True)
class Groups:
    """Clusters as flat arrays, in `cluster`'s order: group k's members (representative first) are
    `members[starts[k]:starts[k + 1]]`, each with its similarity to the representative. An object
    per group costs more than the clustering around it (115k paragraph groups: 0.35 s a list), so
    a caller that needs only arrays never makes them, and one that needs them makes them once."""

    starts: np.ndarray  # int64, one more than there are groups
    members: np.ndarray  # int64
    similarity: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.starts) - 1

    def others(self) -> np.ndarray:
        """Every member that is not its group's representative."""
        keep = np.ones(len(self.members), dtype=bool)
        keep[self.starts[:-1]] = False
        return self.members[keep]

    def objects(self, names: np.ndarray | None = None) -> list[Group]:
        """The groups as `Group`s, their members renamed by `names` (`names[m]`) when given."""
        members = self.members if names is None else names[self.members]
        bounds = self.starts.tolist()
        return [Group(rep, members[a:b], self.similarity[a:b])
                for rep, a, b in zip(members[self.starts[:-1]].tolist(), bounds[:-1], bounds[1:], strict=True)]

    @staticmethod
    def of(groups: list[Group]) -> Groups:
        """`Group`s as flat arrays."""
        return Groups.joined([(np.array([len(g.members)], dtype=np.int64), g.members, g.similarity) for g in groups])

    @staticmethod
    def joined(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Groups:
        """Groups from parts of (sizes, members, similarities), in order."""
        sizes, members, sims = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, dtype=dtype)
                                for k, dtype in enumerate((np.int64, np.int64, np.float64)))
        starts = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        return Groups(starts, members.astype(np.int64, copy=False), sims.astype(np.float64, copy=False))

    def ordered(self, key: np.ndarray) -> Groups:
        """The same groups ordered by `key[representative]` (stable)."""
        order = np.argsort(key[self.members[self.starts[:-1]]], kind="stable")
        sizes = np.diff(self.starts)[order]
        take = range_indices(self.starts[:-1][order], sizes)
        return Groups.joined([(sizes, self.members[take], self.similarity[take])])


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component label of each of `n` nodes under the undirected edges `pairs` (an (m, 2) array)."""
    if len(pairs) == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _members_by_label(labels: np.ndarray) -> list[np.ndarray]:
    """Node indices of each label that has at least two nodes, in label order."""
    order, cuts = _grouped_by_label(labels)
    return pieces(order, cuts) if len(order) else []


def _grouped_by_label(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nodes of the labels that have at least two, by label (ascending within one), and where
    each label's run after the first starts."""
    shared = np.flatnonzero(np.bincount(labels)[labels] >= 2)  # singletons never reach the split
    order = shared[np.argsort(labels[shared], kind="stable")]
    return order, np.flatnonzero(np.diff(labels[order])) + 1


def _peel(nodes: np.ndarray, edges: np.ndarray, rank: np.ndarray, similarity: SimilarityToMany,
          threshold: float) -> list[Group]:
    """Split one connected component into stars around well-linked representatives."""
    groups: list[Group] = []
    pending = [(nodes, edges)]
    while pending:
        nodes, edges = pending.pop()  # nodes ascending, so an edge's ends are found by bisection
        degree = np.bincount(np.searchsorted(nodes, edges.ravel()), minlength=len(nodes))
        best = np.lexsort((rank[nodes], -degree))[0]
        rep = int(nodes[best])
        others = np.delete(nodes, best)
        sims = similarity(rep, others)
        inside = sims >= threshold
        if inside.any():
            order = np.lexsort((rank[others[inside]], -sims[inside]))
            groups.append(Group(rep, np.concatenate([[rep], others[inside][order]]),
                                np.concatenate([[1.0], sims[inside][order]])))
        rest = others[~inside]
        if len(rest) < 2:
            continue
        keep = np.isin(edges[:, 0], rest) & np.isin(edges[:, 1], rest)
        sub_edges = edges[keep]
        if len(sub_edges) == 0:
            continue
        mapped = np.searchsorted(rest, sub_edges).astype(np.int64)  # `rest` is ascending too
        for part in _members_by_label(components(len(rest), mapped)):
            part_nodes = rest[part]
            part_keep = np.isin(sub_edges[:, 0], part_nodes) & np.isin(sub_edges[:, 1], part_nodes)
            pending.append((part_nodes, sub_edges[part_keep]))
    return groups


def _whole_stars(n: int, parts: list[np.ndarray], pairs: np.ndarray, rank: np.ndarray,
                 pair_similarity: SimilarityOfPairs, threshold: float
                 ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray]]:
    """`_peel`'s first step for many components at once: each one's representative (most links,
    then rank, then node order) and every member's similarity to it, in one `pair_similarity`
    call. A component whose members all reach the threshold is that one star (most are): they
    come back as (sizes, members, similarities), each representative first and the others most
    similar first, then by rank; the other components are returned for `_peel`, which takes the
    same first step and goes on."""
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    nodes = np.concatenate(parts)  # each part ascending, as `_peel` takes it
    part = np.repeat(np.arange(len(parts)), sizes)
    degree = np.bincount(pairs.ravel(), minlength=n)[nodes]  # every link of a node is in its part
    firsts = np.cumsum(sizes) - sizes
    reps = nodes[np.lexsort((rank[nodes], -degree, part))[firsts]]  # stable: ties in node order
    other = nodes != reps[part]
    others, owner = nodes[other], part[other]
    sims = pair_similarity(reps[owner], others)
    whole = np.logical_and.reduceat(sims >= threshold, firsts - np.arange(len(parts)))  # sizes - 1 others each
    order = np.lexsort((rank[others], -sims, owner))  # within a part: most similar first, then rank
    keep = whole[owner[order]]
    others, sims = others[order][keep], sims[order][keep]
    star_sizes = sizes[whole]
    at = np.cumsum(star_sizes) - star_sizes  # where each star's representative goes
    members = np.empty(int(star_sizes.sum()), dtype=np.int64)
    similarity = np.empty(len(members), dtype=np.float64)
    rest = np.ones(len(members), dtype=bool)
    rest[at] = False
    members[at], similarity[at] = reps[whole], 1.0
    members[rest], similarity[rest] = others, sims
    return (star_sizes, members, similarity), [p for p, w in zip(parts, whole.tolist(), strict=True) if not w]


def cluster(n: int, pairs: np.ndarray, rank: np.ndarray, similarity: SimilarityToMany,
            threshold: float, pair_similarity: SimilarityOfPairs | None = None) -> list[Group]:
    """`cluster_groups` as a `Group` per cluster."""
    return cluster_groups(n, pairs, rank, similarity, threshold, pair_similarity).objects()


def cluster_groups(n: int, pairs: np.ndarray, rank: np.ndarray, similarity: SimilarityToMany,
                   threshold: float, pair_similarity: SimilarityOfPairs | None = None) -> Groups:
    """Clusters of at least two of `n` nodes linked by verified `pairs`, chaining guarded.

    `rank` orders nodes for tie-breaks (e.g. by id), `similarity(rep, others)` gives the similarity
    of a representative to many nodes, `threshold` is the least similarity to the representative.
    `pair_similarity(a, b)`, for a symmetric similarity, settles every two-node component in one
    call instead of one call each (most components are pairs). Groups come out sorted by their
    representative's rank.
    """
    labels = components(n, pairs)
    edge_label = labels[pairs[:, 0]] if len(pairs) else np.zeros(0, dtype=np.int64)
    edge_order = np.argsort(edge_label, kind="stable")
    sorted_edge_labels = edge_label[edge_order]
    order, cuts = _grouped_by_label(labels)
    starts = np.concatenate([[0], cuts]) if len(order) else cuts
    sizes = np.diff(np.concatenate([starts, [len(order)]]))
    pairs_at = starts[sizes == 2]  # most components are pairs: taken out of the order all at once
    two = np.stack([order[pairs_at], order[pairs_at + 1]], axis=1).astype(np.int64, copy=False)
    if pair_similarity is not None:
        two_sims = pair_similarity(two[:, 0], two[:, 1]) if len(two) else np.zeros(0)
    else:
        two_sims = np.array([similarity(int(a), np.array([b]))[0] for a, b in two], dtype=np.float64)
    found = [_pair_groups(two, two_sims, rank, threshold)]
    big = sizes > 2
    larger = [order[a : a + size] for a, size in zip(starts[big].tolist(), sizes[big].tolist(), strict=True)]
    if pair_similarity is not None and larger:
        stars, larger = _whole_stars(n, larger, pairs, rank, pair_similarity, threshold)
        found.append(stars)
    peeled: list[Group] = []
    for nodes in larger:
        label = labels[nodes[0]]
        lo, hi = np.searchsorted(sorted_edge_labels, [label, label + 1])
        peeled.extend(_peel(nodes, pairs[edge_order[lo:hi]], rank, similarity, threshold))
    if peeled:
        found.append((np.array([len(g.members) for g in peeled], dtype=np.int64),
                      np.concatenate([g.members for g in peeled]), np.concatenate([g.similarity for g in peeled])))
    return Groups.joined(found).ordered(rank)


def _pair_groups(two: np.ndarray, sims: np.ndarray, rank: np.ndarray, threshold: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two-node components (rows of `two`) whose similarity reaches the threshold, as
    (sizes, members, similarities), each group led by its better-ranked node; made for all at once
    (most components are pairs)."""
    keep = sims >= threshold
    a, b, sims = two[keep, 0], two[keep, 1], sims[keep]
    members = np.where((rank[a] <= rank[b])[:, None], np.stack([a, b], axis=1), np.stack([b, a], axis=1))
    similarity = np.stack([np.ones(len(sims)), sims], axis=1)
    return np.full(len(a), 2, dtype=np.int64), members.ravel(), similarity.ravel()
