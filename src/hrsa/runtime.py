"""Run-time environment: thread limits (jobs on a shared CPU must not oversubscribe) and device choice."""

from __future__ import annotations

import os
import sys

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def progress(verb: str, message: str) -> None:
    """One progress line on stderr (Snakemake's log)."""
    print(f"hrsa {verb}: {message}", file=sys.stderr, flush=True)


def limit_threads(n: int) -> None:
    """Cap torch, BLAS and FAISS threads at n (Snakemake's `threads`); applies to libraries imported later too."""
    n = max(1, int(n))
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Spin-waiting OpenMP threads made small torch ops ~30x slower on shared cores; passive waiting costs GEMMs nothing.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        set_torch_threads(n)
    os.environ["HRSA_THREADS"] = str(n)


def set_torch_threads(n: int | None = None) -> None:
    """Apply the thread cap to torch (call after importing torch)."""
    import torch

    n = n or int(os.environ.get("HRSA_THREADS", "1"))
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


PRECISIONS = ("auto", "fp32", "bf16")


def compute_dtype(precision: str, device: str) -> str:
    """The torch dtype name of a job's forward and backward passes (training.precision, activations.precision):
    bf16 or fp32 as named; auto = bf16 on a GPU that supports it (as the study trained and extracted), else fp32.
    bf16 runs on CPU too (slower than fp32 there; it is how the CPU tests prove the bf16 path)."""
    if precision not in PRECISIONS:
        from hrsa.errors import HrsaError

        raise HrsaError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    if precision == "auto":
        import torch

        return "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if precision == "bf16" else "float32"


def torch_device(requested: str = "auto") -> str:
    """'cuda' when asked for or available under 'auto', else 'cpu'; one code path for both."""
    import torch

    set_torch_threads()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        from hrsa.errors import HrsaError

        raise HrsaError("device 'cuda' requested but torch sees no GPU")
    return requested
