"""The one place a SentenceTransformer embedder is built, loaded and checked, for train, baseline and extract alike.

An embedder is Transformer(backbone) + Pooling(include_prompt=False) + Normalize, with its attention mode set on the
decoder's config (`config.is_causal`, which sdpa and eager honour and which the saved config.json carries) and the
study's query prompt; extraction loads the same pieces (or a raw backbone) to read every layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrsa.data import DEFAULT_QUERY_INSTRUCTION, QUERY_TEMPLATE
from hrsa.errors import HrsaError
from hrsa.hub import hub_content_hash, hub_load
from hrsa.io import sha256_tree

ATTENTION_MODES = ("bidirectional", "causal", "model")


def set_attention(auto_model: Any, mode: str) -> str:
    """Apply an attention mode to a loaded transformer and return the mode in force: bidirectional on a decoder is
    `config.is_causal = False` (the load-time kwarg is silently dropped); `model` keeps the model's own."""
    if mode not in ATTENTION_MODES:
        raise HrsaError(f"activations.attention: {mode!r} is not one of {list(ATTENTION_MODES)}")
    if mode != "model":
        auto_model.config.is_causal = mode == "causal"
    in_force = "causal" if getattr(auto_model.config, "is_causal", True) is not False else "bidirectional"
    if in_force == "bidirectional":  # a family or attention implementation that would ignore the flag fails here
        from hrsa.grid.attention import check_bidirectional

        config = auto_model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        check_bidirectional(str(getattr(text, "model_type", config.model_type)),
                            str(getattr(config, "_attn_implementation", None)),
                            "training.attention / activations.attention")
    return in_force


def trust_kwargs(trust_remote_code: bool) -> dict[str, Any]:
    """The from_pretrained kwargs that allow a model's own code from the hub (none unless asked)."""
    return {"trust_remote_code": True} if trust_remote_code else {}


def ensure_pad_token(tokenizer: Any) -> None:
    """Decoder tokenizers often lack a pad token: padding uses EOS (masked out by the attention mask)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def build_embedder(backbone: str, attention: str, pooling: str, max_length: int, trust_remote_code: bool = False,
                   device: str = "cpu", dtype: str | None = None) -> Any:
    """SentenceTransformer = Transformer(backbone) + Pooling(include_prompt=False) + Normalize, with the given
    attention mask: unit-norm embeddings, as the study's evaluation pipeline (the loss is cosine-based either way).
    dtype: the weights' torch dtype name; None keeps transformers' choice (the dtype the backbone was saved in)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    trust = trust_kwargs(trust_remote_code)
    weights = {**trust, **({"dtype": dtype} if dtype else {})}
    with hub_load("model", backbone):
        transformer = Transformer(
            backbone, max_seq_length=max_length, model_kwargs=weights, processor_kwargs=dict(trust),
            config_kwargs=dict(trust),
        )
    ensure_pad_token(transformer.tokenizer)
    set_attention(transformer.auto_model, attention)
    head = Pooling(transformer.get_embedding_dimension(), pooling, include_prompt=False)
    model = SentenceTransformer(modules=[transformer, head, Normalize()], device=device)
    model.prompts = {"query": QUERY_TEMPLATE.format(instruction=DEFAULT_QUERY_INSTRUCTION), "document": ""}
    return model


def is_embedder_dir(path: str | os.PathLike[str]) -> bool:
    """A saved SentenceTransformer directory (embedder or baseline), as opposed to a backbone."""
    return (Path(path) / "modules.json").is_file()


def load_embedder(path: str | os.PathLike[str], device: str = "cpu", dtype: Any = None) -> Any:
    """Reload a saved embedder; its saved config.json carries the attention mode (dtype: the weights' torch dtype)."""
    from sentence_transformers import SentenceTransformer

    if dtype is None:
        return SentenceTransformer(str(path), device=device)
    return SentenceTransformer(str(path), device=device, model_kwargs={"dtype": dtype})


RELOAD_TEXTS = ["Of Man's first disobedience, and the fruit", "Q: 12+7=? A: 19", "x"]


