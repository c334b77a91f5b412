"""Exact kNN graphs through FAISS (cosine or L2), self excluded, queried in chunks; a GPU index when FAISS has one."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hrsa.errors import HrsaError

KnnMetric = Literal["cosine", "l2"]
#: query rows per FAISS search call (bounds the per-call result and scratch memory)
QUERY_BATCH = 16384
#: FAISS GPU flat indexes return at most this many neighbours
_GPU_MAX_K = 2048


def _faiss() -> Any:
    """FAISS with its OpenMP threads capped at HRSA_THREADS (set by the CLI's --threads) when that is set."""
    import faiss

    threads = os.environ.get("HRSA_THREADS")
    if threads:
        faiss.omp_set_num_threads(max(1, int(threads)))
    return faiss


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees a GPU."""
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


@functools.lru_cache(maxsize=1)
def _gpu_resources() -> Any:
    """One StandardGpuResources per process (it must outlive every GPU index made with it)."""
    return _faiss().StandardGpuResources()


def prepare_rows(X: Any, metric: KnnMetric = "cosine") -> np.ndarray:
    """float32 C-contiguous rows for FAISS (L2-normalised for cosine); HrsaError on NaN/inf or zero rows under
    cosine."""
    from hrsa.tensors import to_numpy

    if metric not in ("cosine", "l2"):
        raise HrsaError(f"kNN metric must be 'cosine' or 'l2', got {metric!r}")
    x = to_numpy(X, "X", np.float32)
    if metric == "l2":
        return x
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))  # float32 like the FAISS search itself
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise HrsaError(f"cosine kNN is undefined for zero rows ({zero.size} of them, first at row {zero[0]})")
    return np.divide(x, norms[:, None], dtype=np.float32)


def _index(xb: np.ndarray, metric: KnnMetric, k: int, use_gpu: bool | None) -> Any:
    faiss = _faiss()
    index = faiss.IndexFlatIP(xb.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(xb.shape[1])
    gpu = gpu_available() if use_gpu is None else use_gpu
    if gpu and k + 1 <= _GPU_MAX_K:
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    index.add(xb)
    return index


def drop_self(sims: np.ndarray, idx: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From k+1 hits per query remove the query's own index wherever it appears (duplicate rows may rank above it);
    where it is absent (more than k duplicates) drop the last hit instead."""
    own = idx == rows[:, None]
    missing = ~own.any(1)
    own[missing, -1] = True
    first = own.argmax(1)  # exactly one column is dropped per row
    own[:] = False
    own[np.arange(len(rows)), first] = True
    keep = ~own
    n, k1 = idx.shape
    return sims[keep].reshape(n, k1 - 1), idx[keep].reshape(n, k1 - 1)


def knn_graph(X: Any, k: int, metric: KnnMetric = "cosine", *, query_batch: int = QUERY_BATCH,
              use_gpu: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row among the other rows: (similarities float32 n x k, indices int64 n x k),
    best first. Cosine: inner product of L2-normalised rows; "l2": similarity = minus the squared distance."""
    xb = prepare_rows(X, metric)
    n = xb.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise HrsaError(f"k must be a positive integer, got {k!r}")
    if k >= n:
        raise HrsaError(f"k={k} neighbours need more than k rows, got {n}")
    index = _index(xb, metric, int(k), use_gpu)
    sims = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, max(1, int(query_batch))):
        e = min(n, s + query_batch)
        d, i = index.search(xb[s:e], int(k) + 1)
        d, i = drop_self(d, i.astype(np.int64, copy=False), np.arange(s, e))
        sims[s:e], idx[s:e] = (d if metric == "cosine" else -d), i
    return sims, idx


def graph_distances(similarities: np.ndarray, metric: KnnMetric = "cosine") -> np.ndarray:
    """Euclidean distances from knn_graph similarities: chordal sqrt(2 - 2 s) on the unit sphere for cosine,
    sqrt(-s) for l2 (float64, clipped at 0)."""
    s = np.asarray(similarities, dtype=np.float64)
    if metric == "cosine":
        return np.sqrt(np.clip(2.0 - 2.0 * s, 0.0, None))
    if metric == "l2":
        return np.sqrt(np.clip(-s, 0.0, None))
    raise HrsaError(f"kNN metric must be 'cosine' or 'l2', got {metric!r}")


# ------------------------------------------------------------------------------------------------ stored graphs
#: what a stored graph must agree on with the activations it is read against (besides k, checked against its shape)
STAMP_KEYS = ("model_id", "layer", "activation_hash", "row_hash")


def graph_stamp(activations: str | Path, layer: str) -> dict[str, str]:
    """Identity of the rows a graph is built from: model id, layer, the layer's content hash and the row order."""
    from hrsa.activations import layer_hash, read_meta

    meta = read_meta(activations)
    return {"model_id": str(meta["model_id"]), "layer": str(layer), "activation_hash": layer_hash(activations, layer),
            "row_hash": str(meta["row_hash"])}


def subsample_rows(n: int, max_rows: int, seed: int = 0) -> np.ndarray | None:
    """Sorted seeded sample of max_rows of n rows for a capped kNN graph (the same for every model with n aligned
    rows, so their graphs stay comparable); None when every row is kept (max_rows <= 0 or n <= max_rows)."""
    if max_rows <= 0 or n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False)).astype(np.int64)


