"""Exact batched solvers: one call answers a whole batch, word-parallel on bitsets.

Each solver takes a :class:`~theory.graphs.GraphBatch` and query vertices ``s, t`` (int arrays
of shape (B,)) and answers instance b on graph b. :mod:`theory.reference` holds the networkx
solvers these are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.errors import InputError
from theory.graphs import GraphBatch, unpack_bits

# Levels of the breadth-first search can never exceed n - 1, so int16 holds them for any n
# this toolkit encodes (vocabulary ~ 2n^2).
UNREACHABLE = -1


def _check_queries(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    s = np.asarray(s, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    if s.shape != (len(graphs),) or t.shape != (len(graphs),):
        raise InputError(f"need one query per graph: {len(graphs)} graphs, s {s.shape}, t {t.shape}")
    for name, q in (("s", s), ("t", t)):
        bad = np.flatnonzero((q < 0) | (q >= graphs.n))
        if bad.size:
            raise InputError(f"query {name}={q[bad[0]]} (instance {bad[0]}) is outside [0, {graphs.n})")
    same = np.flatnonzero(s == t)
    if same.size:
        raise InputError(f"query has s == t == {s[same[0]]} (instance {same[0]})")
    return s, t


def length2_path(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Is there w with s -> w and w -> t?  Bool array (B,).

    Undirected: N(s) ∩ N(t) ≠ ∅, one AND per 64 vertices. Directed: out(s) ∩ in(t) ≠ ∅.
    w can be neither s nor t because graphs have no self-loops.
    """
    s, t = _check_queries(graphs, s, t)
    out_s = graphs.rows[np.arange(len(graphs)), s]
    in_t = graphs.in_rows(t)
    return np.any((out_s & in_t) != 0, axis=-1)


def bfs_levels(graphs: GraphBatch, s: np.ndarray) -> np.ndarray:
    """Distance from s[b] to every vertex of graph b, int16 (B, n); -1 if unreachable.

    A breadth-first search on all graphs at once: the frontier is a bitset, and one level is
    the OR of the rows of the frontier's vertices. Graphs whose frontier is empty drop out.
    """
    s = np.asarray(s, dtype=np.int64)
    batch, n = len(graphs), graphs.n
    levels = np.full((batch, n), UNREACHABLE, dtype=np.int16)
    levels[np.arange(batch), s] = 0
    frontier = np.zeros((batch, n), dtype=bool)
    frontier[np.arange(batch), s] = True
    seen = frontier.copy()
    active = np.arange(batch)
    for depth in range(1, n):
        rows = graphs.rows[active]  # (A, n, W)
        reached = np.bitwise_or.reduce(
            np.where(frontier[:, :, None], rows, np.uint64(0)), axis=1
        )  # (A, W): out-neighbours of the frontier
        new = unpack_bits(reached, n) & ~seen
        levels[active[:, None].repeat(n, 1)[new], np.nonzero(new)[1]] = depth
        alive = new.any(axis=1)
        if not alive.any():
            break
        active, frontier, seen = active[alive], new[alive], (seen | new)[alive]
    return levels


def connectivity(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Is t reachable from s (in the same component, for undirected graphs)?  Bool array (B,)."""
    s, t = _check_queries(graphs, s, t)
    return bfs_levels(graphs, s)[np.arange(len(graphs)), t] != UNREACHABLE


@dataclass(frozen=True, eq=False)
class ShortestPaths:
    """Distances (B,), -1 if unreachable, and one shortest path per instance.

    ``paths[b, :distance[b] + 1]`` lists the vertices from s to t; the rest is -1. The path is
    canonical: walking back from t, each step takes the smallest-numbered predecessor.
    """

    distance: np.ndarray
    paths: np.ndarray

    def path(self, b: int) -> list[int]:
        d = int(self.distance[b])
        return [] if d < 0 else [int(v) for v in self.paths[b, : d + 1]]


def shortest_path(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> ShortestPaths:
    """Distance from s to t and one shortest path, for every instance at once."""
    s, t = _check_queries(graphs, s, t)
    batch, n = len(graphs), graphs.n
    levels = bfs_levels(graphs, s)
    distance = levels[np.arange(batch), t].astype(np.int64)
    paths = np.full((batch, n), -1, dtype=np.int64)
    reach = np.flatnonzero(distance >= 0)
    paths[reach, distance[reach]] = t[reach]
    for back in range(int(distance.max(initial=0))):
        # Instances with distance d > back fill position d - back - 1 from position d - back.
        idx = reach[distance[reach] > back]
        pos = distance[idx] - back
        cur = paths[idx, pos]
        into_cur = unpack_bits(graphs.in_rows(cur, index=idx), n)
        candidates = into_cur & (levels[idx] == (pos - 1)[:, None])
        paths[idx, pos - 1] = np.argmax(candidates, axis=1)
    return ShortestPaths(distance, paths)


def is_shortest_path(
    graphs: GraphBatch, b: int, path: list[int], s: int, t: int, distance: int
) -> bool:
    """``path`` runs s -> ... -> t along edges of graph b and has ``distance`` edges."""
    if distance < 0:
        return not path
    if len(path) != distance + 1 or path[0] != s or path[-1] != t:
        return False
    if any(not 0 <= v < graphs.n for v in path):
        return False
    adj = graphs[b : b + 1].dense()[0]
    return all(adj[u, v] for u, v in zip(path, path[1:], strict=False))
