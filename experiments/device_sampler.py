"""Balanced graph instances drawn by torch on the training device, in the canonical encoding.

:class:`DeviceSampler` draws from exactly the distribution of ``theory.generators.balanced``
followed by ``theory.encoding.encode``, without leaving the device: on a GPU the numpy path
costs more host time per batch than the training step itself (about 18 ms for 1,024 graphs
at |V| = 32), and a sweep runs many trainings that each wait on their own CPU.

The distribution. A candidate is a graph G ~ G(n, M) (M = ``balanced_num_edges``: a uniform
M-subset of the pair slots, as the M smallest of P i.i.d. uniform keys) and a query (s, t)
uniform over ordered pairs with s != t. With y(G, s, t) its label, the numpy sampler returns
``B // 2`` i.i.d. draws from the law of a candidate given y > 0 and ``B - B // 2`` given
y = 0, in random order (it keeps, per class, the first candidates of a stream of i.i.d.
candidates, which are i.i.d. from that class's conditional law). This sampler does the same
with a fixed number C of candidates per batch, so every shape is static (nothing reads back
to the host; a CUDA graph can capture it): per class it keeps the first candidates in
candidate order. If a class had fewer than its quota among the C candidates the batch would
be short of it; C is chosen at construction from a pilot estimate of the class rate so that
this has probability below 1e-9 per class and batch (Chernoff), and :meth:`shortfalls` counts every
missing instance anyway, so a run can prove it never happened.

Labels, batched on the device: length-2 path is ``any_w A[s, w] A[w, t]``; connectivity and
shortest path run n - 1 rounds of breadth-first search from s (frontier @ A), the distance
being the round in which t is first reached (0 = unreachable, as in ``theory.problems``).

Randomness: each call seeds the sampler's torch generator with one 63-bit draw from the
trainer's numpy generator, so a checkpointed numpy state resumes the exact data stream.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from theory.encoding import BOS, NUM_SPECIAL
from theory.errors import InputError
from theory.generators import balanced_num_edges, pair_slots
from theory.problems import check_problem

_PILOT = 4096  # candidates drawn once at construction to estimate the class rate


class DeviceSampler:
    """``sample(rng, batch) -> (tokens (B, L) int64, labels (B,) int64)``, both on ``device``.

    A drop-in for ``experiments.commands.train.graph_task``'s numpy sampler (same token
    layout, same length L, same label values, same distribution; see the module docstring).
    """

    def __init__(
        self,
        problem: str,
        n: int,
        device: str | torch.device = "cpu",
        directed: bool = False,
        batch_hint: int = 1024,
    ):
        self.problem = check_problem(problem)
        if not isinstance(n, int) or n < 3:
            raise InputError(f"need at least 3 vertices, got n={n!r}")
        self.n, self.directed, self.device = n, directed, torch.device(device)
        self.m = balanced_num_edges(problem, n, directed)
        u, v = pair_slots(n, directed)  # the slots gnm draws from, in the same order
        self._fwd = torch.as_tensor(u * n + v, device=self.device)
        self._rev = None if directed else torch.as_tensor(v * n + u, device=self.device)
        self.length = 2 + (self.m if directed else 2 * self.m)
        self.generator = torch.Generator(self.device)
        self._shortfall = torch.zeros((), dtype=torch.int64, device=self.device)
        self.generator.manual_seed(0)
        _, labels = self._candidates(_PILOT)
        positive = int((labels > 0).sum())
        self.rare_rate = min(positive, _PILOT - positive) / _PILOT
        if self.rare_rate < 0.05:
            raise InputError(
                f"{problem} at n={n}: one class has rate {self.rare_rate:.3f} at M={self.m} edges;"
                " too rare to balance by oversampling"
            )
        self._per_batch: dict[int, int] = {}
        self.candidates(batch_hint)

    def candidates(self, batch: int) -> int:
        """C, the candidates drawn for a batch of ``batch``: with q the pilot's rare-class rate
        less 4 standard errors, C·q ≥ quota + sqrt(2·ln(1e9)·C·q) bounds P(short) by 1e-9."""
        if batch not in self._per_batch:
            q = max(0.01, self.rare_rate - 4 * math.sqrt(self.rare_rate / _PILOT))
            quota, c = batch - batch // 2, float(batch)
            for _ in range(50):  # fixed point of c = (quota + sqrt(2 ln(1e9) c q)) / q
                c = (quota + math.sqrt(2 * math.log(1e9) * c * q)) / q
            self._per_batch[batch] = max(64, math.ceil(c))
        return self._per_batch[batch]

    def shortfalls(self) -> int:
        """Instances missing from their class quota over every batch so far (host read)."""
        return int(self._shortfall)

    def __call__(self, rng: np.random.Generator, batch: int) -> tuple[Tensor, Tensor]:
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        self.generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        return self.draw(batch)

    def draw(self, batch: int) -> tuple[Tensor, Tensor]:
        """One balanced batch from the generator's current state (static shapes, no sync)."""
        edges, labels = self._candidates(self.candidates(batch))
        positive = labels > 0
        quota_pos, quota_neg = batch // 2, batch - batch // 2
        # stable sorts put one class first in candidate order: its first candidates
        first_pos = torch.sort((~positive).to(torch.uint8), stable=True).indices[:quota_pos]
        first_neg = torch.sort(positive.to(torch.uint8), stable=True).indices[:quota_neg]
        n_pos = positive.sum()
        short = (quota_pos - n_pos).clamp(min=0) + (quota_neg - (len(labels) - n_pos)).clamp(min=0)
        self._shortfall += short
        keep = torch.cat([first_pos, first_neg])
        keep = keep[torch.argsort(self._rand(batch))]  # shuffle the two classes together
        return edges[keep], labels[keep]

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device)

    def _randint(self, high: int, size: int) -> Tensor:
        return torch.randint(0, high, (size,), generator=self.generator, device=self.device)

    def _candidates(self, count: int) -> tuple[Tensor, Tensor]:
        """``count`` i.i.d. candidates: their token rows and labels (not yet balanced)."""
        n, dev = self.n, self.device
        picks = torch.topk(self._rand(count, len(self._fwd)), self.m, dim=1).indices
        ids = self._fwd[picks]
        if self._rev is not None:
            ids = torch.cat([ids, self._rev[picks]], dim=1)
        ids = torch.sort(ids, dim=1).values  # edge tokens in increasing order
        adj = torch.zeros(count, n * n, dtype=torch.bool, device=dev)
        adj.scatter_(1, ids, True)
        adj = adj.view(count, n, n)
        s = self._randint(n, count)
        t = self._randint(n - 1, count)
        t = t + (t >= s)
        labels = self._labels(adj, s, t)
        tokens = torch.cat(
            [
                torch.full((count, 1), BOS, dtype=torch.int64, device=dev),
                ids + NUM_SPECIAL + n,
                (NUM_SPECIAL + n + n * n + s * n + t)[:, None],
            ],
            dim=1,
        )
        return tokens, labels

    def _labels(self, adj: Tensor, s: Tensor, t: Tensor) -> Tensor:
        rows = torch.arange(len(s), device=self.device)
        if self.problem == "length2":
            out_s = adj[rows, s]  # (C, n): s -> w
            in_t = adj[rows, :, t]  # (C, n): w -> t
            return (out_s & in_t).any(dim=1).to(torch.int64)
        a = adj.to(torch.float32)
        frontier = torch.zeros(len(s), self.n, device=self.device)
        frontier[rows, s] = 1.0
        seen = frontier.clone()
        dist = torch.zeros(len(s), dtype=torch.int64, device=self.device)
        for k in range(1, self.n):  # a shortest path has at most n - 1 edges
            frontier = (torch.bmm(frontier[:, None, :], a)[:, 0] > 0).float() * (1 - seen)
            seen = seen + frontier
            dist = torch.where((dist == 0) & (frontier[rows, t] > 0), k, dist)
        if self.problem == "connectivity":
            return (dist > 0).to(torch.int64)
        return dist
