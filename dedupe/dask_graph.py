"""Graph work of the Dask engine on Dask dataframes: candidate pairs from band-key buckets, pair
de-duplication, verification joins and connected components.

Every function here takes and returns Dask collections (or small pandas frames for what the
driver may hold), and runs the same pure numpy code on each partition as the local engine runs on
the whole corpus. Components come from scipy on the driver while the edge list fits in
`max_driver_edges`, and from large-star/small-star iterations on the cluster beyond that (Kiveris
et al., "Connected Components in MapReduce and Beyond", 2014; the method of the large Spark
dedup pipelines): both label every node with the smallest node id of its component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import dask.dataframe as dd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .lsh import _bucket_pairs, normalise_pairs

ComponentsMethod = Literal["auto", "scipy", "star"]

PAIRS_META = pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64)})
LABELS_META = pd.DataFrame({"node": np.zeros(0, np.int64), "label": np.zeros(0, np.int64)})
_DIRECTED_META = pd.DataFrame({"u": np.zeros(0, np.int64), "v": np.zeros(0, np.int64)})
_MIX = np.uint64(0x9E3779B97F4A7C15)


def pairs_frame(pairs: np.ndarray) -> pd.DataFrame:
    """An (n, 2) pair array as the pairs frame every stage passes on."""
    pairs = pairs.reshape(-1, 2)
    return pd.DataFrame({"a": pairs[:, 0].astype(np.int64), "b": pairs[:, 1].astype(np.int64)})


# -- candidates --------------------------------------------------------------------------------

def bucket_candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """Candidate pairs of one shuffled partition of (band, key, node) rows.

    Every (band, key) bucket is whole in one partition (the shuffle is on the key); its members are
    taken in node order and paired as `lsh.candidate_pairs` pairs them (all pairs in small buckets,
    a star and a chain in large ones), so the candidates are the local engine's exactly.
    """
    if frame.empty:
        return PAIRS_META.copy()
    band = frame["band"].to_numpy()
    key = frame["key"].to_numpy()
    node = frame["node"].to_numpy()
    order = np.lexsort((node, key, band))
    band, key, node = band[order], key[order], node[order]
    new = np.concatenate([[True], (band[1:] != band[:-1]) | (key[1:] != key[:-1])])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.concatenate([starts, [len(node)]]))
    keep = sizes >= 2
    if not keep.any():
        return PAIRS_META.copy()
    parts = _bucket_pairs(node, starts[keep], sizes[keep])
    return pairs_frame(normalise_pairs(np.concatenate(parts)))


def equal_key_stars(frame: pd.DataFrame) -> pd.DataFrame:
    """Pairs linking every node to the smallest node with the same 128-bit key (hi, lo), as the
    local engine's `_equal_key_pairs` links them; the partition holds whole keys (shuffled on hi)."""
    if frame.empty:
        return PAIRS_META.copy()
    hi, lo, node = frame["hi"].to_numpy(), frame["lo"].to_numpy(), frame["node"].to_numpy()
    order = np.lexsort((node, lo, hi))
    hi, lo, node = hi[order], lo[order], node[order]
    same = (hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])
    run = np.concatenate([[0], np.cumsum(~same)])
    first = node[np.searchsorted(run, run)]
    keep = first != node
    return pairs_frame(np.stack([first[keep], node[keep]], axis=1))


def unique_pairs(pairs: dd.DataFrame, npartitions: int) -> dd.DataFrame:
    """Pairs oriented (low, high), self pairs dropped, each once: a shuffle on the low end."""
    return pairs.shuffle(on="a", npartitions=npartitions).map_partitions(_unique_local, meta=PAIRS_META)


