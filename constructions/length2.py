"""A hand-built one-layer dense transformer that decides length-2 path on every graph.

For graphs on n vertices in the canonical encoding (:mod:`theory.encoding`), the model has
width m = 2n + 4, H = 2 heads of dimension n + 2, an n-unit ReLU MLP, no norm, no positions,
and a linear read-out at the last (query) position. It is a plain :class:`models.Transformer`.

Residual stream (coordinates)::

    D = [0, n)        edge u→v: one-hot of v        query: receives x, then min(x, y)
    Y = [n, 2n)       BOS: Y_0 = 1 (its "I am the sink" flag)    query: receives y
    A = [2n, 2n+2)    edge u→v: R(u)                query (s, t): R(s)
    B = [2n+2, 2n+4)  query (s, t): R(t)

with R(u) = (cos 2πu/n, sin 2πu/n) a point on the unit circle. Edge and query tokens are pairs,
so they are embedded factorized: edge u→v = rows[u] + cols[v] (R(u) in A, e_v in D) and query
(s, t) = R(s) in A + R(t) in B.

Attention at the query. Head 1 has query β·R(s) ⊕ c and keys R(u) ⊕ [BOS flag]; head 2 the
same with β·R(t). The score of key u is β·cos(θ_s − θ_u): exactly β when u = s and at most
β − g otherwise, where g = β(1 − cos 2π/n) is the *gap*; the BOS sink scores c = β − g/2; the
query attends to itself with β (head 1) or ≤ β − g (head 2). Values are the D block (the
edge's target v; zero for BOS and the query). So head 1 writes

    x_w ≈ 1/(deg s + 1)  for w ∈ N(s),      x_w ≤ (n−1)·e^{−g}  otherwise,

into D, and head 2 writes y_w ≈ 1/deg t for w ∈ N(t), ≤ (n−1)·e^{−g/2} otherwise, into Y
(with deg s = 0 or deg t = 0 the mass goes to the query itself or to BOS, whose values are 0).

MLP and read-out. Hidden unit w computes ReLU(x_w − y_w) and subtracts it from D_w, leaving
D_w = min(x_w, y_w). The read-out is logit₁ − logit₀ = Σ_w D_w − τ with τ = 1/(2(n+1)).

Why it is exact. If some w ∈ N(s) ∩ N(t), then Σ_w min(x_w, y_w) ≥ 1/(n + δ) > τ, where
δ = e^{−g/2} + n²e^{−g} < 1. If none, every w misses N(s) or N(t), so
Σ_w min(x_w, y_w) ≤ n(n−1)·e^{−g/2}, which is < τ as soon as g > 2 ln(2n(n−1)(n+1)), i.e.

    β ≥ β*(n) = 2 ln(2n(n−1)(n+1)) / (1 − cos(2π/n)),

the default sharpness (:func:`provable_sharpness`). This holds in exact arithmetic; how much
precision it needs is measured by ``parrots verify length2 --precision``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from models.transformer import ModelConfig, Transformer
from theory import encoding
from theory.errors import InputError
from theory.generators import all_graphs, sample
from theory.problems import Instances, concat_instances


def construction_width(n: int) -> int:
    """Width of the construction for n vertices: two n-blocks and two circles."""
    return 2 * n + 4


CONSTRUCTION_HEADS = 2


def provable_sharpness(n: int) -> float:
    """β*(n) = 2 ln(2n(n−1)(n+1)) / (1 − cos(2π/n)): any β ≥ β* is exact (module docstring)."""
    return 2.0 * math.log(2.0 * n * (n - 1) * (n + 1)) / (1.0 - math.cos(2.0 * math.pi / n))


def default_threshold(n: int) -> float:
    """τ = 1/(2(n+1)): half the smallest Σ_w min(x_w, y_w) of a positive instance."""
    return 1.0 / (2.0 * (n + 1))


@dataclass(frozen=True)
class ConstructionRecord:
    """What a construction uses: its shape and its parameters, for plots against bounds."""

    vertices: int
    width: int
    heads: int
    mlp_hidden: int
    layers: int
    total_params: int
    active_params: int
    sharpness: float
    threshold: float


def _circle(v: torch.Tensor, n: int) -> torch.Tensor:
    angle = 2.0 * math.pi * torch.as_tensor(v, dtype=torch.float64) / n
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def build_length2(
    n: int, sharpness: float | None = None, threshold: float | None = None
) -> tuple[Transformer, ConstructionRecord]:
    """The one-layer solver for n-vertex graphs, in float64, and its record.

    ``sharpness`` is β (default :func:`provable_sharpness`); ``threshold`` is τ (default
    :func:`default_threshold`). The model classifies: class 1 = "there is a length-2 path".
    """
    if not isinstance(n, int) or n < 3:
        raise InputError(f"the construction needs n >= 3 vertices, got {n!r}")
    beta = provable_sharpness(n) if sharpness is None else float(sharpness)
    tau = default_threshold(n) if threshold is None else float(threshold)
    if not beta > 0 or not tau > 0:
        raise InputError(f"sharpness and threshold must be positive, got {beta}, {tau}")
    m, d_head = construction_width(n), n + 2
    cfg = ModelConfig(
        vocab_size=encoding.vocab_size(n),
        max_len=encoding.max_length(n),
        width=m,
        heads=CONSTRUCTION_HEADS,
        layers=1,
        mlp_hidden=n,
        norm="none",
        activation="relu",
        bias=True,
        pos_emb="none",
        head="classify",
        num_classes=2,
        pair_blocks=encoding.pair_blocks(n),
        pad_token=encoding.PAD,
    )
    model = Transformer(cfg).to(torch.float64)
    D, Y, A, B = slice(0, n), slice(n, 2 * n), slice(2 * n, 2 * n + 2), slice(2 * n + 2, 2 * n + 4)
    gap = beta * (1.0 - math.cos(2.0 * math.pi / n))
    sink = beta - gap / 2.0
    scale = math.sqrt(d_head)  # cancels the attention's 1/sqrt(d_head)
    vertices = torch.arange(n)
    eye2, eye_n = torch.eye(2, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
    w = {name: torch.zeros_like(t) for name, t in model.state_dict().items()}
    # Plain ids in increasing order: PAD, BOS, EOS, the n vertex tokens. Only BOS is set.
    w["embed.token.weight"][encoding.BOS, n] = 1.0  # Y_0: the sink flag
    w["embed.rows.0.weight"][:, A] = _circle(vertices, n)  # edge u→v: source u on the circle
    w["embed.cols.0.weight"][vertices, vertices] = 1.0  # target v, one-hot in D
    w["embed.rows.1.weight"][:, A] = _circle(vertices, n)  # query (s, t): s
    w["embed.cols.1.weight"][:, B] = _circle(vertices, n)  # t
    attn = "blocks.0.attn."
    for head, source, target in ((0, A, D), (1, B, Y)):
        o = head * d_head
        w[attn + "q_proj.weight"][o : o + 2, source] = scale * beta * eye2
        w[attn + "q_proj.bias"][o + 2] = scale * sink
        w[attn + "k_proj.weight"][o : o + 2, A] = eye2
        w[attn + "k_proj.weight"][o + 2, n] = 1.0  # the BOS flag
        w[attn + "v_proj.weight"][o : o + n, D] = eye_n
        w[attn + "o_proj.weight"][target, o : o + n] = eye_n
    w["blocks.0.mlp.fc1.weight"][:, D] = eye_n  # unit w: ReLU(x_w − y_w) ...
    w["blocks.0.mlp.fc1.weight"][:, Y] = -eye_n
    w["blocks.0.mlp.fc2.weight"][D, :] = -eye_n  # ... subtracted from D_w: min(x_w, y_w)
    w["head.weight"][1, D] = 1.0  # logit_1 − logit_0 = Σ_w min(x_w, y_w) − τ
    w["head.bias"][1] = -tau
    model.load_state_dict(w)
    record = ConstructionRecord(
        vertices=n,
        width=m,
        heads=CONSTRUCTION_HEADS,
        mlp_hidden=n,
        layers=1,
        total_params=model.total_params(),
        active_params=model.active_params(),
        sharpness=beta,
        threshold=tau,
    )
    return model, record


@torch.no_grad()
def predict(
    model: Transformer, instances: Instances, tokens_per_batch: int = 1 << 19
) -> np.ndarray:
    """The model's yes/no answers (class 1 > class 0) through its real forward pass.

    Instances are batched longest first by edge count, so a batch pads to similar lengths
    and holds about ``tokens_per_batch`` tokens.
    """
    order = np.argsort(-instances.graphs.num_edges(), kind="stable")
    out = np.zeros(len(instances), dtype=bool)
    start = 0
    while start < len(order):
        longest = 2 + 2 * int(instances.graphs[order[start : start + 1]].num_edges()[0])
        size = max(1, tokens_per_batch // max(longest, 1))
        idx = order[start : start + size]
        part = instances[idx]
        logits = model(torch.from_numpy(encoding.encode(part)))
        out[idx] = (logits[:, 1] > logits[:, 0]).numpy()
        start += size
    return out


def all_instances(n: int, graphs_per_chunk: int = 2048):
    """Every (graph, ordered query) on n vertices, in chunks of ``graphs_per_chunk`` graphs."""
    graphs = all_graphs(n)
    s, t = np.nonzero(~np.eye(n, dtype=bool))
    for start in range(0, len(graphs), graphs_per_chunk):
        chunk = graphs[slice(start, start + graphs_per_chunk)]
        which = np.repeat(np.arange(len(chunk)), len(s))
        yield Instances("length2", chunk[which], np.tile(s, len(chunk)), np.tile(t, len(chunk)))


def exhaustive_errors(model: Transformer, n: int) -> tuple[int, int, Instances | None]:
    """Run the model on every graph and query on n vertices: (checked, errors, first wrong)."""
    checked, errors, first = 0, 0, None
    for inst in all_instances(n):
        wrong = np.flatnonzero(predict(model, inst) != inst.answer)
        checked += len(inst)
        errors += len(wrong)
        if first is None and len(wrong):
            first = inst[wrong[:1]]
    return checked, errors, first


def precision_errors(
    n: int, dtype: torch.dtype, instances: Instances, sharpness_scale: float = 1.0
) -> int:
    """Errors of the construction for n vertices run in ``dtype``, at β = scale · β*(n)."""
    model, _ = build_length2(n, sharpness=sharpness_scale * provable_sharpness(n))
    return int((predict(model.to(dtype), instances) != instances.answer).sum())


def precision_sample(n: int, count: int, rng: np.random.Generator) -> Instances:
    """The study's sample: balanced instances plus star, complete and G(n, p) graphs (the
    extremes of degree), so both high- and low-degree neighbourhoods are exercised."""
    parts = [sample("length2", "balanced", rng, n, count)]
    parts.append(sample("length2", "star", rng, n, max(1, count // 20)))
    parts.append(sample("length2", "complete", rng, n, max(1, count // 100)))
    parts.append(sample("length2", "er", rng, n, max(1, count // 50), edge_prob=0.5))
    return concat_instances(parts)
