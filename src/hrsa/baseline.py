"""Baselines: raw backbones scored as embedders without contrastive training, to report beside the trained ones.

A baseline is the SentenceTransformer the training starts from (Transformer + mean Pooling without the instruction
tokens + Normalize, the study's attention mask and max length, the same query prompts), saved untrained, so
`hrsa evaluate` scores it exactly as it scores an embedder (results/eval/{pair}.{role}/{task}.json).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from hrsa.embedder import BASELINE_REVISION_FILES

# The recipe keys that shape an untrained embedder; the optimisation settings (and LoRA) do not apply to it.
BASELINE_KEYS = ("attention", "pooling", "max_length")
# Files that decide how a baseline encodes (weights, attention mode, module list, pooling, max length): its revision.
REVISION_FILES = BASELINE_REVISION_FILES


def baseline_recipe(training: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a pair's `training:` slice that a baseline is built with."""
    return {key: training[key] for key in BASELINE_KEYS if key in training}


def build_baseline(backbone: str, training: Mapping[str, Any], out: str | os.PathLike[str], model_id: str,
                   trust_remote_code: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Save the untrained embedder of `backbone` to `out` (atomically) with `revision.txt` (the mteb cache key: a hash
    of the files that decide its encoding) and `provenance.json`; returns the provenance."""
    from hrsa.embedder import build_embedder, check_reload
    from hrsa.io import atomic_path, provenance, sha256_tree
    from hrsa.train import Recipe

    recipe = Recipe.from_config(baseline_recipe(training))  # the rest from the schema, for the provenance
    model = build_embedder(backbone, recipe.attention, recipe.pooling, recipe.max_length, trust_remote_code, device)
    model.model_card_data.model_name = f"hrsa/{model_id}"
    with atomic_path(out) as tmp:
        model.save(str(tmp), create_model_card=False)
        reload_diff = check_reload(model, tmp)
        revision = sha256_tree(tmp, REVISION_FILES)[:16]
        (tmp / "revision.txt").write_text(revision + "\n")
        prov = provenance({"backbone": backbone, "model_id": model_id, "recipe": recipe.__dict__, "steps": 0})
        prov.update(revision=revision, reload_max_abs_diff=reload_diff)
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n")
    return prov
