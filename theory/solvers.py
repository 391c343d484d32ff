"""Exact batched solvers: one call answers a whole batch, word-parallel on bitsets.

Each solver takes a :class:`~theory.graphs.GraphBatch` and query vertices ``s, t`` (int arrays
of shape (B,)) and answers instance b on graph b. :mod:`theory.reference` holds the networkx
solvers these are tested against.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from theory.errors import InputError
from theory.graphs import WORD_BITS, GraphBatch, num_words, unpack_bits

UNREACHABLE = -1  # the distance of an unreachable target


def _check_queries(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    s = np.asarray(s, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    if s.shape != (len(graphs),) or t.shape != (len(graphs),):
        raise InputError(
            f"need one query per graph: {len(graphs)} graphs, s {s.shape}, t {t.shape}"
        )
    for name, q in (("s", s), ("t", t)):
        bad = np.flatnonzero((q < 0) | (q >= graphs.n))
        if bad.size:
            raise InputError(
                f"query {name}={q[bad[0]]} (instance {bad[0]}) is outside [0, {graphs.n})"
            )
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


def _narrow(words: np.ndarray, n: int) -> np.ndarray:
    """Bitsets of n <= 32 vertices fit uint32 words: half the memory traffic per level."""
    return words.astype(np.uint32) if n <= 32 else words


def _expand(rows: np.ndarray, frontier: np.ndarray, n: int) -> np.ndarray:
    """Bitsets (A, W) of all out-neighbours of the frontier: OR of rows[a, v] over its v."""
    mask = unpack_bits(frontier, n)  # (A, n)
    return np.bitwise_or.reduce(rows * mask[:, :, None], axis=1)


def _singletons(v: np.ndarray, n: int) -> np.ndarray:
    words = np.zeros((len(v), num_words(n)), dtype=np.uint64)
    words[np.arange(len(v)), v // WORD_BITS] = np.uint64(1) << (v % WORD_BITS).astype(np.uint64)
    return words


@dataclass
class _Search:
    """Result of the bidirectional search: distance, and where the two searches met.

    ``forward[d]`` / ``backward[d]`` (each (B, W)) are the vertices at distance d from s / to t
    found before the searches met; ``meet`` is a vertex at forward depth ``depth_f`` and backward
    depth ``depth_b`` with depth_f + depth_b = distance.
    """

    distance: np.ndarray
    meet: np.ndarray
    depth_f: np.ndarray
    depth_b: np.ndarray
    forward: list[np.ndarray]
    backward: list[np.ndarray]


def _bidirectional_search(
    graphs: GraphBatch, s: np.ndarray, t: np.ndarray, keep_levels: bool
) -> _Search:
    """Breadth-first search from s (out-edges) and from t (in-edges) in lockstep, all graphs
    at once, each level one word-parallel OR over the frontier's rows.

    Levels alternate: forward to depth d_f, then backward to depth d_b. If no check so far
    found the two searched sets touching, no path of length <= d_f + d_b - 1 exists (its vertex
    at depth min(d_f, ·) would lie in both); so the first time the newest level of one side
    meets the other side's searched set, the distance is exactly d_f + d_b. A side whose
    frontier empties first has searched its whole reach: t is unreachable. Instances leave the
    search as soon as they are decided, and the row arrays are compacted as they thin out.
    """
    batch, n = len(graphs), graphs.n
    rows_f = _narrow(graphs.rows, n)
    rows_b = rows_f if not graphs.directed else _narrow(graphs.in_rows_all(), n)
    idx = np.arange(batch)  # batch index of each instance still in rows_f / rows_b
    frontier = {True: _narrow(_singletons(s, n), n), False: _narrow(_singletons(t, n), n)}
    seen = {True: frontier[True].copy(), False: frontier[False].copy()}
    levels: dict[bool, list[np.ndarray]] = {True: [], False: []}
    if keep_levels:
        levels[True].append(frontier[True].copy())
        levels[False].append(frontier[False].copy())
    distance = np.full(batch, UNREACHABLE, dtype=np.int64)
    meet = np.zeros(batch, dtype=np.int64)
    depth = {True: np.zeros(batch, np.int64), False: np.zeros(batch, np.int64)}
    d = {True: 0, False: 0}
    done = np.zeros(batch, dtype=bool)  # per column: decided (its frontiers are then empty)
    for step in range(2 * n):
        if done.all():
            break
        fwd = step % 2 == 0
        rows = rows_f if fwd else rows_b
        if step < 2:  # the frontier is the single vertex s (or t): its row is the expansion
            new = rows[np.arange(len(idx)), (s if fwd else t)[idx]] & ~seen[fwd]
        else:
            new = _expand(rows, frontier[fwd], n) & ~seen[fwd]
        new[done] = 0
        seen[fwd] |= new
        d[fwd] += 1
        if keep_levels:
            level = np.zeros((batch, num_words(n)), dtype=new.dtype)
            level[idx] = new
            levels[fwd].append(level)
        touch = new & seen[not fwd]
        met = touch.any(axis=1)
        dead = ~new.any(axis=1) & ~met & ~done
        if met.any():
            hit = idx[met]
            distance[hit] = d[True] + d[False]
            meet[hit] = _lowest_vertex(touch[met], n)
            depth[True][hit], depth[False][hit] = d[True], d[False]
        new[met] = 0
        frontier[fwd] = new
        frontier[not fwd][met] = 0
        done |= met | dead
        if done.sum() > 0.5 * len(done):  # compact the big arrays as they thin out
            keep = ~done
            idx, done = idx[keep], done[keep]
            for sd in (True, False):
                frontier[sd], seen[sd] = frontier[sd][keep], seen[sd][keep]
            rows_f = rows_f[keep]
            rows_b = rows_f if not graphs.directed else rows_b[keep]
    return _Search(distance, meet, depth[True], depth[False], levels[True], levels[False])


def connectivity(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Is t reachable from s (in the same component, for undirected graphs)?  Bool array (B,)."""
    s, t = _check_queries(graphs, s, t)
    return _bidirectional_search(graphs, s, t, keep_levels=False).distance != UNREACHABLE


