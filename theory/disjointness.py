"""The set-disjointness family: the hard instances behind the length-2 path lower bound.

For n middle vertices the graph has |V| = n + 2 vertices: s = 0, t = 1 and v_i = 2 + i.
Alice holds a ⊆ [n] and contributes the edges {s, v_i} for i ∈ a; Bob holds b ⊆ [n] and
contributes {v_i, t} for i ∈ b. There is no edge s–t and none between middle vertices, so

    length-2 path from s to t  ⟺  some v_i is adjacent to both  ⟺  a ∩ b ≠ ∅.

Sets are boolean arrays of shape (B, n). :func:`to_instances` and :func:`from_graphs` are
inverse bijections between pairs of sets and graphs of the family.
"""

from __future__ import annotations

import numpy as np

from theory.errors import InputError
from theory.graphs import GraphBatch, pack_bits
from theory.problems import Instances

S, T, FIRST_MIDDLE = 0, 1, 2


def num_vertices(n_middle: int) -> int:
    """|V| of the family with ``n_middle`` middle vertices."""
    return n_middle + 2


def intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The answer to disjointness' complement: a ∩ b ≠ ∅, per row."""
    return np.any(np.asarray(a, bool) & np.asarray(b, bool), axis=-1)


def to_graphs(a: np.ndarray, b: np.ndarray) -> GraphBatch:
    """Graphs of the family for set pairs (a[k], b[k])."""
    a, b = np.atleast_2d(np.asarray(a, bool)), np.atleast_2d(np.asarray(b, bool))
    if a.shape != b.shape:
        raise InputError(f"Alice's and Bob's sets need the same shape, got {a.shape} and {b.shape}")
    count, n_mid = a.shape
    n = num_vertices(n_mid)
    adj = np.zeros((count, n, n), dtype=bool)
    middle = np.arange(FIRST_MIDDLE, n)
    adj[:, S, middle] = adj[:, middle, S] = a
    adj[:, middle, T] = adj[:, T, middle] = b
    return GraphBatch(n, pack_bits(adj))


def to_instances(a: np.ndarray, b: np.ndarray) -> Instances:
    """length2 instances with query (s, t) = (0, 1) on the family's graphs."""
    graphs = to_graphs(a, b)
    count = len(graphs)
    return Instances("length2", graphs, np.full(count, S), np.full(count, T))


def from_graphs(graphs: GraphBatch) -> tuple[np.ndarray, np.ndarray]:
    """Recover (a, b) from graphs of the family; raise InputError for any other graph."""
    if graphs.directed:
        raise InputError("the disjointness family is undirected")
    adj = graphs.dense()
    a, b = adj[:, S, FIRST_MIDDLE:], adj[:, T, FIRST_MIDDLE:]
    rebuilt = to_graphs(a, b).rows
    bad = np.flatnonzero(np.any(rebuilt != graphs.rows, axis=(1, 2)))
    if bad.size:
        raise InputError(
            f"graph {bad[0]} is not in the disjointness family (an edge s-t, or one "
            "between middle vertices)"
        )
    return a, b


def sample_sets(rng: np.random.Generator, n_middle: int, count: int) -> tuple[np.ndarray, ...]:
    """Exactly balanced pairs: the first half intersect, the rest are disjoint, then shuffled.

    Each coordinate of a disjoint pair is uniform over {(0,0), (1,0), (0,1)}; an intersecting
    pair is such a pair with one uniform coordinate forced to (1,1). So positives and negatives
    differ in exactly one coordinate's distribution, not in set sizes at large.
    """
    if n_middle < 1:
        raise InputError(f"need at least one middle vertex, got {n_middle}")
    choice = rng.integers(0, 3, size=(count, n_middle))
    a, b = choice == 1, choice == 2
    positive = np.arange(count) < count // 2
    forced = rng.integers(0, n_middle, size=count)
    rows = np.flatnonzero(positive)
    a[rows, forced[rows]] = b[rows, forced[rows]] = True
    order = rng.permutation(count)
    return a[order], b[order]


def sample(rng: np.random.Generator, n_middle: int, count: int) -> Instances:
    """Balanced length2 instances from the disjointness family."""
    return to_instances(*sample_sets(rng, n_middle, count))
