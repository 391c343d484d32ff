"""The reduction from set disjointness to length-2 path, executable.

Three views of one instance, with bijections between them:

    (a, b) ⊆ [n] × [n]   ⟷   graph of :mod:`theory.disjointness` (|V| = n + 2, query (0, 1))
                         ⟷   canonical token sequence (:mod:`theory.encoding`)

:func:`to_tokens` / :func:`from_tokens` go between sets and tokens (through the graphs,
:func:`to_instances` / :func:`from_instances`). :func:`owners` splits a token sequence between
the two players:

* **Alice** holds the edge tokens s→v_i and v_i→s for i ∈ a (both directions of {s, v_i});
* **Bob** holds t→v_i and v_i→t for i ∈ b, **BOS** and the **query** Q(s, t) (the query is
  the same for every instance, so both know it; BOS goes to Bob so that Alice's part is
  exactly her edges and the sink is on the side that finishes the computation);
* **nobody** holds PAD: PAD keys are masked out of attention, so they carry nothing.

The sequence has N = 2 + 2(|a| + |b|) real tokens (:func:`sequence_length`); Alice's part is
a function of a alone and Bob's of b alone (:func:`alice_tokens`, :func:`bob_tokens`), which is
what the lower bound (:func:`theory.bounds.lower_bound_width`) needs.

The protocol itself, for one attention layer, is :func:`alice_message` (H partial numerators
of dimension m/H and H partial denominators: m + H numbers, :func:`message_bits` at p bits
each) and :func:`bob_attention` (finishes the softmax exactly). Running it on a real
``models.Transformer`` belongs to the constructions layer; here it runs on plain arrays.

:func:`fooling_set` is the 2^n pairs (a, [n] \\ a); :func:`collision_witness` is the step of
the proof that turns two sets with equal messages into an input on which Bob must err.
"""

from __future__ import annotations

import numpy as np

from theory import disjointness, encoding
from theory.bounds import message_bits, message_bits_issue_form
from theory.disjointness import FIRST_MIDDLE, S, T
from theory.encoding import BOS, PAD
from theory.errors import InputError
from theory.problems import Instances

__all__ = [
    "ALICE",
    "BOB",
    "NOBODY",
    "alice_message",
    "alice_tokens",
    "attention",
    "bob_attention",
    "bob_tokens",
    "collision_witness",
    "fooling_set",
    "from_instances",
    "from_tokens",
    "message_bits",
    "message_bits_issue_form",
    "owners",
    "sequence_length",
    "split",
    "to_instances",
    "to_tokens",
]

ALICE, BOB, NOBODY = 0, 1, -1
MAX_FOOLING_N = 20


# -- sets <-> graphs <-> tokens ------------------------------------------------------------


def to_instances(a: np.ndarray, b: np.ndarray) -> Instances:
    """Length-2 path instances (graph + query (s, t) = (0, 1)) for set pairs (a[k], b[k])."""
    return disjointness.to_instances(a, b)


def from_instances(instances: Instances) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_instances`; InputError if a graph or query is not the family's."""
    bad = np.flatnonzero((np.asarray(instances.s) != S) | (np.asarray(instances.t) != T))
    if bad.size:
        row = int(bad[0])
        raise InputError(
            f"instance {row}: the disjointness family asks (s, t) = ({S}, {T}), got "
            f"({int(instances.s[row])}, {int(instances.t[row])})"
        )
    return disjointness.from_graphs(instances.graphs)


def to_tokens(a: np.ndarray, b: np.ndarray, length: int | None = None) -> np.ndarray:
    """Canonical token ids (B, length) of the family's instances for (a[k], b[k])."""
    return encoding.encode(to_instances(a, b), length)


def from_tokens(tokens: np.ndarray, n_middle: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_tokens`: the sets (a, b) of each row of canonical tokens."""
    n_vertices = disjointness.num_vertices(n_middle)
    return from_instances(encoding.decode(tokens, n_vertices))


def sequence_length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N = 2 + 2(|a| + |b|): BOS, both directions of every edge, the query."""
    a, b = np.atleast_2d(np.asarray(a, bool)), np.atleast_2d(np.asarray(b, bool))
    return 2 + 2 * (a.sum(axis=1) + b.sum(axis=1))


# -- the Alice / Bob split -----------------------------------------------------------------


def owners(tokens: np.ndarray, n_middle: int) -> np.ndarray:
    """Who holds each token: ALICE, BOB or NOBODY (PAD), same shape as ``tokens``.

    Raises InputError on a token that no instance of the family contains (an edge between
    middle vertices, an edge s–t, a vertex token, EOS, or a query other than Q(0, 1)).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    n = disjointness.num_vertices(n_middle)
    (edge0, _, _), _ = encoding.pair_blocks(n)
    out = np.full(tokens.shape, NOBODY, dtype=np.int8)
    is_edge = (tokens >= edge0) & (tokens < edge0 + n * n)
    u, v = np.divmod(np.where(is_edge, tokens - edge0, 0), n)

    def touches(end: int) -> np.ndarray:
        """Edge tokens end→v_i or v_i→end for a middle vertex v_i."""
        return is_edge & (((u == end) & (v >= FIRST_MIDDLE)) | ((v == end) & (u >= FIRST_MIDDLE)))

    alice, bob_edge = touches(S), touches(T)
    bob = bob_edge | (tokens == BOS) | (tokens == encoding.query_token(S, T, n))
    out[alice] = ALICE
    out[bob] = BOB
    unknown = (out == NOBODY) & (tokens != PAD)
    if unknown.any():
        where = tuple(int(i) for i in np.argwhere(unknown)[0])
        raise InputError(f"token {int(tokens[where])} at {where} is not in the disjointness family")
    return out


def alice_tokens(a: np.ndarray) -> np.ndarray:
    """Alice's tokens for her set a (one row): edges s→v_i and v_i→s for i ∈ a, sorted."""
    idx = np.flatnonzero(np.asarray(a, bool))
    n = disjointness.num_vertices(np.asarray(a).shape[-1])
    mid = FIRST_MIDDLE + idx
    toks = np.concatenate([encoding.edge_token(S, mid, n), encoding.edge_token(mid, S, n)])
    return np.sort(np.asarray(toks, dtype=np.int64))


