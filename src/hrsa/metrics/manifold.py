"""Manifold geometry from kNN graphs: TwoNN intrinsic dimension (Facco et al. 2017, Sci. Rep. 7:12140)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from hrsa.errors import HrsaError
from hrsa.knn import KnnMetric, knn_graph
from hrsa.tensors import to_numpy

#: Facco et al. fit the line on the smallest 90% of the ratios: the tail is dominated by noise and boundary effects
TWONN_FRACTION = 0.9


def twonn_ratios(distances: Any) -> np.ndarray:
    """mu = r2 / r1 per row from sorted neighbour distances (n x k, k >= 2, self excluded); rows whose first
    distance is 0 (duplicates) give NaN."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 2:
        raise HrsaError(f"TwoNN needs at least 2 neighbour distances per row, got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise HrsaError("TwoNN distances must be finite and non-negative")
    r1, r2 = d[:, 0], d[:, 1]
    if (r2 < r1).any():
        raise HrsaError("TwoNN distances must be sorted ascending per row")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r1 > 0, r2 / np.where(r1 > 0, r1, 1.0), np.nan)


def twonn_from_ratios(mu: Any, fraction: float = TWONN_FRACTION, method: Literal["fit", "mle"] = "fit") -> float:
    """Intrinsic dimension from the ratios mu (NaN entries ignored). "fit": Facco's least-squares line through the
    origin of -log(1 - F(mu)) against log(mu) over the smallest `fraction`; "mle": (N - 1) / sum(log mu)."""
    m = np.asarray(mu, dtype=np.float64)
    m = np.sort(m[np.isfinite(m)])
    if m.size < 3:
        raise HrsaError(f"TwoNN needs at least 3 rows with distinct first neighbours, got {m.size}")
    x = np.log(m)
    if method == "mle":
        s = x.sum()
        return float((m.size - 1) / s) if s > 0 else float("inf")
    if method != "fit":
        raise HrsaError(f"TwoNN method must be 'fit' or 'mle', got {method!r}")
    keep = max(2, int(np.floor(m.size * fraction)))
    f_emp = np.arange(1, m.size + 1, dtype=np.float64) / m.size
    x, y = x[:keep], -np.log1p(-f_emp[:keep])
    sxx = float(x @ x)
    return float(x @ y / sxx) if sxx > 0 else float("inf")


def twonn_dimension(distances: Any, fraction: float = TWONN_FRACTION, method: Literal["fit", "mle"] = "fit") -> float:
    """TwoNN intrinsic dimension from the sorted Euclidean neighbour distances of a kNN graph (first two columns)."""
    return twonn_from_ratios(twonn_ratios(distances), fraction, method)


def exact_two_nn_distances(X: Any, metric: KnnMetric = "l2") -> np.ndarray:
    """Distances to the two nearest other rows: FAISS picks 3 candidates, float64 recomputes and sorts them
    (float32 distances lose the ratio r2/r1 precision TwoNN lives on)."""
    _, idx = knn_graph(X, 3 if np.shape(X)[0] > 3 else 2, metric)
    xb = to_numpy(X, "X", np.float64)
    if metric == "cosine":
        xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    step = max(1, (1 << 25) // (8 * idx.shape[1] * xb.shape[1]))  # bounds the rows x candidates x d temporary
    d = np.concatenate([np.linalg.norm(xb[idx[s:s + step]] - xb[s:s + step, None, :], axis=2)
                        for s in range(0, xb.shape[0], step)])
    return np.sort(d, axis=1)[:, :2]


def twonn_dimension_of(X: Any, metric: KnnMetric = "l2", fraction: float = TWONN_FRACTION,
                       method: Literal["fit", "mle"] = "fit") -> float:
    """TwoNN intrinsic dimension of the rows of X (Euclidean, or chordal on the unit sphere for cosine)."""
    return twonn_dimension(exact_two_nn_distances(X, metric), fraction, method)


def twonn_ratios_of(X: Any, metric: KnnMetric = "l2") -> np.ndarray:
    """Per-row TwoNN ratios of X (the units a bootstrap resamples)."""
    return twonn_ratios(exact_two_nn_distances(X, metric))
