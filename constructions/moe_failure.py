"""Why experts cannot help: the lower bound's protocol, run on a real one-layer model.

Take any one-layer :class:`models.Transformer` (dense or MoE, any K, any top-k, any norm)
without positional embeddings, and a disjointness instance (a, b) of
:mod:`theory.disjointness` in the canonical encoding. Alice holds her edge tokens
(s→v_i, v_i→s for i ∈ a); Bob holds his (t→v_i, v_i→t for i ∈ b), BOS and the query.

The only place the two parts meet is the attention at the query position (it is all the
classifier reads). With q_h the query of head h — a function of the query token alone, which
is the same for every instance — and k_hj, v_hj the key and value of token j (functions of the
token alone: no positions), head h outputs

    Σ_j e^{s_hj} W_o^h v_hj / Σ_j e^{s_hj},      s_hj = ⟨q_h, k_hj⟩/√(m/H) − c_h.

The sums split over Alice's and Bob's tokens, so **Alice's message** is, per head, her
partial numerator (m numbers, already through W_o) and denominator (one number), each rounded
to a p-bit float (:func:`round_to_bits`): H·(m + 1)·p bits (:func:`message_bits`). The shift
c_h, the largest score any vocabulary token can get, is public, so every e^{s} ≤ 1. **Bob**
adds his partial sums, divides, adds the residual and then applies *everything else* — the
MLP or the MoE (router, top-k, experts), the norms and the read-out — to a vector he holds in
full. The experts never see Alice's tokens: however many there are, the model's answer is a
function of an H(m+1)p-bit message and of b.

If H(m+1)p < n, two of Alice's 2^n sets a ≠ a' send the same message (pigeonhole), and with
b = :func:`theory.communication.collision_witness` (a, a') the instances (a, b), (a', b) have
different answers but get the same one from the p-bit model: :func:`find_fooling_pair`
returns that concrete input on which the model is wrong.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from models.transformer import Block, Transformer
from theory import communication, disjointness, encoding
from theory.errors import InputError

MAX_ENUMERATED_MIDDLE = 20  # 2^20 of Alice's sets at most


def float_format(bits: int) -> tuple[int, int]:
    """(exponent bits, mantissa bits) of the p-bit float used for messages: IEEE half,
    single and double for p = 16, 32, 64, and 1 + e + f = p with e = ⌈p/4⌉ (at most 11)
    otherwise (p = 4: e = 1, f = 2; p = 8: e = 2, f = 5)."""
    known = {16: (5, 10), 32: (8, 23), 64: (11, 52)}
    if bits in known:
        return known[bits]
    if not isinstance(bits, int) or bits < 3:
        raise InputError(f"a p-bit float needs p >= 3 bits, got {bits!r}")
    exponent = min(11, math.ceil(bits / 4))
    return exponent, bits - 1 - exponent


def round_to_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """Round to the nearest p-bit float (sign, e exponent bits, f mantissa bits, subnormals,
    saturating at the largest finite value). p = 64 is float64 itself (no rounding)."""
    x = np.asarray(x, dtype=np.float64)
    if bits == 64:
        return x.copy()
    e, f = float_format(bits)
    bias = 2 ** (e - 1) - 1
    min_exp = 1 - bias  # smallest normal exponent
    largest = (2.0 - 2.0**-f) * 2.0**bias
    mag = np.abs(x)
    exp = np.floor(np.log2(np.where(mag > 0, mag, 1.0)))
    exp = np.maximum(exp, min_exp)  # below it, the subnormal spacing 2^(min_exp - f)
    step = 2.0 ** (exp - f)
    rounded = np.minimum(np.round(mag / step) * step, largest)
    return np.sign(x) * rounded


def message_bits(model: Transformer, bits: int) -> int:
    """Length of Alice's message: H·(m + 1)·p."""
    return model.cfg.heads * (model.cfg.width + 1) * bits


@dataclass(frozen=True)
class _Parts:
    """Everything a player can compute from one token id alone, per head."""

    weights: np.ndarray  # (V, H): e^{s_hj}, shifted so the largest over the vocabulary is 1
    values: np.ndarray  # (V, H, m): W_o^h v_hj
    residual: np.ndarray  # (m,): the query token's embedding
    o_bias: np.ndarray  # (m,)


