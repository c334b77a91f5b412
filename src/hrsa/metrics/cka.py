"""Linear CKA in feature space (never an n x n matrix): one layer pair, or an Lx x Ly layer grid streamed over
batches."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from hrsa.errors import HrsaError
from hrsa.metrics._moments import Moments, cka_from_hsic
from hrsa.tensors import Device, chunk_rows, to_pair, to_tensor

#: default bound on the float64 accumulators of cka_matrix_from_batches (above it: several passes over the data)
DEFAULT_ACCUMULATOR_BYTES = 4 << 30


def _check_n(n: int, debiased: bool) -> None:
    if debiased and n < 4:
        raise HrsaError(f"debiased CKA needs at least 4 rows, got {n}")
    if n < 2:
        raise HrsaError(f"CKA needs at least 2 rows, got {n}")


def linear_cka(X: Any, Y: Any, debiased: bool = False, *, device: Device = None) -> float:
    """Column-centred linear CKA ||X'Y||_F^2 / (||X'X||_F ||Y'Y||_F); `debiased` uses the unbiased HSIC estimator
    (Song et al. 2007) in its feature-space form. Float64 accumulation over row chunks; O(d^2) memory."""
    tx, ty = to_pair(X, Y, device)
    n = tx.shape[0]
    _check_n(n, debiased)
    mom = Moments([tx.shape[1]], [ty.shape[1]], dtype=tx.dtype, device=tx.device, cross_x=[0], self_x=[0], self_y=[0])
    step = chunk_rows(tx.shape[1] + ty.shape[1], tx.element_size())
    for s in range(0, n, step):
        mom.update([tx[s:s + step]], [ty[s:s + step]])
    if mom.no_variance_x(0):
        raise HrsaError("CKA is undefined: X has zero variance (all rows equal)")
    if mom.no_variance_y(0):
        raise HrsaError("CKA is undefined: Y has zero variance (all rows equal)")
    return cka_from_hsic(mom.cross_terms(0, 0).hsic(debiased), mom.self_terms_x(0).hsic(debiased),
                         mom.self_terms_y(0).hsic(debiased))


# ------------------------------------------------------------------------------------------------ layer grid
def _as_layers(side: Any, name: str, device: Device) -> list[torch.Tensor]:
    """A batch side (list of 2-D arrays, or a 3-D array L x n_b x d) as validated tensors with equal row counts."""
    if isinstance(side, (np.ndarray, torch.Tensor)) and side.ndim == 2:
        raise HrsaError(f"{name} must be a list of per-layer 2-D arrays (or an L x rows x d array), got one 2-D array")
    mats = [to_tensor(m, f"{name}[{k}]", device) for k, m in enumerate(side)]
    if not mats:
        raise HrsaError(f"{name} holds no layers")
    rows = {m.shape[0] for m in mats}
    if len(rows) != 1:
        raise HrsaError(f"every layer of {name} must hold the same rows, got row counts {sorted(rows)}")
    return mats


def _plan_passes(wx: Sequence[int], wy: Sequence[int], budget: int) -> list[dict[str, list[int]]]:
    """Greedy packing of the d x d accumulation jobs (cross rows, self terms) into passes within `budget` bytes."""
    dy = sum(wy)
    jobs = ([("cross_x", i, 8 * w * dy) for i, w in enumerate(wx)]
            + [("self_x", i, 8 * w * w) for i, w in enumerate(wx)]
            + [("self_y", j, 8 * w * w) for j, w in enumerate(wy)])
    passes: list[dict[str, list[int]]] = []
    used = budget + 1
    for kind, idx, size in jobs:
        if used + size > budget:
            passes.append({"cross_x": [], "self_x": [], "self_y": []})
            used = 0
        passes[-1][kind].append(idx)
        used += size
    return passes


class _Pass:
    """One pass over the batches: validates every batch against the first and feeds a Moments object."""

    def __init__(self, wx: list[int], wy: list[int], dtype: torch.dtype, device: torch.device, debiased: bool):
        self.wx, self.wy, self.dtype, self.device, self.debiased = wx, wy, dtype, device, debiased

    def run(self, batches: Iterable[tuple[Any, Any]], mom: Moments) -> Moments:
        for b, (xs, ys) in enumerate(batches):
            tx, ty = _as_layers(xs, f"batch {b} xs", self.device), _as_layers(ys, f"batch {b} ys", self.device)
            if [m.shape[1] for m in tx] != self.wx or [m.shape[1] for m in ty] != self.wy:
                raise HrsaError(f"batch {b}: layer count or widths differ from the first batch "
                                f"(xs {[m.shape[1] for m in tx]} vs {self.wx}, "
                                f"ys {[m.shape[1] for m in ty]} vs {self.wy})")
            if tx[0].shape[0] != ty[0].shape[0]:
                raise HrsaError(f"batch {b}: xs has {tx[0].shape[0]} rows but ys has {ty[0].shape[0]}")
            mom.update(tx, ty)
            del xs, ys, tx, ty  # free this batch before the iterator builds the next one
        return mom


def _prepend(box: list[tuple[Any, Any]], rest: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """The first batch again, then the rest, without keeping a reference to the first once it is consumed."""
    yield box.pop()
    yield from rest


def cka_matrix_from_batches(batches: Iterable[tuple[Any, Any]], debiased: bool = False, *, device: Device = None,
                            max_accumulator_bytes: int = DEFAULT_ACCUMULATOR_BYTES) -> np.ndarray:
    """Lx x Ly linear CKA between every x layer and every y layer, streamed over `(xs, ys)` row batches.

    Accumulates in float64 the self products x_i'x_i, y_j'y_j and the cross products x_i'[y_1 .. y_Ly] (one GEMM per x
    layer and batch, float32 when the data are), plus column sums and row-norm sums: memory (Lx Ly dx dy + Lx dx^2 +
    Ly dy^2) x 8 bytes, never O(n^2) and never all rows at once. When that exceeds `max_accumulator_bytes` the layers
    are split over several passes, which needs `batches` to be re-iterable (a list, or an object whose __iter__
    starts over); a one-shot iterator then raises HrsaError before any work.
    """
    it: Iterator[tuple[Any, Any]] = iter(batches)
    try:
        first = next(it)
    except StopIteration:
        raise HrsaError("cka_matrix_from_batches got no batches") from None
    xs0, ys0 = _as_layers(first[0], "batch 0 xs", device), _as_layers(first[1], "batch 0 ys", device)
    dtype = torch.promote_types(xs0[0].dtype, ys0[0].dtype)
    dev = xs0[0].device
    wx, wy = [m.shape[1] for m in xs0], [m.shape[1] for m in ys0]
    box = [first]
    del first, xs0, ys0
    plan = _plan_passes(wx, wy, max_accumulator_bytes)
    if len(plan) > 1 and iter(batches) is batches:
        need = 8 * (sum(wx) * sum(wy) + sum(w * w for w in wx) + sum(w * w for w in wy))
        raise HrsaError(f"the CKA accumulators need {need / 2**30:.1f} GiB > max_accumulator_bytes "
                        f"({max_accumulator_bytes / 2**30:.1f} GiB): pass a re-iterable of batches (several passes) "
                        "or raise the limit")
    runner = _Pass(wx, wy, dtype, dev, debiased)
    hxy = np.full((len(wx), len(wy)), np.nan)
    hxx, hyy = np.full(len(wx), np.nan), np.full(len(wy), np.nan)
    shift: tuple[Any, Any] = (None, None)
    n = None
    for p, jobs in enumerate(plan):
        mom = Moments(wx, wy, dtype=dtype, device=dev, shift_x=shift[0], shift_y=shift[1], **jobs)
        runner.run(_prepend(box, it) if p == 0 else iter(batches), mom)
        shift = (mom.shift_x, mom.shift_y)
        if n is None:
            n = mom.n
            _check_n(n, debiased)
        elif mom.n != n:
            raise HrsaError(f"batches changed between passes: {n} rows in the first pass, {mom.n} in pass {p + 1}")
        for i in jobs["cross_x"]:
            for j in range(len(wy)):
                hxy[i, j] = mom.cross_terms(i, j).hsic(debiased)
        for i in jobs["self_x"]:  # a constant layer gets NaN rather than a CKA of rounding noise
            hxx[i] = np.nan if mom.no_variance_x(i) else mom.self_terms_x(i).hsic(debiased)
        for j in jobs["self_y"]:
            hyy[j] = np.nan if mom.no_variance_y(j) else mom.self_terms_y(j).hsic(debiased)
        del mom
    out = np.empty_like(hxy)
    for i in range(len(wx)):
        for j in range(len(wy)):
            out[i, j] = cka_from_hsic(hxy[i, j], hxx[i], hyy[j])
    return out


def cka_flops(n: int, widths_x: Sequence[int], widths_y: Sequence[int]) -> dict[str, float]:
    """GEMM flop counts of cka_matrix_from_batches: cross terms (2 n dx dy per pair) and self terms."""
    cross = 2.0 * n * sum(widths_x) * sum(widths_y)
    selfs = 2.0 * n * (sum(w * w for w in widths_x) + sum(w * w for w in widths_y))
    return {"cross": cross, "self": selfs, "total": cross + selfs, "pairs": math.prod([len(widths_x), len(widths_y)])}
