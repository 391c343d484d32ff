"""A batch of graphs on the vertex set {0, ..., n-1}, stored as bit-packed adjacency rows.

Row ``u`` of graph ``b`` is a bitset over vertices: bit ``v`` of ``rows[b, u]`` (word ``v // 64``,
bit ``v % 64``) is set iff there is an edge ``u -> v``. Undirected graphs store both directions,
so their rows are symmetric. There are never self-loops. Bitsets make the batched solvers in
:mod:`theory.solvers` word-parallel: N(s) ∩ N(t) is one AND per 64 vertices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from theory.errors import InputError

WORD_BITS = 64


def num_words(n: int) -> int:
    """Number of uint64 words in one adjacency row of an n-vertex graph."""
    return max(1, -(-n // WORD_BITS))


def pack_bits(mask: np.ndarray) -> np.ndarray:
    """Pack a boolean array (..., n) along its last axis into uint64 words (..., ceil(n/64))."""
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[-1]
    words = num_words(n)
    packed = np.packbits(mask, axis=-1, bitorder="little")
    pad = words * 8 - packed.shape[-1]
    if pad:
        packed = np.concatenate(
            [packed, np.zeros((*packed.shape[:-1], pad), dtype=np.uint8)], axis=-1
        )
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint64 (or uint32) words (..., W) to booleans (..., n)."""
    words = np.ascontiguousarray(words, dtype="<u4" if words.dtype == np.uint32 else "<u8")
    as_bytes = words.view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little", count=n).astype(bool)


def bit_of(words: np.ndarray, v: np.ndarray | int) -> np.ndarray:
    """Bit ``v`` of bitsets ``words`` (..., W), broadcasting ``v`` against the leading axes."""
    v = np.asarray(v)
    word = np.take_along_axis(words, (v // WORD_BITS)[..., None].astype(np.intp), axis=-1)[..., 0]
    return ((word >> (v % WORD_BITS).astype(np.uint64)) & np.uint64(1)).astype(bool)


@dataclass(frozen=True, eq=False)
class GraphBatch:
    """B graphs on n vertices: ``rows`` is uint64 of shape (B, n, ceil(n/64))."""

    n: int
    rows: np.ndarray
    directed: bool = False

    def __post_init__(self) -> None:
        if self.n < 2:
            raise InputError(f"a graph needs at least 2 vertices, got n={self.n}")
        expected = (self.n, num_words(self.n))
        if self.rows.ndim != 3 or self.rows.shape[1:] != expected or self.rows.dtype != np.uint64:
            raise InputError(
                f"rows must be uint64 of shape (B, {expected[0]}, {expected[1]}), "
                f"got {self.rows.dtype} {self.rows.shape}"
            )

    def __len__(self) -> int:
        return self.rows.shape[0]

    def __getitem__(self, index: slice | np.ndarray) -> GraphBatch:
        rows = self.rows[index]
        if rows.ndim == 2:  # an integer index: keep the batch axis
            rows = rows[None]
        return GraphBatch(self.n, rows, self.directed)

    @classmethod
    def from_dense(cls, adjacency: np.ndarray, directed: bool = False) -> GraphBatch:
        """From a boolean (B, n, n) adjacency. Undirected input must be symmetric; no loops."""
        adj = np.asarray(adjacency)
        if adj.ndim == 2:
            adj = adj[None]
        if adj.ndim != 3 or adj.shape[1] != adj.shape[2]:
            raise InputError(f"adjacency must have shape (B, n, n), got {adj.shape}")
        adj = adj.astype(bool)
        if np.any(np.diagonal(adj, axis1=1, axis2=2)):
            raise InputError("self-loops are not allowed")
        if not directed and not np.array_equal(adj, adj.transpose(0, 2, 1)):
            raise InputError("an undirected adjacency matrix must be symmetric")
        return cls(adj.shape[1], pack_bits(adj), directed)

    @classmethod
    def from_edge_lists(
        cls, n: int, edge_lists: Sequence[Iterable[tuple[int, int]]], directed: bool = False
    ) -> GraphBatch:
        """From one edge list per graph; each edge (u, v) must have u != v, both in [0, n)."""
        adj = np.zeros((len(edge_lists), n, n), dtype=bool)
        for b, edges in enumerate(edge_lists):
            for u, v in edges:
                u, v = int(u), int(v)
                if not (0 <= u < n and 0 <= v < n):
                    raise InputError(f"edge ({u}, {v}) has a vertex outside [0, {n})")
                if u == v:
                    raise InputError(f"edge ({u}, {v}) is a self-loop")
                adj[b, u, v] = True
                if not directed:
                    adj[b, v, u] = True
        return cls(n, pack_bits(adj), directed)

    def dense(self) -> np.ndarray:
        """Boolean adjacency (B, n, n); ``dense()[b, u, v]`` iff edge u -> v."""
        return unpack_bits(self.rows, self.n)

    def edge_lists(self) -> list[list[tuple[int, int]]]:
        """Per graph, its edges sorted; undirected edges once, as (u, v) with u < v."""
        adj = self.dense()
        if not self.directed:
            adj = np.triu(adj)
        out: list[list[tuple[int, int]]] = [[] for _ in range(len(self))]
        for b, u, v in zip(*np.nonzero(adj), strict=True):
            out[int(b)].append((int(u), int(v)))
        return out

    def num_edges(self) -> np.ndarray:
        """Edges per graph (undirected edges counted once)."""
        counts = self.dense().sum(axis=(1, 2))
        return counts if self.directed else counts // 2

    def in_rows(self, v: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
        """In-neighbour bitsets (len(v), W) of vertex ``v[i]`` in graph ``index[i]``.

        ``index`` defaults to every graph in order (then ``v`` has one vertex per graph).
        """
        v = np.asarray(v, dtype=np.int64)
        index = np.arange(len(self)) if index is None else np.asarray(index)
        if not self.directed:
            return self.rows[index, v]
        column = bit_of(self.rows[index], np.broadcast_to(v[:, None], (len(index), self.n)))
        return pack_bits(column)

    def in_rows_all(self) -> np.ndarray:
        """In-neighbour bitsets of every vertex, (B, n, W): the rows of the reversed graph."""
        if not self.directed:
            return self.rows
        return pack_bits(self.dense().transpose(0, 2, 1))


def concat(batches: Sequence[GraphBatch]) -> GraphBatch:
    """Concatenate batches of graphs with the same n and directedness."""
    first = batches[0]
    if any(b.n != first.n or b.directed != first.directed for b in batches):
        raise InputError("can only concatenate graph batches of the same n and directedness")
    return GraphBatch(first.n, np.concatenate([b.rows for b in batches]), first.directed)
