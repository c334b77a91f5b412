"""Local geometry: do the two models give a row the same nearest neighbours? (Jaccard and a rank-tolerant retention)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hrsa.errors import HrsaError
from hrsa.knn import KnnMetric, knn_graph


def _indices(neighbours: Any, name: str, k: int) -> np.ndarray:
    a = np.asarray(neighbours)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise HrsaError(f"{name} must be a 2-D integer array of neighbour indices, got {a.dtype} shape {a.shape}")
    if a.shape[1] < k:
        raise HrsaError(f"{name} holds {a.shape[1]} neighbours per row, {k} are needed")
    return a[:, :k]


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|A_r ∩ B_r| per row for rows of distinct indices: after sorting A_r ∪ B_r shared indices sit side by side."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(1)


def _check_rows(I_x: np.ndarray, I_y: np.ndarray) -> None:
    if I_x.shape[0] != I_y.shape[0]:
        raise HrsaError(f"neighbour lists must cover the same rows: {I_x.shape[0]} vs {I_y.shape[0]}")


def jaccard_per_row(I_x: Any, I_y: Any, k: int) -> np.ndarray:
    """Per-row Jaccard |A ∩ B| / (2k - |A ∩ B|) of the first k neighbours in I_x and in I_y."""
    a, b = _indices(I_x, "I_x", k), _indices(I_y, "I_y", k)
    _check_rows(a, b)
    inter = _overlap(a, b).astype(np.float64)
    return inter / (2 * k - inter)


def jaccard_from_indices(I_x: Any, I_y: Any, k: int) -> float:
    """Mean per-row kNN Jaccard from precomputed neighbour index arrays (best first; the first k columns are used)."""
    return float(jaccard_per_row(I_x, I_y, k).mean())


def retention_per_row(I_x: Any, I_y: Any, k: int) -> np.ndarray:
    """Symmetric neighbourhood retention per row: the share of one model's k neighbours found among the other's 2k,
    averaged over both directions. Unlike Jaccard it tolerates small rank shuffles, so Jaccard low but retention
    high means neighbourhoods were reordered locally, both low means they were replaced."""
    ax, ay = _indices(I_x, "I_x", 2 * k), _indices(I_y, "I_y", 2 * k)
    _check_rows(ax, ay)
    return (_overlap(ax[:, :k], ay).astype(np.float64) + _overlap(ay[:, :k], ax)) / (2.0 * k)


def retention_from_indices(I_x: Any, I_y: Any, k: int) -> float:
    """Mean symmetric retention of k neighbours within the other model's 2k (1: same, about 2k/n by chance)."""
    return float(retention_per_row(I_x, I_y, k).mean())


def knn_jaccard(X: Any, Y: Any, k: int = 10, metric: KnnMetric = "cosine") -> float:
    """Exact (FAISS) k nearest neighbours of each row within X and within Y, self excluded; mean per-row Jaccard.
    Chance level for unrelated rows is about k / (2n)."""
    return float(knn_jaccard_per_row(X, Y, k, metric).mean())


def knn_jaccard_per_row(X: Any, Y: Any, k: int = 10, metric: KnnMetric = "cosine") -> np.ndarray:
    """Per-row Jaccard of the exact kNN sets of X and Y (the units a bootstrap resamples)."""
    if int(np.shape(X)[0]) != int(np.shape(Y)[0]):
        raise HrsaError(f"X and Y must have aligned rows: X has {np.shape(X)[0]} rows, Y has {np.shape(Y)[0]}")
    return jaccard_per_row(knn_graph(X, k, metric)[1], knn_graph(Y, k, metric)[1], k)
