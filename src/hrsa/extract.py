"""Activation extraction: one forward pass per batch writes every requested layer (and `pooled`) as Parquet.

Attention is a setting, as in the study: `bidirectional` (its default, for raw backbones and embedders alike, so
before/after-training comparisons share one mask), `causal`, or `model` (each model's own: causal backbones, embedders
as saved). The mode used is recorded in the metadata, and compare refuses activations taken under different modes.
Token level keeps every non-padding token (or a seeded uniform subsample that is the same for every model sharing the
tokenizer); sentence level mean-pools each layer over the text's tokens. Models are loaded by `hrsa.embedder`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.activations import LayerWriter, combine_hashes, layer_dir, row_hash
from hrsa.data import read_jsonl
from hrsa.embedder import LoadedModel, ensure_pad_token, load_model, set_attention
from hrsa.errors import DataError, HrsaError
from hrsa.grid import POOLED
from hrsa.io import atomic_path, fingerprinted_dir, package_versions, sha256_file
from hrsa.schema import default


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


# rows per shard when a caller gives none: the schema's activations.shard_rows, not a copy of it
DEFAULT_SHARD_ROWS: int = default("activations/shard_rows")


@dataclass
class Plan:
    """What one extraction computes, fixed before any forward pass: batches, kept tokens, rows, shards."""

    rows: list[dict[str, Any]]
    encoded: list[list[int]]
    batches: list[list[int]]  # probe row indices per batch, length-sorted
    keep: list[list[np.ndarray]]  # per batch, per text: token positions kept (token level)
    granularity: str
    shards: list[tuple[int, int]]  # [first batch, end batch) per shard
    text_ids: np.ndarray  # every output row, in order
    positions: np.ndarray

    def batch_rows(self, b: int) -> int:
        return len(self.batches[b]) if self.granularity == "sentence" else int(sum(len(k) for k in self.keep[b]))


def probe_tokens(rows: list[dict[str, Any]], tok: Any, probe_spec: dict[str, Any]) -> list[list[int]]:
    """Token ids of every probe text, measured before any forward pass: every token when max_length is 0; texts over
    max_length are cut only with `truncate` (a cap the config sets), else a DataError naming how many would be."""
    max_len = int(probe_spec.get("max_length", default("probes/*/max_length")))
    full = [tok(r["text"], add_special_tokens=True)["input_ids"] for r in rows]
    longest = max((len(x) for x in full), default=0)
    over = sum(len(x) > max_len for x in full) if max_len else 0
    name = probe_spec.get("name") or "?"
    if over and not probe_spec.get("truncate", default("probes/*/truncate")):
        raise DataError(f"probes[{name}].max_length: {over} of {len(full)} texts are longer than {max_len} tokens "
                        f"(longest: {longest}); set max_length to {longest} or 0 (every token), or truncate: true")
    cut = [tok(r["text"], truncation=True, max_length=max_len, add_special_tokens=True)["input_ids"]
           if max_len and len(x) > max_len else x for r, x in zip(rows, full, strict=True)]
    print(f"probe {name}: {len(full)} texts, {sum(map(len, cut))} tokens (longest text {longest}; "
          f"{over} truncated at max_length {max_len})" if over else
          f"probe {name}: {len(full)} texts, {sum(map(len, cut))} tokens, every token kept (longest text {longest})",
          flush=True)
    return cut


def plan_extraction(rows: list[dict[str, Any]], tok: Any, probe_spec: dict[str, Any], batch_size: int,
                    shard_rows: int = DEFAULT_SHARD_ROWS) -> Plan:
    """Tokenise, sort by length, subsample tokens and cut shards at batch boundaries; deterministic for a probe set."""
    granularity = probe_spec.get("granularity", "token")
    encoded = probe_tokens(rows, tok, probe_spec)
    order = sorted(range(len(rows)), key=lambda i: (len(encoded[i]), i))  # length-sorted batches, stable
    kept = select_rows([len(encoded[i]) for i in order], int(probe_spec.get("max_tokens", 0)),
                       int(probe_spec.get("seed", 0)))
    batches = [order[b : b + batch_size] for b in range(0, len(order), batch_size)]
    keep = [kept[b : b + batch_size] for b in range(0, len(order), batch_size)]
    text_ids, positions = [], []
    for idx, sel in zip(batches, keep, strict=True):
        for i, s in zip(idx, sel, strict=True):
            tid = int(rows[i].get("id", i))
            if granularity == "sentence":
                text_ids.append(np.array([tid], np.int32))
                positions.append(np.array([-1], np.int32))
            else:
                text_ids.append(np.full(len(s), tid, np.int32))
                positions.append(s.astype(np.int32))
    plan = Plan(rows, encoded, batches, keep, granularity, [], np.concatenate(text_ids), np.concatenate(positions))
    start, acc = 0, 0
    for b in range(len(batches)):
        acc += plan.batch_rows(b)
        if acc >= shard_rows or b == len(batches) - 1:
            plan.shards.append((start, b + 1))
            start, acc = b + 1, 0
    return plan


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
    work_dir: str | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    write_threads: int = 1,
    compression: str = "zstd",
    overlap_writes: bool | None = None,
    attention: str = "bidirectional",
    precision: str = "auto",
) -> dict[str, Any]:
    """Write `out/layer=*/part-*.parquet` (one part per shard) and `out/_meta.json`; returns the metadata.

    Finished shards are kept in `work_dir` (outside the job's output, so a killed or failed job keeps them) and a
    re-run with the same model, probe set and settings computes only the missing ones. `out` appears only complete.
    On a GPU (or with overlap_writes=True), `write_threads` Parquet writers overlap the forward passes (give the job
    the node's CPU cores); on CPU the writes run between forward passes, which already use the job's threads.
    """
    import torch

    rows = list(read_jsonl(probe_path))
    if not rows:
        raise HrsaError(f"probe set {probe_path} is empty")
    granularity = probe_spec.get("granularity", "token")
    if granularity == "token" and POOLED in layers:
        raise HrsaError("layer 'pooled' is one vector per text: use it with sentence-level probe sets only")
    from hrsa.runtime import compute_dtype

    loaded = load_model(model_path, device, trust_remote_code, precision)
    model, tok = loaded.auto_model.eval(), loaded.tokenizer
    mode = set_attention(model, attention)
    tok.padding_side = "right"
    ensure_pad_token(tok)
    n_layers = model.config.get_text_config().num_hidden_layers
    for layer in layers:
        if layer != POOLED and not 0 <= int(layer) <= n_layers:
            raise HrsaError(f"layer {layer} is out of range for {model_id} (hidden states 0..{n_layers})")
    plan = plan_extraction(rows, tok, probe_spec, batch_size, shard_rows)
    meta = {
        "model_id": model_id, "model": model_path, "model_hash": loaded.content_hash,
        "tokenizer_hash": tokenizer_hash(tok),
        "probe_hash": sha256_file(probe_path), "granularity": granularity, "layers": layers, "dtype": dtype,
        "attention": mode, "compute_dtype": compute_dtype(precision, device),
        "num_hidden_layers": n_layers, "packages": package_versions(), "compression": compression,
        "n_rows": int(len(plan.text_ids)), "row_hash": row_hash(plan.text_ids, plan.positions),
    }
    dim = model.config.get_text_config().hidden_size
    dims = {layer: dim if layer != POOLED else _pooled_dim(loaded, dim) for layer in layers}
    work = Path(work_dir) if work_dir else Path(f"{out}.partial")
    fingerprint = {k: meta[k] for k in ("model_hash", "tokenizer_hash", "probe_hash", "layers", "dtype", "row_hash",
                                        "attention", "compute_dtype")}
    fingerprint.update(probe_spec=probe_spec, batch_size=batch_size, compression=compression, shards=plan.shards,
                       device=device.split(":")[0], torch=meta["packages"].get("torch"))
    done = prepare_work_dir(work, fingerprint)
    todo = [k for k in range(len(plan.shards)) if k not in done]
    if done:
        print(f"resuming: {len(done)} of {len(plan.shards)} shards already written in {work}", flush=True)
    t0 = time.time()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(plan.text_ids), initial=sum(_shard_rows(plan, k) for k in done), unit="row",
               desc=f"extract {model_id}", mininterval=5.0, file=sys.stderr)
    write_seconds = 0.0
    if overlap_writes is None:
        overlap_writes = device.startswith("cuda")
    with torch.inference_mode():
        for k in todo:
            write_seconds += write_shard(plan, k, loaded, layers, dims, dtype, device, {**meta, "shard": k}, work, bar,
                                         write_threads if overlap_writes else 0, compression)
    bar.close()
    meta.update(dim=dim, shards=len(plan.shards), shards_resumed=len(done), seconds=round(time.time() - t0, 3),
                write_seconds=round(write_seconds, 3), layer_hashes=layer_hashes(work, layers, len(plan.shards)))
    with atomic_path(out) as tmp:
        for layer in layers:
            dest = layer_dir(tmp, layer)
            dest.mkdir(parents=True)
            for k in range(len(plan.shards)):
                _link_or_copy(shard_file(work, layer, k), dest / shard_file(work, layer, k).name)
        (tmp / "_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return meta


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard link (instant, and the work dir stays intact until the output is in place); copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def shard_file(work: Path, layer: str, k: int) -> Path:
    return layer_dir(work, layer) / f"part-{k:05d}.parquet"


def _shard_rows(plan: Plan, k: int) -> int:
    return sum(plan.batch_rows(b) for b in range(*plan.shards[k]))


def layer_hashes(work: Path, layers: list[str], n_shards: int) -> dict[str, str]:
    """Per layer, the content hash of its shard files (`activations.layer_hash`), from the hashes each shard's done
    marker recorded when it was written (a marker without them, from an older run, gets its files hashed now)."""
    per_shard = []
    for k in range(n_shards):
        recorded = json.loads((work / f"shard-{k:05d}.done").read_text()).get("sha256", {})
        per_shard.append({layer: recorded.get(layer) or sha256_file(shard_file(work, layer, k)) for layer in layers})
    return {layer: combine_hashes([(shard_file(work, layer, k).name, per_shard[k][layer]) for k in range(n_shards)])
            for layer in layers}


def prepare_work_dir(work: Path, fingerprint: dict[str, Any]) -> set[int]:
    """Shards already finished under the same fingerprint; a work dir from other settings is discarded."""
    fingerprinted_dir(work, fingerprint)
    return {int(p.stem.split("-")[1]) for p in work.glob("shard-*.done")}


class BackgroundWrites:
    """Writer threads behind the forward passes (on a GPU node, whose CPU cores are otherwise idle).

    Conversion, checks and Parquet writes release the GIL, so they overlap the next batch's forward pass. Each layer
    always goes to the same thread, so its rows stay in order; at most `depth` tasks wait, so memory stays bounded;
    an error in a thread is raised in the caller at the next submit or at drain.
    """

    def __init__(self, workers: int, depth: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pools = [ThreadPoolExecutor(1, thread_name_prefix=f"parquet-{i}") for i in range(workers)]
        self.depth = depth
        self.pending: deque[Any] = deque()

    def submit(self, key: int, fn: Any, *args: Any) -> None:
        if not self.pools:  # no writer threads: write in the caller (CPU runs, where torch has the job's cores)
            fn(*args)
            return
        while len(self.pending) >= self.depth:
            self.pending.popleft().result()
        self.pending.append(self.pools[key % len(self.pools)].submit(fn, *args))

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def shutdown(self) -> None:
        for f in self.pending:
            f.cancel()
        for pool in self.pools:
            pool.shutdown(wait=True)


def write_shard(plan: Plan, k: int, loaded: LoadedModel, layers: list[str], dims: dict[str, int], dtype: str,
                device: str, meta: dict[str, Any], work: Path, bar: Any, write_threads: int = 1,
                compression: str = "zstd") -> float:
    """Forward the shard's batches once, writing every layer; files are renamed into place, then the shard is marked
    done.

    Returns the seconds spent converting and writing (for the write-rate benchmark).
    """
    model, tok = loaded.auto_model, loaded.tokenizer
    tmp = {layer: shard_file(work, layer, k).with_suffix(".tmp") for layer in layers}
    writers = {layer: LayerWriter(tmp[layer], layer, dims[layer], dtype, meta, compression) for layer in layers}
    bg = BackgroundWrites(write_threads, depth=2 * len(layers))  # 0 threads: write in this thread
    try:
        for b in range(*plan.shards[k]):
            idx = plan.batches[b]
            batch = tok.pad({"input_ids": [plan.encoded[i] for i in idx]}, return_tensors="pt").to(device)
            outputs = model(**batch, output_hidden_states=True)
            hidden, mask = outputs.hidden_states, batch["attention_mask"]
            text_id = np.array([plan.rows[i].get("id", i) for i in idx], np.int32)
            if plan.granularity == "sentence":
                pooled = _pooled(loaded, outputs.last_hidden_state, mask) if POOLED in layers else None
                pos = tid = np.full(len(idx), -1, np.int32)
                for key, (layer, w) in enumerate(writers.items()):
                    vectors = pooled if layer == POOLED else _mean(hidden[int(layer)], mask)
                    bg.submit(key, w.add, text_id, pos, tid, vectors)
            else:
                sel = plan.keep[b]
                bi = np.concatenate([np.full(len(s), j) for j, s in enumerate(sel)]).astype(np.int64)
                pi = np.concatenate(sel).astype(np.int64)
                ids = batch["input_ids"].cpu().numpy()
                text_rows, pos, tid = text_id[bi], pi.astype(np.int32), ids[bi, pi].astype(np.int32)
                for key, (layer, w) in enumerate(writers.items()):
                    bg.submit(key, w.add, text_rows, pos, tid, hidden[int(layer)][bi, pi].float().cpu().numpy())
            bar.update(plan.batch_rows(b))
        for key, w in enumerate(writers.values()):
            bg.submit(key, w.close)
        bg.drain()
    except BaseException:
        bg.shutdown()
        for w in writers.values():
            w.abort()
        raise
    bg.shutdown()
    for layer in layers:
        os.replace(tmp[layer], shard_file(work, layer, k))
    hashes = {layer: w.sha256 for layer, w in writers.items()}
    (work / f"shard-{k:05d}.done").write_text(json.dumps({"rows": _shard_rows(plan, k), "sha256": hashes}) + "\n")
    return sum(w.write_seconds for w in writers.values())


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
        get = (getattr(module, "get_embedding_dimension", None)
               or getattr(module, "get_sentence_embedding_dimension", None))
        if get is not None and get() is not None:
            return int(get())
    return dim
