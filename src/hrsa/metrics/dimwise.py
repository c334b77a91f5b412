"""Dimension-wise correlation: does coordinate k mean the same in both models (the basis, not just the geometry)?"""

from __future__ import annotations

from typing import Any

import torch

from hrsa.errors import HrsaError
from hrsa.metrics._moments import F64
from hrsa.tensors import Device, chunk_rows, to_pair


def dimwise_correlation(X: Any, Y: Any, *, device: Device = None) -> float:
    """Mean over coordinates k of Pearson r(X[:, k], Y[:, k]), skipping coordinates constant in X or in Y."""
    tx, ty = to_pair(X, Y, device, same_width=True, what="dimwise correlation")
    n, d = tx.shape
    if n < 2:
        raise HrsaError(f"dimwise correlation needs at least 2 rows, got {n}")
    a, b = tx[0].to(F64), ty[0].to(F64)  # shift by the first row: exact, and limits cancellation
    sums = torch.zeros(5, d, dtype=F64, device=tx.device)  # sx, sy, sxx, syy, sxy
    step = chunk_rows(d, 8, target=1 << 23)  # small float64 chunks stay in cache
    for s in range(0, n, step):
        x, y = tx[s:s + step].to(F64) - a, ty[s:s + step].to(F64) - b
        sums += torch.stack([x.sum(0), y.sum(0), (x * x).sum(0), (y * y).sum(0), (x * y).sum(0)])
    sx, sy, sxx, syy, sxy = sums
    keep = (tx.amax(0) > tx.amin(0)) & (ty.amax(0) > ty.amin(0))
    if not bool(keep.any()):
        raise HrsaError("dimwise correlation is undefined: every coordinate is constant in X or in Y")
    cov = sxy - sx * sy / n
    vx, vy = (sxx - sx * sx / n).clamp_min(0), (syy - sy * sy / n).clamp_min(0)
    r = cov[keep] / torch.sqrt(vx[keep] * vy[keep])
    return float(r.clamp(-1, 1).mean())
