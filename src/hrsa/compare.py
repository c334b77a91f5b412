"""HRSA of one comparison on one probe set: every planned metric at every shared layer, plus the L x L CKA grid.

One streaming pass over both models' shards accumulates, per block of whole texts, the additive moments every
representation metric needs (hrsa.metrics.blocks); the L x L grid is fed from the same batches. Metrics are planned
from the registry's declarations (family, needs), and each family is computed once per replicate: one SVD serves the
four Procrustes statistics, one probe fit every probe statistic, one graph read the kNN metrics and TwoNN.

Uncertainty (columns beside each value): a cluster bootstrap over blocks of whole texts (sentences for sentence-level
probes) recombines block moments, BCa intervals with the bootstrap bias and a `flag` where the interval cannot be taken
at face value; the permutation null of linear CKA is exact (closed-form mean and variance), kNN metrics keep a
Monte-Carlo row-permutation null (cheap: the graph is relabelled).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import check_aligned, iter_layer, load_layer, load_rows, read_meta
from hrsa.data import read_jsonl
from hrsa.errors import DataError, HrsaError
from hrsa.io import atomic_path
from hrsa.knn import read_graph

COLUMNS = ["comparison", "layer_x", "layer_y", "metric", "value", "ci_low", "ci_high", "null_mean", "null_q95", "n",
           "bias", "se", "ci_method", "resample_unit", "n_units", "null_kind", "flag"]
#: fallbacks for direct calls; the workflow passes the schema-validated `hrsa:` slice with every key set
FALLBACK = {"bootstrap": 0, "permutations": 0, "seed": 0, "knn_k": [5, 10, 50], "blocks": 100,
            "procrustes_intervals": ["last"], "device": "auto", "max_accumulator_gb": 4.0}
#: bytes of one streamed batch over all layer files of both models
BATCH_BYTES = 256 << 20
NULL_RV = "rv-exact-moments"
NULL_PERM = "row-permutation"


def _setting(settings: dict[str, Any], key: str) -> Any:
    return settings.get(key, FALLBACK[key])


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


def _knn(path: Path, activations: Path, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the stored kNN graph of one model and layer, checked against its activations (model,
    layer, content hash, k; a damaged file is a named error)."""
    return read_graph(path, activations, layer)


