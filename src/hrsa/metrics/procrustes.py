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


#: a singular value s_i of the centred cross product X'Y counts as zero when s_i <= max(s) * d * RANK_RTOL (numpy's
#: matrix_rank rule, with ten times float64's epsilon); their count is the map's null space (`procrustes_map`)
RANK_RTOL = 10 * torch.finfo(F64).eps


def _svd(c: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with _lapack_threads(c.device):
        u, s, vh = torch.linalg.svd(c.to(dtype))
    return u.to(F64), s.to(F64), vh.to(F64)


def procrustes_map(cross: torch.Tensor, svd_dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
    """The unique orthogonal O minimising ||X_c O - Y_c||_F, and the effective rank k of the centred cross product
    X_c'Y_c = U S V' it comes from (`cross`: d x d, or r x d x d for r maps at once; O in float64, k as int64).

    The rule: s_i <= max(s) * d * RANK_RTOL counts as zero (k = the rest). On the range, O = U_k V_k' (unique even with
    tied singular values). On the null space, where the data say nothing (n < d, or activations of low rank), every
    orthogonal map from null(X_c'Y_c)'s left space onto its right space fits equally well, and a plain SVD picks one
    by row order and rounding; O takes the one closest to the identity (largest trace): the partial isometry of the SVD
    of P_U0 P_V0 (the projections onto both null spaces). So O = I wherever the data do not ask for a rotation:
    procrustes(X, X) gives O = I at any n. It is unique unless a direction of one null space is orthogonal to the
    whole other one (never when they coincide, and not for data in general position).
    `svd_dtype` float32 halves the SVD's cost; a matrix whose float32 spectrum reaches d * 10 eps(float32) of its
    largest value (possibly rank-deficient at that precision) is factorised again in float64."""
    c = cross.to(F64)
    d = c.shape[-1]
    u, s, vh = _svd(c, svd_dtype)
    if svd_dtype != F64:
        redo = s[..., -1] <= s[..., 0] * d * 10 * torch.finfo(svd_dtype).eps
        if bool(redo.any()):
            if c.dim() == 2:
                u, s, vh = _svd(c, F64)
            else:
                u[redo], s[redo], vh[redo] = _svd(c[redo], F64)
    keep = s > s[..., :1] * d * RANK_RTOL
    rank = keep.sum(-1)
    o = (u * keep.unsqueeze(-2)) @ vh
    if bool((rank < d).any()):
        nu = u * (~keep).unsqueeze(-2)
        nv = vh.mT * (~keep).unsqueeze(-2)
        ub, _, vbh = _svd((nu @ nu.mT) @ (nv @ nv.mT), F64)
        top = torch.arange(d, device=c.device) < (d - rank).unsqueeze(-1)
        o = o + (ub * top.unsqueeze(-2)) @ vbh
    return o, rank


def orthogonal_from_cross(cross: torch.Tensor) -> torch.Tensor:
    """O = U V' from the SVD U S V' of the (centred) cross product X'Y: the orthogonal map minimising ||XO - Y||_F,
    made unique on the null space of X'Y by the identity rule of `procrustes_map`."""
    return procrustes_map(cross)[0]


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
    """Orthogonal O from the SVD of centred X'Y (unique: the identity on its null space, `procrustes_map`);
    rvr = ||XO - Y||^2 / ||Y||^2 and cosine = mean row cosine of XO and Y on the uncentred data; rie (inverse row
    entropy of O^2), sparsity (share of |O_ab| < 1e-5) and rank (the effective rank of centred X'Y: below d, part of O
    is the identity rule, not fitted)."""
    tx, ty = to_pair(X, Y, device, same_width=True, what="Procrustes")
    n, d = tx.shape
    if n < 2:
        raise HrsaError(f"Procrustes needs at least 2 rows, got {n}")
    mom = Moments([d], [d], dtype=tx.dtype, device=tx.device, cross_x=[0])
    step = chunk_rows(2 * d, tx.element_size())
    for s in range(0, n, step):
        mom.update([tx[s:s + step]], [ty[s:s + step]])
    o, rank = procrustes_map(mom.cross_terms(0, 0).centred())
    out = rotation_stats(o)
    out["rank"] = float(rank)
    oc = o.to(tx.dtype)
    res = yy = cos_sum = 0.0
    cos_n = 0
    for s in range(0, n, step):
        r, q, c, k = residual_and_cosine(tx[s:s + step], ty[s:s + step], oc)
        res, yy, cos_sum, cos_n = res + r, yy + q, cos_sum + c, cos_n + k
    out["rvr"] = res / yy if yy > 0 else float("nan")
    out["cosine"] = cos_sum / cos_n if cos_n else float("nan")
    return out
