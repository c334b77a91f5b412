"""HRSA of one comparison on one probe set: every planned metric at every shared layer, plus the L x L CKA grid.

One streaming pass over both models' shards accumulates, per block of whole texts, the additive moments every
representation metric needs (hrsa.metrics.blocks); the L x L grid is fed from the same batches. Metrics are planned
from the registry's declarations (family, needs; hrsa.compare.plan), and each family is computed once per replicate:
one SVD serves the four Procrustes statistics, one probe fit every probe statistic, one graph read the kNN metrics and
TwoNN (hrsa.compare.rows).

Uncertainty (columns beside each value): a cluster bootstrap over blocks of whole texts (sentences for sentence-level
probes) recombines block moments, BCa intervals with the bootstrap bias and a `flag` where the interval cannot be taken
at face value; the permutation null of linear CKA is exact (closed-form mean and variance), kNN metrics keep a
Monte-Carlo row-permutation null (cheap: the graph is relabelled).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import check_aligned, iter_layer, load_rows, read_meta
from hrsa.compare.plan import (
    BATCH_BYTES,
    Replicates,
    interval_layers,
    layer_groups,
    plan_metrics,
    probe_labels,
    settings_of,
)
from hrsa.compare.rows import Rows, graph_rows, probe_rows, representation_rows, save_map
from hrsa.errors import DataError, HrsaError
from hrsa.knn import check_graph
from hrsa.schema import default


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


def compare(
    left: Path,
    right: Path,
    knn_left: Path,
    knn_right: Path,
    probe_path: Path | None,
    settings: dict[str, Any] | None,
    comparison: str,
    procrustes_map: Path | None = None,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """All HRSA rows of one comparison (long format, COLUMNS); `settings` is the `hrsa:` slice (keys it leaves out
    from the schema), `device` the torch device (None: the schema's `resources.device`); `procrustes_map` also saves
    the last numbered layer's Procrustes map O* there (for the report's figure)."""
    from hrsa.runtime import torch_device

    settings = settings_of(settings)
    ml, mr = read_meta(left), read_meta(right)
    check_sides(comparison, {"left": (left, ml), "right": (right, mr)})
    check_aligned(ml, mr, allow_mixed_attention=bool(settings["allow_mixed_attention"]))
    layers = [layer for layer in ml["layers"] if layer in mr["layers"]]
    if not layers:
        raise HrsaError(f"{left} and {right} share no layer")
    for layer in layers:  # before the pass: every graph's stamp, and every layer's recorded hash against its shards
        check_graph(knn_left / f"layer={layer}.npz", left, layer)
        check_graph(knn_right / f"layer={layer}.npz", right, layer)
    n_boot, n_perm = int(settings["bootstrap"]), int(settings["permutations"])
    seed, ks = int(settings["seed"]), [int(k) for k in settings["knn_k"]]
    on = torch_device(str(device if device is not None else default("resources/device")))
    text_ids, _ = load_rows(left, layers[0])
    n = int(text_ids.shape[0])
    from hrsa.metrics.blocks import assign_blocks, bootstrap_weights, jackknife_weights

    blocks, n_blocks = assign_blocks(text_ids, int(settings["blocks"]) if n_boot > 0 else 1)
    boot = n_boot > 0 and n_blocks >= 2
    reps = Replicates(n_blocks, bootstrap_weights(n_blocks, n_boot, seed) if boot else np.zeros((0, n_blocks)),
                      jackknife_weights(n_blocks) if boot else np.zeros((0, n_blocks)))
    sentence = ml.get("granularity") == "sentence"
    out = Rows(comparison, "sentence-blocks" if sentence else "text-blocks", n_blocks, 0.95)
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
    proc = {layers.index(x) for x in interval_layers(list(settings["procrustes_intervals"]), layers)}
    proc = proc if boot and "procrustes" in families else set()
    budget = float(settings["max_accumulator_gb"]) * 2**30
    groups = layer_groups(widths, n_blocks, proc, budget)
    batch_rows = max(256, BATCH_BYTES // (4 * sum(dx + dy for dx, dy in widths)))
    grid = None
    for g, group in enumerate(groups):
        acc = _Accumulate(group, blocks, n_blocks, proc, on)
        result = _stream(left, right, layers, group, acc, batch_rows, budget if g == 0 else None)
        grid = result if result is not None else grid
        if acc.row != n:
            raise HrsaError(f"activations of {left} hold {acc.row} rows in the pass, {n} in their text ids")
        for li in group:
            stats = acc.acc.pop(li).finish()
            representation_rows(out, layers[li], n, stats, planned, reps if boot else None, li in proc,
                                int(settings["procrustes_bootstrap"]))
            del stats
    assert grid is not None
    for i, lx in enumerate(layers):
        for j, ly in enumerate(layers):
            if i != j:
                out.add(lx, ly, "cka-linear-biased", grid[i, j], n)
    for layer in layers:
        graph_rows(out, layer, n, planned, (left, right, knn_left, knn_right), blocks, reps if boot else None,
                   n_perm, seed)
        if labels is not None and "probe" in families:
            probe_rows(out, layer, n, planned, (left, right), labels, blocks, reps if boot else None,
                       order=np.argsort(text_ids, kind="stable"))
    if procrustes_map is not None:
        save_map(procrustes_map, out.maps, layers)
    return out.rows


def check_sides(comparison: str, sides: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Each side's activations must be of the model the comparison name says (`_meta.json`'s model id): a directory
    of another model copied in its place is a DataError naming it and the extract job to re-run."""
    from hrsa.grid import parse_comparison

    c = parse_comparison(comparison)
    for side, (root, meta) in sides.items():
        expected = c.model(side)
        if str(meta["model_id"]) != expected:
            raise DataError(f"{root}/_meta.json holds activations of model {meta['model_id']!r}, not {expected!r} "
                            f"(the {side} side of {comparison}); delete {root} and re-run its extract job")


def _width(root: Path, layer: str) -> int:
    """Vector width of one layer, from the Parquet schema of its first shard (no data read)."""
    import pyarrow.parquet as pq

    from hrsa.activations import part_path

    path = part_path(root, layer)
    if not path.is_file():
        raise HrsaError(f"{root}: no activations for layer {layer!r} ({path} is missing)")
    return int(pq.read_schema(path).field("vector").type.list_size)


