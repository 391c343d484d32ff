"""One transformer, dense or Mixture-of-Experts, for trained and hand-built models alike.

Reading order: :class:`ModelConfig`, :class:`Embedding`, :class:`Attention`, the two MLPs
(:class:`DenseMLP`, :class:`MoEMLP`, one signature), :class:`Block`, :class:`Transformer`.

The forward pass, for tokens x_1 … x_N (left-padded with PAD, the query last)::

    h_0 = E[x] (+ P)                                         embedding (+ positions)
    h   = h + Attn(norm1(h))                                 for each of the L blocks
    h   = h + MLP(norm2(h))                                  MLP: dense, or MoE with K experts
    logits = W_head · norm_f(h_N) (+ b)                      "classify": last position only
    logits = W_head · norm_f(h_i)  for every i               "next_token"

With ``norm="none"``, ``activation="relu"``, ``pos_emb="none"`` and one layer this is exactly
the one-layer model of the theory (attention, ReLU MLP and a linear read-out on a residual
stream), so constructions load their weights into this class and run the same forward pass.

Parameter names (what a construction writes; ``W`` of a linear map is (out, in), y = x Wᵀ + b):

========================================  ===================================================
``embed.token.weight``                    (P, m) rows for the ids outside every pair block,
                                          in increasing id order (all ids if no blocks)
``embed.rows.{i}.weight``                 (rows_i, m) pair block i, first slot (edge source u,
                                          query s); only with ``pair_blocks``
``embed.cols.{i}.weight``                 (cols_i, m) pair block i, second slot (v, t)
``pos.weight``                            (max_len, m), only with ``pos_emb="learned"``
``blocks.{l}.norm1.weight`` / ``.bias``   (m,), absent with ``norm="none"``
``blocks.{l}.attn.{q,k,v,o}_proj.weight`` (m, m); heads are consecutive slices of m/H rows
``blocks.{l}.attn.{q,k,v,o}_proj.bias``   (m,), only with ``bias=True``
``blocks.{l}.mlp.fc1.weight`` / ``fc2``   dense (K = 1): (d_ff, m) and (m, d_ff), + biases
``blocks.{l}.mlp.router.weight``          MoE: (K, m), no bias
``blocks.{l}.mlp.w1`` / ``b1``            MoE: (K, d_ff, m) / (K, d_ff); expert e's fc1
``blocks.{l}.mlp.w2`` / ``b2``            MoE: (K, m, d_ff) / (K, m); expert e's fc2
``norm_f.weight`` / ``.bias``             (m,), absent with ``norm="none"``
``head.weight`` / ``head.bias``           (C, m) / (C,); absent if ``tie_embeddings``
========================================  ===================================================

Attention scores are q·k / sqrt(m/H) (constructions absorb the scale). PAD keys are masked
out; every position may attend to itself, so an all-PAD row is well defined.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from theory import bounds
from theory.errors import InputError

NORMS = ("none", "layer", "rms")
ACTIVATIONS = ("relu", "gelu")
POS_EMBS = ("none", "learned", "sinusoidal")
HEADS = ("classify", "next_token")
DISPATCHES = ("grouped", "loop")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a model's shape. Frozen, validated, JSON round-trip.

    ``experts == 1`` is the dense model; ``experts = K > 1`` replaces every MLP by K experts
    of hidden size ``mlp_hidden`` of which each token uses ``top_k``. ``pair_blocks`` turns on
    the factorized embedding (see :class:`Embedding`).
    """

    vocab_size: int
    max_len: int
    width: int  # m, the residual stream
    heads: int = 1  # H
    layers: int = 1  # L
    mlp_hidden: int | None = None  # d_ff, of the dense MLP or of each expert; None -> 4m
    experts: int = 1  # K; 1 = dense
    top_k: int = 1
    norm: str = "layer"
    activation: str = "gelu"
    bias: bool = True
    pos_emb: str = "none"
    causal: bool = False
    tie_embeddings: bool = False
    head: str = "classify"
    num_classes: int | None = 2  # classify only
    pair_blocks: tuple[tuple[int, int, int], ...] = ()
    pad_token: int | None = 0
    renormalize: bool = False  # renormalise the chosen top-k router weights to sum to 1
    capacity_factor: float | None = None  # None = dropless
    dispatch: str = "grouped"

    def __post_init__(self) -> None:
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", 4 * self.width)
        blocks = tuple(tuple(int(v) for v in b) for b in self.pair_blocks)
        object.__setattr__(self, "pair_blocks", blocks)
        self._validate()

    def _validate(self) -> None:
        def bad(msg: str) -> None:
            raise InputError(f"ModelConfig: {msg}")

        for name in ("vocab_size", "max_len", "width", "heads", "layers", "experts", "top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.mlp_hidden, int) or self.mlp_hidden < 1:
            bad(f"mlp_hidden must be a positive integer, got {self.mlp_hidden!r}")
        if self.width % self.heads:
            bad(f"width {self.width} is not divisible by heads {self.heads}")
        if self.top_k > self.experts:
            bad(f"top_k={self.top_k} exceeds experts={self.experts}")
        for name, allowed in (
            ("norm", NORMS),
            ("activation", ACTIVATIONS),
            ("pos_emb", POS_EMBS),
            ("head", HEADS),
            ("dispatch", DISPATCHES),
        ):
            if getattr(self, name) not in allowed:
                bad(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.head == "classify":
            if not isinstance(self.num_classes, int) or self.num_classes < 1:
                bad(f"head='classify' needs num_classes >= 1, got {self.num_classes!r}")
            if self.tie_embeddings:
                bad("tie_embeddings needs head='next_token' (a classifier has no vocab read-out)")
        elif self.num_classes is not None:
            bad(
                f"head='next_token' predicts the vocabulary; num_classes must be None, "
                f"got {self.num_classes!r}"
            )
        if self.renormalize and self.top_k == 1:
            bad(
                "renormalize=True with top_k=1 makes every routing weight 1, so the router "
                "gets no gradient from the task loss"
            )
        if self.capacity_factor is not None:
            if self.experts == 1:
                bad("capacity_factor needs experts > 1")
            if not self.capacity_factor > 0:
                bad(f"capacity_factor must be > 0, got {self.capacity_factor!r}")
        if self.pad_token is not None and not 0 <= self.pad_token < self.vocab_size:
            bad(f"pad_token {self.pad_token} outside the vocabulary [0, {self.vocab_size})")
        taken: list[tuple[int, int]] = []
        for block in self.pair_blocks:
            if len(block) != 3:
                bad(f"a pair block is (first_id, rows, cols), got {block!r}")
            first, rows, cols = block
            end = first + rows * cols
            if first < 0 or rows < 1 or cols < 1 or end > self.vocab_size:
                bad(f"pair block {block} does not fit in the vocabulary [0, {self.vocab_size})")
            if any(first < e and s < end for s, e in taken):
                bad(f"pair block {block} overlaps another block")
            if self.pad_token is not None and first <= self.pad_token < end:
                bad(f"pad_token {self.pad_token} lies inside pair block {block}")
            taken.append((first, end))

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pair_blocks"] = [list(b) for b in self.pair_blocks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"ModelConfig: unknown fields {sorted(unknown)}")
        d = dict(d)
        d["pair_blocks"] = tuple(tuple(b) for b in d.get("pair_blocks", ()))
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- closed-form parameter counts ------------------------------------------------------
    def expert_params(self) -> int:
        """One expert (or the dense MLP): 2·m·d_ff weights, plus d_ff + m biases."""
        m, d = self.width, self.mlp_hidden
        assert d is not None
        return 2 * m * d + (d + m if self.bias else 0)

    def num_params(self) -> dict[str, int]:
        """Total and active (per-token) parameter counts, in closed form.

        The one closed form lives in :func:`theory.bounds.param_counts` (its docstring has
        the formula); "active" counts what one token's forward pass multiplies by: every
        non-expert parameter (embedding tables included) and the router, plus k of the K
        experts. ``Transformer.total_params`` / ``active_params`` count the torch module and
        must agree (tested).
        """
        return bounds.param_counts(self.to_dict())


# -- building blocks -----------------------------------------------------------------------


def _make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "layer":
        return nn.LayerNorm(cfg.width, bias=cfg.bias)
    if cfg.norm == "rms":
        return nn.RMSNorm(cfg.width)
    return nn.Identity()


def _activation(name: str, x: Tensor) -> Tensor:
    return F.relu(x) if name == "relu" else F.gelu(x)


def sinusoidal_table(length: int, width: int) -> Tensor:
    """The Vaswani et al. table: sin at even, cos at odd coordinates, (length, width)."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10_000.0) * torch.arange(0, width, 2, dtype=torch.float64) / width)
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : width // 2]
    return table.float()


class Embedding(nn.Module):
    """Token embeddings, standard or **factorized**.

    Standard (``pair_blocks=()``): one learned row per token id. Used by constructions that
    give each token its own vector, and by tasks whose tokens are not pairs.

    Factorized: a token in pair block i standing for (r, c), i.e. id = first_i + r·cols_i + c,
    is embedded as ``rows_i[r] + cols_i[c]``; every other id has its own row in ``token``.
    For graphs the blocks are edges u→v (E_src[u] + E_dst[v]) and queries (Q_s[s] + Q_t[t]),
    from ``theory.encoding.pair_blocks``. This is what training uses: with one free row per
    edge token, small models plateau far below 100% on length-2 path (research/probes.md),
    because the n² edge rows share nothing; factorized, "edges out of s" is one direction.
    """

    plain_ids: Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.vocab_size, self.width = cfg.vocab_size, cfg.width
        in_block = torch.zeros(cfg.vocab_size, dtype=torch.bool)
        for first, rows, cols in cfg.pair_blocks:
            in_block[first : first + rows * cols] = True
        self.register_buffer("plain_ids", torch.nonzero(~in_block).squeeze(1), persistent=False)
        self.token = nn.Embedding(len(self.plain_ids), cfg.width)
        self.blocks = cfg.pair_blocks
        self.rows = nn.ModuleList(nn.Embedding(r, cfg.width) for _, r, _ in cfg.pair_blocks)
        self.cols = nn.ModuleList(nn.Embedding(c, cfg.width) for _, _, c in cfg.pair_blocks)

    def table(self) -> Tensor:
        """The effective (vocab, m) embedding of every token id."""
        if not self.blocks:
            return self.token.weight
        w = self.token.weight
        table = w.new_zeros(self.vocab_size, self.width)
        table = table.index_copy(0, self.plain_ids, w)
        for (first, r, c), rows, cols in zip(self.blocks, self.rows, self.cols, strict=True):
            a, b = cast(Tensor, rows.weight), cast(Tensor, cols.weight)
            pairs = (a[:, None, :] + b[None, :, :]).reshape(r * c, -1)
            table = torch.cat([table[:first], pairs, table[first + r * c :]])
        return table

    def forward(self, tokens: Tensor) -> Tensor:
        return F.embedding(tokens, self.table())


class Attention(nn.Module):
    """Multi-head softmax attention; the only attention implementation in the tree."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.heads, self.causal = cfg.heads, cfg.causal
        m = cfg.width
        self.q_proj = nn.Linear(m, m, bias=cfg.bias)
        self.k_proj = nn.Linear(m, m, bias=cfg.bias)
        self.v_proj = nn.Linear(m, m, bias=cfg.bias)
        self.o_proj = nn.Linear(m, m, bias=cfg.bias)

    def forward(self, x: Tensor, allowed: Tensor | None, last_only: bool = False) -> Tensor:
        """x (B, N, m); ``allowed`` (B, 1, N, N) bool, True where query i may see key j.

        ``last_only``: only the last position asks (its output (B, 1, m)); keys and values
        are still every position's.
        """
        B, N, m = x.shape
        H = self.heads
        # (B, N, m) -> (B, H, N, m/H)
        k, v = (p(x).view(B, N, H, m // H).transpose(1, 2) for p in (self.k_proj, self.v_proj))
        xq = x[:, -1:] if last_only else x
        q = self.q_proj(xq).view(B, xq.shape[1], H, m // H).transpose(1, 2)
        if last_only and allowed is not None:
            allowed = allowed[..., -1:, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.o_proj(y.transpose(1, 2).reshape(B, xq.shape[1], m))


class MoEAux(NamedTuple):
    """Auxiliary terms of one MoE layer, unweighted (the trainer picks the weights).

    ``balance_loss``: K · Σ_e f_e · P_e with f_e the fraction of the N·k routing slots that
    chose expert e (before capacity drops) and P_e the mean router probability of e. It is
    exactly 1.0 whenever either f or P is uniform, for every k (Σ f_e = Σ P_e = 1), and K when
    every token goes to one expert with probability 1. Gradient flows through P only.
    ``z_loss``: mean over tokens of logsumexp(router logits)² (ST-MoE).
    ``counts``: (K,) int64, tokens each expert processed (after capacity drops).
    ``dropped``: int64 scalar, routing slots dropped for capacity (0 when dropless).
    """

    balance_loss: Tensor
    z_loss: Tensor
    counts: Tensor
    dropped: Tensor


class DenseMLP(nn.Module):
    """fc2(act(fc1(x))): the K = 1 model. Same signature as :class:`MoEMLP`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        assert cfg.mlp_hidden is not None
        self.activation = cfg.activation
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_hidden, bias=cfg.bias)
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.width, bias=cfg.bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, MoEAux | None]:
        """x (..., m) -> (..., m); ``mask`` is accepted for the common signature and unused."""
        return self.fc2(_activation(self.activation, self.fc1(x))), None


def grouped_mm_runs(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch._grouped_mm`` has a kernel for ``dtype`` on ``device``; otherwise the
    MoE's grouped path loops over the sorted segments. CUDA's wants bf16 on sm90 or later.
    A ``meta`` device (shapes only) counts as CUDA, so a test can run the model there to
    check it reads nothing back to the host. Any width runs: :func:`grouped_mm_pad` pads the
    rows to the 16 bytes both kernels want."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    if device.type == "meta":
        return dtype == torch.bfloat16
    if device.type == "cuda":
        return dtype == torch.bfloat16 and torch.cuda.get_device_capability(device) >= (9, 0)
    return device.type == "cpu" and dtype in (torch.float32, torch.bfloat16, torch.float16)


def grouped_mm_pad(n: int, dtype: torch.dtype) -> int:
    """The smallest size >= n whose rows are a multiple of 16 bytes (``torch._grouped_mm``
    wants every stride so): 8 bf16 or 4 fp32 values."""
    per16 = 16 // dtype.itemsize
    return -(-n // per16) * per16


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (grouped_mm needs it)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.contiguous()


def _gmm(a: Tensor, w: Tensor, offs: Tensor) -> Tensor:
    return _ContiguousGrad.apply(torch._grouped_mm(a, w, offs=offs))


class _Dispatch(torch.autograd.Function):
    """xs = x[order // k]: token rows copied to their k slots, slots sorted by expert.

    Plain indexing would back-propagate by a scatter-add with k-fold collisions (atomics on
    GPU); since ``order`` is a permutation of the N·k slots, the gradient of token t is the
    sum of its k slot rows, read through the inverse permutation: a gather and a sum.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, order: Tensor, inverse: Tensor, k: int) -> Tensor:
        ctx.save_for_backward(inverse)
        ctx.k = k
        return x[order if k == 1 else order // k]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (inverse,) = ctx.saved_tensors
        rows = grad[inverse]
        if ctx.k == 1:  # one slot per token: the gather is the gradient (no copy by a sum)
            return rows, None, None, None
        return rows.view(-1, ctx.k, rows.shape[-1]).sum(1), None, None, None


class _Undispatch(torch.autograd.Function):
    """ys[inverse]: expert-sorted rows back to slot order; backward gathers by ``order``."""

    @staticmethod
    def forward(ctx: Any, ys: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(order)
        return ys[inverse]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (order,) = ctx.saved_tensors
        return grad[order], None, None


class Routing(NamedTuple):
    experts: Tensor  # (N, k) chosen expert ids
    weights: Tensor  # (N, k) their weights (softmax probs, renormalised if asked)
    keep: Tensor | None  # (N·k,) bool: False for a slot not processed (a PAD token's, or
    # dropped for capacity); None when every slot is processed
    order: Tensor  # (N·k,) slot ids sorted by expert (token order within one), unkept last
    ends: Tensor  # (K,) end of each expert's segment in ``order`` (kept slots only)


class MoEMLP(nn.Module):
    """K expert MLPs and a router; each token goes through top_k of them.

    y(x) = Σ_{e ∈ top_k(p)} w_e · fc2_e(act(fc1_e(x))),   p = softmax(router(x))

    The softmax is over all K experts *before* top-k, so with k = 1 the weight p_e < 1 still
    carries gradient to the router (softmax over the chosen k alone would be exactly 1).
    ``renormalize`` divides the chosen weights by their sum. Dropless by default: every
    token is processed by exactly its k experts. With ``capacity_factor`` c each expert takes
    at most ceil(c·N·k/K) slots, first come (token order) first served; the rest are dropped
    (the token keeps its residual) and counted in ``MoEAux.dropped`` and ``last_dropped``.
    Tokens where the mask is False (PAD) are not routed: output 0, no aux contribution, and
    N counts real tokens only.

    Two dispatch paths with the same result: ``loop`` (reference: for each expert, gather
    its tokens) and ``grouped`` (sort slots by expert, run all experts as grouped matrix
    products with ``torch._grouped_mm`` where it runs, else a loop over the sorted segments).
    Neither spends compute on an expert that received no token. The grouped path never reads
    a value back to the host (so a training step can be captured as a CUDA graph): counts
    come from the sort (``searchsorted``), not ``bincount`` or ``nonzero``; an unprocessed
    slot is sorted after every segment instead of being removed (shapes stay static), and
    both permutations back-propagate by gathers through the inverse permutation instead of
    scatter-adds.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        K, m, d = cfg.experts, cfg.width, cfg.mlp_hidden
        assert d is not None
        self.experts, self.top_k, self.activation = K, cfg.top_k, cfg.activation
        self.renormalize, self.capacity_factor = cfg.renormalize, cfg.capacity_factor
        self.dispatch = cfg.dispatch
        self.router = nn.Linear(m, K, bias=False)
        self.w1 = nn.Parameter(torch.empty(K, d, m))
        self.w2 = nn.Parameter(torch.empty(K, m, d))
        self.b1 = nn.Parameter(torch.zeros(K, d)) if cfg.bias else None
        self.b2 = nn.Parameter(torch.zeros(K, m)) if cfg.bias else None
        self._dropped: Tensor | None = None

    @property
    def last_dropped(self) -> int:
        """Slots the last forward dropped for capacity (read lazily: a host read)."""
        return 0 if self._dropped is None else int(self._dropped)

    def route(self, x: Tensor, mask: Tensor | None = None) -> tuple[Routing, MoEAux]:
        """Router decisions for x (N, m) and the auxiliary terms; rows where ``mask`` (N,) is
        False are not routed. Nothing is read back to the host: a slot that is not processed
        gets the sentinel expert id K, which the stable sort puts after every segment."""
        N, K, k = x.shape[0], self.experts, self.top_k
        logits = self.router(x).float()
        probs = logits.softmax(dim=-1)
        weights, experts = probs.topk(k, dim=-1)
        if self.renormalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        flat = experts.reshape(-1)
        # segment limits of ids -1, 0, ..., K-1 in one search: limits[0] = 0 (no id is < 0),
        # limits[e + 1] = end of expert e's segment = start of e + 1's (and of the sentinel's)
        ids = torch.arange(-1, K, device=x.device, dtype=flat.dtype)

        def sort(keep: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
            """(order, sorted ids, limits): limits[e] is where id e's segment starts."""
            key = flat if keep is None else flat.masked_fill(~keep, K)
            order = torch.argsort(key, stable=True)
            sorted_key = key[order]
            return order, sorted_key, torch.searchsorted(sorted_key, ids, right=True)

        keep = None if mask is None else mask.repeat_interleave(k)  # slot i·k + j: token i
        real: Tensor | int = N if mask is None else mask.sum()  # tokens routed
        order, sorted_key, limits = sort(keep)
        ends = limits[1:]
        counts = ends - limits[:-1]
        kept = counts
        if self.capacity_factor is not None and N:
            c = self.capacity_factor  # ceil(c·N·k/K) by the same float64 operations either
            if isinstance(real, int):  # way: CUDA divides by a Python scalar through its
                capacity: Tensor | int = math.ceil(c * real * k / K)  # reciprocal, so K is
            else:  # made a device tensor (by a fill, no host copy: capturable)
                den = torch.full((), float(K), dtype=torch.float64, device=x.device)
                capacity = torch.ceil(real.double() * c * k / den).long()
            rank = torch.empty_like(flat)  # limits[key] is the start of key's segment
            rank[order] = torch.arange(flat.numel(), device=x.device) - limits[sorted_key]
            first = rank < capacity  # first come (token order) first served
            keep = first if keep is None else keep & first
            kept = (
                counts.clamp(max=capacity)
                if isinstance(capacity, int)
                else torch.minimum(counts, capacity)  # no host-made tensor: capturable
            )
            order, _, limits = sort(keep)
            ends = limits[1:]
        if N:
            tokens = real if isinstance(real, int) else real.clamp(min=1).float()
            p, lse2 = probs, torch.logsumexp(logits, dim=-1).square()
            if mask is not None:  # a select, so a PAD row cannot bring in a NaN
                p, lse2 = torch.where(mask[:, None], p, 0.0), torch.where(mask, lse2, 0.0)
            balance = K * (counts.float() / (tokens * k) * p.sum(dim=0) / tokens).sum()
            z = lse2.sum() / tokens
        else:
            balance = z = logits.new_zeros(())
        # without a capacity nothing is dropped: a fill, not two sums and a difference
        dropped = counts.new_zeros(()) if kept is counts else counts.sum() - kept.sum()
        routing = Routing(experts, weights, keep, order, ends)
        return routing, MoEAux(balance, z, kept, dropped)

    def _unbound(self) -> list[tuple[Tensor, Tensor | None, Tensor, Tensor | None]]:
        """Per-expert (w1, b1, w2, b2) views. ``unbind`` once, not ``w1[e]`` per expert: the
        backward of K separate slices would materialise K full-size gradients of w1."""
        w1, w2 = self.w1.unbind(0), self.w2.unbind(0)
        b1 = self.b1.unbind(0) if self.b1 is not None else [None] * self.experts
        b2 = self.b2.unbind(0) if self.b2 is not None else [None] * self.experts
        return list(zip(w1, b1, w2, b2, strict=True))

    def expert(self, e: int, x: Tensor, params: tuple | None = None) -> Tensor:
        """Expert e on rows x (n, m): fc2_e(act(fc1_e(x)))."""
        w1, b1, w2, b2 = params if params is not None else self._unbound()[e]
        return F.linear(_activation(self.activation, F.linear(x, w1, b1)), w2, b2)

    def _loop(self, x: Tensor, r: Routing) -> Tensor:
        """Reference dispatch: for each expert, its kept slots' tokens, in token order."""
        flat, w = r.experts.reshape(-1), r.weights.reshape(-1)
        out = torch.zeros_like(x)
        params = self._unbound()
        for e in range(self.experts):
            mine = flat == e
            slots = torch.nonzero(mine if r.keep is None else mine & r.keep).squeeze(1)
            if slots.numel() == 0:
                continue  # an empty expert runs nothing
            tok = slots // self.top_k
            y = self.expert(e, x[tok], params[e]) * w[slots, None].to(x.dtype)
            out.index_add_(0, tok, y)
        return out

    def _experts_sorted(self, xs: Tensor, e_sorted: Tensor, ends: Tensor, partial: bool) -> Tensor:
        """All experts on rows xs (S, m) sorted by expert (segment ends ``ends``); rows past
        the last segment (``partial``) give exact zeros and get zero gradient."""
        dtype = xs.dtype
        if grouped_mm_runs(xs.device, dtype):
            w1, w2 = self.w1.to(dtype), self.w2.to(dtype)  # (K, d, m), (K, m, d)
            b1 = None if self.b1 is None else self.b1.to(dtype)
            m, d = xs.shape[1], w1.shape[1]
            mp, dp = grouped_mm_pad(m, dtype), grouped_mm_pad(d, dtype)
            if (mp, dp) != (m, d):
                # zero columns to 16-byte rows: a padded hidden unit has zero weights and
                # bias, so its activation (ReLU or GELU of 0) is 0 and it adds nothing; the
                # padded output columns are dropped; pad's backward slices the gradients
                xs = F.pad(xs, (0, mp - m))
                w1, w2 = F.pad(w1, (0, mp - m, 0, dp - d)), F.pad(w2, (0, dp - d, 0, mp - m))
                b1 = None if b1 is None else F.pad(b1, (0, dp - d))
            # grouped_mm leaves rows past the last offset uninitialised, forward (its output)
            # and backward (the gradient of its input): ``where`` (a select, not a product,
            # so garbage cannot turn into NaN) cleans both sides of each product
            inside = (
                torch.arange(xs.shape[0], device=xs.device)[:, None] < ends[-1] if partial else None
            )

            def clean(t: Tensor) -> Tensor:
                return t if inside is None else torch.where(inside, t, 0.0)

            offs = ends.int()
            h = clean(_gmm(clean(xs), w1.transpose(-2, -1), offs))
            if b1 is not None:
                h = h + b1[e_sorted]
            h = _activation(self.activation, h)
            y = clean(_gmm(clean(h), w2.transpose(-2, -1), offs))
            if mp != m:
                y = y[:, :m]
            if self.b2 is not None:
                y = clean(y + self.b2.to(dtype)[e_sorted])
            return y
        ends_host = ends.tolist()  # this segment loop reads the sizes (CPU, or no grouped_mm)
        sizes = [b - a for a, b in zip([0, *ends_host], ends_host, strict=False)]
        sizes.append(xs.shape[0] - ends_host[-1])  # unkept slots, after every segment
        params = [tuple(None if t is None else t.to(dtype) for t in p) for p in self._unbound()]
        segments = xs.split(sizes)
        parts = [self.expert(e, segments[e], params[e]) for e in range(self.experts) if sizes[e]]
        parts.append(xs.new_zeros(sizes[-1], xs.shape[1]))
        return torch.cat(parts)

    def _grouped(self, x: Tensor, r: Routing) -> Tensor:
        """Sort slots by expert; experts as grouped GEMMs over contiguous segments."""
        dtype = x.dtype
        if x.is_cuda and torch.is_autocast_enabled("cuda"):
            dtype = torch.get_autocast_dtype("cuda")
        flat, k, order = r.experts.reshape(-1), self.top_k, r.order
        inverse = torch.empty_like(order).scatter_(
            0, order, torch.arange(order.numel(), device=order.device)
        )
        e_sorted = flat[order] if self.b1 is not None or self.b2 is not None else flat
        xs = _Dispatch.apply(x.to(dtype), order, inverse, k)
        y = self._experts_sorted(xs, e_sorted, r.ends, partial=r.keep is not None)
        slots = _Undispatch.apply(y, order, inverse)
        if k == 1:  # weights (N, 1) broadcast over the rows: no sum over one slot
            return (slots * r.weights.to(y.dtype)).to(x.dtype)
        out = (slots.view(-1, k, x.shape[-1]) * r.weights.to(y.dtype).unsqueeze(-1)).sum(1)
        return out.to(x.dtype)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, MoEAux]:
        """x (..., m) -> (..., m). Tokens where ``mask`` is False (PAD) are not routed:
        they get output 0 and do not enter the auxiliary terms."""
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        routing, aux = self.route(flat, None if mask is None else mask.reshape(-1))
        self._dropped = aux.dropped if self.capacity_factor is not None else None
        ys = (self._loop if self.dispatch == "loop" else self._grouped)(flat, routing)
        return ys.reshape(shape), aux


class Block(nn.Module):
    """Pre-norm block: h + Attn(norm1(h)), then + MLP(norm2(h))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.norm2 = _make_norm(cfg), _make_norm(cfg)
        self.attn = Attention(cfg)
        self.mlp: DenseMLP | MoEMLP = MoEMLP(cfg) if cfg.experts > 1 else DenseMLP(cfg)

    def forward(
        self, h: Tensor, allowed: Tensor | None, mask: Tensor | None, last_only: bool = False
    ) -> tuple[Tensor, MoEAux | None]:
        """``last_only``: compute the block's output at the last position only, (B, 1, m)."""
        if last_only:
            mask = None if mask is None else mask[:, -1:]
            h = h[:, -1:] + self.attn(self.norm1(h), allowed, last_only=True)
        else:
            h = h + self.attn(self.norm1(h), allowed)
        y, aux = self.mlp(self.norm2(h), mask)
        return h + y, aux


class Transformer(nn.Module):
    """The model. ``forward(tokens)`` gives logits; ``forward_aux`` also the MoE terms.

    Initialisation (from ``generator``, default seed 0; no global RNG): embeddings N(0, 1)
    (a factorized pair's two halves N(0, 1/2) each, so their sum is N(0, 1)), every linear
    map N(0, 1/fan_in) with the output maps of attention and MLP further scaled by
    1/sqrt(2L), biases 0, norms 1.
    """

    pos_table: Tensor

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = Embedding(cfg)
        self.pos: nn.Embedding | None = None
        if cfg.pos_emb == "learned":
            self.pos = nn.Embedding(cfg.max_len, cfg.width)
        if cfg.pos_emb == "sinusoidal":
            self.register_buffer(
                "pos_table", sinusoidal_table(cfg.max_len, cfg.width), persistent=False
            )
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm_f = _make_norm(cfg)
        out = cfg.num_classes if cfg.head == "classify" else cfg.vocab_size
        assert out is not None
        self.head = None if cfg.tie_embeddings else nn.Linear(cfg.width, out, bias=cfg.bias)
        self.reset_parameters(generator or torch.Generator().manual_seed(0))

    @torch.no_grad()
    def reset_parameters(self, g: torch.Generator) -> None:
        out_scale = (2 * self.cfg.layers) ** -0.5
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if name.startswith("embed.") or name.startswith("pos."):
                std = 0.5**0.5 if (".rows." in name or ".cols." in name) else 1.0
                p.normal_(0.0, std, generator=g)
            elif "norm" in name:
                p.fill_(1.0 if leaf == "weight" else 0.0)
            elif leaf in ("bias", "b1", "b2"):
                p.zero_()
            else:
                std = p.shape[-1] ** -0.5
                if name.endswith(("o_proj.weight", "fc2.weight", "mlp.w2")):
                    std *= out_scale
                p.normal_(0.0, std, generator=g)

    # -- forward ---------------------------------------------------------------------------
    def forward_aux(
        self, tokens: Tensor, sync_free: bool = False, no_pad: bool = False
    ) -> tuple[Tensor, list[MoEAux]]:
        """tokens (B, N) int64 -> (logits, one MoEAux per MoE layer).

        logits: (B, C) at the last position for ``classify``; (B, N, V) for ``next_token``.
        ``sync_free``: read nothing back to the host, so the step can be captured as a CUDA
        graph. By default a batch without PAD is detected (one host read) and runs unmasked,
        which lets attention use its fused mask-free kernels; ``sync_free`` applies the PAD
        mask whatever the batch holds, with the same result. ``no_pad``: the caller knows the
        batch holds no PAD, so nothing is masked and nothing is read (a CUDA graph captured
        on such a batch; the trainer checks every later batch, ``models.train``).
        """
        cfg = self.cfg
        N = tokens.shape[1]
        if N > cfg.max_len:
            raise InputError(f"sequence length {N} exceeds max_len {cfg.max_len}")
        h = self.embed(tokens)
        if self.pos is not None:
            h = h + self.pos.weight[:N]
        elif cfg.pos_emb == "sinusoidal":
            h = h + self.pos_table[:N].to(h.dtype)
        allowed, mask = None, None
        eye = torch.eye(N, dtype=torch.bool, device=tokens.device)
        if cfg.pad_token is not None and not no_pad:
            mask = tokens != cfg.pad_token  # (B, N) real tokens
            if not sync_free and bool(mask.all()):
                mask = None  # no PAD: nothing to mask, every token is routed
            else:
                allowed = mask[:, None, None, :] | eye  # a PAD query may see itself
        if cfg.causal:
            tril = torch.tril(torch.ones(N, N, dtype=torch.bool, device=tokens.device))
            allowed = tril[None, None] if allowed is None else allowed & tril
        auxes = []
        for i, block in enumerate(self.blocks):
            # A classifier reads only the last position, so the last block computes only it
            # (its MoE routes, and its aux terms count, only those tokens).
            last_only = cfg.head == "classify" and i == len(self.blocks) - 1
            h, aux = block(h, allowed, mask, last_only=last_only)
            if aux is not None:
                auxes.append(aux)
        if cfg.head == "classify":
            h = h[:, -1]
        h = self.norm_f(h)
        logits = h @ self.embed.table().T if self.head is None else self.head(h)
        return logits, auxes

    def forward(self, tokens: Tensor) -> Tensor:
        return self.forward_aux(tokens)[0]

    # -- parameter counts ------------------------------------------------------------------
    def total_params(self) -> int:
        """Every parameter the module holds (equals ``cfg.num_params()["total"]``)."""
        return sum(p.numel() for p in self.parameters())

    def active_params(self) -> int:
        """Parameters one token uses: all but the K − k experts it is not routed to, per
        layer (equals ``cfg.num_params()["active"]``)."""
        unused = 0
        for block in self.blocks:
            if isinstance(block.mlp, MoEMLP):
                per_expert = sum(
                    p[0].numel()
                    for p in (block.mlp.w1, block.mlp.w2, block.mlp.b1, block.mlp.b2)
                    if p is not None
                )
                unused += (self.cfg.experts - self.cfg.top_k) * per_expert
        return self.total_params() - unused
