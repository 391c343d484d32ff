"""The phone-book memorizer: exact recall, and parameters that scale as the theory says."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constructions.memorizer import PhoneBook, build_moe_memorizer, phone_book, recall
from tests.strategies import seeds
from theory.errors import InputError


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 600), st.sampled_from([1, 2, 4, 16, 64]), st.integers(1, 10), seeds)
def test_recall_is_exact(n_facts, experts, value_bits, seed):
    book = phone_book(np.random.default_rng(seed), n_facts, value_bits)
    model, record = build_moe_memorizer(book, experts)
    assert recall(model, book) == 1.0
    assert record.total_params == model.total_params()
    assert record.active_params == model.active_params()


@pytest.mark.slow
def test_ten_thousand_facts_every_expert_count():
    book = phone_book(np.random.default_rng(0), 10_000)
    for k in (1, 4, 16, 64):
        model, _ = build_moe_memorizer(book, k)
        assert recall(model, book) == 1.0


def test_active_parameters_fall_while_total_stays():
    book = phone_book(np.random.default_rng(1), 4096)
    records = {k: build_moe_memorizer(book, k)[1] for k in (1, 4, 16, 64)}
    totals = [r.total_params for r in records.values()]
    assert max(totals) / min(totals) < 1.05
    # The expert part of the active count falls K-fold (up to rounding of N/K).
    for k, r in records.items():
        assert r.expert_hidden <= 1.1 * 4096 / k + 17
    assert records[64].active_params < records[1].active_params / 8


def test_wrong_number_is_detected():
    """Recall is measured, not assumed: corrupt one stored number and it drops below 1."""
    book = phone_book(np.random.default_rng(2), 100)
    model, _ = build_moe_memorizer(book, 4)
    values = book.values.copy()
    values[7] = (values[7] + 1) % 2**book.value_bits
    other = PhoneBook(book.keys, values, book.n_first, book.n_last, book.value_bits)
    assert recall(model, other) == pytest.approx(0.99)


@pytest.mark.parametrize(
    ("keys", "values", "message"),
    [
        ([[0, 0], [0, 0]], [1, 2], "distinct"),
        ([[5, 0]], [1], "outside"),
        ([[0, 0]], [300], "numbers"),
    ],
)
def test_bad_books_are_rejected(keys, values, message):
    with pytest.raises(InputError, match=message):
        PhoneBook(np.array(keys), np.array(values), 4, 4, 8)


def test_experts_must_be_a_power_of_two():
    with pytest.raises(InputError, match="power of two"):
        build_moe_memorizer(phone_book(np.random.default_rng(0), 10), 3)


def test_parameter_counts_equal_the_theory_closed_form():
    from theory import bounds

    book = phone_book(np.random.default_rng(3), 1500, value_bits=6)
    for k in (1, 4, 16):
        _, record = build_moe_memorizer(book, k)
        counts = bounds.memorizer_params(
            1500,
            k,
            n_first=book.n_first,
            n_last=book.n_last,
            value_bits=6,
            width=record.width,
            hidden=record.expert_hidden,
        )
        assert (counts["total"], counts["active"]) == (record.total_params, record.active_params)