def write_graph(path: str | Path, indices: np.ndarray, similarities: np.ndarray, stamp: dict[str, str],
                rows: np.ndarray | None = None) -> None:
    """Store a kNN graph (.npz, written atomically) stamped with its activations' identity and k; `rows` (a capped
    graph) names the activation rows it was built over, and its indices point into that list."""
    from hrsa.io import atomic_path

    extra = {} if rows is None else {"rows": np.asarray(rows, dtype=np.int64)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            # mypy checks the ** dicts against savez's `allow_pickle: bool` too (a stub/mypy quirk, not a bug)
            np.savez(fh, indices=indices.astype(np.int32), similarities=similarities.astype(np.float32),
                     k=np.array(indices.shape[1]), **{key: np.array(stamp[key]) for key in STAMP_KEYS}, **extra)  # type: ignore[arg-type]


def graph_rows(path: str | Path) -> np.ndarray | None:
    """The activation rows a capped graph was built over (its indices point into them), or None for every row."""
    with np.load(path, allow_pickle=False) as z:
        return z["rows"] if "rows" in z.files else None


_WHAT = {"model_id": "model", "layer": "layer", "activation_hash": "activations (content hash)", "row_hash": "rows"}
_REDO = "delete it and re-run its knn job"


def _open_graph(path: str | Path) -> Any:
    import zipfile

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise HrsaError(f"kNN graph {path} does not exist; run its knn job") from exc
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise HrsaError(f"kNN graph {path} is truncated or unreadable ({exc}); {_REDO}") from exc


def check_graph(path: str | Path, activations: str | Path, layer: str) -> None:
    """The graph's stamp (model, layer, the layer's content hash, rows) against these activations at this layer, read
    without its arrays (compare checks every graph before its pass); HrsaError naming the file and the mismatch."""
    import zipfile

    expected = graph_stamp(activations, layer)
    with _open_graph(path) as z:
        try:
            stored = {key: str(z[key]) for key in STAMP_KEYS if key in z.files}
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise HrsaError(f"kNN graph {path} is truncated or unreadable ({exc}); {_REDO}") from exc
    for key in STAMP_KEYS:
        if key not in stored:
            raise HrsaError(f"kNN graph {path} carries no {_WHAT[key]} stamp (written by an older hrsa); {_REDO}")
        if stored[key] != expected[key]:
            raise HrsaError(f"kNN graph {path} was built for {_WHAT[key]} {stored[key][:16]!r}, "
                            f"not {expected[key][:16]!r} of {activations} layer {layer}; {_REDO}")


def read_graph(path: str | Path, activations: str | Path, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of a stored kNN graph, after checking it was built from exactly these activations at
    this layer; HrsaError naming the file and the mismatch (other model, layer or activations, or a damaged file)."""
    import zipfile

    from hrsa.activations import read_meta

    check_graph(path, activations, layer)
    with _open_graph(path) as z:
        try:
            indices, similarities, k = z["indices"], z["similarities"], int(z["k"])
            rows = z["rows"] if "rows" in z.files else None
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise HrsaError(f"kNN graph {path} is truncated or unreadable ({exc}); {_REDO}") from exc
    redo = _REDO
    n = int(read_meta(activations)["n_rows"])
    if rows is not None:  # a capped graph: rows must be distinct, sorted activation rows; indices point into them
        if rows.ndim != 1 or (len(rows) and (rows[0] < 0 or rows[-1] >= n)) or (np.diff(rows) <= 0).any():
            raise HrsaError(f"kNN graph {path} names rows outside 0..{n - 1} or out of order; {redo}")
        n = len(rows)
    in_range = n == 0 or 0 <= indices.min() <= indices.max() < n
    if indices.shape != (n, k) or similarities.shape != (n, k) or not in_range:
        raise HrsaError(f"kNN graph {path} holds arrays of shape {indices.shape}/{similarities.shape} or indices "
                        f"out of range for {n} rows and k={k}; {redo}")
    return indices, similarities
