"""Per-row metrics under a block bootstrap: values are aggregated per block of whole texts first, then blocks are
reweighted (kNN Jaccard and retention, TwoNN ratios, probe predictions), so a replicate never recomputes a graph or
refits a probe."""

from __future__ import annotations

import numpy as np

from hrsa.errors import HrsaError
from hrsa.metrics.manifold import twonn_from_ratios


def block_sums(values: np.ndarray, blocks: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block sums (B x m) of the finite per-row values (n x m) and their counts (B x m)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    ok = np.isfinite(v)
    sums = np.zeros((n_blocks, v.shape[1]))
    counts = np.zeros((n_blocks, v.shape[1]))
    np.add.at(sums, blocks, np.where(ok, v, 0.0))
    np.add.at(counts, blocks, ok.astype(np.float64))
    return sums, counts


def weighted_means(sums: np.ndarray, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over the rows of the reweighted blocks, per weighting (R x m): sum_b w_b s_b / sum_b w_b c_b."""
    num, den = weights @ sums, weights @ counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def resampled_rows(blocks: np.ndarray, n_blocks: int, weights: np.ndarray) -> list[np.ndarray]:
    """Row indices of each weighting: the rows of block b repeated w_b times (for statistics that are not means)."""
    order = np.argsort(blocks, kind="stable")
    starts = np.searchsorted(blocks[order], np.arange(n_blocks + 1))
    members = [order[starts[b]:starts[b + 1]] for b in range(n_blocks)]
    out = []
    for w in np.asarray(weights).astype(np.int64):
        parts = [members[b] for b in np.flatnonzero(w) for _ in range(w[b])]
        out.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
    return out


def _twonn(mu: np.ndarray) -> float:
    try:
        return twonn_from_ratios(mu)
    except HrsaError:
        return float("nan")


def twonn_family(mu_left: np.ndarray, mu_right: np.ndarray, blocks: np.ndarray, n_blocks: int,
                 weights: np.ndarray) -> dict[str, np.ndarray]:
    """TwoNN dimension of each side and their absolute difference per weighting (rows of blocks repeated)."""
    out: dict[str, list[float]] = {"left": [], "right": [], "absdiff": []}
    for idx in resampled_rows(blocks, n_blocks, weights):
        left, right = _twonn(mu_left[idx]), _twonn(mu_right[idx])
        out["left"].append(left)
        out["right"].append(right)
        out["absdiff"].append(abs(left - right))
    return {k: np.asarray(v) for k, v in out.items()}


def probe_family(truth: np.ndarray, pred_source: np.ndarray, pred_target: np.ndarray, blocks: np.ndarray,
                 n_blocks: int, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 (sklearn's: over classes in the truth or the predictions) of both sides per weighting,
    from per-block confusion counts of the test rows (blocks: the block of each test row)."""
    classes = np.unique(np.concatenate([truth, pred_source, pred_target]))
    t = np.searchsorted(classes, truth)
    out: dict[str, np.ndarray] = {}
    for side, pred in (("source", pred_source), ("target", pred_target)):
        conf = np.zeros((n_blocks, classes.size, classes.size))
        np.add.at(conf, (blocks, t, np.searchsorted(classes, pred)), 1.0)
        c = np.einsum("rb,bij->rij", np.asarray(weights, dtype=np.float64), conf)
        tp = np.einsum("rii->ri", c)
        total = c.sum((1, 2))
        den = c.sum(2) + c.sum(1)  # 2 tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), np.nan)
            out[f"{side}_accuracy"] = np.where(total > 0, tp.sum(1) / np.where(total > 0, total, 1.0), np.nan)
        present = den > 0
        out[f"{side}_macro_f1"] = np.where(present.any(1), np.nansum(f1, 1) / np.maximum(present.sum(1), 1), np.nan)
    return out
