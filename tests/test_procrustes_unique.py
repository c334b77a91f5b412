"""A unique Procrustes map when the centred X'Y is rank-deficient (n < d, activations of low rank): the identity on the
null space, so O*, RIE and sparsity do not depend on row order and procrustes(X, X) is exact; the effective rank is
reported beside it (issue 22, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from hrsa.compare.rows import Rows, representation_rows
from hrsa.metrics import REGISTRY, StreamingPairStats, procrustes
from hrsa.metrics.blocks import PairBlocks, assign_blocks, bootstrap_weights
from hrsa.metrics.procrustes import orthogonal_from_cross, procrustes_map
from hrsa.runtime import limit_threads

limit_threads(1)
threadpool_limits(1)

D = 32


def _low_rank(n: int, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank-`rank` X and a noisy rotation of it, uncentred, in d = 32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, D)) + rng.normal(size=D)
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    y = x @ q + 0.3 * rng.normal(size=(n, rank)) @ rng.normal(size=(rank, D)) + 1.0
    return x, y


def _centred_cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)).T @ (y - y.mean(0))


def _map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return orthogonal_from_cross(torch.from_numpy(_centred_cross(x, y))).numpy()


def test_rank_deficient_map_is_row_order_invariant() -> None:
    """rank-4 data in d = 32: O*, RIE and sparsity are the same after reversing or shuffling the rows (before: the
    SVD's null-space vectors followed row order, RIE 0.2367 vs 0.2372 on this data)."""
    x, y = _low_rank(200, 4, seed=0)
    ref = procrustes(x, y)
    o = _map(x, y)
    np.testing.assert_allclose(o @ o.T, np.eye(D), atol=1e-10)
    for order in (np.arange(200)[::-1], np.random.default_rng(1).permutation(200)):
        other = procrustes(x[order], y[order])
        for key in ("rie", "sparsity", "rvr", "cosine"):
            assert other[key] == pytest.approx(ref[key], abs=1e-9), key
        np.testing.assert_allclose(_map(x[order], y[order]), o, atol=1e-8)
        assert other["rank"] == ref["rank"] == 4


@pytest.mark.parametrize("n", [2, 5, 20, 33])
def test_procrustes_of_x_with_itself_is_exact_for_any_n(n: int) -> None:
    """n = 20 < d = 32 gave RVR 0.038 and cosine 0.980 (RIE 0.338); now (0, 1, 1) and O* = I at every n."""
    x = np.random.default_rng(n).normal(size=(n, D)) + 2.0
    out = procrustes(x, x)
    assert (out["rvr"], out["cosine"], out["rie"]) == pytest.approx((0.0, 1.0, 1.0), abs=1e-12)
    assert out["sparsity"] == pytest.approx(1 - 1 / D)
    assert out["rank"] == min(n - 1, D)
    np.testing.assert_allclose(_map(x, x), np.eye(D), atol=1e-10)


def test_the_identity_rule_keeps_the_fit_and_the_range() -> None:
    """On the range O* is the plain SVD's U_k V_k': the residual is the least-squares one, and x O* = y on planted
    rank-deficient rotations; a zero cross product (a constant layer) maps by the identity."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3)) @ rng.normal(size=(3, D))
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    xc = x - x.mean(0)
    o = _map(x, x @ q)
    np.testing.assert_allclose(xc @ o, xc @ q, atol=1e-9)
    u, s, vh = np.linalg.svd(_centred_cross(x, x @ q))
    np.testing.assert_allclose(u[:, :3].T @ o, vh[:3], atol=1e-9)
    o0, k0 = procrustes_map(torch.zeros(D, D, dtype=torch.float64))
    assert int(k0) == 0 and torch.equal(o0, torch.eye(D, dtype=torch.float64))


@pytest.mark.parametrize("rank", [1, 4, 17, D])
def test_rank_equals_numpy_matrix_rank(rank: int) -> None:
    rng = np.random.default_rng(rank)
    x = rng.normal(size=(300, rank)) @ rng.normal(size=(rank, D))
    y = x @ rng.normal(size=(D, D)) + rng.normal(size=(300, D))
    expect = np.linalg.matrix_rank(_centred_cross(x, y))
    assert expect == rank
    assert procrustes(x, y)["rank"] == expect
    assert REGISTRY["procrustes-rank"](x, y) == expect
    x20 = rng.normal(size=(20, D))
    assert procrustes(x20, y[:20])["rank"] == np.linalg.matrix_rank(_centred_cross(x20, y[:20])) == 19


def _blocks(x: np.ndarray, y: np.ndarray, n_blocks: int, dtype: torch.dtype = torch.float64):
    text = np.repeat(np.arange(len(x) // 2), 2)
    blocks, b = assign_blocks(text, n_blocks)
    tx, ty = torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)
    pb = PairBlocks(D, D, b, dtype=dtype, device="cpu", shift_x=tx[:8].mean(0), shift_y=ty[:8].mean(0),
                    procrustes_blocks=True)
    for s in range(0, len(x), 7):
        pb.update(tx[s:s + 7], ty[s:s + 7], blocks[s:s + 7])
    return pb.finish(), blocks, b


@pytest.mark.parametrize(("n", "rank"), [(200, 4), (20, 4), (24, D)])
def test_streaming_and_block_paths_give_the_direct_map(n: int, rank: int) -> None:
    """The streaming sums, the block sums (point and bootstrap replicates, float64 and float32 SVDs) give the map and
    statistics of the direct computation on rank-deficient data."""
    x, y = _low_rank(n, rank, seed=5)
    ref = procrustes(x, y)
    st = StreamingPairStats()
    for s in range(0, n, 9):
        st.update(x[s:s + 9], y[s:s + 9])
    np.testing.assert_allclose(st.procrustes_rotation().numpy(), _map(x, y), atol=1e-8)
    two = st.procrustes([(x[s:s + 9], y[s:s + 9]) for s in range(0, n, 9)])
    for key in ref:
        assert two[key] == pytest.approx(ref[key], abs=1e-8), key
    pb, blocks, b = _blocks(x, y, 5)
    point = pb.procrustes(np.ones((1, b)), keep_map=True)
    np.testing.assert_allclose(pb.map, _map(x, y), atol=1e-8)
    for key in ref:
        assert point[key][0] == pytest.approx(ref[key], abs=1e-8), key
    w = bootstrap_weights(b, 6, seed=2)
    reps, reps32 = pb.procrustes(w), pb.procrustes(w, svd_dtype=torch.float32)
    for r, wr in enumerate(w):
        idx = np.concatenate([np.flatnonzero(blocks == k) for k in range(b) for _ in range(int(wr[k]))])
        direct = procrustes(x[idx], y[idx])
        for key in direct:
            assert reps[key][r] == pytest.approx(direct[key], abs=1e-7), (r, key)
            assert reps32[key][r] == pytest.approx(direct[key], abs=1e-4), (r, key)


def test_rank_deficient_layers_are_flagged_in_the_table() -> None:
    """The HRSA rows carry procrustes-rank (no interval: a count) and a `rank-deficient` flag on the layer's
    Procrustes rows when the rank is below d; other families and full-rank layers are not flagged."""
    planned = [m for m in REGISTRY.values() if m.family in ("procrustes", "cka")]
    flags = {}
    for name, (x, y) in (("low", _low_rank(40, 4, seed=7)), ("full", _low_rank(40, D, seed=7))):
        pb, _, _ = _blocks(x, y, 4)
        out = Rows("a~b", "text", 20, 0.95)
        representation_rows(out, name, len(x), pb, planned, None, procrustes_ci=False)
        got = {r["metric"]: r for r in out.rows}
        assert got["procrustes-rank"]["value"] == procrustes(x, y)["rank"]
        flags[name] = {m: r["flag"] for m, r in got.items()}
    assert flags["low"]["procrustes-rank"] == flags["low"]["procrustes-rie"] == "rank-deficient"
    assert flags["low"]["cka-linear-biased"] == ""
    assert set(flags["full"].values()) == {""}
    assert not REGISTRY["procrustes-rank"].interval