def _check_model(model: Transformer) -> None:
    cfg = model.cfg
    if cfg.layers != 1:
        raise InputError(f"the protocol is for one-layer models, got {cfg.layers} layers")
    if cfg.pos_emb != "none":
        raise InputError("the protocol needs pos_emb='none' (positions would leak b to Alice)")
    if cfg.head != "classify":
        raise InputError("the protocol reads a classifier's last position (head='classify')")
    if cfg.capacity_factor is not None:
        raise InputError(
            "the protocol needs a dropless MoE: with a capacity factor, whether the query "
            "token is dropped depends on how Alice's tokens were routed"
        )


def as_float64(model: Transformer) -> Transformer:
    """A float64 copy of the model (the players compute exactly; rounding is explicit)."""
    _check_model(model)
    return copy.deepcopy(model).to(torch.float64).eval()


@torch.no_grad()
def _parts(model: Transformer, n_middle: int) -> _Parts:
    """``model`` must be float64 (:func:`as_float64`)."""
    cfg, block = model.cfg, cast(Block, model.blocks[0])
    n = disjointness.num_vertices(n_middle)
    if cfg.vocab_size != encoding.vocab_size(n):
        raise InputError(
            f"model vocabulary {cfg.vocab_size} is not the encoding's {encoding.vocab_size(n)} "
            f"for |V| = {n}"
        )
    m, H = cfg.width, cfg.heads
    dh = m // H
    table = model.embed.table()  # (V, m)
    x = block.norm1(table)
    attn = block.attn
    q_all, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    query = encoding.query_token(disjointness.S, disjointness.T, n)
    q = q_all[query].view(H, dh)
    scores = torch.einsum("hd,jhd->jh", q, k.view(-1, H, dh)) / math.sqrt(dh)
    weights = torch.exp(scores - scores.max(dim=0).values)  # public shift c_h
    w_o = attn.o_proj.weight.view(m, H, dh)
    values = torch.einsum("mhd,jhd->jhm", w_o, v.view(-1, H, dh))
    o_bias = attn.o_proj.bias if attn.o_proj.bias is not None else torch.zeros(m)
    return _Parts(
        weights.numpy(), values.numpy(), table[query].numpy().copy(), o_bias.numpy().copy()
    )


def _messages(parts: _Parts, tokens: list[np.ndarray]) -> np.ndarray:
    """Per token list, the partial sums (H, m + 1): numerators then denominator."""
    out = []
    for ids in tokens:
        w = parts.weights[ids]  # (J, H)
        numer = np.einsum("jh,jhm->hm", w, parts.values[ids])
        out.append(np.concatenate([numer, w.sum(axis=0)[:, None]], axis=1))
    return np.stack(out) if out else np.zeros((0, *parts.values.shape[1:]))


def alice_messages(model: Transformer, a: np.ndarray, bits: int) -> np.ndarray:
    """Alice's rounded messages (B, H, m + 1) for her sets a (B, n)."""
    a = np.atleast_2d(np.asarray(a, bool))
    parts = _parts(as_float64(model), a.shape[1])
    return round_to_bits(_messages(parts, [communication.alice_tokens(row) for row in a]), bits)


