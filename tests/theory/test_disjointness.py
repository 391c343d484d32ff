from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import seeds
from theory import disjointness
from theory.errors import InputError
from theory.graphs import GraphBatch


def _all_set_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    subsets = np.array(list(itertools.product([False, True], repeat=n)))
    pairs = list(itertools.product(range(len(subsets)), repeat=2))
    a = subsets[[p[0] for p in pairs]]
    b = subsets[[p[1] for p in pairs]]
    return a, b


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_mapping_is_a_bijection_and_answer_is_intersection_exhaustively(n):
    a, b = _all_set_pairs(n)
    inst = disjointness.to_instances(a, b)
    assert inst.n == n + 2
    assert len({r.tobytes() for r in inst.graphs.rows}) == len(a)  # injective
    back_a, back_b = disjointness.from_graphs(inst.graphs)
    assert np.array_equal(back_a, a) and np.array_equal(back_b, b)
    assert inst.answer.tolist() == disjointness.intersects(a, b).tolist()


@given(st.integers(1, 80), st.integers(0, 200), seeds)
def test_sampler_is_exactly_balanced_and_in_the_family(n, count, seed):
    a, b = disjointness.sample_sets(np.random.default_rng(seed), n, count)
    assert disjointness.intersects(a, b).sum() == count // 2
    inst = disjointness.to_instances(a, b)
    assert inst.answer.tolist() == disjointness.intersects(a, b).tolist()


def test_graphs_outside_the_family_are_rejected():
    g = GraphBatch.from_edge_lists(5, [[(0, 1)]])  # an s-t edge
    with pytest.raises(InputError, match="not in the disjointness family"):
        disjointness.from_graphs(g)
    g = GraphBatch.from_edge_lists(5, [[(2, 3)]])  # an edge between middle vertices
    with pytest.raises(InputError, match="not in the disjointness family"):
        disjointness.from_graphs(g)
