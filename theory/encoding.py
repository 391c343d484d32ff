"""The canonical token encoding of a graph instance, on which every bound and construction
of this toolkit is stated.

Vocabulary for graphs on n vertices (size ``3 + n + 2 n^2``)::

    PAD = 0, BOS = 1, EOS = 2
    vertex v          3 + v                              (outputs, e.g. shortest paths)
    edge   u -> v     3 + n + u·n + v                    (u != v)
    query  (s, t)     3 + n + n² + s·n + t               (s != t)

An instance of length L is, left-padded so the query is always the last token::

    PAD … PAD  BOS  e_1 e_2 … e_k  Q(s,t)

with ``e_1 < … < e_k`` the edge tokens in increasing order. An undirected edge {u, v}
contributes both u -> v and v -> u. The longest instance has L = 2 + n(n-1).

Why this encoding:

* **One token per edge**, so the sequence is a *set* of edges and each edge sits wholly on
  one side of the communication-complexity split: in the disjointness family Alice's edges
  {s, v_i} and Bob's {v_i, t} are disjoint sets of tokens (:mod:`theory.communication`).
  N, the sequence length, is 2 + 2|E| for undirected graphs.
* **Both directions** of an undirected edge, so "edges out of s" is a property of one token
  slot (its source) and a single attention head can gather N(s) by matching sources.
* **The query last**, so a classifier reads the answer at the last position, and a causal
  model sees the whole graph there.
* **A BOS sink**: a head whose query matches no edge (an isolated s) attends to BOS, so the
  hand-built solver needs no special case for empty neighbourhoods.
* **Pair tokens factorize**: an edge token is a pair (u, v) and a query a pair (s, t);
  :func:`pair_blocks` tells a model where these blocks are, so it can embed a pair as the
  sum of per-slot embeddings (``models``' factorized embedding) without knowing about graphs.
* No positions are needed: the answer is a function of the edge *set* and the query.
"""

from __future__ import annotations

import numpy as np

from theory.errors import InputError
from theory.graphs import GraphBatch, pack_bits
from theory.problems import Instances

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3


def vocab_size(n: int) -> int:
    """3 special tokens, n vertex tokens, n² edge slots and n² query slots."""
    return NUM_SPECIAL + n + 2 * n * n


def vertex_token(v: np.ndarray | int, n: int) -> np.ndarray | int:
    return NUM_SPECIAL + v


def edge_token(u: np.ndarray | int, v: np.ndarray | int, n: int) -> np.ndarray | int:
    return NUM_SPECIAL + n + u * n + v


def query_token(s: np.ndarray | int, t: np.ndarray | int, n: int) -> np.ndarray | int:
    return NUM_SPECIAL + n + n * n + s * n + t


def pair_blocks(n: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(first id, rows, cols) of the edge block and the query block: id = first + r·cols + c."""
    return (NUM_SPECIAL + n, n, n), (NUM_SPECIAL + n + n * n, n, n)


def max_length(n: int) -> int:
    """Longest encoded instance: BOS, all n(n-1) directed edge tokens, the query."""
    return 2 + n * (n - 1)


def encode(instances: Instances, length: int | None = None) -> np.ndarray:
    """Token ids, int64 (B, L). ``length`` defaults to the longest instance in the batch."""
    graphs, n = instances.graphs, instances.n
    adj = graphs.dense().reshape(len(graphs), n * n)
    need = 2 + int(adj.sum(axis=1).max(initial=0))
    length = need if length is None else length
    if length < need:
        raise InputError(f"length {length} is too short: an instance here needs {need} tokens")
    # Edge ids increase along the row-major adjacency, so a row's nonzeros, in order, are its
    # sorted edge tokens: place them right-aligned before the query, BOS just before them.
    batch, width = len(graphs), length - 1
    counts = adj.sum(axis=1)
    rows, cols = np.divmod(np.flatnonzero(adj), n * n)
    out = np.zeros((batch, length), dtype=np.int64)  # PAD = 0
    if batch and (counts == counts[0]).all():  # one edge count (the balanced samplers)
        c = int(counts[0])
        out[:, width - c : width] = cols.reshape(batch, c) + NUM_SPECIAL + n
    else:
        rank = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
        out[rows, width - counts[rows] + rank] = cols + NUM_SPECIAL + n
    out[np.arange(batch), width - 1 - counts] = BOS
    out[:, -1] = query_token(instances.s, instances.t, n)
    return out


def decode(
    tokens: np.ndarray, n: int, problem: str = "length2", directed: bool = False
) -> Instances:
    """Inverse of :func:`encode`: token ids (B, L) back to instances (answers re-solved).

    Raises InputError if a row is not a well-formed encoding (naming the row).
    """
    tokens = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
    (edge0, _, _), (query0, _, _) = pair_blocks(n)
    batch = tokens.shape[0]
    adj = np.zeros((batch, n, n), dtype=bool)
    s, t = np.empty(batch, np.int64), np.empty(batch, np.int64)
    for b, row in enumerate(tokens):
        body = row[row != PAD]
        if len(body) < 2 or body[0] != BOS or not (query0 <= body[-1] < query0 + n * n):
            raise InputError(f"row {b}: expected PAD* BOS edge* QUERY")
        edges = body[1:-1] - edge0
        if np.any((edges < 0) | (edges >= n * n)) or np.any(np.diff(edges) <= 0):
            raise InputError(f"row {b}: edge tokens must be distinct, in range and increasing")
        u, v = np.divmod(edges, n)
        if np.any(u == v):
            raise InputError(f"row {b}: self-loop token")
        adj[b, u, v] = True
        s[b], t[b] = np.divmod(body[-1] - query0, n)
        if s[b] == t[b]:
            raise InputError(f"row {b}: query has s == t")
    if not directed and not np.array_equal(adj, adj.transpose(0, 2, 1)):
        raise InputError("an undirected encoding must hold both directions of every edge")
    return Instances(problem, GraphBatch(n, pack_bits(adj), directed), s, t)
