from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import instances
from theory import encoding
from theory.encoding import BOS, PAD
from theory.errors import InputError


@given(instances(max_n=24), st.integers(0, 5))
def test_encode_decode_round_trip(inst, extra):
    tokens = encoding.encode(inst)
    padded = encoding.encode(inst, tokens.shape[1] + extra)
    for toks in (tokens, padded):
        back = encoding.decode(toks, inst.n, inst.problem, inst.graphs.directed)
        assert np.array_equal(back.graphs.rows, inst.graphs.rows)
        assert back.s.tolist() == inst.s.tolist() and back.t.tolist() == inst.t.tolist()
        assert toks.max() < encoding.vocab_size(inst.n)


@given(instances(max_n=16))
def test_layout_is_left_padded_bos_sorted_edges_then_query(inst):
    tokens = encoding.encode(inst, encoding.max_length(inst.n))
    edge_counts = inst.graphs.dense().sum(axis=(1, 2))
    for row, k, s, t in zip(tokens, edge_counts, inst.s, inst.t, strict=True):
        body = row[row != PAD]
        assert (row[: len(row) - len(body)] == PAD).all()  # padding only on the left
        assert body[0] == BOS and len(body) == k + 2
        assert (np.diff(body[1:-1]) > 0).all()
        assert body[-1] == encoding.query_token(int(s), int(t), inst.n)


def test_vocabulary_and_pair_blocks_by_hand():
    n = 3
    assert encoding.vocab_size(n) == 3 + 3 + 18
    (e0, rows, cols), (q0, _, _) = encoding.pair_blocks(n)
    assert (rows, cols) == (3, 3)
    assert encoding.edge_token(1, 2, n) == e0 + 5
    assert encoding.query_token(2, 0, n) == q0 + 6 == encoding.vocab_size(n) - 3
    assert encoding.vertex_token(2, n) == 5


def test_bad_sequences_are_rejected():
    n = 4
    q = encoding.query_token(0, 1, n)
    e = encoding.edge_token(0, 2, n)
    cases = [
        [PAD, e, q],  # no BOS
        [BOS, e, e, q],  # repeated edge
        [BOS, encoding.edge_token(1, 1, n), q],  # self-loop
        [BOS, e, encoding.edge_token(2, 0, n)],  # no query
    ]
    for row in cases:
        with pytest.raises(InputError):
            encoding.decode(np.array([row]), n, directed=True)
    with pytest.raises(InputError, match="both directions"):
        encoding.decode(np.array([[BOS, e, q]]), n)


def test_too_short_length_is_rejected():
    from theory.generators import sample

    inst = sample("length2", "complete", np.random.default_rng(0), 5, 2)
    with pytest.raises(InputError, match="too short"):
        encoding.encode(inst, 5)


@given(st.integers(4, 20), st.integers(1, 12), st.integers(0, 2**32 - 1), st.integers(0, 3))
def test_one_edge_count_fast_path_round_trips(n, batch, seed, extra):
    """The balanced samplers give every graph the same edge count: encode's fast path."""
    from theory.generators import balanced

    inst = balanced("length2", np.random.default_rng(seed), n, batch)
    assert len(set(inst.graphs.dense().sum(axis=(1, 2)).tolist())) == 1
    tokens = encoding.encode(inst)
    for toks in (tokens, encoding.encode(inst, tokens.shape[1] + extra)):
        back = encoding.decode(toks, n, "length2")
        assert np.array_equal(back.graphs.rows, inst.graphs.rows)
        assert back.s.tolist() == inst.s.tolist() and back.t.tolist() == inst.t.tolist()
