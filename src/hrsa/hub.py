"""Every access to the Hugging Face hub: the one rule for "hub id or local path", loads whose cache miss becomes one
line naming the id, and content hashes of cached hub weights. Imports nothing of the package but the leaves."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hrsa.errors import HrsaError
from hrsa.io import sha256_tree

FETCH_HINT = ("fetch it on a machine with network into the same Hugging Face cache (HF_HOME) with the workflow's "
              "download rule (download.enabled: true) or `hrsa download --configfile CONFIG`, then re-run")
# weight files a model's content hash covers
WEIGHT_FILES = ("*.safetensors", "*.bin")


class HubMissError(HrsaError):
    """A hub model or dataset is neither in the local Hugging Face cache nor reachable (offline compute node)."""


# ------------------------------------------------------------------------------------------- hub id or local path
def looks_like_path(name: str) -> bool:
    """True for names only a path can have: absolute, starting with . or ~, ending in /, or with two slashes or more
    (a hub id is `name` or `owner/name`)."""
    return os.path.isabs(name) or name.startswith((".", "~")) or name.endswith("/") or name.count("/") > 1


def is_hub_id(name: str, root: str | os.PathLike[str] = ".") -> bool:
    """The one rule: a hub id such as 'Qwen/Qwen2.5-1.5B' is a non-empty name that does not look like a path and does
    not exist under `root` or the working directory; anything else is a local path."""
    if not name or looks_like_path(name):
        return False
    return not (Path(root) / name).exists() and not Path(name).expanduser().exists()


def local_path(name: str, root: str | os.PathLike[str] = ".") -> Path:
    """Where a local path of the config lies: `~` expanded, a relative path taken under `root`."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else Path(root) / path


# ------------------------------------------------------------------------------------------------ the error path
def is_hub_miss(exc: BaseException) -> bool:
    """True for the errors transformers, sentence-transformers, huggingface_hub and datasets raise when a hub file is
    not cached and the hub cannot be reached (offline mode or no network)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, (ConnectionError, LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return True
    text = str(exc).lower()
    return isinstance(exc, OSError) and ("couldn't connect to" in text or "offline" in text)


@contextlib.contextmanager
def hub_load(kind: str, repo_id: str) -> Iterator[None]:
    """Run a load of `repo_id` (a `kind` such as "model" or "dataset"); a hub miss becomes a one-line HubMissError
    naming the id and how to fetch it, any other error passes unchanged."""
    try:
        yield
    except Exception as exc:
        if not is_hub_miss(exc):
            raise
        raise HubMissError(f"{kind} {repo_id!r} is not in the Hugging Face cache and the hub cannot be reached: "
                           f"{FETCH_HINT}") from None


# ------------------------------------------------------------------------------------------------ content hashes
def hub_content_hash(repo_id: str) -> str:
    """Hash of a hub model's weight files as loaded (from the local hub cache); `hub:<id>` if they cannot be found."""
    try:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(repo_id, local_files_only=True, allow_patterns=list(WEIGHT_FILES))
    except Exception:  # not cached as a snapshot (e.g. loaded another way): fall back to the id
        return f"hub:{repo_id}"
    return sha256_tree(snapshot, WEIGHT_FILES)
