"""Seeded instance generators. Every function takes an explicit ``np.random.Generator``.

Families
--------
``balanced``
    The training distribution for the decision problems: uniform random graphs with exactly
    M edges, G(n, M), and one uniform query (s, t) each, filtered so that *exactly* half the
    instances are positive. Every graph has the same edge count, so the edge count carries no
    information about the label. M = round(p* · #pairs) where p* makes a G(n, p*) query
    positive with probability about 1/2 (see :func:`balanced_edge_prob`), so little is filtered.
    For ``shortest_path`` it balances reachable against unreachable queries.
``er``, ``ba``, ``sbm``, ``star``, ``path``, ``complete``
    The GraphQA families (Fatemi et al., ICLR 2024), for comparability; queries uniform.
``disjointness``
    The lower bound's hard family (:mod:`theory.disjointness`), exactly balanced.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from theory import disjointness
from theory.errors import InputError
from theory.graphs import GraphBatch, num_words, pack_bits
from theory.problems import Instances, check_problem, concat_instances

FAMILIES = ("balanced", "er", "ba", "sbm", "star", "path", "complete", "disjointness")
GRAPHQA_FAMILIES = ("er", "ba", "sbm", "star", "path", "complete")
CHUNK = 1 << 15  # graphs generated at a time: bounds peak memory at ~n^2 * CHUNK bytes

# G(n, c/n): the giant component holds a fraction beta of the vertices, beta = 1 - exp(-c beta);
# s and t are both in it (hence connected) with probability ~ beta^2. beta^2 = 1/2 gives c:
_CONNECTIVITY_C = -math.log(1 - 1 / math.sqrt(2)) * math.sqrt(2)


def _check_size(n: int, count: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 3:
        raise InputError(f"need at least 3 vertices, got n={n}")
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise InputError(f"count must be a non-negative integer, got {count}")


def pair_slots(n: int, directed: bool) -> tuple[np.ndarray, np.ndarray]:
    """The vertex pairs an edge can occupy: u < v if undirected, u != v if directed."""
    if directed:
        u, v = np.nonzero(~np.eye(n, dtype=bool))
        return u, v
    return np.triu_indices(n, 1)


def _graphs_from_picks(n: int, picks: np.ndarray, directed: bool) -> GraphBatch:
    """Graphs from the slot indices (B, m) of their edges (each slot at most once per graph)."""
    u, v = pair_slots(n, directed)
    count = picks.shape[0]
    base = (np.arange(count, dtype=np.int64) * (n * n))[:, None]
    flat = np.zeros(count * n * n, dtype=bool)
    flat[(base + u[picks] * n + v[picks]).ravel()] = True
    if not directed:
        flat[(base + v[picks] * n + u[picks]).ravel()] = True
    return GraphBatch(n, pack_bits(flat.reshape(count, n, n)), directed)


def all_graphs(n: int, directed: bool = False) -> GraphBatch:
    """Every graph on n labelled vertices, in binary order of their edge sets (2^#pairs)."""
    u, _ = pair_slots(n, directed)
    slots = len(u)
    if slots > 24:
        raise InputError(f"all graphs on n={n} vertices is 2^{slots} graphs; at most 2^24")
    codes = np.arange(2**slots, dtype=np.int64)
    present = ((codes[:, None] >> np.arange(slots)) & 1).astype(bool)
    return _graphs_from_mask(n, present, directed)


def _graphs_from_mask(n: int, present: np.ndarray, directed: bool) -> GraphBatch:
    u, v = pair_slots(n, directed)
    adj = np.zeros((present.shape[0], n, n), dtype=bool)
    adj[:, u, v] = present
    if not directed:
        adj |= adj.transpose(0, 2, 1)
    return GraphBatch(n, pack_bits(adj), directed)


def random_queries(rng: np.random.Generator, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ordered pairs (s, t) with s != t."""
    s = rng.integers(0, n, size=count)
    t = rng.integers(0, n - 1, size=count)
    return s, t + (t >= s)


def erdos_renyi(
    rng: np.random.Generator, n: int, p: float, count: int, directed: bool = False
) -> GraphBatch:
    """G(n, p): every possible edge present independently with probability p."""
    if not 0.0 <= p <= 1.0:
        raise InputError(f"edge probability must be in [0, 1], got {p}")
    present = rng.random((count, len(pair_slots(n, directed)[0]))) < p
    return _graphs_from_mask(n, present, directed)


def gnm(rng: np.random.Generator, n: int, m: int, count: int, directed: bool = False) -> GraphBatch:
    """G(n, M): a uniformly random graph with exactly m edges, for ``count`` graphs at once.

    Floyd's algorithm, vectorized over the batch: for j = P-m .. P-1 draw r uniform in [0, j]
    and take slot r, or slot j if r was taken. Every m-subset of the P slots is equally likely,
    and it costs m draws per graph rather than P.
    """
    slots = len(pair_slots(n, directed)[0])
    if not 0 <= m <= slots:
        raise InputError(f"a graph on {n} vertices has 0..{slots} edges, asked for m={m}")
    taken = np.zeros(count * slots, dtype=bool)  # flat (count, slots) membership
    picks = np.empty((count, m), dtype=np.int64)
    base = np.arange(count, dtype=np.int64) * slots
    for k, j in enumerate(range(slots - m, slots)):
        r = rng.integers(0, j + 1, size=count)
        r[taken[base + r]] = j
        taken[base + r] = True
        picks[:, k] = r
    return _graphs_from_picks(n, picks, directed)


def balanced_edge_prob(problem: str, n: int) -> float:
    """Edge probability p* at which a uniform query is positive with probability ~ 1/2.

    length2: the n - 2 candidate middle vertices are independent, each a middle with prob p^2,
    so P(no length-2 path) = (1 - p^2)^(n-2) = 1/2 gives p* = sqrt(1 - 2^(-1/(n-2))).
    connectivity / shortest_path: p* = c/n with beta^2 = 1/2 for the giant-component fraction
    beta = 1 - exp(-c beta), i.e. c = sqrt(2) ln(1/(1 - 1/sqrt(2))) ≈ 1.737.
    """
    if check_problem(problem) == "length2":
        return math.sqrt(1.0 - 2.0 ** (-1.0 / (n - 2)))
    return min(1.0, _CONNECTIVITY_C / n)


def balanced_num_edges(problem: str, n: int, directed: bool = False) -> int:
    """The edge count M of every graph the balanced sampler draws."""
    slots = len(pair_slots(n, directed)[0])
    return max(1, min(slots - 1, round(balanced_edge_prob(problem, n) * slots)))


def balanced(
    problem: str, rng: np.random.Generator, n: int, count: int, directed: bool = False
) -> Instances:
    """Exactly ``count // 2`` positive and ``count - count // 2`` negative instances, shuffled.

    Graphs are G(n, M) with M from :func:`balanced_num_edges`; a query's class is
    length-2-path / reachable. Draws chunks until both quotas are full.
    """
    _check_size(n, count)
    m = balanced_num_edges(problem, n, directed)
    want = {True: count // 2, False: count - count // 2}
    parts: list[Instances] = []
    for _attempt in range(10_000):
        if not any(want.values()):
            break
        size = min(CHUNK, max(64, int(1.2 * sum(want.values()))))
        s, t = random_queries(rng, n, size)
        chunk = Instances(problem, gnm(rng, n, m, size, directed), s, t)
        positive = chunk.labels() > 0
        for cls in (True, False):
            take = np.flatnonzero(positive == cls)[: want[cls]]
            want[cls] -= len(take)
            if len(take):
                parts.append(chunk[take])
    else:  # pragma: no cover - only for degenerate sizes
        raise InputError(f"could not balance {problem} at n={n}: one class is too rare")
    if not parts:
        empty = GraphBatch(n, np.zeros((0, n, num_words(n)), np.uint64), directed)
        return Instances(problem, empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
    out = concat_instances(parts)
    return out[rng.permutation(len(out))]


def _graphqa_graph(family: str, rng: np.random.Generator, n: int) -> nx.Graph:
    seed = int(rng.integers(2**31))
    if family == "er":
        return nx.gnp_random_graph(n, float(rng.uniform(0.1, 0.6)), seed=seed)
    if family == "ba":
        return nx.barabasi_albert_graph(n, int(rng.integers(1, n)), seed=seed)
    if family == "sbm":
        k = int(rng.integers(2, min(4, n) + 1))
        sizes = [int(x) for x in np.bincount(rng.integers(0, k, size=n), minlength=k) if x > 0]
        p_in, p_out = rng.uniform(0.3, 0.8), rng.uniform(0.0, 0.1)
        probs = [[p_in if i == j else p_out for j in range(len(sizes))] for i in range(len(sizes))]
        return nx.stochastic_block_model(sizes, probs, seed=seed)
    base = {
        "star": nx.star_graph(n - 1),
        "path": nx.path_graph(n),
        "complete": nx.complete_graph(n),
    }
    return base[family]


def graphqa(
    family: str, rng: np.random.Generator, n: int, count: int, directed: bool = False
) -> GraphBatch:
    """GraphQA-family graphs, vertices relabelled by a random permutation (so a star's centre
    or a path's ends are not always the same vertex); directed variants orient each edge at
    random."""
    if family not in GRAPHQA_FAMILIES:
        raise InputError(f"unknown GraphQA family {family!r}; choose one of {GRAPHQA_FAMILIES}")
    adj = np.zeros((count, n, n), dtype=bool)
    for b in range(count):
        g = _graphqa_graph(family, rng, n)
        perm = rng.permutation(n)
        edges = np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2)
        u, v = perm[edges[:, 0]], perm[edges[:, 1]]
        if directed:
            flip = rng.random(len(u)) < 0.5
            u, v = np.where(flip, v, u), np.where(flip, u, v)
            adj[b, u, v] = True
        else:
            adj[b, u, v] = adj[b, v, u] = True
    return GraphBatch(n, pack_bits(adj), directed)


def sample(
    problem: str,
    family: str,
    rng: np.random.Generator,
    n: int,
    count: int,
    directed: bool = False,
    edge_prob: float | None = None,
) -> Instances:
    """``count`` instances of ``problem`` on graphs of ``family`` with n vertices.

    ``edge_prob`` fixes p for the ``er`` family (G(n, p) for every graph); without it ``er``
    draws p per graph as GraphQA does.
    """
    check_problem(problem)
    _check_size(n, count)
    if family == "balanced":
        return balanced(problem, rng, n, count, directed)
    if family == "disjointness":
        if problem != "length2" or directed:
            raise InputError("the disjointness family is an undirected length2 family")
        return disjointness.sample(rng, n - 2, count)
    if family not in GRAPHQA_FAMILIES:
        raise InputError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if family == "er" and edge_prob is not None:
        graphs = erdos_renyi(rng, n, edge_prob, count, directed)
    else:
        graphs = graphqa(family, rng, n, count, directed)
    s, t = random_queries(rng, n, count)
    return Instances(problem, graphs, s, t)
