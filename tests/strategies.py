"""Shared hypothesis strategies."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from theory.generators import GRAPHQA_FAMILIES, erdos_renyi, graphqa, random_queries
from theory.graphs import GraphBatch
from theory.problems import PROBLEMS, Instances

seeds = st.integers(0, 2**32 - 1)


@st.composite
def graph_batches(draw, min_n: int = 3, max_n: int = 40, max_batch: int = 12) -> GraphBatch:
    """Graphs of one size: G(n, p) with p from empty to complete, or a GraphQA family."""
    n = draw(st.integers(min_n, max_n))
    count = draw(st.integers(1, max_batch))
    directed = draw(st.booleans())
    rng = np.random.default_rng(draw(seeds))
    family = draw(st.sampled_from(("gnp", *GRAPHQA_FAMILIES)))
    if family == "gnp":
        p = draw(st.sampled_from((0.0, 0.05, 0.1, 0.2, 0.5, 0.9, 1.0)))
        return erdos_renyi(rng, n, p, count, directed)
    return graphqa(family, rng, n, count, directed)


@st.composite
def instances(draw, problem: str | None = None, **kwargs) -> Instances:
    """Instances of a problem on :func:`graph_batches`, with uniform queries."""
    graphs = draw(graph_batches(**kwargs))
    problem = problem or draw(st.sampled_from(PROBLEMS))
    s, t = random_queries(np.random.default_rng(draw(seeds)), graphs.n, len(graphs))
    return Instances(problem, graphs, s, t)
