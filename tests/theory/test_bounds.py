"""theory.bounds: each numeric function equals its sympy statement and its definition."""

from __future__ import annotations

import math

import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

from theory import bounds as B
from theory.errors import InputError

vertices = st.integers(3, 3000)
heads = st.integers(1, 8)
bits = st.integers(1, 64)
SYM = B.symbolic()


@given(vertices, heads, bits)
@example(64, 2, 16)
def test_lower_bound_width_is_the_smallest_allowed_width(nv, h, p):
    m = B.lower_bound_width(nv, h, p)
    n = nv - 2
    assert m % h == 0 and m >= h
    if m > h:  # not vacuous: m meets (m + H) p >= n and m - H does not
        assert (m + h) * p >= n and (m - h + h) * p < n
    else:
        assert (h + h) * p >= n
    real = float(SYM["width_lower_bound"].subs({B.V: nv, B.p: p, B.H: h}))
    assert real == pytest.approx(B.lower_bound_width_real(nv, h, p))
    assert m >= real


@given(vertices, heads, bits)
def test_issue_form_is_implied_by_the_exact_bound_and_looser(nv, h, p):
    exact, issue = B.lower_bound_width(nv, h, p), B.lower_bound_width_issue_form(nv, h, p)
    assert h * (issue + 1) * p >= nv - 2 and (issue == 1 or h * issue * p < nv - 2)
    assert issue <= exact


@given(st.integers(1, 50), heads, bits)
def test_message_bits_are_m_plus_h_numbers_and_at_most_the_issue_form(q, h, p):
    m = q * h
    exact, issue = B.message_bits(m, h, p), B.message_bits_issue_form(m, h, p)
    assert exact == (m + h) * p == SYM["message_bits"].subs({B.m: m, B.H: h, B.p: p})
    assert issue == SYM["message_bits_issue_form"].subs({B.m: m, B.H: h, B.p: p})
    assert exact <= issue and (exact == issue) == (h == 1)


def test_lower_bound_by_hand():
    # |V| = 1024: n = 1022, p = 16: (m + 1) 16 >= 1022 -> m >= 62.875 -> 63
    assert B.lower_bound_width(1024, 1, 16) == 63
    # H = 4: (m + 4) 16 >= 1022 -> m >= 59.875 -> 60 (a multiple of 4); issue form 15
    assert B.lower_bound_width(1024, 4, 16) == 60
    assert B.lower_bound_width_issue_form(1024, 4, 16) == 15
    assert B.lower_bound_width(64, 2, 16) == 2  # vacuous: any width of the model meets it
    assert B.dense_construction_width(64) == 132 == SYM["construction_width"].subs(B.V, 64)


@given(vertices)
def test_construction_beats_the_bound_for_every_precision(nv):
    for p in (1, 8, 32):
        assert B.dense_construction_width(nv) >= B.lower_bound_width(nv, 2, p)


@given(
    st.integers(1, 40),
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(1, 5),
    st.booleans(),
    st.sampled_from(("none", "layer", "rms")),
    st.booleans(),
)
def test_param_counts_equal_the_sympy_closed_form(m, layers, ratio, experts, bias, norm, tie):
    nv = 7
    arch = B.graph_arch(
        nv, m, experts=experts, mlp_ratio=ratio, layers=layers, norm=norm, bias=bias
    )
    if tie:  # the next-token head with tied embeddings: no read-out parameters
        arch = B.Arch(
            **{**arch.__dict__, "head": "next_token", "num_classes": None, "tie_embeddings": True}
        )
    counts = B.param_counts(arch)
    bb = int(bias)
    norms = {"none": 0, "rms": 1, "layer": 1 + bb}[norm]
    rows = B.encoding.vocab_size(nv) - 2 * nv * nv + 4 * nv
    subs = {
        B.m: m,
        B.d: ratio * m,
        B.K: experts,
        B.k: 1,
        B.L: layers,
        B.b: bb,
        B.n_norm: norms,
        B.R: rows,
        B.C: 2,
        B.tied: int(tie),
        B.rho: int(experts > 1),
        B.r: ratio,
    }
    assert SYM["total_params"].subs(subs) == counts["total"]
    assert SYM["active_params"].subs(subs) == counts["active"]
    assert SYM["total_params_quadratic"].subs(subs) == counts["total"]


