"""Atomic outputs and provenance: a failed job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PROVENANCE_PACKAGES = (
    "hrsa", "torch", "transformers", "sentence-transformers", "peft", "trl", "mteb",
    "faiss-cpu", "pyarrow", "numpy", "scikit-learn", "tokenizers",
)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path (file or directory) that is renamed onto `final` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fingerprinted_dir(path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> Path:
    """A resume directory (checkpoints, finished shards) that holds only state from the same settings.

    A directory written under another fingerprint (or without one) is discarded, never mixed into this run.
    """
    path = Path(path)
    stamp = path / "fingerprint.json"
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    if path.is_dir() and (not stamp.is_file() or stamp.read_text() != text):
        print(f"discarding {path}: written with other settings", flush=True)
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(text)
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (sorted keys, so identical content gives identical bytes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(path: str | os.PathLike[str], patterns: tuple[str, ...] = ("*",)) -> str:
    """Content hash of a file or of every file under a directory (relative names included)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in path.rglob(pat) if p.is_file()})
    for p in files:
        h.update(str(p.relative_to(path)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def package_versions(names: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance(params: dict[str, Any], inputs: Mapping[str, str | os.PathLike[str]] | None = None) -> dict[str, Any]:
    """What produced an output: parameters, input content hashes, package versions, hardware."""
    return {
        "params": params,
        "inputs": {k: {"path": str(v), "sha256": sha256_tree(v)} for k, v in (inputs or {}).items()},
        "packages": package_versions(),
        "hardware": hardware(),
    }


def hardware() -> dict[str, Any]:
    """The machine a job ran on: host, CPU, cores, the GPUs torch sees (when torch is already loaded), SLURM job."""
    import platform
    import sys

    info: dict[str, Any] = {"host": platform.node(), "machine": platform.machine(),
                            "processor": platform.processor() or None, "cpus": os.cpu_count(),
                            "slurm_job": os.environ.get("SLURM_JOB_ID")}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
