"""The embedder as mteb sees it: a SentenceTransformer loaded from a local directory and wrapped for mteb under a
cache name and revision, with its prompts and truncation length, and the batch size a token budget allows."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hrsa.errors import HrsaError
from hrsa.evaluation.prompts import mteb_prompts

_REVISION_OK = re.compile(r"[A-Za-z0-9._+=-]+")  # fullmatch: `$` lets "r1\n" through


def check_model_id(model_name: str, revision: str) -> None:
    """mteb needs 'org/name'; the revision becomes a folder name, so it must be a single safe path component."""
    if model_name.count("/") != 1 or not all(model_name.split("/")):
        raise HrsaError(f"--model-name must look like 'org/name' (it keys the mteb result cache), got {model_name!r}")
    if not _REVISION_OK.fullmatch(revision or "") or revision in {".", ".."}:
        raise HrsaError(f"--revision must be a non-empty folder-safe string (letters, digits, ._+=-), got {revision!r}")


def load_encoder(model_dir: str | os.PathLike[str], model_name: str, revision: str, device: str,
                 per_task: Mapping[str, str] | None = None, max_seq_length: int | None = None,
                 trust_remote_code: bool = False) -> Any:
    """SentenceTransformer from a local directory, wrapped for mteb under the given name/revision and prompts.

    `per_task` prompts (from `task_prompts()`) are added to the model's own query/document prompts and win for their
    tasks. `max_seq_length` (tokens, longer texts truncated) replaces the length saved with the model when given.
    `trust_remote_code` lets the model's own modelling code run (only when its pair's config says so).
    """
    from mteb.models import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from hrsa.runtime import torch_device

    path = Path(model_dir)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise HrsaError(f"model directory {path} holds no sentence-transformers model (no modules.json/config.json)")
    st = SentenceTransformer(str(path.resolve()), device=torch_device(device), local_files_only=True,
                             trust_remote_code=trust_remote_code)
    if max_seq_length is not None:
        st.max_seq_length = max_seq_length
    st.model_card_data.model_name = model_name
    st.model_card_data.base_model_revision = revision
    prompts = mteb_prompts(st.prompts)
    if prompts is not None:  # the wrapper reads st.prompts; keys it does not know (e.g. 'anchor') would be dropped
        own: dict[str, str | None] = dict(prompts)
        st.prompts = own
    with warnings.catch_warnings():  # mteb 2.26 calls renamed/deprecated sentence-transformers APIs here
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        wrapper = SentenceTransformerEncoderWrapper(st)
    wrapper.mteb_model_meta = wrapper.mteb_model_meta.model_copy(update={"name": model_name, "revision": revision})
    if per_task:  # added after wrapping: mteb validates prompt keys against its registry, which lacks local tasks
        st.prompts = {**(st.prompts or {}), **per_task}
        wrapper.model_prompts = {**(wrapper.model_prompts or {}), **per_task}
    return wrapper


def token_batch_size(batch_size: int, max_tokens_per_batch: int | None, max_seq_length: int) -> int:
    """Texts per encoding batch under a token budget: at most `batch_size`, at most budget // max_seq_length (a batch
    of full-length texts then fits the budget), at least 1. No budget: `batch_size`."""
    if max_tokens_per_batch is None:
        return batch_size
    return max(1, min(batch_size, max_tokens_per_batch // max(1, max_seq_length)))
