"""Activation extraction: one forward pass per batch writes every requested layer (and `pooled`) as Parquet.

Backbones run with their own (causal) attention; embedders with the mode saved in their config (bidirectional after
contrastive training). Token level keeps every non-padding token (or a seeded uniform subsample that is the same for
every model sharing the tokenizer); sentence level mean-pools each layer over the text's tokens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import LayerWriter, row_hash
from hrsa.data import read_jsonl
from hrsa.errors import HrsaError
from hrsa.grid import POOLED
from hrsa.io import atomic_path, package_versions, sha256_file, sha256_tree



@dataclass
class LoadedModel:
    """The pieces extraction needs: the transformer, its tokenizer, and the pooling head (embedders only)."""

    auto_model: Any
    tokenizer: Any
    head: list[Any]  # sentence-transformers modules after the Transformer (Pooling, Normalize, ...)
    content_hash: str


def load_model(path: str, device: str, trust_remote_code: bool = False) -> LoadedModel:
    """A SentenceTransformer directory (embedder) or a causal LM (backbone, local dir or hub id)."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    local = Path(path)
    if (local / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(local), device=device, model_kwargs={"dtype": dtype})
        return LoadedModel(st[0].auto_model, st[0].tokenizer, list(st)[1:], sha256_tree(local, ("*.safetensors",)))
    from transformers import AutoModel, AutoTokenizer

    kwargs = {"trust_remote_code": True} if trust_remote_code else {}
    model = AutoModel.from_pretrained(path, dtype=dtype, **kwargs).to(device)
    tok = AutoTokenizer.from_pretrained(path, **kwargs)
    digest = sha256_tree(local, ("*.safetensors",)) if local.is_dir() else f"hub:{path}"
    return LoadedModel(model, tok, [], digest)


def tokenizer_hash(tok: Any) -> str:
    """Hash of the vocabulary, so models with different tokenizers are never row-aligned by accident."""
    import hashlib

    vocab = sorted(tok.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()


def select_rows(lengths: list[int], max_tokens: int, seed: int) -> list[np.ndarray]:
    """Per text, the token positions kept: all, or a seeded uniform subsample of max_tokens over all tokens."""
    total = sum(lengths)
    if max_tokens <= 0 or max_tokens >= total:
        return [np.arange(n) for n in lengths]
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=max_tokens, replace=False))
    starts = np.cumsum([0] + lengths[:-1])
    out = []
    for start, n in zip(starts, lengths, strict=True):
        lo, hi = np.searchsorted(chosen, [start, start + n])
        out.append(chosen[lo:hi] - start)
    return out


def extract(
    model_path: str,
    model_id: str,
    probe_path: str,
    probe_spec: dict[str, Any],
    layers: list[str],
    out: str,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Write `out/layer=*/part-00000.parquet` and `out/_meta.json` atomically; returns the metadata."""
    import torch

    rows = list(read_jsonl(probe_path))
    if not rows:
        raise HrsaError(f"probe set {probe_path} is empty")
    granularity = probe_spec.get("granularity", "token")
    loaded = load_model(model_path, device, trust_remote_code)
    model, tok = loaded.auto_model.eval(), loaded.tokenizer
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    n_layers = model.config.get_text_config().num_hidden_layers
    if granularity == "token" and POOLED in layers:
        raise HrsaError("layer 'pooled' is one vector per text: use it with sentence-level probe sets only")
    for layer in layers:
        if layer != POOLED and not 0 <= int(layer) <= n_layers:
            raise HrsaError(f"layer {layer} is out of range for {model_id} (hidden states 0..{n_layers})")
    max_len = int(probe_spec.get("max_length", 128))
    enc = [tok(r["text"], truncation=True, max_length=max_len, add_special_tokens=True)["input_ids"] for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (len(enc[i]), i))  # length-sorted batches, stable
    keep = select_rows([len(enc[i]) for i in order], int(probe_spec.get("max_tokens", 0)), int(probe_spec.get("seed", 0)))
    meta = {
        "model_id": model_id, "model": model_path, "model_hash": loaded.content_hash, "tokenizer_hash": tokenizer_hash(tok),
        "probe_hash": sha256_file(probe_path), "granularity": granularity, "layers": layers, "dtype": dtype,
        "attention": "causal" if getattr(model.config, "is_causal", True) is not False else "bidirectional",
        "num_hidden_layers": n_layers, "packages": package_versions(),
    }
    dim = model.config.get_text_config().hidden_size
    all_text, all_pos = [], []
    t0 = time.time()
    with atomic_path(out) as tmp, torch.inference_mode():
        tmp.mkdir()
        writers = {layer: LayerWriter(tmp, layer, dim if layer != POOLED else _pooled_dim(loaded, dim), dtype, meta)
                   for layer in layers}
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = tok.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt").to(device)
            outputs = model(**batch, output_hidden_states=True)
            hidden = outputs.hidden_states
            mask = batch["attention_mask"]
            ids = batch["input_ids"].cpu().numpy()
            pooled = _pooled(loaded, outputs.last_hidden_state, mask) if POOLED in layers else None
            if granularity == "sentence":
                text_id = np.array([rows[i].get("id", i) for i in idx], np.int32)
                pos = np.full(len(idx), -1, np.int32)
                tid = np.full(len(idx), -1, np.int32)
                for layer, w in writers.items():
                    vec = pooled if layer == POOLED else _mean(hidden[int(layer)], mask)
                    w.add(text_id, pos, tid, vec)
            else:
                sel = keep[b : b + batch_size]
                bi = np.concatenate([np.full(len(s), j) for j, s in enumerate(sel)]).astype(np.int64)
                pi = np.concatenate(sel).astype(np.int64)
                text_id = np.array([rows[idx[j]].get("id", idx[j]) for j in bi], np.int32)
                pos, tid = pi.astype(np.int32), ids[bi, pi].astype(np.int32)
                for layer, w in writers.items():
                    w.add(text_id, pos, tid, hidden[int(layer)][bi, pi].float().cpu().numpy())
            all_text.append(text_id)
            all_pos.append(pos)
            if (b // batch_size) % 20 == 0:
                print(f"batch {b // batch_size + 1}/{-(-len(order) // batch_size)} {time.time() - t0:.1f}s", flush=True)
        for w in writers.values():
            w.close()
        text_ids, positions = np.concatenate(all_text), np.concatenate(all_pos)
        meta.update(n_rows=int(len(text_ids)), dim=dim, row_hash=row_hash(text_ids, positions),
                    seconds=round(time.time() - t0, 3))
        (tmp / "_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def _mean(hidden: Any, mask: Any) -> np.ndarray:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy()


def _pooled(loaded: LoadedModel, last_hidden: Any, mask: Any) -> np.ndarray:
    """The embedder's own sentence embedding (its Pooling/Normalize head); mean pooling for a backbone."""
    if not loaded.head:
        return _mean(last_hidden, mask)
    features = {"token_embeddings": last_hidden, "attention_mask": mask}
    for module in loaded.head:
        features = module(features)
    return features["sentence_embedding"].float().cpu().numpy()


def _pooled_dim(loaded: LoadedModel, dim: int) -> int:
    for module in reversed(loaded.head):
        get = getattr(module, "get_embedding_dimension", None) or getattr(module, "get_sentence_embedding_dimension", None)
        if get is not None and get() is not None:
            return int(get())
    return dim
