"""Input handling shared by the metrics: numpy or torch in, validated floating torch tensors out (no copy when
possible)."""

from __future__ import annotations

import warnings
from typing import Any, TypeAlias

import numpy as np
import torch

from hrsa.errors import HrsaError

Device: TypeAlias = "str | torch.device | None"

#: target size of one row chunk when a metric walks an in-memory matrix (bounds temporaries)
CHUNK_BYTES = 1 << 25


def to_tensor(a: Any, name: str, device: Device = None, check_finite: bool = True) -> torch.Tensor:
    """2-D floating tensor (float32 or float64) on `device` (default: where it lives); HrsaError on bad shape or
    NaN/inf."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == np.bool_):
            raise HrsaError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr)
        with warnings.catch_warnings():  # read-only arrays (pyarrow zero-copy) are never written to
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(arr)
    if t.ndim != 2:
        raise HrsaError(f"{name} must be 2-D (rows x features), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise HrsaError(f"{name} is empty: shape {tuple(t.shape)}")
    if t.is_complex():
        raise HrsaError(f"{name} must be real, got {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    if device is not None:
        t = t.to(device)
    # NaN/inf propagate into the sum (one pass, no mask or float64 copy); the exact check runs only when it fails
    # (also catching a sum that overflowed from large finite values)
    if check_finite and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise HrsaError(f"{name} contains NaN or inf values")
    return t


def to_pair(X: Any, Y: Any, device: Device = None, same_width: bool = False,
            what: str = "this metric") -> tuple[torch.Tensor, torch.Tensor]:
    """X and Y as tensors with the same row count, dtype and device (Y follows X); optional equal widths."""
    tx = to_tensor(X, "X", device)
    ty = to_tensor(Y, "Y", tx.device)
    if tx.shape[0] != ty.shape[0]:
        raise HrsaError(f"X and Y must have aligned rows: X has {tx.shape[0]} rows, Y has {ty.shape[0]}")
    if same_width and tx.shape[1] != ty.shape[1]:
        raise HrsaError(f"{what} needs X and Y of the same width: X has {tx.shape[1]} columns, Y has {ty.shape[1]}")
    dtype = torch.promote_types(tx.dtype, ty.dtype)
    return tx.to(dtype), ty.to(dtype)


def chunk_rows(width: int, itemsize: int, target: int = CHUNK_BYTES) -> int:
    """Rows per chunk so that one chunk of a `width`-wide matrix takes about `target` bytes."""
    return max(64, target // max(1, width * itemsize))


def to_numpy(a: Any, name: str, dtype: type = np.float32, check_finite: bool = True) -> np.ndarray:
    """C-contiguous 2-D numpy array (for FAISS / scikit-learn); HrsaError on bad shape or NaN/inf."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise HrsaError(f"{name} must be 2-D (rows x features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise HrsaError(f"{name} is empty: shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise HrsaError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if check_finite and not np.isfinite(arr.sum()) and not np.isfinite(arr).all():  # cheap test first, as above
        raise HrsaError(f"{name} contains NaN or inf values")
    return arr


def take_rows(a: Any, idx: np.ndarray) -> Any:
    """Rows `idx` of a numpy array or torch tensor, keeping its type and device."""
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(idx, device=a.device, dtype=torch.long)]
    return np.asarray(a)[idx]


def n_rows(a: Any) -> int:
    """Number of rows of a numpy array or torch tensor."""
    return int(a.shape[0])
