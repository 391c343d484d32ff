"""The batched solvers: hand-drawn graphs first, then agreement with networkx everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from tests.strategies import graph_batches, instances
from theory import reference, solvers
from theory.errors import InputError
from theory.graphs import GraphBatch

# 0 - 1 - 2 - 3    4 - 5    6 (isolated)      and a triangle 7 - 8 - 9 - 7
HAND = GraphBatch.from_edge_lists(10, [[(0, 1), (1, 2), (2, 3), (4, 5), (7, 8), (8, 9), (9, 7)]])
# (s, t, length-2 path?, connected?, distance)
HAND_CASES = [
    (0, 2, True, True, 2),
    (0, 1, False, True, 1),
    (0, 3, False, True, 3),
    (3, 0, False, True, 3),
    (0, 4, False, False, -1),
    (6, 0, False, False, -1),
    (4, 5, False, True, 1),
    (7, 8, True, True, 1),  # adjacent *and* a common neighbour (9)
    (1, 3, True, True, 2),
]


def _batch(graph: GraphBatch, count: int) -> GraphBatch:
    return GraphBatch(graph.n, np.repeat(graph.rows, count, axis=0), graph.directed)


def test_hand_drawn_graph_answers():
    graphs = _batch(HAND, len(HAND_CASES))
    s, t, l2, conn, dist = (np.array(col) for col in zip(*HAND_CASES, strict=True))
    assert solvers.length2_path(graphs, s, t).tolist() == l2.tolist()
    assert solvers.connectivity(graphs, s, t).tolist() == conn.tolist()
    sp = solvers.shortest_path(graphs, s, t)
    assert sp.distance.tolist() == dist.tolist()
    assert sp.path(2) == [0, 1, 2, 3]
    assert sp.path(3) == [3, 2, 1, 0]
    assert sp.path(4) == []


def test_directed_hand_drawn():
    # 0 -> 1 -> 2 -> 0 (a directed cycle) and 3 -> 0
    g = GraphBatch.from_edge_lists(4, [[(0, 1), (1, 2), (2, 0), (3, 0)]], directed=True)
    cases = [(0, 2, True, 2), (2, 0, False, 1), (1, 0, True, 2), (0, 3, False, -1), (3, 1, True, 2)]
    graphs = _batch(g, len(cases))
    s, t, l2, dist = (np.array(col) for col in zip(*cases, strict=True))
    assert solvers.length2_path(graphs, s, t).tolist() == l2.tolist()
    assert solvers.shortest_path(graphs, s, t).distance.tolist() == dist.tolist()
    assert solvers.connectivity(graphs, s, t).tolist() == (dist >= 0).tolist()


def test_decided_instances_keep_their_distance_while_others_search():
    """Regression: an instance decided at the first level was overwritten at the second."""
    path = GraphBatch.from_edge_lists(12, [[(i, i + 1) for i in range(11)]])
    graphs = _batch(path, 8)
    s = np.array([0, 0, 0, 0, 0, 0, 0, 5])
    t = np.array([11, 10, 9, 8, 7, 6, 1, 6])
    assert solvers.shortest_path(graphs, s, t).distance.tolist() == [11, 10, 9, 8, 7, 6, 1, 1]


@given(instances(max_n=70))
def test_batched_solvers_equal_networkx(inst):
    graphs, s, t = inst.graphs, inst.s, inst.t
    nx_graphs = reference.to_networkx(graphs)
    expected_l2 = [reference.length2_path(g, a, b) for g, a, b in zip(nx_graphs, s, t, strict=True)]
    expected_d = [reference.distance(g, a, b) for g, a, b in zip(nx_graphs, s, t, strict=True)]
    assert solvers.length2_path(graphs, s, t).tolist() == expected_l2
    assert solvers.connectivity(graphs, s, t).tolist() == [d >= 0 for d in expected_d]
    sp = solvers.shortest_path(graphs, s, t)
    assert sp.distance.tolist() == expected_d
    for b in range(len(graphs)):
        if expected_d[b] >= 0:
            assert reference.is_shortest_path(nx_graphs[b], sp.path(b), int(s[b]), int(t[b]))


@given(graph_batches(min_n=3, max_n=20, max_batch=6))
def test_all_queries_of_a_graph_agree_with_networkx(graphs):
    """Every ordered pair (s, t) of each graph, so no query is left to chance."""
    n = graphs.n
    s, t = np.nonzero(~np.eye(n, dtype=bool))
    for b, g in enumerate(reference.to_networkx(graphs)):
        batch = graphs[np.full(len(s), b)]
        assert solvers.length2_path(batch, s, t).tolist() == [
            reference.length2_path(g, int(u), int(v)) for u, v in zip(s, t, strict=True)
        ]
        assert solvers.shortest_path(batch, s, t).distance.tolist() == [
            reference.distance(g, int(u), int(v)) for u, v in zip(s, t, strict=True)
        ]


@pytest.mark.parametrize(
    ("s", "t", "message"), [([0], [0], "s == t"), ([0], [10], "outside"), ([-1], [2], "outside")]
)
def test_bad_queries_are_rejected(s, t, message):
    with pytest.raises(InputError, match=message):
        solvers.length2_path(HAND, np.array(s), np.array(t))
