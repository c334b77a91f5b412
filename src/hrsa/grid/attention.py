"""Which decoder families attend bidirectionally under `config.is_causal = False`, per attention implementation.

hrsa makes a decoder bidirectional by setting `config.is_causal = False` (hrsa.embedder.set_attention); transformers'
mask builders honour it under SDPA and eager attention for the families below, with and without padding
(tests/test_attention_families.py builds each from a tiny random config and checks that token 0's output changes when
a later token changes). Flash-attention-2 takes its causal flag from each attention module instead, so it stays causal:
it is refused, like any family not listed, rather than silently trained or compared as causal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError

#: config.json `model_type` (of the text model) -> attention implementations verified bidirectional
BIDIRECTIONAL: dict[str, tuple[str, ...]] = {
    "qwen2": ("sdpa", "eager"),
    "qwen3": ("sdpa", "eager"),
    "llama": ("sdpa", "eager"),
    "mistral": ("sdpa", "eager"),
    "gemma2": ("eager",),  # transformers has no SDPA path for Gemma 2: it loads eager
    "gemma3_text": ("sdpa", "eager"),
    "phi3": ("sdpa", "eager"),
    "olmo2": ("sdpa", "eager"),
}
#: what transformers loads when config.json names no implementation (SDPA where the family has it)
DEFAULT_IMPLEMENTATION: dict[str, str] = {"gemma2": "eager"}
#: the model_type of the recipe-built backbones (hrsa.backbones.pretrain builds Qwen2)
RECIPE_MODEL_TYPE = "qwen2"


def text_config(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The text model's part of a config.json (multimodal configs nest it under text_config)."""
    inner = data.get("text_config")
    return inner if isinstance(inner, Mapping) else data


def implementation_of(data: Mapping[str, Any]) -> str:
    """The attention implementation a config.json loads with: the one it names, else transformers' default."""
    text = text_config(data)
    for key in ("_attn_implementation", "attn_implementation"):
        for src in (text, data):
            if isinstance(src.get(key), str):
                return str(src[key])
    return DEFAULT_IMPLEMENTATION.get(str(text.get("model_type")), "sdpa")


def check_bidirectional(model_type: str, implementation: str, where: str) -> None:
    """ConfigError naming the family and implementation when `is_causal = False` is not verified to take effect."""
    verified = BIDIRECTIONAL.get(model_type)
    if verified is None:
        raise ConfigError(
            f"{where}: bidirectional attention is not verified for decoder family {model_type!r} (attention "
            f"implementation {implementation!r}); verified families: {', '.join(sorted(BIDIRECTIONAL))}. Set the "
            "attention to causal, or add the family to hrsa.grid.attention.BIDIRECTIONAL with its test")
    if implementation not in verified:
        raise ConfigError(
            f"{where}: decoder family {model_type!r} stays causal under attention implementation {implementation!r} "
            f"with is_causal=False (verified bidirectional under: {', '.join(verified)}); load it with "
            f"{verified[0]} (attn_implementation in its config.json) or set the attention to causal")


def check_config_json(path: Path, where: str) -> None:
    """check_bidirectional for a backbone's config.json; one that names no model_type (no family to check: not a
    transformers config) is left to the check its job makes when it loads the model (hrsa.embedder)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    family = text_config(data).get("model_type")
    if family is not None:
        check_bidirectional(str(family), implementation_of(data), where)


def check_pairs(study: Any) -> None:
    """At DAG build: every role of a pair that is trained or extracted bidirectionally (training.attention of the
    pair, activations.attention) must be of a verified family and implementation. A role whose config.json is not
    available offline is checked when its job loads it (hrsa.embedder.set_attention)."""
    from hrsa.grid.shapes import published_file, root_backbone
    from hrsa.schema import default, with_defaults

    extracted = with_defaults("activations", study.config.get("activations") or {})["attention"] == "bidirectional"
    for i, (pair, roles) in enumerate(study.pairs.items()):
        if not extracted and study.training(pair).get("attention", default("training/attention")) != "bidirectional":
            continue
        for role, bb in roles.items():
            first = root_backbone(roles, bb)
            where = f"pairs[{i}].{role} ({first.source or first.recipe})"
            if first.recipe == "pretrain":
                check_bidirectional(RECIPE_MODEL_TYPE, "sdpa", where)
                continue
            config = published_file(first, "config.json", study.root)
            if config is not None:
                check_config_json(config, where)
