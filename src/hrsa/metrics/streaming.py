"""One layer pair streamed over row batches: CKA (biased and debiased), dim-wise correlation and Procrustes from
float64 d x d sums, so activations never have to fit in memory at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from hrsa.errors import HrsaError
from hrsa.metrics._moments import F64, Moments, cka_from_hsic
from hrsa.metrics.procrustes import procrustes_map, residual_and_cosine, rotation_stats
from hrsa.tensors import Device, to_tensor


class StreamingPairStats:
    """Accumulates one (X, Y) layer pair batch by batch (float64 sums of X'Y, X'X, Y'Y, column sums, row norms and
    column ranges); every metric is then exact algebra on those sums. Procrustes `cosine` is a mean over rows of
    XO and Y, so it needs a second pass over the batches once O is known (`procrustes(batches)`)."""

    def __init__(self, device: Device = None) -> None:
        self._device = device
        self._mom: Moments | None = None
        self._xmin: torch.Tensor | None = None
        self._xmax: torch.Tensor | None = None
        self._ymin: torch.Tensor | None = None
        self._ymax: torch.Tensor | None = None

    @property
    def n(self) -> int:
        """Rows seen so far."""
        return 0 if self._mom is None else self._mom.n

    def update(self, x: Any, y: Any) -> StreamingPairStats:
        """Add a batch of aligned rows (numpy or torch, n_b x dx and n_b x dy); returns self for chaining."""
        dev = self._device if self._mom is None else self._mom.device
        tx = to_tensor(x, "x batch", dev)
        ty = to_tensor(y, "y batch", tx.device)
        if tx.shape[0] != ty.shape[0]:
            raise HrsaError(f"batch rows differ: x has {tx.shape[0]}, y has {ty.shape[0]}")
        if self._mom is None:
            dtype = torch.promote_types(tx.dtype, ty.dtype)
            self._mom = Moments([tx.shape[1]], [ty.shape[1]], dtype=dtype, device=tx.device,
                                cross_x=[0], self_x=[0], self_y=[0])
        elif tx.shape[1] != self._mom.wx[0] or ty.shape[1] != self._mom.wy[0]:
            raise HrsaError(f"batch widths {tx.shape[1]}, {ty.shape[1]} differ from the first batch's "
                            f"{self._mom.wx[0]}, {self._mom.wy[0]}")
        self._mom.update([tx], [ty])
        self._xmin, self._xmax = _fold_range(self._xmin, self._xmax, tx)
        self._ymin, self._ymax = _fold_range(self._ymin, self._ymax, ty)
        return self

    def _need(self, rows: int = 2) -> Moments:
        if self._mom is None or self._mom.n < rows:
            raise HrsaError(f"StreamingPairStats needs at least {rows} rows, has {self.n}")
        return self._mom

    def linear_cka(self, debiased: bool = False) -> float:
        """Linear CKA of the rows seen so far (debiased: unbiased HSIC in feature space)."""
        mom = self._need(4 if debiased else 2)
        if mom.no_variance_x(0) or mom.no_variance_y(0):
            raise HrsaError("CKA is undefined: X or Y has zero variance (all rows equal)")
        return cka_from_hsic(mom.cross_terms(0, 0).hsic(debiased), mom.self_terms_x(0).hsic(debiased),
                             mom.self_terms_y(0).hsic(debiased))

    def _same_width(self, what: str) -> Moments:
        mom = self._need()
        if mom.wx[0] != mom.wy[0]:
            raise HrsaError(f"{what} needs X and Y of the same width: X has {mom.wx[0]} columns, Y has {mom.wy[0]}")
        return mom

    def dimwise_correlation(self) -> float:
        """Mean Pearson r over coordinates, skipping coordinates constant in X or in Y."""
        mom = self._same_width("dimwise correlation")
        assert self._xmin is not None and self._xmax is not None and self._ymin is not None and self._ymax is not None
        cov = torch.diagonal(mom.cross_terms(0, 0).centred())
        vx = torch.diagonal(mom.self_terms_x(0).centred())
        vy = torch.diagonal(mom.self_terms_y(0).centred())
        keep = (self._xmax > self._xmin) & (self._ymax > self._ymin)
        if not bool(keep.any()):
            raise HrsaError("dimwise correlation is undefined: every coordinate is constant in X or in Y")
        r = cov[keep] / torch.sqrt(vx[keep].clamp_min(0) * vy[keep].clamp_min(0))
        return float(r.clamp(-1, 1).mean())

    def procrustes_rotation(self) -> torch.Tensor:
        """Orthogonal O (float64) minimising ||X_c O - Y_c||_F, from the SVD of the centred cross product (the
        identity on its null space: `procrustes_map`)."""
        return self._procrustes_map()[0]

    def _procrustes_map(self) -> tuple[torch.Tensor, torch.Tensor]:
        return procrustes_map(self._same_width("Procrustes").cross_terms(0, 0).centred())

    def procrustes(self, batches: Iterable[tuple[Any, Any]] | None = None) -> dict[str, float]:
        """rvr, rie, sparsity and rank (of centred X'Y) from the sums; with `batches` (the same rows again) also
        `cosine`, and rvr is then measured directly in that pass instead of derived as
        (||X||^2 + ||Y||^2 - 2 tr(O'X'Y)) / ||Y||^2."""
        mom = self._same_width("Procrustes")
        o, rank = self._procrustes_map()
        out = rotation_stats(o)
        out["rank"] = float(rank)
        if batches is None:
            out["rvr"] = self._rvr_from_sums(mom, o)
            return out
        res, yy, cos_sum, cos_n, rows = 0.0, 0.0, 0.0, 0, 0
        oc = o.to(mom.dtype)
        for b, (x, y) in enumerate(batches):
            tx = to_tensor(x, f"second-pass batch {b} x", mom.device).to(mom.dtype)
            ty = to_tensor(y, f"second-pass batch {b} y", mom.device).to(mom.dtype)
            r, s, c, k = residual_and_cosine(tx, ty, oc)
            res, yy, cos_sum, cos_n, rows = res + r, yy + s, cos_sum + c, cos_n + k, rows + tx.shape[0]
        if rows != mom.n:
            raise HrsaError(f"the second pass saw {rows} rows, the first {mom.n}: pass the same batches again")
        out["rvr"] = res / yy if yy > 0 else float("nan")
        out["cosine"] = cos_sum / cos_n if cos_n else float("nan")
        return out

    @staticmethod
    def _rvr_from_sums(mom: Moments, o: torch.Tensor) -> float:
        """||XO - Y||^2 / ||Y||^2 on uncentred data, from shifted sums: ||XO||^2 = ||X||^2 because O is orthogonal."""
        assert mom.shift_x is not None and mom.shift_y is not None
        t = mom.cross_terms(0, 0)
        a, b, n = mom.shift_x[0].to(F64), mom.shift_y[0].to(F64), t.n
        xx = float(t.nx2 + 2 * (a @ t.sx) + n * (a @ a))
        yy = float(t.ny2 + 2 * (b @ t.sy) + n * (b @ b))
        xty = t.s + torch.outer(t.sx, b) + torch.outer(a, t.sy) + n * torch.outer(a, b)
        if yy <= 0:
            return float("nan")
        return max(0.0, (xx + yy - 2 * float((o * xty).sum())) / yy)


def _fold_range(lo: torch.Tensor | None, hi: torch.Tensor | None, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Running column minimum and maximum (exact constant-coordinate detection)."""
    bmin, bmax = t.amin(0), t.amax(0)
    if lo is None or hi is None:
        return bmin, bmax
    return torch.minimum(lo, bmin), torch.maximum(hi, bmax)
