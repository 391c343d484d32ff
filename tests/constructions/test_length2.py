"""The hand-built length-2 path solver, through the real torch forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from constructions.length2 import (
    CONSTRUCTION_HEADS,
    build_length2,
    construction_width,
    exhaustive_errors,
    predict,
)
from models.transformer import Transformer
from tests.strategies import seeds
from theory import bounds
from theory.errors import InputError
from theory.generators import FAMILIES, sample


@pytest.mark.parametrize("n", [3, 4, 5])
def test_exact_on_every_graph_and_query(n):
    model, _ = build_length2(n)
    checked, errors, first = exhaustive_errors(model, n)
    assert checked == 2 ** (n * (n - 1) // 2) * n * (n - 1)
    assert errors == 0, first


@pytest.mark.slow
def test_exact_on_every_graph_and_query_n6():
    model, _ = build_length2(6)
    assert exhaustive_errors(model, 6)[:2] == (32_768 * 30, 0)


@settings(max_examples=30)
@given(st.integers(3, 40), st.sampled_from(FAMILIES), seeds)
def test_exact_on_every_family(n, family, seed):
    inst = sample("length2", family, np.random.default_rng(seed), n, 24)
    model, _ = build_length2(n)
    assert predict(model, inst).tolist() == inst.answer.tolist()


def test_too_little_sharpness_is_wrong_somewhere():
    """The sharpness is not decoration: at β = 1 the n = 5 solver errs on some input."""
    model, _ = build_length2(5, sharpness=1.0)
    assert exhaustive_errors(model, 5)[1] > 0


def test_record_matches_the_bounds_and_the_module():
    for n in (3, 8, 33):
        model, record = build_length2(n)
        assert record.width == construction_width(n) == bounds.dense_construction_width(n)
        assert record.heads == CONSTRUCTION_HEADS == bounds.DENSE_CONSTRUCTION_HEADS
        assert record.mlp_hidden == bounds.dense_construction_mlp_hidden(n)
        assert (
            record.total_params
            == model.total_params()
            == sum(p.numel() for p in model.parameters())
        )
        assert record.total_params == bounds.param_counts(model.cfg.to_dict())["total"]


def test_it_is_a_plain_transformer_that_round_trips_its_state():
    model, _ = build_length2(7)
    again = Transformer(model.cfg).to(torch.float64)
    again.load_state_dict(model.state_dict())
    inst = sample("length2", "balanced", np.random.default_rng(0), 7, 200)
    assert predict(again, inst).tolist() == inst.answer.tolist()


@pytest.mark.parametrize(
    "kwargs", [{"n": 2}, {"n": 5, "sharpness": 0.0}, {"n": 5, "threshold": -1}]
)
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(InputError):
        build_length2(**kwargs)
