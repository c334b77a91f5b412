"""Per-block sufficient statistics of one layer pair, and every representation metric evaluated from them for many
block weightings at once (the point estimate is all weights 1, a bootstrap replicate is a vector of block counts).

A block is a set of whole texts. One pass over the rows adds each row into its block's float64 sums (the shifted
moments of `Moments`: x~'y~, x~'x~, y~'y~, column sums, row-norm products) and, for Procrustes, the row-normalised
uncentred cross product sum x y' / (|x| |y|). A weighting w then recombines the blocks exactly:

    ||X_c(w)'Y_c(w)||_F^2 = w'Gw - 2/n T(w,w,w) + |sx(w)|^2 |sy(w)|^2 / n^2,

with G[a,b] = <S_a, S_b>_F (B x B) and T[a,b,c] = sx_a' S_b sy_c (B x B x B), both computed once per layer pair in
O(B^2 d^2); each replicate then costs O(B^3), never a pass over rows and never an n x n matrix. Procrustes needs the
SVD of the recombined d x d cross product per replicate (O(B d^2 + d^3)), so its per-block sums are kept only for the
layers whose intervals are asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hrsa.metrics._moments import F64, Moments, PairSums
from hrsa.metrics.procrustes import SPARSITY_EPS, procrustes_map

#: replicates whose d x d Procrustes cross products are built at once (bounds the r x d x d temporaries)
PROCRUSTES_CHUNK = 8


def block_runs(block_ids: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, block) for each run of equal block ids (rows are in text order, so runs are long)."""
    if block_ids.size == 0:
        return []
    cut = np.flatnonzero(np.diff(block_ids)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [block_ids.size]])
    return [(int(s), int(e), int(block_ids[s])) for s, e in zip(starts, stops, strict=True)]


