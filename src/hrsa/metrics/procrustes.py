"""Orthogonal Procrustes alignment of X onto Y and what the rotation says: residual, row cosine, basis drift."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

import torch

from hrsa.errors import HrsaError
from hrsa.metrics._moments import F64, Moments
from hrsa.tensors import Device, chunk_rows, to_pair

#: entries of O below this magnitude count as zero for `sparsity`
SPARSITY_EPS = 1e-5


@contextlib.contextmanager
def _lapack_threads(device: torch.device) -> Iterator[None]:
    """One CPU thread for a d x d LAPACK factorisation unless OMP_WAIT_POLICY=PASSIVE: with spinning OpenMP threads on
    shared cores its many barriers stall (SVD of 1024 x 1024: 0.4 s on 1 thread, 5-12 s on 2 oversubscribed threads,
    0.45 s on 2 passive threads)."""
    if device.type != "cpu" or os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def orthogonal_from_cross(cross: torch.Tensor) -> torch.Tensor:
    """O = U V' from the SVD U S V' of the (centred) cross product X'Y: the orthogonal map minimising ||XO - Y||_F."""
    with _lapack_threads(cross.device):
        u, _, vh = torch.linalg.svd(cross.to(F64))
    return u @ vh


def rotation_stats(o: torch.Tensor) -> dict[str, float]:
    """rie = 1 - mean row entropy of p_ab = O_ab^2 over log d (1: a signed permutation, 0: fully mixed basis);
    sparsity = share of |O_ab| < 1e-5."""
    d = o.shape[0]
    p = o.to(F64).square()
    p = p / p.sum(1, keepdim=True)  # rows of an orthogonal matrix already sum to 1; guards rounding
    ent = -(torch.special.xlogy(p, p)).sum(1)
    rie = 1.0 if d == 1 else 1.0 - float(ent.mean()) / math.log(d)
    return {"rie": rie, "sparsity": float((o.abs() < SPARSITY_EPS).to(F64).mean())}


def residual_and_cosine(x: torch.Tensor, y: torch.Tensor, o: torch.Tensor) -> tuple[float, float, float, int]:
    """For one chunk: sum ||xO - y||^2, sum ||y||^2, sum of row cosines of xO and y (rows with a zero norm are
    skipped) and how many rows entered that sum."""
    z = x @ o
    res = float(torch.linalg.vector_norm(z - y, dim=1).to(F64).square().sum())
    ny = torch.linalg.vector_norm(y, dim=1).to(F64)
    nz = torch.linalg.vector_norm(z, dim=1).to(F64)
    dots = (z * y).sum(1).to(F64)
    ok = (ny > 0) & (nz > 0)
    cos = (dots[ok] / (ny[ok] * nz[ok])).clamp(-1, 1)
    return res, float(ny.square().sum()), float(cos.sum()), int(ok.sum())


def procrustes(X: Any, Y: Any, *, device: Device = None) -> dict[str, float]:
    """Orthogonal O from the SVD of centred X'Y; rvr = ||XO - Y||^2 / ||Y||^2 and cosine = mean row cosine of XO and
    Y on the uncentred data; rie (inverse row entropy of O^2) and sparsity (share of |O_ab| < 1e-5)."""
    tx, ty = to_pair(X, Y, device, same_width=True, what="Procrustes")
    n, d = tx.shape
    if n < 2:
        raise HrsaError(f"Procrustes needs at least 2 rows, got {n}")
    mom = Moments([d], [d], dtype=tx.dtype, device=tx.device, cross_x=[0])
    step = chunk_rows(2 * d, tx.element_size())
    for s in range(0, n, step):
        mom.update([tx[s:s + step]], [ty[s:s + step]])
    o = orthogonal_from_cross(mom.cross_terms(0, 0).centred())
    out = rotation_stats(o)
    oc = o.to(tx.dtype)
    res = yy = cos_sum = 0.0
    cos_n = 0
    for s in range(0, n, step):
        r, q, c, k = residual_and_cosine(tx[s:s + step], ty[s:s + step], oc)
        res, yy, cos_sum, cos_n = res + r, yy + q, cos_sum + c, cos_n + k
    out["rvr"] = res / yy if yy > 0 else float("nan")
    out["cosine"] = cos_sum / cos_n if cos_n else float("nan")
    return out
