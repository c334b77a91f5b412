"""Known-answer tests of the metrics engine: CKA forms agree, streaming equals one-shot, planted structure is found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from hrsa.errors import HrsaError
from hrsa.metrics import (
    StreamingPairStats,
    cka_matrix_from_batches,
    dimwise_correlation,
    linear_cka,
    probe_transfer,
    procrustes,
    twonn_dimension,
    twonn_dimension_of,
)
from hrsa.runtime import limit_threads

limit_threads(1)
threadpool_limits(1)


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _related(n: int, dx: int, dy: int, seed: int, offset: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """X with a non-zero mean and Y = X A + noise: partly similar, uncentred."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx)) + offset * rng.normal(size=dx)
    y = x @ rng.normal(size=(dx, dy)) + rng.normal(size=(n, dy)) - offset
    return x, y


# ------------------------------------------------------------------ Gram-matrix reference (test only: O(n^2))
def _hsic_gram(K: np.ndarray, L: np.ndarray, debiased: bool) -> float:
    n = K.shape[0]
    if not debiased:
        h = np.eye(n) - 1.0 / n
        return float(np.trace(h @ K @ h @ L))
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(n)
    val = np.trace(K @ L) + K.sum() * L.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (one @ K @ L @ one)
    return float(val / (n * (n - 3)))  # Song et al. (2007), unbiased HSIC


def _gram_cka(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    K, L = x @ x.T, y @ y.T
    return _hsic_gram(K, L, debiased) / np.sqrt(_hsic_gram(K, K, debiased) * _hsic_gram(L, L, debiased))


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("shape", [(7, 3, 5), (30, 4, 4), (25, 40, 12)])
def test_feature_space_cka_equals_gram_form(debiased: bool, shape: tuple[int, int, int]) -> None:
    n, dx, dy = shape
    x, y = _related(n, dx, dy, seed=n + dx)
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(_gram_cka(x, y, debiased), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_invariant_to_orthogonal_scaling_translation(debiased: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16))
    y = 2.5 * x @ _orthogonal(16, rng) + rng.normal(size=16) * 10
    assert linear_cka(x, y, debiased=debiased) == pytest.approx(1.0, abs=1e-10)


def test_cka_torch_and_float32_inputs() -> None:
    x, y = _related(500, 20, 10, seed=3)
    ref = linear_cka(x, y)
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-12)
    assert linear_cka(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(ref, rel=1e-5)
    assert linear_cka(x.astype(np.float32), y.astype(np.float32), debiased=True) == pytest.approx(
        linear_cka(x, y, debiased=True), rel=1e-4)


def test_cka_independent_is_small_and_debiased_near_zero() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 100)), rng.normal(size=(200, 100))
    assert linear_cka(x, y) > 0.3  # biased CKA inflates when d is comparable to n
    assert abs(linear_cka(x, y, debiased=True)) < 0.05


# ------------------------------------------------------------------ streaming grid
def _layers(seed: int, n: int = 60) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 6)) + 5.0
    xs = [base @ rng.normal(size=(6, w)) + 0.3 * rng.normal(size=(n, w)) for w in (5, 7, 5)]
    ys = [base @ rng.normal(size=(6, w)) + rng.normal(size=(n, w)) + 2.0 for w in (6, 4)]
    return xs, ys


def _split(xs: list[np.ndarray], ys: list[np.ndarray], cuts: list[int]) -> list[tuple[list, list]]:
    edges = [0, *cuts, xs[0].shape[0]]
    return [([x[a:b] for x in xs], [y[a:b] for y in ys]) for a, b in zip(edges[:-1], edges[1:], strict=True)]


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("cuts", [[], [30], [1, 2, 50], [7, 19, 33, 41]])
def test_cka_matrix_from_batches_equals_direct(debiased: bool, cuts: list[int]) -> None:
    xs, ys = _layers(5)
    want = np.array([[linear_cka(x, y, debiased=debiased) for y in ys] for x in xs])
    got = cka_matrix_from_batches(iter(_split(xs, ys, cuts)), debiased=debiased)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_cka_matrix_multipass_and_one_shot_limits() -> None:
    xs, ys = _layers(6)
    want = cka_matrix_from_batches(_split(xs, ys, [20, 40]))
    batches = _split(xs, ys, [20, 40])
    np.testing.assert_allclose(cka_matrix_from_batches(batches, max_accumulator_bytes=600), want, rtol=1e-12)
    with pytest.raises(HrsaError, match="re-iterable"):
        cka_matrix_from_batches(iter(batches), max_accumulator_bytes=600)