# ------------------------------------------------------------------------------------------------ planning
@dataclass
class Replicates:
    """Block weightings of one job: the point estimate (all ones), bootstrap replicates and jackknife groups."""

    n_blocks: int
    boot: np.ndarray  # R x B counts
    jack: np.ndarray  # G x B

    def stacked(self, with_intervals: bool) -> np.ndarray:
        one = np.ones((1, self.n_blocks))
        return np.vstack([one, self.boot, self.jack]) if with_intervals and len(self.boot) else one

    def split(self, values: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        v = np.asarray(values, dtype=np.float64).ravel()
        r = len(self.boot)
        return float(v[0]), v[1:1 + r], v[1 + r:]


def plan_metrics(ks: list[int], have: set[str]) -> tuple[list[Any], list[tuple[str, str]]]:
    """(metrics to run, [(metric, reason) not run]) from the registry's declared needs."""
    from hrsa.metrics import registry_for

    run, skipped = [], []
    for m in registry_for(ks).values():
        missing = sorted(m.needs - have)
        if missing:
            skipped.append((m.name, f"needs {', '.join(missing)}"))
        else:
            run.append(m)
    return run, skipped


def interval_layers(requested: list[str], layers: list[str]) -> set[str]:
    """Layers whose Procrustes intervals are computed: names, `last` (the deepest numbered layer) or `all`."""
    numbered = [layer for layer in layers if layer.isdigit()]
    out: set[str] = set()
    for name in requested:
        if name == "all":
            out.update(layers)
        elif name == "last":
            out.add(max(numbered, key=int) if numbered else layers[-1])
        elif name in layers:
            out.add(name)
        else:
            raise HrsaError(f"hrsa.procrustes_intervals names layer {name!r}, which these activations lack "
                            f"(layers: {', '.join(layers)}); use layer names, 'last' or 'all'")
    return out


# ------------------------------------------------------------------------------------------------ the pass
class _Accumulate:
    """Feeds one pass's batches into the per-layer block sums (and on to the L x L grid when that is iterating)."""

    def __init__(self, group: list[int], blocks: np.ndarray, n_blocks: int, procrustes: set[int], device: Any) -> None:
        self.group, self.blocks, self.n_blocks = group, blocks, n_blocks
        self.procrustes, self.device = procrustes, device
        self.acc: dict[int, Any] = {}
        self.row = 0

    def feed(self, xs: list[Any], ys: list[Any]) -> None:
        import torch

        from hrsa.metrics.blocks import PairBlocks

        rows = int(xs[0].shape[0])
        ids = self.blocks[self.row:self.row + rows]
        self.row += rows
        for pos, li in enumerate(self.group):
            x, y = xs[pos], ys[pos]
            if li not in self.acc:
                dtype = torch.promote_types(x.dtype, y.dtype)
                self.acc[li] = PairBlocks(x.shape[1], y.shape[1], self.n_blocks, dtype=dtype, device=self.device,
                                          shift_x=x.to(dtype).mean(0), shift_y=y.to(dtype).mean(0),
                                          procrustes_blocks=li in self.procrustes)
            self.acc[li].update(x, y, ids)


def _tensors(batch: list[np.ndarray], device: Any) -> list[Any]:
    import torch

    from hrsa.tensors import to_tensor

    return [to_tensor(torch.from_numpy(b), f"activation batch {k}", device) for k, b in enumerate(batch)]


def _layer_groups(widths: list[tuple[int, int]], n_blocks: int, procrustes: set[int], budget: float) -> list[list[int]]:
    """Consecutive layer groups whose block sums fit in `budget` bytes (at least one layer per group)."""
    from hrsa.metrics.blocks import PairBlocks

    groups: list[list[int]] = [[]]
    used = 0
    for li, (dx, dy) in enumerate(widths):
        size = PairBlocks.nbytes(dx, dy, n_blocks, li in procrustes)
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(li)
        used += size
    return groups


class _Batches:
    """Aligned row batches as tensors on the device; the first iteration also feeds the block sums (the grid may
    iterate again when its accumulators need several passes)."""

    def __init__(self, sources: list[tuple[Path, str]], batch_rows: int, acc: _Accumulate, pos: list[int]) -> None:
        self.sources, self.batch_rows, self.acc, self.pos = sources, batch_rows, acc, pos
        self.fed = False

    def __iter__(self) -> Iterator[tuple[list[Any], list[Any]]]:
        feed, self.fed = not self.fed, True  # runs when the iterator is first advanced, not when it is created
        k = len(self.sources) // 2
        for b in aligned_batches(self.sources, self.batch_rows):
            t = _tensors(b, self.acc.device)
            if feed:
                self.acc.feed([t[p] for p in self.pos], [t[k + p] for p in self.pos])
            yield t[:k], t[k:]


def _stream(left: Path, right: Path, layers: list[str], group: list[int], acc: _Accumulate, batch_rows: int,
            grid_bytes: float | None) -> np.ndarray | None:
    """One pass: the group's layers into the block sums; with `grid_bytes` (its accumulator budget) every layer into
    the L x L CKA grid as well."""
    from hrsa.metrics import cka_matrix_from_batches

    names = layers if grid_bytes is not None else [layers[i] for i in group]
    sources = [(left, layer) for layer in names] + [(right, layer) for layer in names]
    batches = _Batches(sources, batch_rows, acc, group if grid_bytes is not None else list(range(len(group))))
    if grid_bytes is not None:
        return np.asarray(cka_matrix_from_batches(batches, device=acc.device, max_accumulator_bytes=int(grid_bytes)))
    for _ in batches:
        pass
    return None


# ------------------------------------------------------------------------------------------------ rows
class _Rows:
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
        self.add(layer, layer, metric.name, point, n, ci_low=ci["low"], ci_high=ci["high"], bias=ci["bias"], se=ci["se"],
                 ci_method=f"{ci['method']}(R={len(reps.boot)})", resample_unit=self.unit, n_units=self.n_units,
                 flag=flags, **null)


def _perm_null(metric: Any, indices: tuple[np.ndarray, np.ndarray], n_perm: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = indices[0].shape[0]
    perms = [rng.permutation(n) for _ in range(n_perm)]
    null = np.asarray(metric.null(None, None, perms, indices_x=indices[0], indices_y=indices[1]), dtype=np.float64)
    q = 0.95 if metric.higher_is_more_similar else 0.05
    return {"null_mean": float(null.mean()), "null_q95": float(np.quantile(null, q)), "null_kind": NULL_PERM}


def compare(
    left: Path,
    right: Path,
    knn_left: Path,
    knn_right: Path,
    probe_path: Path | None,
    settings: dict[str, Any],
    comparison: str,
    procrustes_map: Path | None = None,
) -> list[dict[str, Any]]:
    """All HRSA rows of one comparison (long format, COLUMNS); `procrustes_map` also saves the last numbered layer's
    Procrustes map O* there (for the report's figure)."""
    from hrsa.runtime import torch_device

    ml, mr = read_meta(left), read_meta(right)
    check_aligned(ml, mr, allow_mixed_attention=bool(settings.get("allow_mixed_attention", False)))
    layers = [layer for layer in ml["layers"] if layer in mr["layers"]]
    if not layers:
        raise HrsaError(f"{left} and {right} share no layer")
    n_boot, n_perm = int(_setting(settings, "bootstrap")), int(_setting(settings, "permutations"))
    seed, ks = int(_setting(settings, "seed")), [int(k) for k in _setting(settings, "knn_k")]
    device = torch_device(str(_setting(settings, "device")))
    text_ids, _ = load_rows(left, layers[0])
    n = int(text_ids.shape[0])
    from hrsa.metrics.blocks import assign_blocks, bootstrap_weights, jackknife_weights

    blocks, n_blocks = assign_blocks(text_ids, int(_setting(settings, "blocks")) if n_boot > 0 else 1)
    boot = n_boot > 0 and n_blocks >= 2
    reps = Replicates(n_blocks, bootstrap_weights(n_blocks, n_boot, seed) if boot else np.zeros((0, n_blocks)),
                      jackknife_weights(n_blocks) if boot else np.zeros((0, n_blocks)))
    sentence = ml.get("granularity") == "sentence"
    out = _Rows(comparison, "sentence-blocks" if sentence else "text-blocks", n_blocks, 0.95)
    # Function level (linear probe transfer) runs on sentence-level probe sets, as the study's AG News probe does.
    labels = probe_labels(probe_path, text_ids) if probe_path is not None and sentence else None
    if labels is not None and min(np.unique(labels, return_counts=True)[1]) < 10:
        labels = None  # the stratified 0.8/0.1/0.1 probe split needs at least 10 rows per class
    have = {"moments", "graph"} | ({"labels"} if labels is not None else set())
    widths = [(_width(left, layer), _width(right, layer)) for layer in layers]
    if all(dx == dy for dx, dy in widths):
        have.add("same-width")
    planned, skipped = plan_metrics(ks, have)
    for name, why in skipped:
        print(f"{comparison}: not computed: {name} ({why})", flush=True)  # to the log; stderr keeps errors
    families = {m.family for m in planned}
    proc = {layers.index(x) for x in interval_layers(list(_setting(settings, "procrustes_intervals")), layers)}
    proc = proc if boot and "procrustes" in families else set()
    budget = float(_setting(settings, "max_accumulator_gb")) * 2**30
    groups = _layer_groups(widths, n_blocks, proc, budget)
    batch_rows = max(256, BATCH_BYTES // (4 * sum(dx + dy for dx, dy in widths)))
    grid = None
    for g, group in enumerate(groups):
        acc = _Accumulate(group, blocks, n_blocks, proc, device)
        result = _stream(left, right, layers, group, acc, batch_rows, budget if g == 0 else None)
        grid = result if result is not None else grid
        if acc.row != n:
            raise HrsaError(f"activations of {left} hold {acc.row} rows in the pass, {n} in their text ids")
        for li in group:
            stats = acc.acc.pop(li).finish()
            _representation_rows(out, layers[li], n, stats, planned, reps if boot else None, li in proc)
            del stats
    assert grid is not None
    for i, lx in enumerate(layers):
        for j, ly in enumerate(layers):
            if i != j:
                out.add(lx, ly, "cka-linear-biased", grid[i, j], n)
    for layer in layers:
        _graph_rows(out, layer, n, planned, (left, right, knn_left, knn_right), blocks, reps if boot else None,
                    n_perm, seed)
        if labels is not None and "probe" in families:
            _probe_rows(out, layer, n, planned, (left, right), labels, blocks, reps if boot else None)
    if procrustes_map is not None:
        save_map(procrustes_map, out.maps, layers)
    return out.rows


def save_map(path: Path, maps: dict[str, np.ndarray], layers: list[str]) -> None:
    """The Procrustes map O* of the last numbered layer for the report (an empty map when no layer had one, e.g.
    models of different widths)."""

    numbered = [layer for layer in layers if layer.isdigit() and layer in maps]
    last = numbered[-1] if numbered else ""
    save_procrustes_map(path, maps[last] if last else np.zeros((0, 0)), last)


def _width(root: Path, layer: str) -> int:
    """Vector width of one layer, from the Parquet schema of its first shard (no data read)."""
    import pyarrow.parquet as pq

    from hrsa.activations import part_path

    path = part_path(root, layer)
    if not path.is_file():
        raise HrsaError(f"{root}: no activations for layer {layer!r} ({path} is missing)")
    return int(pq.read_schema(path).field("vector").type.list_size)


def _representation_rows(out: _Rows, layer: str, n: int, stats: Any, planned: list[Any], reps: Replicates | None,
                         procrustes_ci: bool) -> None:
    """CKA, dim-wise correlation and Procrustes rows of one layer from its block statistics."""
    flag = "constant-layer" if stats.const_x or stats.const_y else ""
    fams = {m.family for m in planned}
    weights = reps.stacked(True) if reps is not None else np.ones((1, stats.n_blocks))
    values: dict[str, Any] = {}
    if "cka" in fams:
        values["cka"] = stats.cka(weights)
    if "dimwise" in fams and stats.diag_xy is not None:
        values["dimwise"] = {"r": stats.dimwise(weights)}
    if "procrustes" in fams and stats.cross is not None:
        point = stats.procrustes(np.ones((1, stats.n_blocks)), keep_map=True)
        out.maps[layer] = stats.map
        if procrustes_ci and len(weights) > 1:  # replicates: SVDs in the activations' precision
            more = stats.procrustes(weights[1:], svd_dtype=stats.dtype)
            point = {k: np.concatenate([point[k], more[k]]) for k in point}
        values["procrustes"] = point
    from hrsa.stats import normal_null_q95

    for m in planned:
        if m.family not in values:
            continue
        null: dict[str, Any] = {}
        if m.family == "cka" and m.stat == "biased":
            mean, var = stats.rv_null()
            null = {"null_mean": mean, "null_q95": normal_null_q95(mean, var), "null_kind": NULL_RV}
        with_ci = reps is not None and (m.family != "procrustes" or procrustes_ci)
        v = values[m.family][m.stat]
        out.scored(layer, m, n, v, reps if with_ci else None, flag=flag, **null)


def _graph_rows(out: _Rows, layer: str, n: int, planned: list[Any], paths: tuple[Path, Path, Path, Path],
                blocks: np.ndarray, reps: Replicates | None, n_perm: int, seed: int) -> None:
    """kNN Jaccard / retention and TwoNN rows of one layer, from the stored graphs."""
    from hrsa.knn import graph_distances
    from hrsa.metrics import jaccard_per_row, retention_per_row, twonn_ratios
    from hrsa.metrics.units import block_sums, twonn_family, weighted_means

    graph = [m for m in planned if m.family in ("knn", "twonn")]
    if not graph:
        return
    left, right, knn_left, knn_right = paths
    il, sl = _knn(knn_left / f"layer={layer}.npz", left, layer)
    ir, sr = _knn(knn_right / f"layer={layer}.npz", right, layer)
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
    knn = [m for m in graph if m.family == "knn"]
    if knn:
        per_row = np.stack([(jaccard_per_row if m.stat.startswith("jaccard") else retention_per_row)(
            il, ir, int(m.stat.split("@")[1])) for m in knn], axis=1)
        sums, counts = block_sums(per_row, blocks if reps is not None else np.zeros(n, np.int64), n_blocks)
        vals = weighted_means(sums, counts, weights)
        for c, m in enumerate(knn):
            null = _perm_null(m, (il, ir), n_perm, seed) if n_perm > 0 else {}
            out.scored(layer, m, n, vals[:, c], reps, **null)
    twonn = [m for m in graph if m.family == "twonn"]
    if twonn:
        mu = [twonn_ratios(graph_distances(s[:, :2], "cosine")) for s in (sl, sr)]
        fam = twonn_family(mu[0], mu[1], blocks if reps is not None else np.zeros(n, np.int64), n_blocks, weights)
        for m in twonn:
            out.scored(layer, m, n, fam[m.stat], reps)


def _shared_graph_rows(left: Path, right: Path) -> np.ndarray | None:
    """The activation rows both graphs were built over (None: every row); graphs over different rows are an error."""
    from hrsa.knn import graph_rows

    rl, rr = graph_rows(left), graph_rows(right)
    if (rl is None) != (rr is None) or (rl is not None and not np.array_equal(rl, rr)):
        raise HrsaError(f"kNN graphs {left} and {right} were built over different rows (hrsa.knn_max_rows or its "
                        "seed differ); rebuild both with the same settings")
    return rl


def _probe_rows(out: _Rows, layer: str, n: int, planned: list[Any], roots: tuple[Path, Path], labels: np.ndarray,
                blocks: np.ndarray, reps: Replicates | None) -> None:
    """Probe transfer rows of one layer: one probe fit, test rows resampled by their blocks."""
    from hrsa.metrics import probe_predictions
    from hrsa.metrics.probe import split_indices
    from hrsa.metrics.units import probe_family

    probe = [m for m in planned if m.family == "probe"]
    X, Y = load_layer(roots[0], layer), load_layer(roots[1], layer)
    if X.shape != Y.shape:
        return
    truth, ps, pt = probe_predictions(X, Y, labels)
    _, _, test = split_indices(np.asarray(labels))
    n_blocks = reps.n_blocks if reps is not None else 1
    weights = reps.stacked(True) if reps is not None else np.ones((1, 1))
    tb = blocks[test] if reps is not None else np.zeros(len(test), np.int64)
    fam = probe_family(truth, ps, pt, tb, n_blocks, weights)
    for m in probe:
        out.scored(layer, m, n, fam[m.stat], reps)


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> None:
    import pandas as pd

    with atomic_path(out) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_parquet(tmp, index=False)


def load_procrustes_map(path: Path) -> dict[str, Any]:
    """The Procrustes map compare must save beside its table: `{probe}/{comparison}.procrustes.npz` holding `O`
    (d x d float, the orthogonal map of the last numbered layer, X O ≈ Y) and `layer` (its layer name)."""
    with np.load(path) as z:
        if "O" not in z or "layer" not in z:
            raise DataError(f"Procrustes map {path} lacks O or layer; rerun its compare job")
        return {"O": np.asarray(z["O"], dtype=np.float64), "layer": str(z["layer"])}


def save_procrustes_map(path: Path, O: Any, layer: str) -> None:
    """Write the map load_procrustes_map reads (for compare: the last numbered layer's O*, atomically)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, O=np.asarray(O, dtype=np.float32), layer=np.array(str(layer)))