def _unique_local(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return PAIRS_META.copy()
    return pairs_frame(normalise_pairs(frame[["a", "b"]].to_numpy()))


def verify(pairs: dd.DataFrame, data: dd.DataFrame, check: Callable[..., pd.DataFrame], npartitions: int,
           **kwargs: Any) -> dd.DataFrame:
    """Pairs that pass `check`: each pair is joined with the data of both its ends (`data` has a
    `node` column), and `check(frame, **kwargs)` keeps the passing rows of every joined partition."""
    left = data.rename(columns={c: f"a_{c}" for c in data.columns})
    right = data.rename(columns={c: f"b_{c}" for c in data.columns})
    joined = pairs.merge(left, left_on="a", right_on="a_node", how="inner", npartitions=npartitions)
    joined = joined.merge(right, left_on="b", right_on="b_node", how="inner", npartitions=npartitions)
    return joined.map_partitions(check, meta=PAIRS_META, **kwargs)


# -- connected components ------------------------------------------------------------------------

@dataclass
class ComponentsRun:
    """How one components computation went: the method used, edges, and iterations (star only)."""

    method: str = ""
    edges: int = 0
    iterations: int = 0


def components(edges: dd.DataFrame, npartitions: int, method: ComponentsMethod = "auto",
               max_driver_edges: int = 20_000_000) -> tuple[dd.DataFrame, ComponentsRun]:
    """(node, label) for every node on an edge, label = the smallest node of its component.

    `auto` gathers the edge list to the driver for scipy while it has at most `max_driver_edges`
    edges, and runs large-star/small-star on the cluster beyond; `scipy`/`star` force one.
    """
    edges = edges.persist()
    count = len(edges)
    run = ComponentsRun(edges=count)
    if method == "scipy" or (method == "auto" and count <= max_driver_edges):
        run.method = "scipy"
        labels = scipy_labels(edges.compute()[["a", "b"]].to_numpy())
        return dd.from_pandas(labels, npartitions=max(1, min(npartitions, len(labels) // 50_000 + 1))), run
    run.method = "large-star/small-star"
    labels, run.iterations = star_labels(edges, npartitions)
    return labels, run


def scipy_labels(pairs: np.ndarray) -> pd.DataFrame:
    """Components of an edge list held on the driver, with scipy's sparse graph routine."""
    if len(pairs) == 0:
        return LABELS_META.copy()
    nodes, local = np.unique(pairs.reshape(-1), return_inverse=True)
    local = local.reshape(-1, 2)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(local), dtype=np.int8), (local[:, 0], local[:, 1])), shape=(n, n))
    comp = connected_components(graph, directed=False)[1]
    smallest = np.full(comp.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, comp, nodes)  # nodes are sorted, so this is each component's first node
    return pd.DataFrame({"node": nodes.astype(np.int64), "label": smallest[comp]})


def star_labels(edges: dd.DataFrame, npartitions: int, max_iterations: int = 100) -> tuple[dd.DataFrame, int]:
    """Components by alternating large-star and small-star until the edge set stops changing.

    Each step is one shuffle on the source node and a per-node minimum; at the fixed point every
    component is a star around its smallest node. A round's edge set is compared with the last by
    a count and an order-free hash sum, computed on the cluster.
    """
    current = edges[["a", "b"]]
    previous: tuple[int, int] | None = None
    for iteration in range(1, max_iterations + 1):
        both = current.map_partitions(_both_directions, meta=_DIRECTED_META)
        directed = both.shuffle(on="u", npartitions=npartitions).map_partitions(_dedupe_directed,
                                                                                meta=_DIRECTED_META).persist()
        state = _edge_set_hash(directed)
        if state == previous:
            return directed.map_partitions(_star_labels_local, meta=LABELS_META).shuffle(
                on="node", npartitions=npartitions).map_partitions(_dedupe_labels, meta=LABELS_META), iteration - 1
        previous = state
        large = directed.map_partitions(_large_star, meta=_DIRECTED_META)
        small = large.shuffle(on="u", npartitions=npartitions).map_partitions(_small_star, meta=PAIRS_META)
        current = small.persist()
    raise RuntimeError(f"large-star/small-star did not converge in {max_iterations} rounds")


def _both_directions(frame: pd.DataFrame) -> pd.DataFrame:
    a, b = frame["a"].to_numpy(), frame["b"].to_numpy()
    keep = a != b
    a, b = a[keep], b[keep]
    return pd.DataFrame({"u": np.concatenate([a, b]), "v": np.concatenate([b, a])})


def _dedupe_directed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop_duplicates(ignore_index=True)


def _edge_set_hash(directed: dd.DataFrame) -> tuple[int, int]:
    """(edges, sum of a mixing hash of each edge mod 2**64): equal edge sets give equal values;
    each undirected edge is counted once, on its (low, high) row."""
    parts = directed.map_partitions(_hash_part, meta=pd.DataFrame({"n": np.zeros(0, np.int64),
                                                                     "h": np.zeros(0, np.uint64)})).compute()
    total = int(parts["h"].to_numpy().astype(object).sum()) & 0xFFFFFFFFFFFFFFFF
    return int(parts["n"].sum()), total


def _hash_part(frame: pd.DataFrame) -> pd.DataFrame:
    u, v = frame["u"].to_numpy(), frame["v"].to_numpy()
    low = u < v
    with np.errstate(over="ignore"):
        h = (u[low].astype(np.uint64) * _MIX) ^ (v[low].astype(np.uint64) + _MIX)
        h = (h ^ (h >> np.uint64(31))) * _MIX
        total = np.uint64(h.sum(dtype=np.uint64)) if len(h) else np.uint64(0)
    return pd.DataFrame({"n": [int(low.sum())], "h": np.array([total], dtype=np.uint64)})


def _large_star(frame: pd.DataFrame) -> pd.DataFrame:
    """For each node u: m = min of u and its neighbours; link every larger neighbour v to m.
    Emitted as (u=max, v=min) rows, ready for small-star's shuffle on u."""
    if frame.empty:
        return _DIRECTED_META.copy()
    u, v = frame["u"].to_numpy(), frame["v"].to_numpy()
    m = _min_by(u, v)
    keep = v > u
    x, y = v[keep], m[keep]
    out = np.stack([np.maximum(x, y), np.minimum(x, y)], axis=1)
    out = out[out[:, 0] != out[:, 1]]
    return pd.DataFrame({"u": out[:, 0], "v": out[:, 1]})


def _small_star(frame: pd.DataFrame) -> pd.DataFrame:
    """For each node u with its smaller neighbours N: m = min(N); link u and all of N to m."""
    if frame.empty:
        return PAIRS_META.copy()
    frame = frame.drop_duplicates()
    u, v = frame["u"].to_numpy(), frame["v"].to_numpy()
    m = _min_by(u, v)  # v < u on every row, so this is min(N(u)) for u
    order = np.argsort(u, kind="stable")
    us, ms = u[order], m[order]
    first = np.concatenate([[True], us[1:] != us[:-1]])
    x = np.concatenate([v, us[first]])
    y = np.concatenate([m, ms[first]])
    keep = x != y
    x, y = x[keep], y[keep]
    return pairs_frame(np.stack([np.minimum(x, y), np.maximum(x, y)], axis=1))


def _min_by(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each row, min(u, min of v over the rows with the same u)."""
    if len(u) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(u, kind="stable")
    us, vs = u[order], v[order]
    starts = np.flatnonzero(np.concatenate([[True], us[1:] != us[:-1]]))
    mins = np.minimum(np.minimum.reduceat(vs, starts), us[starts])
    run = np.repeat(np.arange(len(starts)), np.diff(np.concatenate([starts, [len(us)]])))
    out = np.empty(len(u), dtype=np.int64)
    out[order] = mins[run]
    return out


def _star_labels_local(frame: pd.DataFrame) -> pd.DataFrame:
    """At the fixed point every edge joins a node to its component's smallest node."""
    u, v = frame["u"].to_numpy(), frame["v"].to_numpy()
    m = _min_by(u, v)
    return pd.DataFrame({"node": u, "label": m})


def _dedupe_labels(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop_duplicates(subset="node", ignore_index=True)