@torch.no_grad()
def bob_logits(model: Transformer, message: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bob's finish for each (message[k], b[k]): the model's logits (B, C)."""
    b = np.atleast_2d(np.asarray(b, bool))
    model = as_float64(model)
    parts = _parts(model, b.shape[1])
    mine = _messages(parts, [communication.bob_tokens(row) for row in b])
    total = np.asarray(message, dtype=np.float64) + mine  # (B, H, m + 1)
    attended = (total[..., :-1] / total[..., -1:]).sum(axis=1) + parts.o_bias  # (B, m)
    h = torch.from_numpy(parts.residual + attended)
    block = cast(Block, model.blocks[0])
    y, _ = block.mlp(block.norm2(h))  # the MLP or the MoE: Bob applies it alone
    h = model.norm_f(h + y)
    assert model.head is not None
    return model.head(h).numpy()


def protocol_answers(model: Transformer, a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """The p-bit model's yes/no answers on (a[k], b[k]), computed by the two players."""
    logits = bob_logits(model, alice_messages(model, a, bits), b)
    return logits[:, 1] > logits[:, 0]


@torch.no_grad()
def model_logits(model: Transformer, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The real forward pass (float64) on the canonical encoding of (a[k], b[k])."""
    tokens = torch.from_numpy(communication.to_tokens(a, b))
    return as_float64(model)(tokens).numpy()


@dataclass(frozen=True)
class FoolingPair:
    """Two instances with different true answers that the p-bit model answers alike."""

    a: np.ndarray
    a_prime: np.ndarray
    b: np.ndarray
    answer: bool  # the p-bit model's answer on both
    truth: tuple[bool, bool]  # (a ∩ b ≠ ∅, a' ∩ b ≠ ∅)
    full_precision: tuple[bool, bool]  # the float64 forward pass on both

    def wrong_instance(self) -> tuple[np.ndarray, np.ndarray]:
        """The (a, b) on which the p-bit model is wrong."""
        return (self.a, self.b) if self.answer != self.truth[0] else (self.a_prime, self.b)

    def to_dict(self) -> dict[str, Any]:
        def edges(a: np.ndarray, b: np.ndarray) -> list[list[int]]:
            return [list(e) for e in disjointness.to_graphs(a[None], b[None]).edge_lists()[0]]

        return {
            "alice_a": np.flatnonzero(self.a).tolist(),
            "alice_a_prime": np.flatnonzero(self.a_prime).tolist(),
            "bob_b": np.flatnonzero(self.b).tolist(),
            "model_answer_p_bits": self.answer,
            "true_answers": list(self.truth),
            "model_answers_float64": list(self.full_precision),
            "graph_1_edges": edges(self.a, self.b),
            "graph_2_edges": edges(self.a_prime, self.b),
            "query": [disjointness.S, disjointness.T],
        }


def find_fooling_pair(model: Transformer, n_middle: int, bits: int) -> FoolingPair | None:
    """Enumerate Alice's 2^n sets, find two with equal p-bit messages, and return the
    instance pair on which the p-bit model must be wrong; None if all messages differ."""
    if not 1 <= n_middle <= MAX_ENUMERATED_MIDDLE:
        raise InputError(f"need 1 <= n <= {MAX_ENUMERATED_MIDDLE} middle vertices, got {n_middle}")
    parts = _parts(as_float64(model), n_middle)
    # A message is linear in a: the sum of the contributions of her two tokens per vertex i.
    per_vertex = _messages(
        parts,
        [communication.alice_tokens(np.eye(n_middle, dtype=bool)[i]) for i in range(n_middle)],
    )  # (n, H, m + 1)
    sets, _ = communication.fooling_set(n_middle)  # all 2^n subsets, as rows
    messages = round_to_bits(np.einsum("ai,ihm->ahm", sets.astype(np.float64), per_vertex), bits)
    flat = messages.reshape(len(sets), -1)
    _, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    groups = np.flatnonzero(counts > 1)
    if groups.size == 0:
        return None
    members = np.flatnonzero(inverse.reshape(-1) == groups[0])
    a, a_prime = sets[members[0]], sets[members[1]]
    b = communication.collision_witness(a, a_prime)
    message = messages[members[0]]
    logits = bob_logits(model, np.stack([message, message]), np.stack([b, b]))
    answers = logits[:, 1] > logits[:, 0]
    assert answers[0] == answers[1]  # one message, one b: one answer
    full = model_logits(model, np.stack([a, a_prime]), np.stack([b, b]))
    truth = disjointness.intersects(np.stack([a, a_prime]), np.stack([b, b]))
    return FoolingPair(
        a,
        a_prime,
        b,
        bool(answers[0]),
        (bool(truth[0]), bool(truth[1])),
        (bool(full[0, 1] > full[0, 0]), bool(full[1, 1] > full[1, 0])),
    )
