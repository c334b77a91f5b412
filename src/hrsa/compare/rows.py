"""The output of one comparison: its rows (long format, COLUMNS) with intervals and chance levels, the rows of each
metric family from its statistics (block moments, stored kNN graphs, one probe fit), the Parquet table writer, and the
Procrustes map saved beside the table for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import load_layer
from hrsa.compare.plan import Replicates
from hrsa.errors import DataError, HrsaError
from hrsa.io import atomic_path
from hrsa.knn import read_graph

COLUMNS = ["comparison", "layer_x", "layer_y", "metric", "value", "ci_low", "ci_high", "null_mean", "null_q95", "n",
           "bias", "se", "ci_method", "resample_unit", "n_units", "null_kind", "flag"]
#: the written table: COLUMNS with the probe set, and layers as int64 (POOLED_INDEX for `pooled`) beside their names
TABLE_COLUMNS = ["comparison", "probe", "layer_x", "layer_y", "layer_x_name", "layer_y_name", *COLUMNS[3:]]
POOLED_INDEX = -1
NULL_RV = "rv-exact-moments"
NULL_PERM = "row-permutation"


class Rows:
    """The output table under construction."""

    def __init__(self, comparison: str, unit: str, n_units: int, confidence: float) -> None:
        self.rows: list[dict[str, Any]] = []
        self.comparison, self.unit, self.n_units, self.confidence = comparison, unit, n_units, confidence
        self.maps: dict[str, np.ndarray] = {}  # layer -> Procrustes map O* of the point estimate

    def add(self, lx: str, ly: str, metric: str, value: float, n: int, **extra: Any) -> None:
        row: dict[str, Any] = dict.fromkeys(COLUMNS, float("nan"))
        row.update(comparison=self.comparison, layer_x=lx, layer_y=ly, metric=metric, value=float(value), n=n,
                   ci_method="none", resample_unit="", n_units=0, null_kind="none", flag="")
        row.update(extra)
        self.rows.append(row)

    def scored(self, layer: str, metric: Any, n: int, values: np.ndarray | float, reps: Replicates | None,
               flag: str = "", **null: Any) -> None:
        """One diagonal row; with `reps` the values hold point, bootstrap and jackknife (Replicates.stacked).
        Interval ends are clipped to the range the registry declares for the metric."""
        from hrsa.stats import bca_interval

        if reps is None:
            point = float(np.asarray(values, dtype=np.float64).ravel()[0])
            self.add(layer, layer, metric.name, point, n, flag=flag, **null)
            return
        point, boot, jack = reps.split(np.asarray(values))
        ci = bca_interval(point, boot, jack, self.confidence)
        flags = ";".join(f for f in (flag, ci["flag"]) if f)
        lo, hi = metric.bounds
        ci["low"], ci["high"] = (float(np.clip(ci[k], lo, hi)) for k in ("low", "high"))
        self.add(layer, layer, metric.name, point, n, ci_low=ci["low"], ci_high=ci["high"], bias=ci["bias"],
                 se=ci["se"], ci_method=f"{ci['method']}(R={len(reps.boot)})", resample_unit=self.unit,
                 n_units=self.n_units, flag=flags, **null)


def _perm_null(metric: Any, indices: tuple[np.ndarray, np.ndarray], n_perm: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = indices[0].shape[0]
    perms = [rng.permutation(n) for _ in range(n_perm)]
    null = np.asarray(metric.null(None, None, perms, indices_x=indices[0], indices_y=indices[1]), dtype=np.float64)
    q = 0.95 if metric.higher_is_more_similar else 0.05
    return {"null_mean": float(null.mean()), "null_q95": float(np.quantile(null, q)), "null_kind": NULL_PERM}


# ------------------------------------------------------------------------------------------------ metric families
def representation_rows(out: Rows, layer: str, n: int, stats: Any, planned: list[Any], reps: Replicates | None,
                        procrustes_ci: bool, procrustes_boot: int | None = None) -> None:
    """CKA, dim-wise correlation and Procrustes rows of one layer from its block statistics; Procrustes intervals use
    the first `procrustes_boot` bootstrap replicates (None: all; one d x d SVD each)."""
    flag = "constant-layer" if stats.const_x or stats.const_y else ""
    fams = {m.family for m in planned}
    weights = reps.stacked(True) if reps is not None else np.ones((1, stats.n_blocks))
    preps = reps  # the replicates of the Procrustes intervals
    values: dict[str, Any] = {}
    pflag = ""  # Procrustes rows of a layer whose centred X'Y is rank-deficient: part of O* is the identity rule
    if "cka" in fams:
        values["cka"] = stats.cka(weights)
    if "dimwise" in fams and stats.diag_xy is not None:
        values["dimwise"] = {"r": stats.dimwise(weights)}
    if "procrustes" in fams and stats.cross is not None:
        point = stats.procrustes(np.ones((1, stats.n_blocks)), keep_map=True)
        out.maps[layer] = stats.map
        if reps is not None and procrustes_boot is not None:
            preps = Replicates(reps.n_blocks, reps.boot[:procrustes_boot], reps.jack)
        if procrustes_ci and preps is not None and len(preps.boot):  # SVDs in the activations' precision
            more = stats.procrustes(preps.stacked(True)[1:], svd_dtype=stats.dtype)
            point = {k: np.concatenate([point[k], more[k]]) for k in point}
        values["procrustes"] = point
        pflag = "rank-deficient" if point["rank"][0] < stats.cross.shape[-1] else ""
    from hrsa.stats import normal_null_q95

    for m in planned:
        if m.family not in values:
            continue
        null: dict[str, Any] = {}
        if m.family == "cka" and m.stat == "biased":
            mean, var = stats.rv_null()
            null = {"null_mean": mean, "null_q95": normal_null_q95(mean, var), "null_kind": NULL_RV}
        with_ci = reps is not None and m.interval and (
            m.family != "procrustes" or (procrustes_ci and preps is not None and len(preps.boot) > 0))
        v = values[m.family][m.stat]
        fl = ";".join(f for f in (flag, pflag if m.family == "procrustes" else "") if f)
        used = preps if m.family == "procrustes" else reps
        out.scored(layer, m, n, v, used if with_ci else None, flag=fl, **null)


def graph_rows(out: Rows, layer: str, n: int, planned: list[Any], paths: tuple[Path, Path, Path, Path],
               blocks: np.ndarray, reps: Replicates | None, n_perm: int, seed: int) -> None:
    """kNN Jaccard / retention and TwoNN rows of one layer, from the stored graphs. A layer where more than
    DUPLICATE_SHARE of a graph's rows coincide with their first neighbour (layer 0 of a token probe: one vector per
    token id) has its kNN rows, and the TwoNN rows of that side, flagged DUPLICATE_FLAG; TwoNN leaves those rows out."""
    from hrsa.knn import graph_distances
    from hrsa.metrics import jaccard_per_row, retention_per_row, twonn_ratios
    from hrsa.metrics.manifold import COINCIDENT_DISTANCE, duplicate_flag
    from hrsa.metrics.units import block_sums, twonn_family, weighted_means

    graph = [m for m in planned if m.family in ("knn", "twonn")]
    if not graph:
        return
    left, right, knn_left, knn_right = paths
    # each graph is checked against its activations (model, layer, content hash, k; a damaged file is a named error)
    il, sl = read_graph(knn_left / f"layer={layer}.npz", left, layer)
    ir, sr = read_graph(knn_right / f"layer={layer}.npz", right, layer)
    rows = _shared_graph_rows(knn_left / f"layer={layer}.npz", knn_right / f"layer={layer}.npz")
    if rows is not None:  # capped graphs (hrsa.knn_max_rows): per-row scores belong to the sampled rows' texts
        blocks, n = blocks[rows], len(rows)
    need = max([m.graph_k for m in graph] + [2])
    for path, idx in ((knn_left, il), (knn_right, ir)):
        if idx.shape[1] < need:
            raise HrsaError(f"kNN graph {path}/layer={layer}.npz holds {idx.shape[1]} neighbours per row, but "
                            f"hrsa.knn_k needs {need}: rebuild the graphs (or lower hrsa.knn_k)")
    n_blocks = reps.n_blocks if reps is not None else 1
    weights = reps.stacked(True) if reps is not None else np.ones((1, 1))
    dist = [graph_distances(s[:, :2], "cosine") for s in (sl, sr)]
    dup = {"left": duplicate_flag(dist[0]), "right": duplicate_flag(dist[1]), "both": duplicate_flag(*dist)}
    knn = [m for m in graph if m.family == "knn"]
    if knn:
        per_row = np.stack([(jaccard_per_row if m.stat.startswith("jaccard") else retention_per_row)(
            il, ir, int(m.stat.split("@")[1])) for m in knn], axis=1)
        sums, counts = block_sums(per_row, blocks if reps is not None else np.zeros(n, np.int64), n_blocks)
        vals = weighted_means(sums, counts, weights)
        for c, m in enumerate(knn):
            null = _perm_null(m, (il, ir), n_perm, seed) if n_perm > 0 else {}
            out.scored(layer, m, n, vals[:, c], reps, flag=dup["both"], **null)
    twonn = [m for m in graph if m.family == "twonn"]
    if twonn:
        mu = [twonn_ratios(d, COINCIDENT_DISTANCE) for d in dist]
        fam = twonn_family(mu[0], mu[1], blocks if reps is not None else np.zeros(n, np.int64), n_blocks, weights)
        for m in twonn:
            out.scored(layer, m, n, fam[m.stat], reps, flag=dup.get(m.stat, dup["both"]))


def _shared_graph_rows(left: Path, right: Path) -> np.ndarray | None:
    """The activation rows both graphs were built over (None: every row); graphs over different rows are an error."""
    from hrsa.knn import graph_rows as rows_of

    rl, rr = rows_of(left), rows_of(right)
    if (rl is None) != (rr is None) or (rl is not None and rr is not None and not np.array_equal(rl, rr)):
        raise HrsaError(f"kNN graphs {left} and {right} were built over different rows (hrsa.knn_max_rows or its "
                        "seed differ); rebuild both with the same settings")
    return rl


def probe_rows(out: Rows, layer: str, n: int, planned: list[Any], roots: tuple[Path, Path], labels: np.ndarray,
               blocks: np.ndarray, reps: Replicates | None, order: np.ndarray | None = None) -> None:
    """Probe transfer rows of one layer: one probe fit, test rows resampled by their blocks.

    Layer `pooled` is the study's headline probe: each model's sentence embedding as `encode` gives it (an embedder's
    own head; a raw backbone's mean-pooled last hidden state), L2-normalised, then StandardScaler + LogisticRegression
    fitted on the source's 0.8/0.1/0.1 train split (seed 42) and applied unchanged to the target. Numbered layers
    (the mean of hidden layer L, unnormalised) are the extra per-layer rows. `order` puts the stored rows in probe
    (text id) order first, so the split is the probe set's, the same for every tokenizer."""
    from hrsa.grid import POOLED
    from hrsa.metrics import probe_predictions
    from hrsa.metrics.probe import l2_rows, split_indices
    from hrsa.metrics.units import probe_family

    probe = [m for m in planned if m.family == "probe"]
    X, Y = load_layer(roots[0], layer), load_layer(roots[1], layer)
    if X.shape != Y.shape:
        return
    if order is not None:
        X, Y, labels, blocks = X[order], Y[order], np.asarray(labels)[order], blocks[order]
    if layer == POOLED:
        X, Y = l2_rows(X), l2_rows(Y)
    truth, ps, pt = probe_predictions(X, Y, labels)
    _, _, test = split_indices(np.asarray(labels))
    n_blocks = reps.n_blocks if reps is not None else 1
    weights = reps.stacked(True) if reps is not None else np.ones((1, 1))
    tb = blocks[test] if reps is not None else np.zeros(len(test), np.int64)
    fam = probe_family(truth, ps, pt, tb, n_blocks, weights)
    for m in probe:
        out.scored(layer, m, n, fam[m.stat], reps)


# ------------------------------------------------------------------------------------------------ files
def layer_index(name: str) -> int:
    """A layer name as the table's int64 layer: `0`..`L` as numbers, `pooled` as POOLED_INDEX (-1)."""
    if name == "pooled":
        return POOLED_INDEX
    if not name.isdigit():
        raise HrsaError(f"layer {name!r} is neither a hidden-state index nor 'pooled'")
    return int(name)


def write_rows(rows: list[dict[str, Any]], out: str | Path, probe: str = "") -> None:
    """The rows as one Parquet table with TABLE_COLUMNS (written atomically): `probe` names the probe set, `layer_x`
    and `layer_y` are int64 (hidden-state index; -1 = pooled, so the layers sort numerically) and `layer_x_name`,
    `layer_y_name` keep the names (`0`..`L`, `pooled`)."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=COLUMNS)
    names = {side: df[f"layer_{side}"].astype(str) for side in ("x", "y")}
    for side, name in names.items():
        df[f"layer_{side}"] = name.map(layer_index).astype("int64")
        df[f"layer_{side}_name"] = name
    df["probe"] = probe
    with atomic_path(out) as tmp:
        df[TABLE_COLUMNS].to_parquet(tmp, index=False)


def save_map(path: Path, maps: dict[str, np.ndarray], layers: list[str]) -> None:
    """The Procrustes map O* of the last numbered layer for the report (an empty map when no layer had one, e.g.
    models of different widths)."""

    numbered = [layer for layer in layers if layer.isdigit() and layer in maps]
    last = numbered[-1] if numbered else ""
    save_procrustes_map(path, maps[last] if last else np.zeros((0, 0)), last)


def load_procrustes_map(path: Path) -> dict[str, Any]:
    """The Procrustes map compare must save beside its table: `{probe}/{comparison}.procrustes.npz` holding `O`
    (d x d float, the orthogonal map of the last numbered layer, X O ≈ Y) and `layer` (its layer name)."""
    with np.load(path) as z:
        if "O" not in z or "layer" not in z:
            raise DataError(f"Procrustes map {path} lacks O or layer; rerun its compare job")
        return {"O": np.asarray(z["O"], dtype=np.float64), "layer": str(z["layer"])}


def save_procrustes_map(path: Path, rotation: Any, layer: str) -> None:
    """Write the map load_procrustes_map reads (for compare: the last numbered layer's O*, atomically)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, O=np.asarray(rotation, dtype=np.float32), layer=np.array(str(layer)))
