"""HRSA of one comparison on one probe set: every registered metric at every shared layer, plus the L x L CKA grid.

Representation metrics (CKA, dimension-wise correlation, Procrustes) read the activation shards; geometry metrics
(kNN Jaccard, TwoNN) read the kNN graphs built once per model and layer; function metrics (probe transfer) need the
probe set's labels. Each diagonal score carries a bootstrap interval and a permutation chance level where defined.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import check_aligned, iter_layer, load_layer, load_rows, read_meta
from hrsa.errors import HrsaError

COLUMNS = ["comparison", "layer_x", "layer_y", "metric", "value", "ci_low", "ci_high", "null_mean", "null_q95", "n"]


def aligned_batches(sources: list[tuple[Path, str]], batch_rows: int) -> Iterator[list[np.ndarray]]:
    """Equal-size row batches from several layer files with the same rows (re-chunked across row groups)."""
    iters = [iter_layer(root, layer, batch_rows) for root, layer in sources]
    buffers: list[list[np.ndarray]] = [[] for _ in sources]
    sizes = [0] * len(sources)
    exhausted = False
    while not exhausted:
        for i, it in enumerate(iters):
            while sizes[i] < batch_rows:
                nxt = next(it, None)
                if nxt is None:
                    exhausted = True
                    break
                buffers[i].append(nxt)
                sizes[i] += len(nxt)
        take = min(sizes)
        if take == 0:
            return
        out = []
        for i in range(len(sources)):
            block = np.concatenate(buffers[i])
            out.append(block[:take])
            buffers[i], sizes[i] = [block[take:]], len(block) - take
        yield out


def cka_grid(left: Path, right: Path, layers: list[str], batch_rows: int = 16384) -> np.ndarray:
    """L x L linear CKA streamed from the shards: d x d statistics accumulated batch by batch."""
    from hrsa.metrics import cka_matrix_from_batches

    sources = [(left, layer) for layer in layers] + [(right, layer) for layer in layers]
    n = len(layers)
    batches = ((b[:n], b[n:]) for b in aligned_batches(sources, batch_rows))
    return np.asarray(cka_matrix_from_batches(batches))


def probe_labels(probe_path: Path, text_ids: np.ndarray) -> np.ndarray | None:
    """Labels of the rows (by text id), or None when the probe set has none."""
    rows = [json.loads(line) for line in probe_path.read_text().splitlines() if line.strip()]
    by_id = {int(r.get("id", i)): r.get("label") for i, r in enumerate(rows)}
    labels = [by_id.get(int(t)) for t in text_ids]
    if any(lab is None for lab in labels):
        return None
    return np.asarray(labels)


def _knn(path: Path, row_hash: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        if str(z["row_hash"]) != row_hash:
            raise HrsaError(f"kNN graph {path} was built from other activations (row hash differs); rebuild it")
        return z["indices"], z["similarities"]


def compare(
    left: Path,
    right: Path,
    knn_left: Path,
    knn_right: Path,
    probe_path: Path | None,
    settings: dict[str, Any],
    comparison: str,
) -> list[dict[str, Any]]:
    """All HRSA rows of one comparison (long format, COLUMNS)."""
    from hrsa import metrics, stats

    ml, mr = read_meta(left), read_meta(right)
    check_aligned(ml, mr)
    layers = [layer for layer in ml["layers"] if layer in mr["layers"]]
    n_boot, n_perm = int(settings.get("bootstrap", 0)), int(settings.get("permutations", 0))
    seed = int(settings.get("seed", 0))
    ks = sorted(int(k) for k in settings.get("knn_k", [10]))
    rows: list[dict[str, Any]] = []

    def add(lx: str, ly: str, metric: str, value: float, n: int, **extra: float) -> None:
        row = dict.fromkeys(COLUMNS, float("nan"))
        row.update(comparison=comparison, layer_x=lx, layer_y=ly, metric=metric, value=float(value), n=n, **extra)
        rows.append(row)

    grid = cka_grid(left, right, layers)
    for i, lx in enumerate(layers):
        for j, ly in enumerate(layers):
            if i != j:
                add(lx, ly, "cka-linear-biased", grid[i, j], ml["n_rows"])

    text_ids, _ = load_rows(left, layers[0])
    labels = probe_labels(probe_path, text_ids) if probe_path is not None else None
    for li, layer in enumerate(layers):
        X, Y = load_layer(left, layer), load_layer(right, layer)
        n = len(X)
        for name, metric in metrics.REGISTRY.items():
            if metric.level != "representation" or metric.needs_labels:
                continue
            if name.startswith("procrustes") and X.shape[1] != Y.shape[1]:
                continue
            value = grid[li, li] if name == "cka-linear-biased" else metric.fn(X, Y)
            extra = {}
            if n_boot:
                lo, hi = stats.bootstrap_ci(metric.fn, X, Y, n_resamples=n_boot, seed=seed)
                extra.update(ci_low=lo, ci_high=hi)
            if n_perm:
                null = stats.permutation_null(metric.fn, X, Y, n_permutations=n_perm, seed=seed)
                extra.update(null_mean=null["mean"], null_q95=null["q95"])
            add(layer, layer, name, value, n, **extra)
        Il, Sl = _knn(knn_left / f"layer={layer}.npz", ml["row_hash"])
        Ir, Sr = _knn(knn_right / f"layer={layer}.npz", mr["row_hash"])
        for k in ks:
            if k > Il.shape[1]:
                continue
            jac = metrics.jaccard_from_indices(Il[:, :k], Ir[:, :k], k)
            add(layer, layer, f"knn-jaccard-k{k}-cosine", jac, n, null_mean=k / (n - 1))
        add(layer, layer, "twonn-id-left", metrics.twonn_dimension(_distances(Sl)), n)
        add(layer, layer, "twonn-id-right", metrics.twonn_dimension(_distances(Sr)), n)
        if labels is not None and len(set(labels)) > 1:
            res = metrics.probe_transfer(X, Y, labels, seed=seed)
            for key, value in res.items():
                add(layer, layer, f"probe-{key.replace('_', '-')}", value, n)
    return rows


def _distances(similarities: np.ndarray) -> np.ndarray:
    """Euclidean distances between unit vectors from cosine similarities (sorted ascending per row)."""
    return np.sqrt(np.clip(2.0 - 2.0 * similarities.astype(np.float64), 0.0, None))


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> None:
    import pandas as pd

    from hrsa.io import atomic_path

    with atomic_path(out) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_parquet(tmp, index=False)