def bob_tokens(b: np.ndarray) -> np.ndarray:
    """Bob's tokens for his set b (one row): BOS, t→v_i and v_i→t for i ∈ b, Q(s, t); sorted."""
    idx = np.flatnonzero(np.asarray(b, bool))
    n = disjointness.num_vertices(np.asarray(b).shape[-1])
    mid = FIRST_MIDDLE + idx
    toks = np.concatenate(
        [
            [BOS, encoding.query_token(S, T, n)],
            encoding.edge_token(T, mid, n),
            encoding.edge_token(mid, T, n),
        ]
    )
    return np.sort(np.asarray(toks, dtype=np.int64))


def split(tokens: np.ndarray, n_middle: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row, (Alice's tokens, Bob's tokens) in sequence order; PAD is dropped."""
    tokens = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
    who = owners(tokens, n_middle)
    return [(row[w == ALICE], row[w == BOB]) for row, w in zip(tokens, who, strict=True)]


# -- the fooling set -----------------------------------------------------------------------


def fooling_set(n_middle: int) -> tuple[np.ndarray, np.ndarray]:
    """All 2^n pairs (a, [n] \\ a), as boolean arrays (2^n, n); a runs over {0,1}^n in order.

    Every pair is disjoint (no length-2 path), and for a ≠ a' one of the crossed pairs
    (a, [n] \\ a'), (a', [n] \\ a) intersects: so no two pairs can share a message.
    """
    if not 1 <= n_middle <= MAX_FOOLING_N:
        raise InputError(f"fooling set needs 1 <= n <= {MAX_FOOLING_N}, got {n_middle}")
    codes = np.arange(2**n_middle, dtype=np.int64)[:, None]
    a = (codes >> np.arange(n_middle)) & 1 == 1
    return a, ~a


def collision_witness(a: np.ndarray, a_prime: np.ndarray) -> np.ndarray:
    """Bob's set b on which a and a' (a ≠ a') have different answers: b = [n] \\ a' if some
    i ∈ a \\ a', else [n] \\ a. If Alice's message is the same for a and a', Bob answers
    (message, b) the same way for both, so he is wrong on one of them."""
    a, a_prime = np.asarray(a, bool), np.asarray(a_prime, bool)
    if a.shape != a_prime.shape or a.ndim != 1:
        raise InputError(f"need two sets of one shape (n,), got {a.shape} and {a_prime.shape}")
    if np.array_equal(a, a_prime):
        raise InputError("equal sets have no witness: they must get the same answer")
    return ~a_prime if np.any(a & ~a_prime) else ~a


# -- the protocol for one attention layer --------------------------------------------------


def _heads(query: np.ndarray, keys: np.ndarray, values: np.ndarray, heads: int):
    query, keys, values = (np.asarray(x, dtype=np.float64) for x in (query, keys, values))
    width = query.shape[-1]
    if heads < 1 or width % heads:
        raise InputError(f"width {width} is not divisible by heads {heads}")
    if keys.shape != values.shape or keys.ndim != 2 or keys.shape[1] != width:
        raise InputError(
            f"keys and values must be (count, {width}), got {keys.shape}, {values.shape}"
        )
    dh = width // heads
    q = query.reshape(heads, dh)
    kh = keys.reshape(-1, heads, dh)
    vh = values.reshape(-1, heads, dh)
    weights = np.exp(np.einsum("hd,jhd->jh", q, kh) / np.sqrt(dh))  # (count, H)
    return weights, vh, dh


def alice_message(query: np.ndarray, keys: np.ndarray, values: np.ndarray, heads: int):
    """Alice's message: per head, Σ_{j∈A} w_hj v_hj (m/H numbers) and Σ_{j∈A} w_hj (one),
    w_hj = exp(⟨q_h, k_hj⟩/√(m/H)); shape (H, m/H + 1), m + H numbers in all.

    ``query`` (m,) is q = W_q norm1(x_Q) at the query position (known to both players);
    ``keys``/``values`` (|A|, m) are Alice's tokens' k_j and v_j, which she computes alone.
    """
    weights, vh, _ = _heads(query, keys, values, heads)
    numer = np.einsum("jh,jhd->hd", weights, vh)
    return np.concatenate([numer, weights.sum(axis=0)[:, None]], axis=1)


def bob_attention(
    message: np.ndarray, query: np.ndarray, keys: np.ndarray, values: np.ndarray, heads: int
) -> np.ndarray:
    """Bob's finish: add his partial sums to Alice's and divide; (m,) = :func:`attention`
    over A ∪ B, heads concatenated (the input of o_proj)."""
    mine = alice_message(query, keys, values, heads)
    both = np.asarray(message, dtype=np.float64) + mine
    return (both[:, :-1] / both[:, -1:]).reshape(-1)


def attention(query: np.ndarray, keys: np.ndarray, values: np.ndarray, heads: int) -> np.ndarray:
    """Reference: softmax attention of one query over all keys, heads concatenated, (m,)."""
    weights, vh, _ = _heads(query, keys, values, heads)
    probs = weights / weights.sum(axis=0, keepdims=True)
    return np.einsum("jh,jhd->hd", probs, vh).reshape(-1)
