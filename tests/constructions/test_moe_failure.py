"""The lower bound's protocol run on real one-layer models, and the fooling pairs it yields."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constructions import moe_failure as mf
from models.transformer import ModelConfig, Transformer
from theory import disjointness, encoding
from theory.errors import InputError


def _model(n_middle: int, width: int, heads: int, experts: int, top_k: int = 1, **kw):
    n = n_middle + 2
    cfg = ModelConfig(
        vocab_size=encoding.vocab_size(n),
        max_len=encoding.max_length(n),
        width=width,
        heads=heads,
        experts=experts,
        top_k=top_k,
        pair_blocks=encoding.pair_blocks(n),
        **kw,
    )
    return Transformer(cfg, torch.Generator().manual_seed(width * 31 + experts))


def _all_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    subsets = np.array(list(itertools.product([False, True], repeat=n)))
    return np.repeat(subsets, len(subsets), axis=0), np.tile(subsets, (len(subsets), 1))


@pytest.mark.parametrize(
    ("experts", "top_k", "norm", "activation", "heads"),
    [(1, 1, "none", "relu", 1), (4, 2, "layer", "gelu", 2), (16, 1, "rms", "relu", 4)],
)
def test_protocol_equals_the_forward_pass_on_every_instance(
    experts, top_k, norm, activation, heads
):
    """At 64 bits (no rounding) Alice's message + Bob's finish reproduce the real logits."""
    model = _model(4, 8, heads, experts, top_k, norm=norm, activation=activation)
    a, b = _all_pairs(4)
    protocol = mf.bob_logits(model, mf.alice_messages(model, a, 64), b)
    forward = mf.model_logits(model, a, b)
    np.testing.assert_allclose(protocol, forward, rtol=1e-9, atol=1e-12)


@given(st.sampled_from([4, 8, 12, 16, 32]), st.floats(-1e6, 1e6, allow_nan=False))
def test_rounding_gives_a_p_bit_float(bits, x):
    e, f = mf.float_format(bits)
    assert 1 + e + f == bits
    y = float(mf.round_to_bits(np.array([x]), bits)[0])
    assert mf.round_to_bits(np.array([y]), bits)[0] == y  # idempotent: y is representable
    if bits == 16 and abs(x) < 60_000:
        assert y == float(np.float16(x)) or abs(y - x) <= abs(float(np.float16(x)) - x)


def test_half_and_single_rounding_match_ieee():
    x = np.random.default_rng(0).normal(size=1000) * 100
    np.testing.assert_array_equal(mf.round_to_bits(x, 16), x.astype(np.float16).astype(float))
    np.testing.assert_array_equal(mf.round_to_bits(x, 32), x.astype(np.float32).astype(float))


def test_message_length_is_h_times_m_plus_one_times_p():
    model = _model(6, 8, 2, 4, 2)
    message = mf.alice_messages(model, np.ones((1, 6), bool), 8)
    assert message.shape == (1, 2, 9)  # H numerators of m numbers and H denominators
    assert mf.message_bits(model, 8) == message[0].size * 8 == 2 * (8 + 1) * 8


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([1, 4, 16, 64]), st.integers(0, 2**16))
def test_narrow_models_have_a_fooling_pair_however_many_experts(experts, seed):
    """|V| = 16: n = 14 middle vertices against a 1·(2+1)·4 = 12-bit message."""
    n = 14
    cfg_model = _model(n, 2, 1, experts)
    torch.manual_seed(seed)  # only to perturb the weights below; the library uses none
    with torch.no_grad():
        for p in cfg_model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert mf.message_bits(cfg_model, 4) < n
    pair = mf.find_fooling_pair(cfg_model, n, 4)
    assert pair is not None
    assert not np.array_equal(pair.a, pair.a_prime)
    assert pair.truth[0] != pair.truth[1]  # different true answers ...
    msgs = mf.alice_messages(cfg_model, np.stack([pair.a, pair.a_prime]), 4)
    np.testing.assert_array_equal(msgs[0], msgs[1])  # ... one message ...
    answers = mf.protocol_answers(
        cfg_model, np.stack([pair.a, pair.a_prime]), np.stack([pair.b, pair.b]), 4
    )
    assert answers[0] == answers[1] == pair.answer  # ... one answer: wrong on one of them
    a, b = pair.wrong_instance()
    assert disjointness.intersects(a, b) != pair.answer


def test_no_fooling_pair_when_the_message_is_long_enough():
    """With 64-bit messages a random model tells all 2^n of Alice's sets apart."""
    assert mf.find_fooling_pair(_model(6, 8, 2, 1), 6, 64) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": 2}, "one-layer"),
        ({"pos_emb": "learned"}, "pos_emb"),
        ({"experts": 4, "capacity_factor": 1.0}, "dropless"),
    ],
)
def test_models_outside_the_argument_are_refused(kwargs, message):
    experts = kwargs.pop("experts", 1)
    model = _model(4, 8, 1, experts, **kwargs)
    with pytest.raises(InputError, match=message):
        mf.find_fooling_pair(model, 4, 4)