def test_cka_matrix_float32_torch_batches_and_3d_sides() -> None:
    xs, ys = _layers(7)
    want = cka_matrix_from_batches(_split(xs, ys, [30]))
    t32 = [([torch.tensor(x, dtype=torch.float32) for x in bx], np.stack([y.astype(np.float32) for y in by][:1]))
           for bx, by in _split(xs, ys, [30])]
    got = cka_matrix_from_batches(t32)
    np.testing.assert_allclose(got, want[:, :1], rtol=1e-5)


def test_cka_matrix_bad_batches() -> None:
    xs, ys = _layers(8)
    with pytest.raises(HrsaError, match="no batches"):
        cka_matrix_from_batches([])
    bad = _split(xs, ys, [30])
    bad[1] = (bad[1][0][:2], bad[1][1])
    with pytest.raises(HrsaError, match="layer count or widths"):
        cka_matrix_from_batches(bad)
    with pytest.raises(HrsaError, match="rows"):
        cka_matrix_from_batches([([xs[0]], [ys[0][:10]])])
    nan = [x.copy() for x in xs]
    nan[1][3, 2] = np.nan
    with pytest.raises(HrsaError, match="NaN"):
        cka_matrix_from_batches([(nan, ys)])


def test_streaming_pair_stats_equals_one_shot() -> None:
    x, y = _related(90, 8, 8, seed=9, offset=50.0)
    x[:, 3] = 7.0  # a constant coordinate, skipped by the correlation
    stats = StreamingPairStats()
    for s in range(0, 90, 25):
        stats.update(x[s:s + 25], y[s:s + 25])
    assert stats.n == 90
    assert stats.linear_cka() == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert stats.linear_cka(debiased=True) == pytest.approx(linear_cka(x, y, debiased=True), rel=1e-9)
    assert stats.dimwise_correlation() == pytest.approx(dimwise_correlation(x, y), rel=1e-10)
    ref = procrustes(x, y)
    sums_only = stats.procrustes()
    assert set(sums_only) == {"rvr", "rie", "sparsity", "rank"}
    assert sums_only["rvr"] == pytest.approx(ref["rvr"], rel=1e-8)
    two_pass = stats.procrustes([(x[:40], y[:40]), (x[40:], y[40:])])
    for key in ("rvr", "cosine", "rie", "sparsity"):
        assert two_pass[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-12)
    with pytest.raises(HrsaError, match="second pass"):
        stats.procrustes([(x[:40], y[:40])])


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**16), n=st.integers(8, 70), cuts=st.lists(st.floats(0.0, 1.0), max_size=4),
       offset=st.sampled_from([0.0, 10.0, 1e3]))
def test_streaming_equals_one_shot_for_any_split(seed: int, n: int, cuts: list[float], offset: float) -> None:
    x, y = _related(n, 5, 5, seed=seed, offset=offset)
    stats = StreamingPairStats()
    edges = sorted({0, n, *(int(c * n) for c in cuts)})
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        stats.update(x[a:b], y[a:b])
    xc, yc = x - x.mean(0), y - y.mean(0)  # the Gram form on raw data loses digits at offset 1e3; ours does not
    for debiased in (False, True):
        assert stats.linear_cka(debiased) == pytest.approx(_gram_cka(xc, yc, debiased), rel=1e-9, abs=1e-12)
    assert stats.procrustes()["rvr"] == pytest.approx(procrustes(x, y)["rvr"], rel=1e-6, abs=1e-9)


def test_streaming_pair_stats_errors() -> None:
    stats = StreamingPairStats()
    with pytest.raises(HrsaError, match="at least"):
        stats.linear_cka()
    stats.update(np.ones((5, 3)) * np.arange(5)[:, None], np.arange(20.0).reshape(5, 4))
    with pytest.raises(HrsaError, match="same width"):
        stats.procrustes()
    with pytest.raises(HrsaError, match="widths"):
        stats.update(np.ones((2, 2)), np.ones((2, 4)))


# ------------------------------------------------------------------ dimwise, Procrustes, probe, TwoNN
def test_dimwise_correlation_known_answers() -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(200, 5))
    scale = np.array([1.0, 2.0, 0.5, 3.0, 1.0])
    assert dimwise_correlation(x, x * scale + 4.0) == pytest.approx(1.0)
    assert dimwise_correlation(x, -x) == pytest.approx(-1.0)
    y = x.copy()
    y[:, 0] = 1.0  # constant in Y: skipped
    y[:, 1] = -x[:, 1]
    assert dimwise_correlation(x, y) == pytest.approx(2.0 / 4.0)
    with pytest.raises(HrsaError, match="same width"):
        dimwise_correlation(x, x[:, :3])
    with pytest.raises(HrsaError, match="constant"):
        dimwise_correlation(np.ones((4, 2)), x[:4, :2])


