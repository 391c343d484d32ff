from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import seeds
from theory import generators
from theory.errors import InputError
from theory.generators import FAMILIES, balanced, balanced_num_edges, gnm, sample
from theory.problems import DECISION_PROBLEMS, PROBLEMS, Instances
from theory.splits import fingerprint


@given(st.sampled_from(PROBLEMS), st.integers(4, 40), st.integers(0, 300), st.booleans(), seeds)
def test_balanced_sampler_is_exactly_balanced_with_one_edge_count(
    problem, n, count, directed, seed
):
    inst = balanced(problem, np.random.default_rng(seed), n, count, directed)
    positive = inst.labels() > 0
    assert len(inst) == count
    assert positive.sum() == count // 2
    # Every graph has the same number of edges, so the edge count says nothing of the label.
    assert set(inst.graphs.num_edges().tolist()) <= {balanced_num_edges(problem, n, directed)}


@pytest.mark.parametrize(
    ("problem", "family"),
    [(p, f) for p in PROBLEMS for f in FAMILIES if f != "disjointness" or p == "length2"],
)
def test_generators_are_deterministic_per_seed_and_differ_across_seeds(problem, family):
    a = sample(problem, family, np.random.default_rng(7), 10, 40)
    b = sample(problem, family, np.random.default_rng(7), 10, 40)
    c = sample(problem, family, np.random.default_rng(8), 10, 40)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_gnm_is_uniform_over_edge_sets():
    """G(4, 3): each of the C(6, 3) = 20 edge sets should come up ~1/20 of the time."""
    graphs = gnm(np.random.default_rng(0), 4, 3, 40_000)
    counts = Counter(tuple(map(tuple, e)) for e in graphs.edge_lists())
    assert len(counts) == 20
    expected = 40_000 / 20
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 43.8  # the 0.999 quantile of chi-square with 19 degrees of freedom


@given(st.integers(3, 30), st.booleans(), seeds, st.data())
def test_gnm_has_exactly_m_edges(n, directed, seed, data):
    slots = n * (n - 1) // (1 if directed else 2)
    m = data.draw(st.integers(0, slots))
    graphs = gnm(np.random.default_rng(seed), n, m, 5, directed)
    assert graphs.num_edges().tolist() == [m] * 5


def test_balanced_edge_prob_makes_classes_near_even():
    """p* is only a starting density, but it should leave little to filter at |V| = 32."""
    for problem in DECISION_PROBLEMS:
        rng = np.random.default_rng(0)
        m = balanced_num_edges(problem, 32)
        s, t = generators.random_queries(rng, 32, 4000)
        rate = Instances(problem, gnm(rng, 32, m, 4000), s, t).labels().mean()
        assert 0.35 < rate < 0.65, (problem, rate)


def test_graphqa_families_have_their_shape():
    rng = np.random.default_rng(1)
    n = 9
    assert generators.graphqa("complete", rng, n, 3).num_edges().tolist() == [36] * 3
    assert generators.graphqa("path", rng, n, 3).num_edges().tolist() == [8] * 3
    star = generators.graphqa("star", rng, n, 3)
    assert star.num_edges().tolist() == [8] * 3
    assert sorted(star.dense()[0].sum(axis=1).tolist()) == [1] * 8 + [8]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"problem": "triangles"}, "unknown problem"),
        ({"family": "grid"}, "unknown family"),
        ({"n": 2}, "at least 3"),
        ({"count": -1}, "non-negative"),
        ({"problem": "connectivity", "family": "disjointness"}, "length2"),
    ],
)
def test_bad_requests_raise_input_error(kwargs, message):
    args = {"problem": "length2", "family": "balanced", "n": 8, "count": 4} | kwargs
    with pytest.raises(InputError, match=message):
        sample(args["problem"], args["family"], np.random.default_rng(0), args["n"], args["count"])


def test_random_queries_cover_all_ordered_pairs():
    s, t = generators.random_queries(np.random.default_rng(0), 4, 5000)
    assert (s != t).all()
    assert set(zip(s.tolist(), t.tolist(), strict=True)) == set(itertools.permutations(range(4), 2))
