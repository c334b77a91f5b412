"""Manifold geometry from kNN graphs: TwoNN intrinsic dimension (Facco et al. 2017, Sci. Rep. 7:12140)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from hrsa.errors import HrsaError
from hrsa.knn import KnnMetric, knn_graph
from hrsa.tensors import to_numpy

#: Facco et al. fit the line on the smallest 90% of the ratios: the tail is dominated by noise and boundary effects
TWONN_FRACTION = 0.9
#: chordal distance (unit sphere) up to which a stored float32 graph's first neighbour coincides with its row: the
#: float32 inner product of two identical unit rows misses 1 by a few ulps (distance ~5e-4), more at large widths
COINCIDENT_DISTANCE = 1e-2
#: share of rows with a coincident first neighbour above which a layer's TwoNN and kNN rows are flagged
DUPLICATE_SHARE = 0.01
#: the flag: TwoNN's r2 / r1 is undefined for those rows (they are left out; the rest sees ties r2 = r1), and which
#: of several coinciding neighbours a kNN list holds is arbitrary (FAISS breaks ties by k and order)
DUPLICATE_FLAG = "duplicate-rows"


def coincident_share(distances: Any, tol: float = COINCIDENT_DISTANCE) -> float:
    """Share of rows whose first neighbour (column 0 of sorted distances, self excluded) lies within `tol`."""
    d = np.asarray(distances, dtype=np.float64)
    return float((d[:, 0] <= tol).mean()) if d.shape[0] else 0.0


def duplicate_flag(*distances: Any, tol: float = COINCIDENT_DISTANCE) -> str:
    """DUPLICATE_FLAG when more than DUPLICATE_SHARE of the rows of any of the graphs coincide with a neighbour."""
    return DUPLICATE_FLAG if any(coincident_share(d, tol) > DUPLICATE_SHARE for d in distances) else ""


def twonn_ratios(distances: Any, tol: float = 0.0) -> np.ndarray:
    """mu = r2 / r1 per row from sorted neighbour distances (n x k, k >= 2, self excluded); rows whose first
    distance is at most `tol` (duplicates: 0 in float64, float32 noise in a stored graph) give NaN and are left out
    of the estimate, as Facco et al.'s estimator is undefined for coincident points."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] < 2:
        raise HrsaError(f"TwoNN needs at least 2 neighbour distances per row, got shape {d.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise HrsaError("TwoNN distances must be finite and non-negative")
    r1, r2 = d[:, 0], d[:, 1]
    if (r2 < r1).any():
        raise HrsaError("TwoNN distances must be sorted ascending per row")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r1 > tol, r2 / np.where(r1 > tol, r1, 1.0), np.nan)


def twonn_from_ratios(mu: Any, fraction: float = TWONN_FRACTION, method: Literal["fit", "mle"] = "fit") -> float:
    """Intrinsic dimension from the ratios mu (NaN entries ignored). "fit": Facco's least-squares line through the
    origin of -log(1 - F(mu)) against log(mu) over the smallest `fraction` (in (0, 1): F(mu_i) = i / N is 1 at the
    largest ratio, whose -log(1 - F) is infinite); "mle": (N - 1) / sum(log mu). Ratios that are all 1 (ties
    r2 = r1) determine no dimension: an HrsaError, not inf."""
    if not 0.0 < fraction < 1.0:
        raise HrsaError(f"TwoNN fraction must be in (0, 1), got {fraction}: the largest ratio has F = 1 and "
                        "-log(1 - F) = inf")
    m = np.asarray(mu, dtype=np.float64)
    m = np.sort(m[np.isfinite(m)])
    if m.size < 3:
        raise HrsaError(f"TwoNN needs at least 3 rows with distinct first neighbours, got {m.size}")
    x = np.log(m)
    if method == "mle":
        s = x.sum()
        if s <= 0:
            raise HrsaError(f"TwoNN: all {m.size} ratios r2 / r1 are 1 (tied neighbours): no dimension")
        return float((m.size - 1) / s)
    if method != "fit":
        raise HrsaError(f"TwoNN method must be 'fit' or 'mle', got {method!r}")
    keep = max(2, int(np.floor(m.size * fraction)))
    f_emp = np.arange(1, m.size + 1, dtype=np.float64) / m.size
    x, y = x[:keep], -np.log1p(-f_emp[:keep])
    sxx = float(x @ x)
    if sxx <= 0:
        raise HrsaError(f"TwoNN: the smallest {keep} ratios r2 / r1 are all 1 (tied neighbours): no dimension")
    return float(x @ y / sxx)


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
