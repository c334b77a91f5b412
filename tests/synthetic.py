"""Synthetic activation datasets for the compare tests: real Parquet shards and `_meta.json`, as extraction writes
them, from given matrices (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hrsa.activations import LayerWriter, part_path, row_hash


def write_activations(root: Path, layers: dict[str, np.ndarray], text: np.ndarray, model: str,
                      granularity: str = "token") -> None:
    """One model's activations of `layers` ({layer: rows x width}) for rows of texts `text` (sorted text ids):
    token positions 0.. within each text, or one row per text for a sentence probe."""
    pos = np.zeros(len(text), np.int32)
    if granularity == "token":
        pos = np.concatenate([np.arange(c) for c in np.unique(text, return_counts=True)[1]]).astype(np.int32)
    meta = {"model_id": model, "probe_hash": "p", "granularity": granularity, "layers": list(layers),
            "n_rows": len(text), "row_hash": row_hash(text.astype(np.int32), pos), "tokenizer_hash": "t"}
    for layer, X in layers.items():
        w = LayerWriter(part_path(root, layer), layer, X.shape[1], "float32", meta)
        w.add(text.astype(np.int32), pos, pos, X.astype(np.float32))
        w.close()
    (root / "_meta.json").write_text(json.dumps(meta))