def check_reload(model: Any, saved: Path, atol: float = 1e-4) -> float:
    """Encode fixed texts (queries with their prompt, and passages) in memory and from the saved directory.

    A save that loses anything (attention mode, pooling, prompts, merged LoRA weights) fails the job here instead of
    producing an embedder that differs from the one trained. Returns the largest absolute difference.
    """
    prompt = (model.prompts or {}).get("query")
    reloaded = load_embedder(saved, device=str(model.device))
    worst = 0.0
    for kwargs in ({}, {"prompt": prompt} if prompt else {}):
        a = model.encode(RELOAD_TEXTS, convert_to_numpy=True, **kwargs)
        b = reloaded.encode(RELOAD_TEXTS, convert_to_numpy=True, **kwargs)
        worst = max(worst, float(abs(a - b).max()))
    if worst > atol:
        raise HrsaError(
            f"{saved}: the saved embedder encodes differently from the trained one (max |diff| {worst:.3g})")
    return worst


@dataclass
class LoadedModel:
    """The pieces extraction needs: the transformer, its tokenizer, and the pooling head (embedders only)."""

    auto_model: Any
    tokenizer: Any
    head: list[Any]  # sentence-transformers modules after the Transformer (Pooling, Normalize, ...)
    content_hash: str


def load_model(path: str, device: str, trust_remote_code: bool = False, precision: str = "auto") -> LoadedModel:
    """A SentenceTransformer directory (embedder) or a causal LM (backbone, local dir or hub id), its weights in the
    dtype of `precision` (hrsa.runtime.compute_dtype: auto = bf16 on a GPU, fp32 on CPU)."""
    import torch

    from hrsa.runtime import compute_dtype

    dtype = getattr(torch, compute_dtype(precision, device))
    local = Path(path)
    if is_embedder_dir(local):
        st = load_embedder(local, device=device, dtype=dtype)
        return LoadedModel(st[0].auto_model, st[0].tokenizer, list(st)[1:], sha256_tree(local, ("*.safetensors",)))
    from transformers import AutoModel, AutoTokenizer

    kwargs = trust_kwargs(trust_remote_code)
    with hub_load("model", path):
        model = AutoModel.from_pretrained(path, dtype=dtype, **kwargs).to(device)
        tok = AutoTokenizer.from_pretrained(path, **kwargs)
    digest = sha256_tree(local, ("*.safetensors",)) if local.is_dir() else hub_content_hash(path)
    return LoadedModel(model, tok, [], digest)


# ------------------------------------------------------------------------------------------------ revisions
#: the files whose content hash is a saved model's revision (`revision.txt`, the mteb cache key): a trained embedder's
#: weights (hrsa.train.trainer.save_embedder), and for an untrained baseline its weights and the files that decide how
#: it encodes (hrsa.baseline)
EMBEDDER_REVISION_FILES = ("*.safetensors",)
BASELINE_REVISION_FILES = ("*.safetensors", "config.json", "modules.json", "sentence_bert_config.json")


def check_revision(model_dir: str | os.PathLike[str], revision: str) -> None:
    """A model directory hrsa saved (it holds `revision.txt`) must be scored under the revision it records, and that
    revision must still be the content hash of its weights: weights replaced after saving would otherwise be scored
    as the old ones (or their cached scores reused). DataError naming the directory and the job to re-run. A directory
    without `revision.txt` (not saved by hrsa) is scored under the revision given."""
    from hrsa.errors import DataError
    from hrsa.grid import parse_model_id

    path = Path(model_dir)
    stamp = path / "revision.txt"
    if not stamp.is_file():
        return
    recorded = stamp.read_text().strip()
    if recorded != revision:
        raise DataError(f"--revision {revision!r} is not the revision {stamp} records ({recorded!r}); score a saved "
                        "model under its own revision")
    try:
        seed = parse_model_id(path.name)[2]
        kinds = [("baseline_embedder", BASELINE_REVISION_FILES) if seed is None
                 else ("train_embedder", EMBEDDER_REVISION_FILES)]
    except HrsaError:  # a directory not named by a model id: either definition
        kinds = [("train_embedder", EMBEDDER_REVISION_FILES), ("baseline_embedder", BASELINE_REVISION_FILES)]
    actual = [sha256_tree(path, files)[:16] for _, files in kinds]
    if revision not in actual:
        job = " or ".join(f"{rule} job" for rule, _ in kinds)
        raise DataError(f"{path}: its weights hash to revision {actual[0]}, not the {revision} its revision.txt "
                        f"records (changed after it was saved); delete {path} and re-run its {job}")

