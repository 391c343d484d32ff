from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import graph_batches
from theory.errors import InputError
from theory.graphs import GraphBatch, bit_of, pack_bits, unpack_bits


@given(st.integers(1, 200), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(n, rows, seed):
    mask = np.random.default_rng(seed).random((rows, n)) < 0.5
    words = pack_bits(mask)
    assert words.shape == (rows, -(-n // 64))
    assert np.array_equal(unpack_bits(words, n), mask)
    v = np.random.default_rng(seed + 1).integers(0, n, size=rows)
    assert bit_of(words, v).tolist() == mask[np.arange(rows), v].tolist()


def test_bit_layout_is_little_endian_within_words():
    mask = np.zeros((1, 70), dtype=bool)
    mask[0, [0, 63, 64, 69]] = True
    words = pack_bits(mask)
    assert words[0, 0] == (1 << 0) | (1 << 63)
    assert words[0, 1] == (1 << 0) | (1 << 5)


@given(graph_batches(max_n=70))
def test_dense_and_edge_list_round_trip(graphs):
    again = GraphBatch.from_edge_lists(graphs.n, graphs.edge_lists(), graphs.directed)
    assert np.array_equal(again.rows, graphs.rows)
    assert np.array_equal(GraphBatch.from_dense(graphs.dense(), graphs.directed).rows, graphs.rows)
    dense = graphs.dense()
    assert not np.diagonal(dense, axis1=1, axis2=2).any()
    if not graphs.directed:
        assert np.array_equal(dense, dense.transpose(0, 2, 1))
    assert np.array_equal(graphs.in_rows_all(), pack_bits(dense.transpose(0, 2, 1)))


@pytest.mark.parametrize(
    ("edges", "message"), [([(0, 0)], "self-loop"), ([(0, 4)], "outside"), ([(-1, 2)], "outside")]
)
def test_bad_edges_are_rejected(edges, message):
    with pytest.raises(InputError, match=message):
        GraphBatch.from_edge_lists(4, [edges])


def test_asymmetric_undirected_adjacency_is_rejected():
    adj = np.zeros((3, 3), dtype=bool)
    adj[0, 1] = True
    with pytest.raises(InputError, match="symmetric"):
        GraphBatch.from_dense(adj)
