"""Every quantitative statement of the toolkit, as a sympy expression and a numeric function.

Notation (used throughout, on the canonical encoding of :mod:`theory.encoding`):

===========  ==============================================================================
``|V|``      vertices of the graph; the disjointness family has n = |V| − 2 middle vertices
``N``        sequence length; for the family N = 2 + 2(|a| + |b|) (BOS, edges, query)
``m``        width of the residual stream (``ModelConfig.width``)
``H``        attention heads; each head has dimension m/H (heads are slices of m)
``p``        precision: every number the model computes (each partial softmax sum included)
             is one of 2^p values, so it can be written down in p bits
``L``        layers; ``d`` the MLP hidden size (of the dense MLP, or of *each* expert)
``K, k``     experts and top-k; K = 1 is the dense model
``r``        MLP ratio d/m (the explorer's slider; 4 by default, as in ``ModelConfig``)
===========  ==============================================================================

The statements, in order:

1. :func:`lower_bound_width` — one-layer lower bound for length-2 path, any MoE.
2. :func:`dense_construction_width` / :data:`DENSE_CONSTRUCTION_HEADS` — the dense upper bound.
3. :func:`param_counts` — total and active parameters of ``models.Transformer``.
4. :func:`matched_moe_width` — the MoE width with the same total parameters as a dense model.
5. :func:`expert_threshold` — K*, the first K whose matched MoE is below the bound of 1.
6. :func:`memorization_min_params`, :func:`memorizer_params` — counting bound, MoE memorizer.

:func:`symbolic` returns all of them as sympy expressions; the tests check that every numeric
function equals its expression. ``theory`` never imports torch: the parameter counts are pure
functions of the config's fields, checked against the torch modules in
``tests/models/test_param_counts.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sympy as sp

from theory import encoding
from theory.errors import InputError

# -- symbols -------------------------------------------------------------------------------

V, n, m, H, p, N = sp.symbols("V n m H p N", positive=True)
L, d, K, k, r = sp.symbols("L d K k r", positive=True)
m_d, m_lb = sp.symbols("m_d m_lb", positive=True)
b, n_norm, R, C, tied, rho = sp.symbols("b n_norm R C tied rho", nonnegative=True)
P, Y, T = sp.symbols("P Y T", positive=True)


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InputError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    return float(value)


# == 1. The one-layer lower bound ==========================================================


def message_bits(width: int, heads: int, bits: int) -> int:
    """Bits Alice sends to simulate one attention layer of *this* model: (m + H)·p.

    Per head h Alice sends her partial softmax numerator Σ_{j∈A} e^{s_hj} v_hj, a vector of
    the head's dimension m/H, and her partial denominator Σ_{j∈A} e^{s_hj}, one number:
    m/H + 1 numbers per head, H·(m/H + 1) = m + H numbers, (m + H)·p bits in all.
    """
    width, heads, bits = (
        _positive_int(a, v) for a, v in (("width", width), ("heads", heads), ("bits", bits))
    )
    if width % heads:
        raise InputError(f"width {width} is not divisible by heads {heads}")
    return (width + heads) * bits


def message_bits_issue_form(width: int, heads: int, bits: int) -> int:
    """H·(m + 1)·p: the message when every head's value has the full dimension m (Sanford,
    Hsu & Telgarsky's heads). It is ≥ (m + H)·p, with equality iff H = 1, so it is a valid but
    looser upper bound on what Alice sends in this model (see :func:`lower_bound_width`)."""
    width, heads, bits = (
        _positive_int(a, v) for a, v in (("width", width), ("heads", heads), ("bits", bits))
    )
    return heads * (width + 1) * bits


def _middle(n_vertices: int) -> int:
    n_vertices = _positive_int("vertices", n_vertices, 3)
    return n_vertices - 2


def lower_bound_width_real(n_vertices: int, heads: int, bits: int) -> float:
    """The real-valued bound m ≥ n/p − H, n = |V| − 2 (see :func:`lower_bound_width`)."""
    heads, bits = _positive_int("heads", heads), _positive_int("bits", bits)
    return _middle(n_vertices) / bits - heads


def lower_bound_width(n_vertices: int, heads: int, bits: int) -> int:
    """The smallest width of this model that the length-2 path lower bound allows.

    **Theorem.** Let M be a one-layer model of ``models.Transformer``'s kind (pre-norm
    attention with H heads of dimension m/H, then *any* token-wise map: a dense MLP, or an MoE
    with any K, any expert sizes, any top-k and any router; then a norm and a read-out at the
    query position), with no positional embeddings, in which every number is p-bit, in
    particular every partial sum of a softmax numerator or denominator. If M answers length-2
    path correctly (s = 0, t = 1) on every graph of the disjointness family with n = |V| − 2
    middle vertices, encoded canonically, then

        (m + H)·p ≥ n,   i.e.   m ≥ n/p − H.

    Since H·(m + 1)·p ≥ (m + H)·p, the issue's form H·(m + 1)·p ≥ n follows, i.e.
    m ≥ n/(H p) − 1 (:func:`lower_bound_width_issue_form`); for H > 1 it is weaker.

    **Proof sketch.**

    *The split.* Alice holds a ⊆ [n], Bob b ⊆ [n]. The sequence is BOS, the edge tokens, the
    query Q(0, 1) (:func:`theory.communication.split`): the tokens s→v_i, v_i→s for i ∈ a
    depend on a alone and are Alice's; t→v_i, v_i→t for i ∈ b, BOS and the query depend on b
    alone (the query on nothing) and are Bob's. PAD keys are masked, so padding plays no role.
    No positions, so each token's contribution to attention depends on its id alone, not on
    where the sort put it.

    *The protocol.* The answer is read at the query position. Its attention query
    q_h = W_q norm1(x_Q) is the same for every instance, so Alice knows it. For each head h
    she computes, on her tokens A, the numerator Σ_{j∈A} e^{⟨q_h, k_hj⟩/√(m/H)} v_hj ∈ R^{m/H}
    and the denominator Σ_{j∈A} e^{⟨q_h, k_hj⟩/√(m/H)} ∈ R, and sends them: m + H numbers of
    p bits (:func:`message_bits`). Bob adds his own partial sums (over B, which includes the
    query token itself, so the softmax is over A ∪ B exactly as the model computes it),
    divides, and has every head's output at the query position; he applies o_proj and adds
    the residual x_Q, which he knows. **Here the MoE layer enters — it does not:** the MLP
    sublayer is applied to each token separately, so at the query position it is a function of
    that one vector, which Bob now holds in full. He evaluates norm2, the router, the top-k
    experts (however many and however large) and their weighted sum, then norm_f and the
    read-out, and outputs M's answer. Positions other than the query never matter: in one
    layer, the output is read only at the query, and their MLP outputs feed nothing.

    *The fooling set.* If two sets a ≠ a' gave the same message, take i in one but not the
    other, say i ∈ a \\ a', and let Bob hold b = [n] \\ a'. Then a ∩ b ∋ i (a path) but
    a' ∩ b = ∅ (none), yet Bob sees the same (message, b) in both cases, so M errs on one.
    Hence the 2^n sets a get 2^n distinct messages (the fooling set {(a, [n] \\ a)} of
    :func:`theory.communication.fooling_set`), and a message of (m + H)·p bits takes at most
    2^{(m+H)p} values: (m + H)·p ≥ n. ∎

    The bound is exact (no hidden constants) given the precision assumption; it is only
    meaningful when n/p > H. It returns the smallest width this model can have (a multiple
    of H, at least H) with (m + H)·p ≥ n: so it equals H whenever the bound is vacuous.
    """
    heads, bits = _positive_int("heads", heads), _positive_int("bits", bits)
    n_mid = _middle(n_vertices)
    need = max(1, -(-n_mid // bits) - heads)  # smallest integer m with (m + H) p >= n
    return heads * (-(-need // heads))


def lower_bound_width_issue_form(n_vertices: int, heads: int, bits: int) -> int:
    """Smallest integer m ≥ 1 with H·(m + 1)·p ≥ n (the issue's form; looser for H > 1)."""
    heads, bits = _positive_int("heads", heads), _positive_int("bits", bits)
    n_mid = _middle(n_vertices)
    return max(1, -(-n_mid // (heads * bits)) - 1)


# == 2. The dense upper bound ==============================================================

DENSE_CONSTRUCTION_HEADS = 2


def dense_construction_width(n_vertices: int) -> int:
    """Width of the one-layer dense solver for length-2 path on |V| vertices: 2|V| + 4.

    The construction is ``constructions/length2.py`` (a test there asserts it equals this
    function): :data:`DENSE_CONSTRUCTION_HEADS` = 2 heads of dimension |V| + 2, a ReLU MLP of
    |V| units, no norm, no positions. Its residual stream is two |V|-blocks (the gathered
    neighbourhoods N(s) and N(t), one-hot) and two 2-dimensional circles carrying the
    vertices a head matches on, R(u) = (cos 2πu/|V|, sin 2πu/|V|); its docstring proves it
    exact for sharpness β ≥ 2 ln(2|V|(|V|−1)(|V|+1)) / (1 − cos 2π/|V|).
    """
    return 2 * _positive_int("vertices", n_vertices, 3) + 4


def dense_construction_mlp_hidden(n_vertices: int) -> int:
    """MLP hidden size of the construction: |V| units ReLU(x_w − y_w)."""
    return _positive_int("vertices", n_vertices, 3)


# == 3. Parameter counts ===================================================================

_NORM_VECTORS = {"none": (0, 0), "rms": (1, 1), "layer": (1, 2)}  # (without, with bias)


@dataclass(frozen=True)
class Arch:
    """The config fields that fix a parameter count (``ModelConfig``'s, by the same names)."""

    vocab_size: int
    max_len: int
    width: int
    heads: int = 1
    layers: int = 1
    mlp_hidden: int | None = None
    experts: int = 1
    top_k: int = 1
    norm: str = "layer"
    bias: bool = True
    pos_emb: str = "none"
    tie_embeddings: bool = False
    head: str = "classify"
    num_classes: int | None = 2
    pair_blocks: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Arch:
        """From a ``ModelConfig.to_dict()`` or any mapping; fields that do not change the
        count (activation, causal, dispatch, …) are ignored."""
        known = set(cls.__dataclass_fields__)
        kwargs = {key: value for key, value in config.items() if key in known}
        kwargs["pair_blocks"] = tuple(
            tuple(int(x) for x in blk) for blk in kwargs.get("pair_blocks", ())
        )
        return cls(**kwargs)


def param_counts(config: Arch | Mapping[str, Any]) -> dict[str, int]:
    """Total and active parameters of ``models.Transformer(config)``, in closed form.

    With b = 1 if biases, n_norm the vectors of size m per norm (0 none, 1 rms or bias-free
    layer norm, 2 layer norm with bias), R embedding rows (the ids outside every pair block
    plus rows_i + cols_i for each block, plus max_len for learned positions), C classes
    (``num_classes``, or the vocabulary for next-token prediction), ρ = [K > 1]::

        expert  = 2 m d + b (d + m)                                    (one expert, or the MLP)
        block   = 4 m² + 4 b m  +  K · expert  +  ρ K m  +  2 n_norm m  (attention, MLP, router)
        total   = m R + L · block + n_norm m + (1 − tied)(C m + b C)
        active  = total − L (K − k) · expert

    H does not appear: the heads are slices of the same four m×m projections. "Active" is
    the model's own definition (``Transformer.active_params``): everything but the K − k
    experts a token is not routed to, so the router and the whole embedding table count.
    """
    a = config if isinstance(config, Arch) else Arch.from_mapping(config)
    width, dff = a.width, a.mlp_hidden if a.mlp_hidden is not None else 4 * a.width
    bias = 1 if a.bias else 0
    if a.norm not in _NORM_VECTORS:
        raise InputError(f"norm must be one of {tuple(_NORM_VECTORS)}, got {a.norm!r}")
    norm_vectors = _NORM_VECTORS[a.norm][bias]
    in_blocks = sum(rows * cols for _, rows, cols in a.pair_blocks)
    rows_emb = a.vocab_size - in_blocks + sum(rows + cols for _, rows, cols in a.pair_blocks)
    if a.pos_emb == "learned":
        rows_emb += a.max_len
    classes = a.num_classes if a.head == "classify" else a.vocab_size
    if classes is None:
        raise InputError("head='classify' needs num_classes")
    expert = 2 * width * dff + bias * (dff + width)
    router = a.experts * width if a.experts > 1 else 0
    block = 4 * width * width + 4 * bias * width + a.experts * expert + router
    block += 2 * norm_vectors * width
    head = 0 if a.tie_embeddings else classes * width + bias * classes
    total = width * rows_emb + a.layers * block + norm_vectors * width + head
    active = total - a.layers * (a.experts - a.top_k) * expert
    return {"total": total, "active": active}


def graph_arch(
    n_vertices: int,
    width: int,
    *,
    heads: int = 1,
    experts: int = 1,
    mlp_ratio: float = 4.0,
    layers: int = 1,
    top_k: int = 1,
    factorized: bool = True,
    norm: str = "layer",
    bias: bool = True,
) -> Arch:
    """The length-2 path classifier on the canonical encoding (what ``parrots train`` builds):
    vocabulary ``encoding.vocab_size``, ``max_len = encoding.max_length``, 2 classes,
    factorized pair embeddings unless ``factorized=False``, d = max(1, round(r·m))."""
    n_vertices = _positive_int("vertices", n_vertices, 3)
    width = _positive_int("width", width)
    return Arch(
        vocab_size=encoding.vocab_size(n_vertices),
        max_len=encoding.max_length(n_vertices),
        width=width,
        heads=heads,
        layers=layers,
        mlp_hidden=mlp_hidden(width, mlp_ratio),
        experts=experts,
        top_k=top_k,
        norm=norm,
        bias=bias,
        num_classes=2,
        pair_blocks=encoding.pair_blocks(n_vertices) if factorized else (),
    )


def mlp_hidden(width: int, mlp_ratio: float) -> int:
    """d = max(1, round(r·m)): the MLP (or expert) hidden size at MLP ratio r."""
    return max(1, round(_positive_float("mlp_ratio", mlp_ratio) * width))


# == 4. Parameter matching =================================================================


@dataclass(frozen=True)
class Matching:
    """A K-expert MoE with the same total parameters as the dense model of width m_d.

    ``width_real``: the real root m of total_K(m) = total_1(m_d), with d = r·m exactly.
    ``width``: the largest width of the model (a multiple of H; 0 if none fits) whose total
    does not exceed the dense total, with d = max(1, round(r·m)) as built.
    ``width_approx``: the paper's m_d/√K. ``gap`` = width_approx − width_real.
    """

    experts: int
    dense_width: int
    dense_total: int
    width_real: float
    width: int
    width_approx: float
    gap: float
    total: int
    active: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quadratic(arch: Arch, mlp_ratio: float) -> tuple[float, float, float]:
    """(α, β, γ) with total(m) = α m² + β m + γ when d = r m exactly (see param_counts)."""
    a, bias = arch, 1 if arch.bias else 0
    norm_vectors = _NORM_VECTORS[a.norm][bias]
    in_blocks = sum(rows * cols for _, rows, cols in a.pair_blocks)
    rows_emb = a.vocab_size - in_blocks + sum(rows + cols for _, rows, cols in a.pair_blocks)
    rows_emb += a.max_len if a.pos_emb == "learned" else 0
    classes = a.num_classes if a.head == "classify" else a.vocab_size
    assert classes is not None
    router = 1 if a.experts > 1 else 0
    alpha = a.layers * (4 + 2 * a.experts * mlp_ratio)
    beta = (
        rows_emb
        + norm_vectors
        + a.layers
        * (4 * bias + a.experts * bias * (mlp_ratio + 1) + router * a.experts + 2 * norm_vectors)
    )
    tied_out = 0 if a.tie_embeddings else 1
    beta += tied_out * classes
    gamma = float(tied_out * bias * classes)
    return alpha, beta, gamma


def matched_moe_width(
    n_vertices: int,
    dense_width: int,
    experts: int,
    *,
    heads: int = 1,
    mlp_ratio: float = 4.0,
    layers: int = 1,
    top_k: int = 1,
    factorized: bool = True,
) -> Matching:
    """The MoE width at which K experts cost exactly the dense model's total parameters.

    Both models are :func:`graph_arch` classifiers with the same |V|, H, L, r and norms; the
    dense one has width m_d and K = 1, the MoE K experts of hidden size r·m each. With d = r m
    the total is a quadratic α_K m² + β_K m + γ (:func:`_quadratic`), α_K = L(4 + 2 K r), so
    the matched width is the positive root of α_K m² + β_K m + γ = T, T = total_1(m_d)::

        m_s = (−β_K + sqrt(β_K² + 4 α_K (T − γ))) / (2 α_K).

    Ignoring β (embeddings, biases, router, norms) and the K-independent attention 4m²
    gives the paper's m_d/√K only when attention is free; with it, m_s → m_d·sqrt((4 + 2r)
    / (4 + 2Kr)) ≈ 1.22·m_d/√K at r = 4 and large K. The linear terms pull m_s the other way.
    """
    experts = _positive_int("experts", experts)
    if top_k > experts:
        raise InputError(f"top_k={top_k} exceeds experts={experts}")
    dense = graph_arch(
        n_vertices,
        dense_width,
        heads=heads,
        mlp_ratio=mlp_ratio,
        layers=layers,
        factorized=factorized,
    )
    target = param_counts(dense)["total"]
    moe = graph_arch(
        n_vertices,
        heads,
        heads=heads,
        experts=experts,
        mlp_ratio=mlp_ratio,
        layers=layers,
        top_k=top_k,
        factorized=factorized,
    )
    alpha, beta, gamma = _quadratic(moe, mlp_ratio)
    width_real = (-beta + math.sqrt(beta * beta + 4 * alpha * (target - gamma))) / (2 * alpha)

    def total(width: int) -> dict[str, int]:
        arch = graph_arch(
            n_vertices,
            width,
            heads=heads,
            experts=experts,
            mlp_ratio=mlp_ratio,
            layers=layers,
            top_k=top_k,
            factorized=factorized,
        )
        return param_counts(arch)

    width = heads * max(0, int(width_real) // heads)
    while width >= heads and total(width)["total"] > target:
        width -= heads
    while total(width + heads)["total"] <= target:
        width += heads
    counts = total(width) if width else {"total": 0, "active": 0}
    approx = dense_width / math.sqrt(experts)
    return Matching(
        experts,
        dense_width,
        target,
        width_real,
        width,
        approx,
        approx - width_real,
        counts["total"],
        counts["active"],
    )


# == 5. The expert threshold ===============================================================


def expert_threshold(
    n_vertices: int,
    heads: int,
    bits: int,
    *,
    mlp_ratio: float = 4.0,
    layers: int = 1,
    dense_width: int | None = None,
    factorized: bool = True,
) -> int | None:
    """K*: the smallest K whose parameter-matched MoE is narrower than the lower bound allows.

    The dense reference is the construction's width m_d = 2|V| + 4 (or ``dense_width``) at
    MLP ratio r; the MoE's matched width is :func:`matched_moe_width` ``.width``, and the bound
    is m_lb = :func:`lower_bound_width`. The total at a fixed width is affine in K for K ≥ 2,
    total_K(m) = A(m) + K·B(m) (B = one expert + one router row, per layer), and increasing in
    m, so the matched width drops below m_lb exactly when total_K(m_lb) > T::

        K* = max(2, ⌊(T − A(m_lb)) / B(m_lb)⌋ + 1)       (K* = 1 if total_1(m_lb) > T)

    None when the bound is vacuous for this model (m_lb = H, the narrowest width it has):
    then no matched MoE is ever *below the bound*, however many experts it has.
    Ignoring everything but K·m² gives K*_approx = ⌊(m_d/m_lb)²⌋ + 1
    (:func:`expert_threshold_approx`).
    """
    m_lb = lower_bound_width(n_vertices, heads, bits)
    if m_lb <= heads:
        return None
    m_d = dense_construction_width(n_vertices) if dense_width is None else dense_width
    kw: dict[str, Any] = {
        "heads": heads,
        "mlp_ratio": mlp_ratio,
        "layers": layers,
        "factorized": factorized,
    }
    target = param_counts(graph_arch(n_vertices, m_d, **kw))["total"]
    if param_counts(graph_arch(n_vertices, m_lb, **kw))["total"] > target:
        return 1
    two = param_counts(graph_arch(n_vertices, m_lb, experts=2, **kw))["total"]
    three = param_counts(graph_arch(n_vertices, m_lb, experts=3, **kw))["total"]
    per_expert = three - two
    base = two - 2 * per_expert
    return max(2, (target - base) // per_expert + 1)


def expert_threshold_approx(n_vertices: int, heads: int, bits: int) -> int | None:
    """⌊(m_d/m_lb)²⌋ + 1: the K* of m_s = m_d/√K (paper's approximation); None if vacuous."""
    m_lb = lower_bound_width(n_vertices, heads, bits)
    if m_lb <= heads:
        return None
    return dense_construction_width(n_vertices) ** 2 // m_lb**2 + 1


# == 6. Memorization =======================================================================


def memorization_min_params(n_facts: int, n_values: int, bits: int) -> int:
    """Counting bound: any model with P parameters of p bits storing N facts over Y has
    P·p ≥ N·log2|Y|; this returns the smallest such P, ⌈N log2|Y| / p⌉.

    **Statement.** Fix N distinct keys. A model is a map θ ↦ f_θ from parameter vectors to
    functions; each of the P parameters takes one of 2^p values, so at most 2^{P p} functions
    exist. If for *every* assignment y ∈ Y^N of values to keys some θ has f_θ(key_i) = y_i
    for all i, the |Y|^N assignments need distinct θ: 2^{P p} ≥ |Y|^N, i.e. P·p ≥ N log2|Y|.
    For *random* independent uniform values stored with probability ≥ δ, the same count gives
    P·p ≥ N log2|Y| − log2(1/δ). Only total parameters enter: how many a token uses does not.
    """
    n_facts = _positive_int("facts", n_facts)
    n_values = _positive_int("values", n_values, 2)
    bits = _positive_int("bits", bits)
    need = sp.ceiling(sp.Integer(n_facts) * sp.log(n_values, 2) / bits)
    return int(need)


def memorizer_arch(
    n_facts: int,
    experts: int,
    *,
    n_first: int,
    n_last: int,
    value_bits: int,
    width: int,
    hidden: int | None = None,
) -> Arch:
    """The architecture of ``constructions.memorizer.build_moe_memorizer``: one layer, one
    head, no norm, biases; a name is one token of an F × L pair block (plus PAD); K experts of
    ``hidden`` ReLU units, top-1; a 2^v-way read-out. ``hidden`` defaults to ⌈N/K⌉, the
    perfectly balanced split (the construction deals first names greedily and reports the
    hidden size it reached)."""
    n_facts, experts = _positive_int("facts", n_facts), _positive_int("experts", experts)
    hidden = -(-n_facts // experts) if hidden is None else _positive_int("hidden", hidden)
    return Arch(
        vocab_size=1 + _positive_int("n_first", n_first) * _positive_int("n_last", n_last),
        max_len=1,
        width=_positive_int("width", width),
        mlp_hidden=hidden,
        experts=experts,
        top_k=1,
        norm="none",
        bias=True,
        num_classes=2 ** _positive_int("value_bits", value_bits),
        pair_blocks=((1, n_first, n_last),),
    )


def memorizer_params(
    n_facts: int,
    experts: int,
    *,
    n_first: int,
    n_last: int,
    value_bits: int,
    width: int,
    hidden: int | None = None,
) -> dict[str, int]:
    """Total and active parameters of the MoE memorizer, as functions of N, K and m.

    The construction (``constructions/memorizer.py``) stores each fact in one hidden unit of
    one expert: 2m + 1 parameters. With h = ⌈N/K⌉ units per expert and
    expert = 2 m h + h + m, :func:`param_counts` of :func:`memorizer_arch` gives::

        total  = m (1 + F + L) + 4m² + 4m + K · expert + [K > 1] K m + 2^v (m + 1)
        active = total − (K − 1) · expert

    so total ≈ 2mN stays put as K grows while active ≈ 2mN/K + (the K-independent rest) falls
    K-fold until the embedding, attention and read-out dominate. The counting bound
    (:func:`memorization_min_params`) constrains only the total.
    """
    arch = memorizer_arch(
        n_facts,
        experts,
        n_first=n_first,
        n_last=n_last,
        value_bits=value_bits,
        width=width,
        hidden=hidden,
    )
    counts = param_counts(arch)
    assert arch.mlp_hidden is not None
    counts["hidden"] = arch.mlp_hidden
    counts["expert"] = 2 * width * arch.mlp_hidden + arch.mlp_hidden + width
    return counts


# == tables ================================================================================


def bounds_report(
    n_vertices: int,
    heads: int,
    bits: int,
    experts: Sequence[int],
    *,
    mlp_ratio: float = 4.0,
    layers: int = 1,
    factorized: bool = True,
) -> dict[str, Any]:
    """Everything ``parrots bounds`` prints: the bound, the construction, one row per K."""
    m_lb = lower_bound_width(n_vertices, heads, bits)
    m_d = dense_construction_width(n_vertices)
    rows = []
    for count in experts:
        match = matched_moe_width(
            n_vertices,
            m_d,
            count,
            heads=heads,
            mlp_ratio=mlp_ratio,
            layers=layers,
            factorized=factorized,
        )
        row = match.to_dict()
        row["below_lower_bound"] = match.width < m_lb
        rows.append(row)
    return {
        "vertices": n_vertices,
        "middle_vertices": n_vertices - 2,
        "heads": heads,
        "bits": bits,
        "mlp_ratio": mlp_ratio,
        "layers": layers,
        "lower_bound_width": m_lb,
        "lower_bound_width_real": lower_bound_width_real(n_vertices, heads, bits),
        "lower_bound_width_issue_form": lower_bound_width_issue_form(n_vertices, heads, bits),
        "construction_width": m_d,
        "construction_heads": DENSE_CONSTRUCTION_HEADS,
        "ratio": m_d / m_lb,
        "expert_threshold": expert_threshold(
            n_vertices, heads, bits, mlp_ratio=mlp_ratio, layers=layers, factorized=factorized
        ),
        "expert_threshold_approx": expert_threshold_approx(n_vertices, heads, bits),
        "rows": rows,
    }


# == the symbolic statements ===============================================================


def symbolic() -> dict[str, sp.Expr | sp.Rel]:
    """Every statement above as a sympy expression (symbols: this module's V, n, m, H, …)."""
    expert = 2 * m * d + b * (d + m)
    block = 4 * m**2 + 4 * b * m + K * expert + rho * K * m + 2 * n_norm * m
    total = m * R + L * block + n_norm * m + (1 - tied) * (C * m + b * C)
    quad_alpha = L * (4 + 2 * K * r)
    quad_beta = R + n_norm + L * (4 * b + K * b * (r + 1) + rho * K + 2 * n_norm) + (1 - tied) * C
    quad_gamma = (1 - tied) * b * C
    return {
        "message_bits": (m + H) * p,
        "message_bits_issue_form": H * (m + 1) * p,
        "lower_bound": sp.Ge((m + H) * p, V - 2),
        "lower_bound_issue_form": sp.Ge(H * (m + 1) * p, V - 2),
        "width_lower_bound": (V - 2) / p - H,
        "width_lower_bound_issue_form": (V - 2) / (H * p) - 1,
        "fooling_set_size": 2 ** (V - 2),
        "construction_width": 2 * V + 4,
        "construction_heads": sp.Integer(DENSE_CONSTRUCTION_HEADS),
        "expert_params": expert,
        "total_params": total,
        "active_params": total - L * (K - k) * expert,
        "total_params_quadratic": quad_alpha * m**2 + quad_beta * m + quad_gamma,
        "matched_width": (-quad_beta + sp.sqrt(quad_beta**2 + 4 * quad_alpha * (T - quad_gamma)))
        / (2 * quad_alpha),
        "matched_width_approx": m_d / sp.sqrt(K),
        "expert_threshold_approx": sp.floor((m_d / m_lb) ** 2) + 1,
        "memorization": sp.Ge(P * p, N * sp.log(Y, 2)),
    }
