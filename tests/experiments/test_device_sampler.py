"""DeviceSampler: the canonical encoding, exact labels, exact balance, the numpy sampler's
distribution (exhaustively at n = 4), and a data stream that resumes from the numpy state."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.commands.train import graph_task
from experiments.device_sampler import DeviceSampler
from theory.encoding import decode, encode
from theory.errors import InputError
from theory.generators import balanced_num_edges
from theory.problems import PROBLEMS, Instances


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: with two threads on a loaded 2-core machine, OpenMP waits dominate."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@settings(max_examples=30, deadline=None)
@given(
    problem=st.sampled_from(PROBLEMS),
    n=st.integers(5, 10),
    directed=st.booleans(),
    batch=st.integers(1, 48),
    seed=st.integers(0, 2**32),
)
def test_batches_are_canonical_encodings_with_exact_labels_and_balance(
    problem: str, n: int, directed: bool, batch: int, seed: int
) -> None:
    sampler = DeviceSampler(problem, n, directed=directed, batch_hint=batch)
    tokens, labels = sampler(np.random.default_rng(seed), batch)
    assert tokens.dtype == labels.dtype == torch.int64
    _, length = graph_task(problem, n, directed)
    assert tokens.shape == (batch, length) == (batch, sampler.length)
    inst = decode(tokens.numpy(), n, problem, directed)  # raises on a malformed row
    np.testing.assert_array_equal(inst.labels(), labels.numpy())  # theory's solvers agree
    m = balanced_num_edges(problem, n, directed)
    edges = inst.graphs.dense().sum(axis=(1, 2))
    assert (edges == (m if directed else 2 * m)).all()  # G(n, M): exactly M edges each
    assert int((labels > 0).sum()) == batch // 2
    assert sampler.shortfalls() == 0
    # round trip through the numpy encoder: the same layout, token for token
    np.testing.assert_array_equal(encode(inst, length), tokens.numpy())


def _triples(n: int, m: int) -> dict[tuple, int]:
    """Every (graph, s, t) of G(n, m) undirected with its length-2 label."""
    slots = list(itertools.combinations(range(n), 2))
    out = {}
    for edges in itertools.combinations(slots, m):
        adj = np.zeros((n, n), dtype=bool)
        for u, v in edges:
            adj[u, v] = adj[v, u] = True
        for s, t in itertools.permutations(range(n), 2):
            out[(edges, s, t)] = int((adj[s] & adj[:, t]).any())
    return out


def _key(inst: Instances, b: int) -> tuple:
    adj = inst.graphs.dense()[b]
    edges = tuple((u, v) for u, v in zip(*np.nonzero(np.triu(adj)), strict=True))
    return (tuple((int(u), int(v)) for u, v in edges), int(inst.s[b]), int(inst.t[b]))


def _chi2(counts: Counter, expected: dict[tuple, float]) -> float:
    total = sum(counts.values())
    return sum((counts.get(k, 0) - total * p) ** 2 / (total * p) for k, p in expected.items())


def test_distribution_is_the_numpy_samplers_exhaustively_at_n4() -> None:
    """Given its class, a balanced instance is uniform over the (graph, s, t) triples of that
    class: G(n, M) and the query are uniform, and balancing conditions on the label. The
    chi-square test accepts that law and rejects the plausible wrong one (draw the graph
    first, then a query of the wanted class: uniform over graphs having such a query)."""
    n = 4
    m = balanced_num_edges("length2", n)
    triples = _triples(n, m)
    sampler = DeviceSampler("length2", n, batch_hint=512)
    rng = np.random.default_rng(7)
    seen: dict[int, Counter] = {0: Counter(), 1: Counter()}
    for _ in range(40):
        tokens, labels = sampler(rng, 512)
        inst = decode(tokens.numpy(), n)
        for b, y in enumerate(labels.tolist()):
            seen[y][_key(inst, b)] += 1
    for y in (0, 1):
        support = [k for k, lab in triples.items() if lab == y]
        assert set(seen[y]) <= set(support)
        uniform = {k: 1 / len(support) for k in support}
        graph_first: dict[tuple, float] = {}
        graphs = {k[0] for k in support}
        for g in graphs:
            pairs = [k for k in support if k[0] == g]
            for k in pairs:
                graph_first[k] = 1 / (len(graphs) * len(pairs))
        df = len(support) - 1
        critical = df + 6 * math.sqrt(2 * df)  # ~1e-6 upper tail
        assert _chi2(seen[y], uniform) < critical
        assert _chi2(seen[y], graph_first) > critical


def test_the_stream_is_a_function_of_the_numpy_state() -> None:
    sampler = DeviceSampler("connectivity", 7, batch_hint=32)
    a = sampler(np.random.default_rng(3), 32)
    b = DeviceSampler("connectivity", 7, batch_hint=32)(np.random.default_rng(3), 32)
    c = sampler(np.random.default_rng(4), 32)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_bad_input_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown problem"):
        DeviceSampler("flow", 8)
    with pytest.raises(InputError, match="at least 3"):
        DeviceSampler("length2", 2)
    with pytest.raises(InputError, match="too rare"):
        DeviceSampler("connectivity", 3)  # 2 edges of 3: always connected
    with pytest.raises(InputError, match="batch"):
        DeviceSampler("length2", 6)(np.random.default_rng(0), 0)


class _Interrupt(Exception):
    pass


def test_training_on_device_batches_resumes_exactly(tmp_path) -> None:
    """The trainer checkpoints only its numpy state; the device stream follows from it, so a
    run killed after step 5 and resumed from its step-4 checkpoint ends with a straight run's
    weights."""
    from models.train import TrainConfig, train
    from models.transformer import ModelConfig, Transformer
    from theory.encoding import pair_blocks, vocab_size

    n = 6
    sampler = DeviceSampler("shortest_path", n, batch_hint=32)
    held_out = graph_task("shortest_path", n)[0](np.random.default_rng(1), 64)
    cfg = TrainConfig(steps=8, eval_interval=4, batch_size=32, warmup_steps=2, device="cpu")

    def model() -> Transformer:
        mc = ModelConfig(
            vocab_size=vocab_size(n),
            max_len=sampler.length,
            width=16,
            heads=2,
            layers=2,
            experts=4,
            top_k=2,
            num_classes=n,
            pair_blocks=pair_blocks(n),
        )
        return Transformer(mc, torch.Generator().manual_seed(0))

    straight = model()
    train(straight, cfg, sampler, held_out, out_dir=tmp_path / "a", progress=False)
    calls = {"n": 0}

    def dies_after_five(rng, batch):
        calls["n"] += 1
        if calls["n"] > 5:
            raise _Interrupt
        return sampler(rng, batch)

    with pytest.raises(_Interrupt):
        train(model(), cfg, dies_after_five, held_out, out_dir=tmp_path / "b", progress=False)
    resumed = model()
    summary = train(resumed, cfg, sampler, held_out, out_dir=tmp_path / "b", progress=False)
    assert summary["resumed_from"] == 4
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