@dataclass(frozen=True, eq=False)
class ShortestPaths:
    """Distances (B,), -1 if unreachable, and one shortest path per instance.

    ``paths[b, :distance[b] + 1]`` lists the vertices from s to t; the rest is -1.
    """

    distance: np.ndarray
    paths: np.ndarray

    def path(self, b: int) -> list[int]:
        d = int(self.distance[b])
        return [] if d < 0 else [int(v) for v in self.paths[b, : d + 1]]


def _lowest_vertex(words: np.ndarray, n: int) -> np.ndarray:
    """Index of the lowest set bit of each non-empty bitset in ``words`` (A, W)."""
    if words.shape[1] == 1:  # isolate the bit (x & -x); log2 of a power of two is exact
        x = words[:, 0]
        return np.log2((x & (~x + np.uint64(1))).astype(np.float64)).astype(np.int64)
    return np.argmax(unpack_bits(words, n), axis=1)


def shortest_path(graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> ShortestPaths:
    """Distance from s to t and one shortest path, for every instance at once.

    The path is read off the bidirectional search: from the meeting vertex w, walk back to s
    through the forward levels (each step: the lowest-numbered in-neighbour one level closer to
    s) and on to t through the backward levels.
    """
    s, t = _check_queries(graphs, s, t)
    batch, n = len(graphs), graphs.n
    found = _bidirectional_search(graphs, s, t, keep_levels=True)
    forward, backward = np.stack(found.forward), np.stack(found.backward)  # (depth, B, W)
    paths = np.full((batch, n), -1, dtype=np.int64)
    reach = np.flatnonzero(found.distance >= 0)
    df, db = found.depth_f[reach], found.depth_b[reach]
    paths[reach, df] = found.meet[reach]
    in_rows = graphs.in_rows_all() if graphs.directed else graphs.rows
    for back in range(int(df.max(initial=0))):  # positions df-1 .. 0, towards s
        walk = df > back
        b, p = reach[walk], df[walk] - back
        into = in_rows[b, paths[b, p]] & forward[p - 1, b]
        paths[b, p - 1] = _lowest_vertex(into, n)
    for ahead in range(int(db.max(initial=0))):  # positions df+1 .. d, towards t
        walk = db > ahead
        b, p, k = reach[walk], df[walk] + ahead, db[walk] - ahead
        out = graphs.rows[b, paths[b, p]] & backward[k - 1, b]
        paths[b, p + 1] = _lowest_vertex(out, n)
    return ShortestPaths(found.distance, paths)


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
    return all(adj[u, v] for u, v in itertools.pairwise(path))
