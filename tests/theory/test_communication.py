"""theory.communication: the reduction runs, the split is clean, the fooling set fools."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import seeds
from theory import communication as C
from theory import disjointness, encoding
from theory.bounds import message_bits
from theory.errors import InputError


@st.composite
def set_pairs(draw, max_n: int = 12):
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(seeds))
    count = draw(st.integers(1, 6))
    return rng.random((count, n)) < 0.5, rng.random((count, n)) < 0.5


@given(set_pairs(), st.integers(0, 3))
def test_sets_tokens_round_trip_both_directions(pair, extra):
    a, b = pair
    tokens = C.to_tokens(a, b)
    back_a, back_b = C.from_tokens(tokens, a.shape[1])
    assert np.array_equal(back_a, a) and np.array_equal(back_b, b)
    padded = C.to_tokens(a, b, tokens.shape[1] + extra)
    assert np.array_equal(C.from_tokens(padded, a.shape[1])[0], a)
    # and the answer of the graph is the set question
    assert C.to_instances(a, b).answer.tolist() == disjointness.intersects(a, b).tolist()


@given(set_pairs())
def test_alice_part_depends_on_a_only_and_bob_part_on_b_only(pair):
    a, b = pair
    tokens = C.to_tokens(a, b)
    lengths = C.sequence_length(a, b)
    for row, (alice, bob) in enumerate(C.split(tokens, a.shape[1])):
        assert np.array_equal(np.sort(alice), C.alice_tokens(a[row]))
        assert np.array_equal(np.sort(bob), C.bob_tokens(b[row]))
        assert len(alice) + len(bob) == lengths[row] == (tokens[row] != encoding.PAD).sum()
    who = C.owners(tokens, a.shape[1])
    assert ((who == C.NOBODY) == (tokens == encoding.PAD)).all()
    assert (who[:, -1] == C.BOB).all()  # the query position is Bob's


def test_split_by_hand():
    # n = 2 middle vertices (v_0 = 2, v_1 = 3), |V| = 4; a = {0}, b = {0, 1}
    n = 4
    tokens = C.to_tokens(np.array([[True, False]]), np.array([[True, True]]))
    alice, bob = C.split(tokens, 2)[0]
    e = encoding.edge_token
    assert sorted(alice.tolist()) == sorted([e(0, 2, n), e(2, 0, n)])
    assert sorted(bob.tolist()) == sorted(
        [
            encoding.BOS,
            e(1, 2, n),
            e(2, 1, n),
            e(1, 3, n),
            e(3, 1, n),
            encoding.query_token(0, 1, n),
        ]
    )


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_fooling_set_is_disjoint_and_every_two_pairs_cross(n):
    a, b = C.fooling_set(n)
    assert a.shape == (2**n, n) and len({r.tobytes() for r in a}) == 2**n
    meets = (a[:, None, :] & b[None, :, :]).any(axis=2)  # meets[i, j]: a_i ∩ b_j ≠ ∅
    assert not meets.diagonal().any()
    crossed = meets | meets.T
    assert crossed[~np.eye(2**n, dtype=bool)].all()


@given(st.integers(1, 10), seeds)
def test_collision_witness_separates_two_different_sets(n, seed):
    rng = np.random.default_rng(seed)
    a, a2 = rng.random(n) < 0.5, rng.random(n) < 0.5
    if np.array_equal(a, a2):
        a2[0] = not a2[0]
    b = C.collision_witness(a, a2)
    assert disjointness.intersects(a, b) != disjointness.intersects(a2, b)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 8), st.integers(1, 8), seeds)
def test_bob_finishes_the_softmax_exactly_from_m_plus_h_numbers(h, dh, na, nb, seed):
    rng = np.random.default_rng(seed)
    m = h * dh
    q = rng.normal(size=m)
    keys, values = rng.normal(size=(na + nb, m)), rng.normal(size=(na + nb, m))
    msg = C.alice_message(q, keys[:na], values[:na], h)
    assert msg.size == m + h
    assert msg.size * 16 == message_bits(m, h, 16)
    out = C.bob_attention(msg, q, keys[na:], values[na:], h)
    assert np.allclose(out, C.attention(q, keys, values, h))


@given(set_pairs(max_n=8), seeds)
def test_one_layer_attention_at_the_query_is_simulated_through_the_split(pair, seed):
    """Embed tokens with any table and project with any maps: Alice's message from her
    tokens plus Bob's tokens give exactly the attention output at the query position."""
    a, b = pair
    n_mid = a.shape[1]
    rng = np.random.default_rng(seed)
    m, h = 6, 2
    table = rng.normal(size=(encoding.vocab_size(n_mid + 2), m))
    wq, wk, wv = (rng.normal(size=(m, m)) / m for _ in range(3))
    tokens = C.to_tokens(a, b)
    for row, (alice, bob) in zip(tokens, C.split(tokens, n_mid), strict=True):
        q = table[row[-1]] @ wq
        msg = C.alice_message(q, table[alice] @ wk, table[alice] @ wv, h)
        got = C.bob_attention(msg, q, table[bob] @ wk, table[bob] @ wv, h)
        real = row[row != encoding.PAD]
        assert np.allclose(got, C.attention(q, table[real] @ wk, table[real] @ wv, h))


def test_foreign_tokens_and_queries_are_rejected():
    n = 4  # 2 middle vertices
    with pytest.raises(InputError, match="not in the disjointness family"):
        C.owners(np.array([[encoding.BOS, encoding.edge_token(2, 3, n)]]), 2)
    inst = C.to_instances(np.array([[True, False]]), np.array([[True, True]]))
    inst.t[:] = 2
    with pytest.raises(InputError, match=r"\(s, t\)"):
        C.from_instances(inst)
    with pytest.raises(InputError, match="fooling set"):
        C.fooling_set(0)
    with pytest.raises(InputError, match="equal sets"):
        C.collision_witness(np.ones(3, bool), np.ones(3, bool))