def assign_blocks(text_ids: np.ndarray, n_blocks: int) -> tuple[np.ndarray, int]:
    """Block of every row: texts ranked by first appearance, rank r of T texts goes to block floor(r B / T), so blocks
    hold whole texts, are contiguous in row order and deterministic. Returns (block per row, B = min(n_blocks, T))."""
    uniq, first, inverse = np.unique(np.asarray(text_ids), return_index=True, return_inverse=True)
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
    b = max(1, min(int(n_blocks), uniq.size))
    return (rank[inverse.ravel()] * b // uniq.size).astype(np.int64), b


def bootstrap_weights(n_blocks: int, n_boot: int, seed: int) -> np.ndarray:
    """n_boot x B block counts: each replicate draws B blocks with replacement (fixed seed)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_blocks, size=(n_boot, n_blocks))
    out = np.zeros((n_boot, n_blocks), dtype=np.float64)
    np.add.at(out, (np.repeat(np.arange(n_boot), n_blocks), draws.ravel()), 1.0)
    return out


def jackknife_weights(n_blocks: int, groups: int = 10) -> np.ndarray:
    """G x B weights of the delete-a-group jackknife (block b belongs to group b mod G); BCa's acceleration uses it."""
    g = max(2, min(int(groups), n_blocks))
    w = np.ones((g, n_blocks))
    w[np.arange(n_blocks) % g, np.arange(n_blocks)] = 0.0
    return w


def _quad(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """w_r' M w_r for every row of w."""
    return ((w @ m) * w).sum(1)



def _added(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum of tensors in order, as builtin sum() adds them (the same rounding), typed as a tensor."""
    total: Any = sum(tensors)
    return total

@dataclass
class _Kind:
    """One of the three HSIC terms (x with y, x with x, y with y) in recombinable form."""

    n: torch.Tensor  # B
    nx2: torch.Tensor
    ny2: torch.Tensor
    q: torch.Tensor
    gram: torch.Tensor  # B x B, <S_a, S_b>
    tri: torch.Tensor  # B x B x B, sx_a' S_b sy_c
    sxsx: torch.Tensor  # B x B Gram of column sums
    sysy: torch.Tensor
    syu: torch.Tensor  # sy_a . u_b
    sxw: torch.Tensor  # sx_a . w_b

    @classmethod
    def build(cls, sums: Sequence[PairSums]) -> _Kind:
        s = torch.stack([p.s for p in sums])
        sx, sy = torch.stack([p.sx for p in sums]), torch.stack([p.sy for p in sums])
        u, w = torch.stack([p.u for p in sums]), torch.stack([p.w for p in sums])
        b, dp, dq = s.shape
        flat = s.reshape(b, -1)
        a = torch.matmul(sx, s).reshape(b * b, dq)  # a[(b, a), q] = sx_a' S_b (batched, no copy of s)
        tri = (a @ sy.T).reshape(b, b, b).permute(1, 0, 2).contiguous()
        dev = s.device
        return cls(torch.tensor([float(p.n) for p in sums], dtype=F64, device=dev),
                   torch.stack([p.nx2 for p in sums]), torch.stack([p.ny2 for p in sums]),
                   torch.stack([p.q for p in sums]), flat @ flat.T, tri,
                   sx @ sx.T, sy @ sy.T, sy @ u.T, sx @ w.T)

    def _cubic(self, w: torch.Tensor) -> torch.Tensor:
        """T(w, w, w) = sx(w)' S(w) sy(w) for every weighting."""
        b = self.tri.shape[0]
        m = (w @ self.tri.reshape(b, b * b)).reshape(w.shape[0], b, b)
        return (torch.bmm(m, w[:, :, None])[:, :, 0] * w).sum(1)

    def hsic(self, w: torch.Tensor, debiased: bool) -> torch.Tensor:
        """n^2 HSIC (biased) or n(n-3) HSIC (unbiased) for every weighting, as PairSums.hsic does for one."""
        n = w @ self.n
        t = self._cubic(w)
        xx, yy = _quad(w, self.sxsx), _quad(w, self.sysy)
        frob = _quad(w, self.gram) - 2 * t / n + xx * yy / n**2
        if not debiased:
            return frob
        nx2, ny2 = w @ self.nx2, w @ self.ny2
        mm, mpmp = xx / n**2, yy / n**2
        rown = (w @ self.q - 2 * _quad(w, self.syu) / n + mpmp * nx2 - 2 * _quad(w, self.sxw) / n + 4 * t / n**2
                - 2 * mpmp * xx / n + mm * ny2 - 2 * mm * yy / n + n * mm * mpmp)
        sqx, sqy = nx2 - xx / n, ny2 - yy / n
        return frob - n / (n - 2) * rown + sqx * sqy / ((n - 1) * (n - 2))

    def centred_terms(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tr W, tr W^2, sum_i W_ii^2) of the centred Gram W = X_c X_c' (self kinds): the RV permutation moments."""
        n = w @ self.n
        xx = _quad(w, self.sxsx)
        t = self._cubic(w)
        frob = _quad(w, self.gram) - 2 * t / n + xx * xx / n**2
        nx2 = w @ self.nx2
        mm = xx / n**2
        rown = (w @ self.q - 4 * _quad(w, self.syu) / n + 2 * mm * nx2 + 4 * t / n**2 - 4 * mm * xx / n
                + n * mm * mm)
        return nx2 - xx / n, frob, rown


class PairBlocks:
    """Block sums of one (x layer, y layer) pair over the rows of a pass; `finish()` turns them into `PairStats`."""

    def __init__(self, dx: int, dy: int, n_blocks: int, *, dtype: torch.dtype, device: torch.device | str,
                 shift_x: torch.Tensor, shift_y: torch.Tensor, procrustes_blocks: bool) -> None:
        self.dx, self.dy, self.n_blocks, self.device = dx, dy, n_blocks, torch.device(device)
        self.dtype = dtype
        self.blocks = [Moments([dx], [dy], dtype=dtype, device=device, cross_x=[0], self_x=[0], self_y=[0],
                               shift_x=[shift_x], shift_y=[shift_y]) for _ in range(n_blocks)]
        shared: dict[str, torch.Tensor] = {}
        for m in self.blocks:  # one set of scratch buffers for all blocks (they are filled one after another)
            m._scratch = shared
        self.same_width = dx == dy
        nc = n_blocks if procrustes_blocks else 1
        self.cos = torch.zeros(nc, dx, dy, dtype=F64, device=self.device) if self.same_width else None
        self.cos_n = torch.zeros(nc, dtype=F64, device=self.device)
        self.ranges: list[torch.Tensor] | None = None

    @staticmethod
    def nbytes(dx: int, dy: int, n_blocks: int, procrustes_blocks: bool) -> int:
        """Float64 bytes held per layer pair (block sums, then the B x B x B recombination tensors)."""
        sums = 8 * n_blocks * (dx * dy + dx * dx + dy * dy)
        cos = 8 * (n_blocks if procrustes_blocks else 1) * dx * dy
        return sums + cos + 8 * 3 * n_blocks**3 + 8 * n_blocks**2 * max(dx, dy)

    def update(self, x: torch.Tensor, y: torch.Tensor, block_ids: np.ndarray) -> None:
        """Add a batch of aligned rows; block_ids gives each row's block."""
        for s, e, b in block_runs(block_ids):
            self.blocks[b].update([x[s:e]], [y[s:e]])
        lo_hi = [x.amin(0), x.amax(0), y.amin(0), y.amax(0)]
        self.ranges = lo_hi if self.ranges is None else [
            torch.minimum(self.ranges[0], lo_hi[0]), torch.maximum(self.ranges[1], lo_hi[1]),
            torch.minimum(self.ranges[2], lo_hi[2]), torch.maximum(self.ranges[3], lo_hi[3])]
        if self.cos is None:
            return
        nx, ny = torch.linalg.vector_norm(x, dim=1), torch.linalg.vector_norm(y, dim=1)
        ok = (nx > 0) & (ny > 0)
        xn = torch.where(ok[:, None], x / nx.clamp_min(1e-30)[:, None], 0).to(self.dtype)
        yn = torch.where(ok[:, None], y / ny.clamp_min(1e-30)[:, None], 0).to(self.dtype)
        runs = block_runs(block_ids) if self.cos.shape[0] > 1 else [(0, x.shape[0], 0)]
        for s, e, b in runs:
            self.cos[b] += (xn[s:e].T @ yn[s:e]).to(F64)
            self.cos_n[b] += ok[s:e].sum().to(F64)

    def finish(self) -> PairStats:
        """Recombinable statistics. The d x d block sums go kind by kind (peak memory: the blocks plus one stacked
        kind), except the cross products Procrustes intervals need."""
        mom = self.blocks
        assert self.ranges is not None, "no rows were added"
        assert mom[0].shift_x is not None and mom[0].shift_y is not None
        total = Moments([self.dx], [self.dy], dtype=self.dtype, device=self.device, shift_x=mom[0].shift_x,
                        shift_y=mom[0].shift_y)
        total.n = sum(m.n for m in mom)
        total.sx, total.sy = _added(m.sx for m in mom), _added(m.sy for m in mom)
        total.nx2, total.ny2 = _added(m.nx2 for m in mom), _added(m.ny2 for m in mom)
        xy = [m.cross_terms(0, 0) for m in mom]
        small = {"sx": torch.stack([p.sx for p in xy]), "sy": torch.stack([p.sy for p in xy]),
                 "nx2": torch.stack([p.nx2 for p in xy]), "ny2": torch.stack([p.ny2 for p in xy])}
        keep_cross = self.same_width and self.cos is not None and self.cos.shape[0] > 1
        diag_xy = torch.stack([torch.diagonal(p.s) for p in xy]) if self.same_width else None
        cross = None
        if self.same_width:
            cross = torch.stack([p.s for p in xy]) if keep_cross else _added(p.s for p in xy).unsqueeze(0)
        kind_xy = _Kind.build(xy)
        del xy
        for m in mom:
            m.s_xy = {}
        xx = [m.self_terms_x(0) for m in mom]
        diag_xx, kind_xx = torch.stack([torch.diagonal(p.s) for p in xx]), _Kind.build(xx)
        del xx
        for m in mom:
            m.s_xx = {}
        yy = [m.self_terms_y(0) for m in mom]
        diag_yy, kind_yy = torch.stack([torch.diagonal(p.s) for p in yy]), _Kind.build(yy)
        del yy
        st = PairStats(
            n=torch.tensor([float(m.n) for m in mom], dtype=F64, device=self.device),
            kind_xy=kind_xy, kind_xx=kind_xx, kind_yy=kind_yy, **small, diag_xy=diag_xy, diag_xx=diag_xx,
            diag_yy=diag_yy, keep=None, const_x=total.no_variance_x(0), const_y=total.no_variance_y(0),
            shift_x=mom[0].shift_x[0].to(F64), shift_y=mom[0].shift_y[0].to(F64),
            cross=cross, cos=self.cos, cos_n=self.cos_n, dtype=self.dtype)
        if self.same_width:
            r = self.ranges
            st.keep = (r[1] > r[0]) & (r[3] > r[2])
        self.blocks = []
        return st


@dataclass
class PairStats:
    """What every representation metric of one layer pair needs, per block (B) or summed (first dim 1)."""

    n: torch.Tensor
    kind_xy: _Kind
    kind_xx: _Kind
    kind_yy: _Kind
    sx: torch.Tensor
    sy: torch.Tensor
    nx2: torch.Tensor
    ny2: torch.Tensor
    diag_xy: torch.Tensor | None
    diag_xx: torch.Tensor
    diag_yy: torch.Tensor
    keep: torch.Tensor | None
    const_x: bool
    const_y: bool
    shift_x: torch.Tensor
    shift_y: torch.Tensor
    cross: torch.Tensor | None  # shifted x~'y~ per Procrustes block (or summed), same widths only
    cos: torch.Tensor | None  # sum x y' / (|x||y|) per Procrustes block (or summed)
    cos_n: torch.Tensor
    dtype: torch.dtype

    @property
    def n_blocks(self) -> int:
        return int(self.n.shape[0])

    @property
    def procrustes_blocks(self) -> int:
        return 0 if self.cross is None else int(self.cross.shape[0])

    def _w(self, w: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(w, dtype=F64, device=self.n.device).reshape(-1, self.n_blocks)

    def cka(self, w: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Biased and debiased linear CKA per weighting (NaN where a self term is not positive or a layer is
        constant)."""
        tw = self._w(w)
        out = {}
        for name, deb in (("biased", False), ("debiased", True)):
            hxy = self.kind_xy.hsic(tw, deb)
            hxx, hyy = self.kind_xx.hsic(tw, deb), self.kind_yy.hsic(tw, deb)
            ok = (hxx > 0) & (hyy > 0)
            val = torch.where(ok, hxy / torch.sqrt(hxx.clamp_min(1e-300) * hyy.clamp_min(1e-300)), torch.nan)
            if self.const_x or self.const_y:
                val = torch.full_like(val, torch.nan)
            out[name] = val.cpu().numpy()
        return out

    def rv_null(self) -> tuple[float, float]:
        """Exact mean and variance of biased linear CKA (the RV coefficient) over all row permutations of Y
        (Kazi-Aoual et al. 1995; Josse, Pages & Husson 2008), from the summed moments."""
        one = torch.ones(1, self.n_blocks, dtype=F64, device=self.n.device)
        n = float(one @ self.n)
        tx, tx2, dx2 = (float(v) for v in self.kind_xx.centred_terms(one))
        ty, ty2, dy2 = (float(v) for v in self.kind_yy.centred_terms(one))
        return rv_permutation_moments(n, (tx, tx2, dx2), (ty, ty2, dy2))

    def dimwise(self, w: np.ndarray | torch.Tensor) -> np.ndarray:
        """Mean Pearson r over coordinates not constant in X or Y, per weighting."""
        assert self.diag_xy is not None and self.keep is not None
        tw = self._w(w)
        n = (tw @ self.n)[:, None]
        sx, sy = tw @ self.sx, tw @ self.sy
        cov = tw @ self.diag_xy - sx * sy / n
        vx = (tw @ self.diag_xx - sx * sx / n).clamp_min(0)
        vy = (tw @ self.diag_yy - sy * sy / n).clamp_min(0)
        r = (cov / torch.sqrt(vx * vy))[:, self.keep].clamp(-1, 1)
        out = torch.nanmean(r, dim=1) if bool(self.keep.any()) else torch.full((tw.shape[0],), torch.nan)
        return out.cpu().numpy()

    def procrustes(self, w: np.ndarray | torch.Tensor, svd_dtype: torch.dtype = F64,
                   keep_map: bool = False) -> dict[str, np.ndarray]:
        """rvr, cosine, rie, sparsity and rank per weighting from one SVD each: O = UV' of the centred cross product
        (the identity on its null space, and rank its effective rank: `procrustes.procrustes_map`),
        rvr = ||XO - Y||^2 / ||Y||^2 and cosine = <O, sum x y'/(|x||y|)> / rows on the uncentred rows. The SVD runs in
        `svd_dtype` (float32 halves its cost for replicates of float32 activations: its rounding, ~1e-7 of the largest
        singular value, is far below the sampling noise a replicate measures; a replicate that may be rank-deficient at
        that precision is factorised again in float64); everything else in float64.
        keep_map: keep the first weighting's map O (d x d) as `self.map` (the point estimate's O*, for the report)."""
        assert self.cross is not None and self.cos is not None
        tw = self._w(w)
        if self.cross.shape[0] == 1:
            if tw.shape[0] != 1 or not bool((tw == 1).all()):
                raise ValueError("Procrustes block sums were not kept for this layer: only the point estimate exists")
            pw = torch.ones(1, 1, dtype=F64, device=tw.device)
        else:
            pw = tw
        a, b = self.shift_x, self.shift_y
        keys = ("rvr", "cosine", "rie", "sparsity", "rank")
        out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for s in range(0, tw.shape[0], PROCRUSTES_CHUNK):
            w_, pw_ = tw[s:s + PROCRUSTES_CHUNK], pw[s:s + PROCRUSTES_CHUNK]
            n = w_ @ self.n
            sx, sy = w_ @ self.sx, w_ @ self.sy
            cross = torch.einsum("rb,bpq->rpq", pw_, self.cross)
            centred = cross - sx[:, :, None] * sy[:, None, :] / n[:, None, None]
            o, rank = procrustes_map(centred, svd_dtype)
            out["rank"].append(rank.to(F64).cpu().numpy())
            if keep_map and s == 0:
                self.map = o[0].cpu().numpy()
            raw = cross + sx[:, :, None] * b + a[:, None] * sy[:, None, :] + n[:, None, None] * torch.outer(a, b)
            xx = w_ @ self.nx2 + 2 * (sx @ a) + n * (a @ a)
            yy = w_ @ self.ny2 + 2 * (sy @ b) + n * (b @ b)
            res = (xx + yy - 2 * (o * raw).sum((1, 2))).clamp_min(0)
            out["rvr"].append(torch.where(yy > 0, res / yy, torch.nan).cpu().numpy())
            cos = torch.einsum("rb,bpq->rpq", pw_, self.cos)
            cn = pw_ @ self.cos_n
            out["cosine"].append(torch.where(cn > 0, (o * cos).sum((1, 2)) / cn, torch.nan).cpu().numpy())
            rie, sparsity = rotation_stats_batched(o)
            out["rie"].append(rie.cpu().numpy())
            out["sparsity"].append(sparsity.cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


def rotation_stats_batched(o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rie and sparsity (as procrustes.rotation_stats) of a batch of orthogonal matrices r x d x d."""
    d = o.shape[-1]
    p = o.square()
    p = p / p.sum(-1, keepdim=True)
    ent = -(torch.special.xlogy(p, p)).sum(-1).mean(-1)
    rie = torch.ones_like(ent) if d == 1 else 1.0 - ent / math.log(d)
    return rie, (o.abs() < SPARSITY_EPS).to(F64).mean((1, 2))


def rv_permutation_moments(
    n: float, x: tuple[float, float, float], y: tuple[float, float, float]
) -> tuple[float, float]:
    """Mean and variance of RV(X, Y P) over all n! row permutations P, from (tr W, tr W^2, sum_i W_ii^2) of each
    centred Gram matrix (Kazi-Aoual et al. 1995, as given by Josse, Pages & Husson 2008, CSDA 53:82-91)."""
    if n < 4:
        return float("nan"), float("nan")

    def beta_tau(t: float, t2: float, d2: float) -> tuple[float, float]:
        beta = t * t / t2
        tau = (n - 1) / ((n - 3) * (n - 1 - beta)) * (n * (n + 1) * d2 / t2 - (n - 1) * (beta + 2))
        return beta, tau

    if not (x[1] > 0 and y[1] > 0):
        return float("nan"), float("nan")
    bx, tx = beta_tau(*x)
    by, ty = beta_tau(*y)
    mean = math.sqrt(bx * by) / (n - 1)
    var = (2 * (n - 1 - bx) * (n - 1 - by) / ((n + 1) * (n - 1) ** 2 * (n - 2))
           * (1 + (n - 3) / (2 * n * (n - 1)) * tx * ty))
    return mean, var