@given(
    st.integers(3, 300),
    st.integers(1, 4),
    st.integers(1, 200),
    st.sampled_from((1.0, 2.0, 4.0, 2.5)),
)
@example(64, 2, 16, 4.0)
def test_matched_width_is_the_largest_width_within_the_dense_budget(nv, h, experts, ratio):
    m_d = h * math.ceil(B.dense_construction_width(nv) / h)
    match = B.matched_moe_width(nv, m_d, experts, heads=h, mlp_ratio=ratio)

    def total(w):
        arch = B.graph_arch(nv, w, heads=h, experts=experts, mlp_ratio=ratio)
        return B.param_counts(arch)["total"]

    assert match.width % h == 0
    assert match.width == 0 or total(match.width) <= match.dense_total
    assert total(match.width + h) > match.dense_total
    # the real root solves the quadratic exactly; the built width is within a step of it
    alpha, beta, gamma = B._quadratic(B.graph_arch(nv, h, heads=h, experts=experts), ratio)
    root = match.width_real
    assert alpha * root**2 + beta * root + gamma == pytest.approx(match.dense_total)
    assert abs(match.width - root) <= h + 1
    assert match.width_approx == pytest.approx(m_d / math.sqrt(experts))
    assert match.gap == pytest.approx(match.width_approx - root)
    sym = SYM["matched_width"].subs(
        {
            B.L: 1,
            B.K: experts,
            B.r: ratio,
            B.b: 1,
            B.n_norm: 2,
            B.rho: int(experts > 1),
            B.R: B.encoding.vocab_size(nv) - 2 * nv * nv + 4 * nv,
            B.C: 2,
            B.tied: 0,
            B.T: match.dense_total,
        }
    )
    assert float(sym) == pytest.approx(root)
    if experts == 1:
        assert match.width == m_d


@given(st.integers(3, 400), st.integers(1, 3))
def test_matched_width_falls_as_experts_grow(nv, h):
    m_d = h * math.ceil(B.dense_construction_width(nv) / h)
    widths = [B.matched_moe_width(nv, m_d, e, heads=h).width for e in (1, 2, 4, 16, 64, 256)]
    assert widths == sorted(widths, reverse=True)


@given(st.integers(3, 2000), st.integers(1, 4), st.sampled_from((2, 4, 8, 16, 32)))
@example(1024, 1, 16)
@example(256, 4, 8)
def test_expert_threshold_is_the_first_k_below_the_lower_bound(nv, h, p):
    k_star = B.expert_threshold(nv, h, p)
    m_lb = B.lower_bound_width(nv, h, p)
    m_d = B.dense_construction_width(nv)
    if k_star is None:
        assert m_lb == h
        return
    if k_star > 1e7:  # the search would still be right; keep the test fast
        return

    def width(e):
        return B.matched_moe_width(nv, m_d, e, heads=h).width

    assert width(k_star) < m_lb
    assert k_star == 1 or width(k_star - 1) >= m_lb
    approx = B.expert_threshold_approx(nv, h, p)
    assert approx == int(SYM["expert_threshold_approx"].subs({B.m_d: m_d, B.m_lb: m_lb}))


def test_expert_threshold_by_hand():
    # |V| = 1024, H = 1, p = 16: m_lb = 63, m_d = 2052; the matched MoE at K* is the first
    # narrower than 63, and the m_d/sqrt(K) estimate (2052/63)^2 = 1060.9 -> 1061 is lower.
    assert B.expert_threshold(1024, 1, 16) == 1891
    assert B.expert_threshold_approx(1024, 1, 16) == 1061


@given(st.integers(1, 10**6), st.integers(2, 10**4), st.integers(1, 64))
def test_memorization_bound_is_the_smallest_p_meeting_the_count(n_facts, values, p):
    need = B.memorization_min_params(n_facts, values, p)
    log_y = math.log2(values)
    assert need * p >= n_facts * log_y - 1e-6
    assert (need - 1) * p < n_facts * log_y + 1e-6
    stmt = SYM["memorization"].subs({B.P: need, B.p: p, B.N: n_facts, B.Y: values})
    assert bool(sp.simplify(stmt))


def test_memorization_by_hand():
    assert B.memorization_min_params(1000, 1024, 16) == 625  # 1000 * 10 / 16
    counts = B.memorizer_params(1000, 10, n_first=63, n_last=32, value_bits=8, width=19)
    expert = 2 * 19 * 100 + 100 + 19
    rest = 19 * (1 + 63 + 32) + 4 * 19 * 19 + 4 * 19 + 10 * 19 + 256 * 20
    assert counts == {
        "total": rest + 10 * expert,
        "active": rest + expert,
        "expert": expert,
        "hidden": 100,
    }


@given(st.integers(1, 5000), st.integers(1, 64), st.integers(8, 64), st.integers(1, 12))
def test_memorizer_stores_n_facts_within_the_counting_bound(n_facts, experts, width, bits):
    counts = B.memorizer_params(
        n_facts, experts, n_first=n_facts, n_last=1, value_bits=bits, width=width
    )
    assert counts["hidden"] * experts >= n_facts  # one hidden unit per fact
    for p in (8, 16, 32):  # a construction that stores N facts cannot beat the count
        assert counts["total"] >= B.memorization_min_params(n_facts, 2**bits, p)
    assert counts["active"] <= counts["total"]
    assert (counts["active"] < counts["total"]) == (experts > 1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: B.lower_bound_width(2, 1, 8), "vertices"),
        (lambda: B.lower_bound_width(10, 0, 8), "heads"),
        (lambda: B.message_bits(6, 4, 8), "divisible"),
        (lambda: B.mlp_hidden(8, -1.0), "mlp_ratio"),
        (lambda: B.matched_moe_width(10, 24, 0), "experts"),
        (lambda: B.memorization_min_params(10, 1, 8), "values"),
    ],
)
def test_bad_arguments_raise_input_error_naming_the_value(call, match):
    with pytest.raises(InputError, match=match):
        call()
