"""The contrastive recipe: the `training:` config slice, every key the slice leaves out taken from the schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hrsa.errors import ConfigError
from hrsa.schema import default, node, with_defaults


@dataclass(frozen=True)
class Recipe:
    """The `training:` config slice (the schema's defaults are the paper's where it states them) and the number of
    hard negatives per record (`training_data.num_negatives`). No field has a default of its own: build one with
    `Recipe.from_config`, which fills what a slice leaves out from the schema."""

    attention: str
    pooling: str
    max_length: int
    batch_size: int
    mini_batch_size: int
    temperature: float
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    epochs: float
    max_steps: int
    save_steps: int
    num_negatives: int
    gradient_checkpointing: bool
    heldout_rows: int  # records held out to measure accuracy before/after (hrsa.train.health)
    require_learning: bool  # fail the job when the embedder did not learn
    precision: str  # auto | fp32 | bf16 (hrsa.runtime.compute_dtype)
    devices: int  # GPUs of the job: batch_size is global, batch_size / devices per device (torchrun when > 1)
    fsdp: bool  # shard weights, gradients and optimiser states over the devices (HF Trainer FSDP)
    lora: dict[str, Any] | None  # {r, alpha, dropout, target_modules}; None = full fine-tuning (the paper)

    @classmethod
    def from_config(cls, training: Mapping[str, Any], num_negatives: int | None = None) -> Recipe:
        """The recipe of a (partial) `training:` slice; `num_negatives` None takes `training_data.num_negatives`'s
        schema default. LoRA is on only where `lora.enabled` is true; its other keys come from the schema too."""
        unknown = set(training) - set(node("training")["properties"])
        if unknown:
            raise ConfigError(f"training: unknown keys {sorted(unknown)}")
        values = with_defaults("training", training)
        lora = with_defaults("training/lora", values["lora"] or {})
        values["lora"] = lora if lora.pop("enabled") else None
        if num_negatives is None:
            num_negatives = default("training_data/num_negatives")
        recipe = cls(**values, num_negatives=num_negatives)  # not settings_from: it would fill lora back in
        if recipe.attention not in ("bidirectional", "causal"):
            raise ConfigError(f"training.attention: {recipe.attention!r} is not bidirectional or causal")
        if recipe.fsdp and (recipe.devices < 2 or recipe.lora is not None):
            raise ConfigError(f"training.fsdp: shards full fine-tuning over several devices; set training.devices > 1 "
                              f"(it is {recipe.devices}) and leave training.lora off")
        if recipe.lora is not None:
            unknown_lora = set(recipe.lora) - set(node("training/lora")["properties"])
            if unknown_lora:
                raise ConfigError(f"training.lora: unknown keys {sorted(unknown_lora)}")
        return recipe


def recipe_settings(recipe: Recipe) -> str:
    """The optimisation settings that make a run diverge, as config keys, for error messages."""
    keys = ("learning_rate", "warmup_ratio", "temperature", "batch_size", "weight_decay")
    return ", ".join(f"training.{k}={getattr(recipe, k)!r}" for k in keys)
