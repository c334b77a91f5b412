"""Float64 moment sums over row batches; linear CKA (biased and debiased), correlations and Procrustes follow from them.

Rows are shifted by the first batch's column means before anything is summed (x~ = x - a): every statistic here is
either translation invariant or corrected for the shift exactly, and the shift removes most of the cancellation that
summing raw LLM activations (large mean, "massive activation" channels) would cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: bound on one float32 GEMM output block before it is added into a float64 accumulator
_TEMP_BYTES = 1 << 24
F64 = torch.float64


def colsum(t: torch.Tensor) -> torch.Tensor:
    """Float64 column sums without a float64 copy of t (torch's sum(dtype=float64) makes one); float32 input is
    summed with torch's cascade summation, whose error grows like log(rows), not rows."""
    return t.sum(0).to(F64)


def offsets(widths: Sequence[int]) -> list[int]:
    """Start offsets of consecutive blocks of the given widths, plus the total at the end."""
    out = [0]
    for w in widths:
        out.append(out[-1] + int(w))
    return out


class Moments:
    """Sums over rows for Lx x-layers and Ly y-layers (same rows): n, column sums, squared row norms and their
    products, row-norm-weighted column sums, and d x d products x~_i' y~_j (only for `cross_x` layers i, every j)
    and x~_i' x~_i / y~_j' y~_j (only for `self_x` / `self_y`). Memory: the requested d x d blocks in float64."""

    def __init__(self, widths_x: Sequence[int], widths_y: Sequence[int], *, dtype: torch.dtype,
                 device: torch.device | str, cross_x: Sequence[int] = (), self_x: Sequence[int] = (),
                 self_y: Sequence[int] = (), shift_x: list[torch.Tensor] | None = None,
                 shift_y: list[torch.Tensor] | None = None) -> None:
        self.wx, self.wy = [int(w) for w in widths_x], [int(w) for w in widths_y]
        self.ox, self.oy = offsets(self.wx), offsets(self.wy)
        self.dtype, self.device = dtype, torch.device(device)
        lx, ly, dx, dy = len(self.wx), len(self.wy), self.ox[-1], self.oy[-1]
        z: dict[str, Any] = {"dtype": F64, "device": self.device}
        self.n = 0
        self.shift_x, self.shift_y = shift_x, shift_y
        self.sx, self.sy = torch.zeros(dx, **z), torch.zeros(dy, **z)  # column sums of x~, y~ (all layers)
        self.nx2, self.ny2 = torch.zeros(lx, **z), torch.zeros(ly, **z)  # sum of |x~_i|^2 per layer
        self.q_xy = torch.zeros(lx, ly, **z)  # sum |x~_i|^2 |y~_j|^2
        self.q_xx, self.q_yy = torch.zeros(lx, **z), torch.zeros(ly, **z)  # sum |x~_i|^4
        self.u_xy = torch.zeros(lx, dy, **z)  # sum |x~_i|^2 y~ (all y layers)
        self.u_yx = torch.zeros(ly, dx, **z)  # sum |y~_j|^2 x~
        self.u_xx = torch.zeros(lx, dx, **z)  # sum |x~_i|^2 x~_i (diagonal blocks only)
        self.u_yy = torch.zeros(ly, dy, **z)  # sum |y~_j|^2 y~ (diagonal blocks used)
        self.s_xy = {i: torch.zeros(self.wx[i], dy, **z) for i in cross_x}
        self.s_xx = {i: torch.zeros(self.wx[i], self.wx[i], **z) for i in self_x}
        self.s_yy = {j: torch.zeros(self.wy[j], self.wy[j], **z) for j in self_y}
        self._scratch: dict[str, torch.Tensor] = {}  # per-batch buffers, reused (no allocator churn between batches)

    def _buffer(self, name: str, numel: int) -> torch.Tensor:
        """A flat compute-dtype scratch buffer of at least `numel` elements, kept for the next batch."""
        buf = self._scratch.get(name)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(numel, dtype=self.dtype, device=self.device)
            self._scratch[name] = buf
        return buf[:numel]

    # ---------------------------------------------------------------- accumulation
    def _stack(self, mats: Sequence[torch.Tensor], shifts: list[torch.Tensor], off: list[int]) -> torch.Tensor:
        """All layers side by side, shifted, in the compute dtype (one buffer: one GEMM operand per side)."""
        out = self._buffer("stack", mats[0].shape[0] * off[-1]).view(mats[0].shape[0], off[-1])
        for k, m in enumerate(mats):
            torch.sub(m.to(self.dtype), shifts[k], out=out[:, off[k]:off[k + 1]])
        return out

    def _row_sq_norms(self, stacked: torch.Tensor, off: list[int]) -> torch.Tensor:
        """n_b x L float64 squared row norms per layer."""
        cols = [torch.linalg.vector_norm(stacked[:, off[k]:off[k + 1]], dim=1).to(F64).square()
                for k in range(len(off) - 1)]
        return torch.stack(cols, dim=1)

    def _add_product(self, acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        """acc += a' b with a float64 accumulator; float32 GEMMs in column blocks bound the temporary."""
        if a.dtype == F64:
            acc.addmm_(a.T, b)
            return
        step = max(1, _TEMP_BYTES // (4 * max(1, a.shape[1])))
        for c in range(0, b.shape[1], step):
            w = min(step, b.shape[1] - c)
            prod = self._buffer("product", a.shape[1] * w).view(a.shape[1], w)
            torch.mm(a.T, b[:, c:c + w], out=prod)
            acc[:, c:c + w].add_(prod)

    def update(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> None:
        """Add one batch: xs[i] (n_b x wx[i]) and ys[j] (n_b x wy[j]) hold the same rows. Extra memory: one shifted
        copy of the y layers side by side (the right GEMM operand) and one shifted x layer at a time."""
        if self.shift_x is None or self.shift_y is None:
            self.shift_x = [(colsum(x) / x.shape[0]).to(self.dtype) for x in xs]
            self.shift_y = [(colsum(y) / y.shape[0]).to(self.dtype) for y in ys]
        yt = self._stack(ys, self.shift_y, self.oy)
        ny = self._row_sq_norms(yt, self.oy)
        nyc = ny.to(self.dtype)
        self.n += yt.shape[0]
        self.sy += colsum(yt)
        self.ny2 += ny.sum(0)
        self.q_yy += ny.square().sum(0)
        self.u_yy += (nyc.T @ yt).to(F64)
        for j, acc in self.s_yy.items():
            yj = yt[:, self.oy[j]:self.oy[j + 1]]
            self._add_product(acc, yj, yj)
        buf = self._buffer("x", yt.shape[0] * max(self.wx)).view(yt.shape[0], max(self.wx))
        for i, x in enumerate(xs):
            xi, bx = buf[:, :self.wx[i]], slice(self.ox[i], self.ox[i + 1])
            torch.sub(x.to(self.dtype), self.shift_x[i], out=xi)
            ni = torch.linalg.vector_norm(xi, dim=1).to(F64).square()
            nic = ni.to(self.dtype)
            self.sx[bx] += colsum(xi)
            self.nx2[i] += ni.sum()
            self.q_xx[i] += ni.square().sum()
            self.q_xy[i] += ni @ ny
            self.u_xy[i] += (nic @ yt).to(F64)
            self.u_yx[:, bx] += (nyc.T @ xi).to(F64)
            self.u_xx[i, bx] += (nic @ xi).to(F64)
            if i in self.s_xy:
                self._add_product(self.s_xy[i], xi, yt)
            if i in self.s_xx:
                self._add_product(self.s_xx[i], xi, xi)

    # ---------------------------------------------------------------- per-layer checks
    def no_variance_x(self, i: int) -> bool:
        """True when x layer i's centred variance is at rounding level of its raw magnitude (a constant layer)."""
        assert self.shift_x is not None
        b = slice(self.ox[i], self.ox[i + 1])
        return _at_rounding_level(float(self.nx2[i] - self.sx[b] @ self.sx[b] / self.n),
                                  self.nx2[i], self.sx[b], self.shift_x[i], self.n, self.dtype)

    def no_variance_y(self, j: int) -> bool:
        """True when y layer j's centred variance is at rounding level of its raw magnitude (a constant layer)."""
        assert self.shift_y is not None
        b = slice(self.oy[j], self.oy[j + 1])
        return _at_rounding_level(float(self.ny2[j] - self.sy[b] @ self.sy[b] / self.n),
                                  self.ny2[j], self.sy[b], self.shift_y[j], self.n, self.dtype)

    # ---------------------------------------------------------------- per-pair terms
    def cross_terms(self, i: int, j: int) -> PairSums:
        """Sums for (x layer i, y layer j); needs i in cross_x."""
        bx, by = slice(self.ox[i], self.ox[i + 1]), slice(self.oy[j], self.oy[j + 1])
        return PairSums(self.n, self.s_xy[i][:, by], self.sx[bx], self.sy[by], self.nx2[i], self.ny2[j],
                        self.q_xy[i, j], self.u_xy[i, by], self.u_yx[j, bx])

    def self_terms_x(self, i: int) -> PairSums:
        """Sums for (x layer i, x layer i); needs i in self_x."""
        b = slice(self.ox[i], self.ox[i + 1])
        u = self.u_xx[i, b]
        return PairSums(self.n, self.s_xx[i], self.sx[b], self.sx[b], self.nx2[i], self.nx2[i], self.q_xx[i], u, u)

    def self_terms_y(self, j: int) -> PairSums:
        """Sums for (y layer j, y layer j); needs j in self_y."""
        b = slice(self.oy[j], self.oy[j + 1])
        u = self.u_yy[j, b]
        return PairSums(self.n, self.s_yy[j], self.sy[b], self.sy[b], self.ny2[j], self.ny2[j], self.q_yy[j], u, u)


class PairSums:
    """Shifted sums for one (x, y) pair: s = sum x~ y~', sx, sy, nx2 = sum |x~|^2, ny2, q = sum |x~|^2 |y~|^2,
    u = sum |x~|^2 y~, w = sum |y~|^2 x~; everything below is exact algebra on them."""

    def __init__(self, n: int, s: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor, nx2: torch.Tensor,
                 ny2: torch.Tensor, q: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> None:
        self.n, self.s, self.sx, self.sy, self.nx2, self.ny2, self.q, self.u, self.w = n, s, sx, sy, nx2, ny2, q, u, w

    def centred(self) -> torch.Tensor:
        """Column-centred cross product X_c' Y_c."""
        return self.s - torch.outer(self.sx, self.sy) / self.n

    def centred_sq_norms(self) -> tuple[float, float]:
        """sum_i |x_i - mean|^2 and the same for y."""
        n = self.n
        return float(self.nx2 - self.sx @ self.sx / n), float(self.ny2 - self.sy @ self.sy / n)

    def centred_rownorm_product(self) -> float:
        """sum_i |x_i - mean_x|^2 |y_i - mean_y|^2, expanded in the shifted sums (needed by debiased HSIC)."""
        n, m, mp = self.n, self.sx / self.n, self.sy / self.n
        mm, mpmp = m @ m, mp @ mp
        val = (self.q - 2 * (mp @ self.u) + mpmp * self.nx2 - 2 * (m @ self.w) + 4 * (m @ self.s @ mp)
               - 2 * mpmp * (m @ self.sx) + mm * self.ny2 - 2 * mm * (mp @ self.sy) + n * mm * mpmp)
        return float(val)

    def hsic(self, debiased: bool) -> float:
        """n^2 x biased HSIC (||X_c' Y_c||_F^2) or n(n-3) x the unbiased estimator of Song et al. (2007)."""
        c = self.centred()
        frob = float((c * c).sum())
        if not debiased:
            return frob
        n = self.n
        sqx, sqy = self.centred_sq_norms()
        return frob - n / (n - 2) * self.centred_rownorm_product() + sqx * sqy / ((n - 1) * (n - 2))


def _at_rounding_level(centred: float, nx2: torch.Tensor, sx: torch.Tensor, shift: torch.Tensor, n: int,
                       dtype: torch.dtype) -> bool:
    """centred sum of squares <= (16 eps)^2 x raw sum of squares (raw = sum |x~ + a|^2, rebuilt from the sums)."""
    a = shift.to(F64)
    raw = float(nx2 + 2 * (a @ sx) + n * (a @ a))
    eps = torch.finfo(dtype).eps
    return centred <= (16 * eps) ** 2 * raw


def cka_from_hsic(hxy: float, hxx: float, hyy: float) -> float:
    """HSIC(X,Y) / sqrt(HSIC(X,X) HSIC(Y,Y)); NaN when a self term is not positive (no variance, or n too small)."""
    if not (hxx > 0 and hyy > 0):
        return float("nan")
    return float(hxy / (hxx ** 0.5 * hyy ** 0.5))
