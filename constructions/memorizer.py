"""A hand-built one-layer MoE that memorizes a closed-book phone book exactly.

Facts are (first name f, last name l) → number y ∈ [0, 2^v). A name is one token of a pair
block (id = 1 + f·L + l; PAD = 0), embedded factorized as rows[f] + cols[l]; the model reads
the number off its classifier at that (last and only) position. No book is in context: the
facts live in the weights.

Residual stream (width m = a + b + v)::

    [0, a)        ±1 code of the first name: its first log2 K bits are the expert it goes to
    [a, a+b)      ±1 code of the last name (binary of l)
    [a+b, m)      the number, as ±1 bits, written by the expert

So a name is a ±1 vector c ∈ {−1, +1}^{a+b}, distinct for distinct names, and ⟨c, c'⟩ ≤
a + b − 2 for c ≠ c'. The attention is zero (one token: nothing to attend to).

Router: logit_e = γ Σ_{i < log2 K} σ_e(i) c_i with σ_e(i) = ±1 the bits of e, so the top-1
expert is the one whose number is the first-name code's prefix (the margin is 2γ). First
names are dealt to experts greedily, largest first, to balance the facts per expert.

Expert e has one hidden unit per fact (f, l, y) routed to it:

    ReLU(⟨c_{f,l}, x⟩ − (a + b − 1)) = 1 if x = c_{f,l}, else 0,

whose output column writes the ±1 bits of y; unused units have bias −1 and stay at 0. The
read-out row of number y' is its ±1 bits, so logit_{y'} = p·⟨bits(y'), bits(y)⟩ with p > 0
the router's softmax weight: largest exactly at y' = y. Each expert stores ~N/K facts in
2m + 1 parameters each, so total parameters stay ~2mN while the active ones (one expert)
fall ~K-fold. K = 1 is the dense counterpart (a dense MLP with N units).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from models.transformer import ModelConfig, Transformer
from theory import bounds
from theory.errors import InputError

PAD = 0
FIRST_NAME_TOKEN = 1


@dataclass(frozen=True)
class PhoneBook:
    """N facts: keys (N, 2) = (first, last) name ids, distinct; values (N,) in [0, 2^v)."""

    keys: np.ndarray
    values: np.ndarray
    n_first: int
    n_last: int
    value_bits: int

    def __post_init__(self) -> None:
        keys, values = np.asarray(self.keys), np.asarray(self.values)
        if keys.ndim != 2 or keys.shape[1] != 2 or values.shape != (len(keys),):
            raise InputError(f"need keys (N, 2) and values (N,), got {keys.shape}, {values.shape}")
        if len(keys) == 0:
            raise InputError("a phone book needs at least one fact")
        if keys.min() < 0 or keys[:, 0].max() >= self.n_first or keys[:, 1].max() >= self.n_last:
            raise InputError("a name id is outside [0, n_first) x [0, n_last)")
        if len({(int(f), int(g)) for f, g in keys}) != len(keys):
            raise InputError("names must be distinct: a closed-book fact has one answer")
        if values.min() < 0 or values.max() >= 2**self.value_bits:
            raise InputError(f"numbers must lie in [0, 2^{self.value_bits})")

    def tokens(self) -> np.ndarray:
        """The query sequences (N, 1): each name as one token."""
        return (FIRST_NAME_TOKEN + self.keys[:, 0] * self.n_last + self.keys[:, 1])[:, None]


def phone_book(rng: np.random.Generator, n_facts: int, value_bits: int = 8) -> PhoneBook:
    """N distinct random names from ~N/16 first × 32 last names, each with a random number.

    Sixteen facts per first name on average: few enough first names that their embedding
    table stays small, enough that dealing them to experts balances the facts per expert.
    """
    if n_facts < 1:
        raise InputError(f"need at least one fact, got {n_facts}")
    n_last = 32
    n_first = max(2, math.ceil(n_facts / 16))
    flat = rng.choice(n_first * n_last, size=n_facts, replace=False)
    keys = np.stack(np.divmod(flat, n_last), axis=1)
    values = rng.integers(0, 2**value_bits, size=n_facts)
    return PhoneBook(keys, values, n_first, n_last, value_bits)


def _pm_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """±1 binary codes (len(x), bits), least significant bit first."""
    x = np.asarray(x, dtype=np.int64)
    return np.where((x[:, None] >> np.arange(bits)) & 1, 1.0, -1.0)


@dataclass(frozen=True)
class MemorizerRecord:
    facts: int
    experts: int
    width: int
    expert_hidden: int
    total_params: int
    active_params: int
    bits_stored: int

    @property
    def bits_per_total_param(self) -> float:
        return self.bits_stored / self.total_params

    @property
    def bits_per_active_param(self) -> float:
        return self.bits_stored / self.active_params


def _deal_first_names(book: PhoneBook, experts: int) -> np.ndarray:
    """Expert of each first name: largest first, each to the least-loaded expert."""
    counts = np.bincount(book.keys[:, 0], minlength=book.n_first)
    load = np.zeros(experts, dtype=np.int64)
    owner = np.zeros(book.n_first, dtype=np.int64)
    for f in np.argsort(-counts, kind="stable"):
        e = int(np.argmin(load))
        owner[f], load[e] = e, load[e] + counts[f]
    return owner


def build_moe_memorizer(
    book: PhoneBook, experts: int = 1, router_scale: float = 4.0
) -> tuple[Transformer, MemorizerRecord]:
    """The memorizer for ``book`` with K = ``experts`` (a power of two; 1 = dense)."""
    K = experts
    if K < 1 or K & (K - 1):
        raise InputError(f"experts must be a power of two, got {K}")
    route_bits = K.bit_length() - 1
    owner = _deal_first_names(book, K)
    # First-name code: route_bits of expert id, then the name's index among its expert's names.
    index = np.zeros(book.n_first, dtype=np.int64)
    for e in range(K):
        mine = np.flatnonzero(owner == e)
        index[mine] = np.arange(len(mine))
    suffix_bits = max(1, int(index.max()).bit_length())
    a = route_bits + suffix_bits
    b = max(1, (book.n_last - 1).bit_length())
    v = book.value_bits
    m = a + b + v
    first_code = _pm_bits(owner | (index << route_bits), a)  # (F, a)
    last_code = _pm_bits(np.arange(book.n_last), b)  # (L, b)
    facts_of = [np.flatnonzero(owner[book.keys[:, 0]] == e) for e in range(K)]
    hidden = max(len(f) for f in facts_of)
    arch = bounds.memorizer_arch(  # the one description of this architecture
        len(book.keys),
        K,
        n_first=book.n_first,
        n_last=book.n_last,
        value_bits=v,
        width=m,
        hidden=hidden,
    )
    cfg = ModelConfig(**asdict(arch), activation="relu", pad_token=PAD)
    assert cfg.pair_blocks == ((FIRST_NAME_TOKEN, book.n_first, book.n_last),)
    model = Transformer(cfg).to(torch.float64)
    w = {name: torch.zeros_like(t) for name, t in model.state_dict().items()}
    w["embed.rows.0.weight"][:, :a] = torch.from_numpy(first_code)
    w["embed.cols.0.weight"][:, a : a + b] = torch.from_numpy(last_code)
    keys = np.concatenate([first_code[book.keys[:, 0]], last_code[book.keys[:, 1]]], axis=1)
    numbers = _pm_bits(book.values, v)
    fc1 = torch.zeros(K, hidden, m, dtype=torch.float64)
    b1 = torch.full((K, hidden), -1.0, dtype=torch.float64)  # unused units stay at 0
    fc2 = torch.zeros(K, m, hidden, dtype=torch.float64)
    for e, facts in enumerate(facts_of):
        j = np.arange(len(facts))
        fc1[e, j, : a + b] = torch.from_numpy(keys[facts])
        b1[e, j] = -(a + b - 1.0)
        fc2[e, a + b :, j] = torch.from_numpy(numbers[facts]).T
    if K == 1:
        w["blocks.0.mlp.fc1.weight"], w["blocks.0.mlp.fc1.bias"] = fc1[0], b1[0]
        w["blocks.0.mlp.fc2.weight"] = fc2[0]
    else:
        w["blocks.0.mlp.w1"], w["blocks.0.mlp.b1"], w["blocks.0.mlp.w2"] = fc1, b1, fc2
        signs = _pm_bits(np.arange(K), route_bits)  # (K, route_bits)
        w["blocks.0.mlp.router.weight"][:, :route_bits] = router_scale * torch.from_numpy(signs)
    w["head.weight"][:, a + b :] = torch.from_numpy(_pm_bits(np.arange(2**v), v))
    model.load_state_dict(w)
    record = MemorizerRecord(
        facts=len(book.keys),
        experts=K,
        width=m,
        expert_hidden=hidden,
        total_params=model.total_params(),
        active_params=model.active_params(),
        bits_stored=len(book.keys) * v,
    )
    return model, record


@torch.no_grad()
def recall(model: Transformer, book: PhoneBook, batch_size: int = 8192) -> float:
    """Fraction of the book's numbers the model returns exactly (its real forward pass)."""
    tokens = torch.from_numpy(book.tokens())
    right = 0
    for start in range(0, len(tokens), batch_size):
        logits = model(tokens[start : start + batch_size])
        right += int(
            (logits.argmax(dim=-1).numpy() == book.values[start : start + batch_size]).sum()
        )
    return right / len(tokens)