def test_procrustes_recovers_planted_rotation() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(400, 12)) + 2.0
    out = procrustes(x, x @ _orthogonal(12, rng))
    assert out["rvr"] == pytest.approx(0.0, abs=1e-20 + 1e-12)
    assert out["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < out["rie"] < 0.8 and out["sparsity"] == 0.0


def test_procrustes_signed_permutation_has_rie_one() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(300, 10))
    p = np.eye(10)[rng.permutation(10)] * rng.choice([-1.0, 1.0], size=10)
    out = procrustes(x, x @ p + 0.01 * rng.normal(size=(300, 10)))
    assert out["rie"] == pytest.approx(1.0, abs=1e-3)
    assert out["rvr"] < 1e-3
    exact = procrustes(x, x @ p)
    assert exact["rie"] == pytest.approx(1.0, abs=1e-9) and exact["sparsity"] == pytest.approx(0.9)


def test_procrustes_errors() -> None:
    x = np.random.default_rng(13).normal(size=(20, 4))
    with pytest.raises(HrsaError, match="same width"):
        procrustes(x, x[:, :3])
    with pytest.raises(HrsaError, match="aligned rows"):
        procrustes(x, x[:10])
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(HrsaError, match="NaN or inf"):
        procrustes(x, bad)


def test_input_errors_cka() -> None:
    x = np.random.default_rng(14).normal(size=(20, 4))
    with pytest.raises(HrsaError, match="aligned rows"):
        linear_cka(x, x[:19])
    with pytest.raises(HrsaError, match="NaN"):
        linear_cka(x, np.where(x > 1, np.nan, x))
    with pytest.raises(HrsaError, match="2-D"):
        linear_cka(x[0], x[0])
    with pytest.raises(HrsaError, match="zero variance"):
        linear_cka(np.ones((5, 2)), x[:5])
    with pytest.raises(HrsaError, match="4 rows"):
        linear_cka(x[:3], x[:3], debiased=True)


def _labelled(n_per: int = 40, seed: int = 15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per)
    x = rng.normal(size=(y.size, 6)) + 1.5 * np.eye(3, 6)[y]
    return x, y


def test_probe_transfer_identity_and_rotation() -> None:
    x, y = _labelled()
    same = probe_transfer(x, x, y)
    assert same["target_accuracy"] == same["source_accuracy"] > 0.5
    assert same["target_macro_f1"] == same["source_macro_f1"]
    rotated = probe_transfer(x, x @ _orthogonal(6, np.random.default_rng(0)), y)
    assert rotated["source_accuracy"] == same["source_accuracy"]
    assert rotated["target_accuracy"] < same["source_accuracy"]


def test_probe_transfer_errors() -> None:
    x, y = _labelled()
    with pytest.raises(HrsaError, match="same shape"):
        probe_transfer(x, x[:, :3], y)
    with pytest.raises(HrsaError, match="per class"):
        probe_transfer(x[:45], x[:45], y[:45])
    with pytest.raises(HrsaError, match="one entry per row"):
        probe_transfer(x, x, y[:-1])


def test_twonn_recovers_linear_subspace_dimension() -> None:
    rng = np.random.default_rng(16)
    z = rng.normal(size=(2000, 5))
    x = z @ rng.normal(size=(5, 50)) + 3.0
    assert twonn_dimension_of(x) == pytest.approx(5.0, rel=0.12)
    assert twonn_dimension_of(rng.normal(size=(2000, 2))) == pytest.approx(2.0, rel=0.12)


def test_twonn_from_distances_and_errors() -> None:
    rng = np.random.default_rng(17)
    d = 3
    # mu = r2/r1 is Pareto(d) distributed: 1/mu^d is uniform
    mu = rng.uniform(size=5000) ** (-1.0 / d)
    dist = np.stack([np.ones_like(mu), mu], axis=1)
    assert twonn_dimension(dist) == pytest.approx(d, rel=0.05)
    assert twonn_dimension(dist, method="mle") == pytest.approx(d, rel=0.05)
    with pytest.raises(HrsaError, match="sorted"):
        twonn_dimension(dist[:, ::-1])
    with pytest.raises(HrsaError, match="at least 2"):
        twonn_dimension(dist[:, :1])
