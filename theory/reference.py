"""Reference solvers on networkx, one instance at a time: the oracle the batched solvers of
:mod:`theory.solvers` are tested and benchmarked against."""

from __future__ import annotations

import itertools

import networkx as nx

from theory.graphs import GraphBatch


def to_networkx(graphs: GraphBatch) -> list[nx.Graph]:
    """One networkx graph per batch entry, with all n vertices present (isolated ones too)."""
    out = []
    for edges in graphs.edge_lists():
        g = nx.DiGraph() if graphs.directed else nx.Graph()
        g.add_nodes_from(range(graphs.n))
        g.add_edges_from(edges)
        out.append(g)
    return out


def length2_path(g: nx.Graph, s: int, t: int) -> bool:
    """Some w with s -> w -> t."""
    if g.is_directed():
        return any(g.has_edge(w, t) for w in g.successors(s))
    return any(True for _ in nx.common_neighbors(g, s, t))


def connectivity(g: nx.Graph, s: int, t: int) -> bool:
    """t reachable from s."""
    return bool(nx.has_path(g, s, t))


def distance(g: nx.Graph, s: int, t: int) -> int:
    """Length of a shortest s -> t path, or -1 if there is none."""
    try:
        return int(nx.shortest_path_length(g, s, t))
    except nx.NetworkXNoPath:
        return -1


def is_shortest_path(g: nx.Graph, path: list[int], s: int, t: int) -> bool:
    """``path`` goes s -> ... -> t along edges of g and has the shortest length."""
    if not path or path[0] != s or path[-1] != t:
        return False
    if any(not g.has_edge(u, v) for u, v in itertools.pairwise(path)):
        return False
    return len(path) - 1 == distance(g, s, t)


def shortest_path(g: nx.Graph, s: int, t: int) -> list[int]:
    """One shortest s -> t path, or [] if there is none."""
    try:
        return [int(v) for v in nx.shortest_path(g, s, t)]
    except nx.NetworkXNoPath:
        return []
