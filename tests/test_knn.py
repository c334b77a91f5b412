"""Exact FAISS kNN graphs (self excluded even among duplicates) and the neighbourhood-overlap metrics on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from hrsa.errors import HrsaError
from hrsa.knn import drop_self, graph_distances, knn_graph
from hrsa.metrics import jaccard_from_indices, knn_jaccard, retention_from_indices
from hrsa.runtime import limit_threads

limit_threads(1)
threadpool_limits(1)


def _brute(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = u @ u.T
    else:
        s = -((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(s, -np.inf)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_knn_graph_is_exact(metric: str) -> None:
    x = np.random.default_rng(0).normal(size=(150, 12))
    sims, idx = knn_graph(x, 7, metric, query_batch=40)
    want_s, want_i = _brute(x, 7, metric)
    assert sims.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (150, 7)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_allclose(sims, want_s, rtol=1e-4, atol=1e-4)
    assert not (idx == np.arange(150)[:, None]).any()


def test_knn_graph_torch_input_and_distances() -> None:
    x = np.random.default_rng(1).normal(size=(60, 5)).astype(np.float32)
    s1, i1 = knn_graph(torch.from_numpy(x), 4)
    s2, i2 = knn_graph(x, 4)
    np.testing.assert_array_equal(i1, i2)
    d = graph_distances(s2, "cosine")
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(d[:, 0], np.linalg.norm(u - u[i2[:, 0]], axis=1), atol=1e-3)
    sl, il = knn_graph(x, 4, "l2")
    np.testing.assert_allclose(graph_distances(sl, "l2")[:, 0], np.linalg.norm(x - x[il[:, 0]], axis=1), atol=1e-3)


def test_knn_graph_excludes_self_among_duplicates() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 6))
    x[10:16] = x[10]  # six identical rows: more duplicates than k + 1 for k = 3
    x[20] = x[21]
    for k in (3, 8):
        _, idx = knn_graph(x, k)
        assert not (idx == np.arange(40)[:, None]).any()
        assert all(len(set(r)) == k for r in idx)
        assert set(idx[12, : min(k, 5)]) <= set(range(10, 16))
        assert idx[20, 0] == 21 and idx[21, 0] == 20


def test_drop_self_cases() -> None:
    idx = np.array([[5, 0, 7], [3, 4, 6]])  # row 0 finds itself second; row 1 never finds itself
    sims = np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 1.0]], dtype=np.float32)
    s, i = drop_self(sims, idx, np.array([0, 1]))
    np.testing.assert_array_equal(i, [[5, 7], [3, 4]])
    assert s.shape == (2, 2)


def test_knn_graph_errors() -> None:
    x = np.random.default_rng(3).normal(size=(10, 3))
    with pytest.raises(HrsaError, match="more than k rows"):
        knn_graph(x, 10)
    with pytest.raises(HrsaError, match="positive integer"):
        knn_graph(x, 0)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(HrsaError, match="NaN or inf"):
        knn_graph(bad, 2)
    zero = x.copy()
    zero[4] = 0.0
    with pytest.raises(HrsaError, match="zero rows"):
        knn_graph(zero, 2)
    knn_graph(zero, 2, "l2")  # fine under L2
    with pytest.raises(HrsaError, match="cosine"):
        knn_graph(x, 2, "dot")  # type: ignore[arg-type]


def test_knn_jaccard_identity_and_chance() -> None:
    rng = np.random.default_rng(4)
    n, k = 400, 10
    x = rng.normal(size=(n, 16))
    assert knn_jaccard(x, x, k) == 1.0
    assert knn_jaccard(x, 3.0 * x, k) == 1.0
    shuffled = x[rng.permutation(n)]
    m = k * k / (n - 1)  # expected overlap of two unrelated k-sets among n - 1 rows
    assert knn_jaccard(x, shuffled, k) == pytest.approx(m / (2 * k - m), abs=0.006)  # about k / (2n)


def test_jaccard_and_retention_from_indices() -> None:
    ix = np.array([[1, 2, 3, 4], [0, 2, 3, 4]])
    iy = np.array([[2, 9, 1, 3], [5, 6, 7, 8]])
    # k=2: row 0 {1,2} vs {2,9} -> 1/3; row 1 {0,2} vs {5,6} -> 0
    assert jaccard_from_indices(ix, iy, 2) == pytest.approx((1 / 3 + 0) / 2)
    assert jaccard_from_indices(ix, ix, 4) == 1.0
    # retention k=2 within 4: row 0: {1,2} in {2,9,1,3} -> 2/2, {2,9} in {1,2,3,4} -> 1/2; row 1: 0 and 0
    assert retention_from_indices(ix, iy, 2) == pytest.approx((0.75 + 0.0) / 2)
    with pytest.raises(HrsaError, match="neighbours per row"):
        jaccard_from_indices(ix, iy, 5)
    with pytest.raises(HrsaError, match="same rows"):
        jaccard_from_indices(ix, iy[:1], 2)
    with pytest.raises(HrsaError, match="integer"):
        jaccard_from_indices(ix.astype(float), iy, 2)
    with pytest.raises(HrsaError, match="aligned rows"):
        knn_jaccard(np.ones((5, 2)), np.ones((6, 2)), 2)
