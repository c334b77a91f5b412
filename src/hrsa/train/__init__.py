"""Contrastive training of a backbone into an embedder: the recipe (recipe), the sentence-transformers trainer and its
guards (trainer), and resuming killed runs by the content of their inputs (resume)."""

from hrsa.embedder import check_reload, load_embedder
from hrsa.train.recipe import Recipe, recipe_settings
from hrsa.train.resume import (
    TRAINING_PACKAGES,
    backbone_hash,
    is_main_process,
    last_checkpoint,
    run_training,
    training_fingerprint,
    world_size,
)
from hrsa.train.trainer import (
    DIVERGENCE_HINT,
    TrainingDiverged,
    add_lora,
    build_model,
    build_trainer,
    check_finite_weights,
    check_prompt_lengths,
    make_guard,
    merge_lora,
    per_device_batch,
    records_to_datasets,
    save_embedder,
    train_embedder,
)

__all__ = [
    "DIVERGENCE_HINT",
    "TRAINING_PACKAGES",
    "Recipe",
    "TrainingDiverged",
    "add_lora",
    "backbone_hash",
    "build_model",
    "build_trainer",
    "check_finite_weights",
    "check_prompt_lengths",
    "check_reload",
    "is_main_process",
    "last_checkpoint",
    "load_embedder",
    "make_guard",
    "merge_lora",
    "per_device_batch",
    "recipe_settings",
    "records_to_datasets",
    "run_training",
    "save_embedder",
    "train_embedder",
    "training_fingerprint",
    "world_size",
]
