"""HRSA of one comparison on one probe set: every registered metric at every shared layer, plus the L x L CKA grid.

Representation metrics (CKA, dimension-wise correlation, Procrustes) read the activation shards; geometry metrics
(kNN Jaccard, TwoNN) read the kNN graphs built once per model and layer; function metrics (probe transfer) need the
probe set's labels. Each diagonal score carries a bootstrap interval and a permutation chance level where defined.
"""

from __future__ import annotations


from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import check_aligned, iter_layer, load_layer, load_rows, read_meta
from hrsa.data import read_jsonl
from hrsa.errors import HrsaError
from hrsa.knn import graph_distances, read_graph

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
    rows = list(read_jsonl(probe_path))
    by_id = {int(r.get("id", i)): r.get("label") for i, r in enumerate(rows)}
    labels = [by_id.get(int(t)) for t in text_ids]
    if any(lab is None for lab in labels):
        return None
    return np.asarray(labels)


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
    # Function level (linear probe transfer) runs on sentence-level probe sets, as the study's AG News probe does.
    labels = probe_labels(probe_path, text_ids) if probe_path is not None and ml["granularity"] == "sentence" else None
    if labels is not None and min(np.unique(labels, return_counts=True)[1]) < 10:
        labels = None  # the stratified 0.8/0.1/0.1 probe split needs at least 10 rows per class
    for li, layer in enumerate(layers):
        X, Y = load_layer(left, layer), load_layer(right, layer)
        n = len(X)
        Il, Sl = read_graph(knn_left / f"layer={layer}.npz", left, layer)
        Ir, Sr = read_graph(knn_right / f"layer={layer}.npz", right, layer)
        for name, metric in metrics.REGISTRY.items():
            hp = metric_hp(metric, Il, Ir, labels, seed)
            if hp is None or (name.startswith("procrustes") and X.shape[1] != Y.shape[1]):
                continue
            # probe metrics: no permutation null (each permutation refits the probe); source accuracy is the reference
            perms = n_perm if metric.row_paired and not metric.needs_labels else 0
            rec = stats.score_with_uncertainty(metric, X, Y, n_boot=n_boot, n_perm=perms, seed=seed, **hp)
            value = grid[li, li] if name == "cka-linear-biased" else rec["score"]
            add(layer, layer, name, value, n, ci_low=rec.get("ci_low", np.nan), ci_high=rec.get("ci_high", np.nan),
                null_mean=rec.get("null_mean", np.nan), null_q95=rec.get("null_quantile", np.nan))
        add(layer, layer, "twonn-id-left", metrics.twonn_dimension(graph_distances(Sl, "cosine")), n)
        add(layer, layer, "twonn-id-right", metrics.twonn_dimension(graph_distances(Sr, "cosine")), n)
    return rows


def metric_hp(metric: Any, Il: np.ndarray, Ir: np.ndarray, labels: np.ndarray | None, seed: int) -> dict | None:
    """Hyper-parameters of one registry metric here, or None when it cannot run (no labels, graph too small)."""
    hp: dict[str, Any] = {}
    if metric.needs_labels:
        if labels is None:
            return None
        hp.update(labels=labels)  # the probe split uses its own fixed seed (42)
    if "indices_x" in metric.params:
        if min(Il.shape[1], Ir.shape[1]) < metric.graph_k:
            return None  # the configured knn_k builds smaller graphs than this metric needs
        hp.update(indices_x=Il, indices_y=Ir)
    return hp


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> None:
    import pandas as pd

    from hrsa.io import atomic_path

    with atomic_path(out) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_parquet(tmp, index=False)
