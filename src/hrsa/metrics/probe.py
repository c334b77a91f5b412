"""Linear readout transfer: a probe trained on the source model's features, applied unchanged to the target's."""

from __future__ import annotations

from typing import Any

import numpy as np

from hrsa.errors import HrsaError
from hrsa.tensors import to_numpy

#: shares of the stratified train / validation / test split (validation is held out; C is fixed at 1)
SPLIT = (0.8, 0.1, 0.1)


def _labels(y: Any, n: int) -> np.ndarray:
    lab = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise HrsaError(f"labels must be 1-D with one entry per row ({n}), got shape {lab.shape}")
    classes, counts = np.unique(lab, return_counts=True)
    if classes.size < 2:
        raise HrsaError("probe transfer needs at least 2 classes in labels")
    if counts.min() < 10:
        raise HrsaError(f"probe transfer needs at least 10 rows per class for a stratified 0.8/0.1/0.1 split; "
                        f"class {classes[counts.argmin()]!r} has {counts.min()}")
    return lab


def l2_rows(X: Any) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as `encode(normalize_embeddings=True)` gives them."""
    x = to_numpy(X, "X", np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def split_indices(y: np.ndarray, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 0.8 / 0.1 / 0.1 train / validation / test row indices."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(y.shape[0])
    try:
        train, rest = train_test_split(rows, test_size=SPLIT[1] + SPLIT[2], stratify=y, random_state=seed)
        val, test = train_test_split(rest, test_size=SPLIT[2] / (SPLIT[1] + SPLIT[2]), stratify=y[rest],
                                     random_state=seed)
    except ValueError as exc:
        raise HrsaError(f"probe transfer split failed: {exc}") from exc
    return train, val, test


def probe_predictions(X_src: Any, X_tgt: Any, y: Any, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true test labels, source predictions, target predictions): StandardScaler and LogisticRegression(C=1) are
    fitted on the source train split only and applied unchanged to both models' test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs, xt = to_numpy(X_src, "X_src", np.float64), to_numpy(X_tgt, "X_tgt", np.float64)
    if xs.shape != xt.shape:
        raise HrsaError(f"probe transfer needs X_src and X_tgt of the same shape, got {xs.shape} and {xt.shape}")
    lab = _labels(y, xs.shape[0])
    train, _, test = split_indices(lab, seed)
    scaler = StandardScaler().fit(xs[train])
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(scaler.transform(xs[train]), lab[train])
    return lab[test], clf.predict(scaler.transform(xs[test])), clf.predict(scaler.transform(xt[test]))


def probe_transfer(X_src: Any, X_tgt: Any, y: Any, seed: int = 42) -> dict[str, float]:
    """Accuracy and macro-F1 on the test split of the source-trained probe, on source and on target features."""
    from sklearn.metrics import accuracy_score, f1_score

    truth, ps, pt = probe_predictions(X_src, X_tgt, y, seed)
    return {
        "source_accuracy": float(accuracy_score(truth, ps)),
        "target_accuracy": float(accuracy_score(truth, pt)),
        "source_macro_f1": float(f1_score(truth, ps, average="macro")),
        "target_macro_f1": float(f1_score(truth, pt, average="macro")),
    }
