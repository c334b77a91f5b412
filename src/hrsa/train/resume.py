"""Resuming a killed training run: checkpoints keyed by the content of their inputs, never by paths."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrsa.train.recipe import Recipe

TRAINING_PACKAGES = ("hrsa", "torch", "transformers", "sentence-transformers", "peft", "accelerate")


class ScheduleComplete(Exception):
    """Raised before a step past the schedule (resume from a finished run's last checkpoint): nothing left to train."""


def world_size() -> int:
    """Processes of this training run (torchrun's WORLD_SIZE; 1 for a plain `hrsa train`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the process that owns the run's files (rank 0; the only one without torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def last_checkpoint(checkpoints: Path) -> Path | None:
    """Newest complete checkpoint; one cut off mid-write by a kill (no trainer_state.json, written last) is removed."""
    import shutil

    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = []
    for ckpt in found:
        if (ckpt / "trainer_state.json").is_file():
            complete.append(ckpt)
        else:
            print(f"removing incomplete checkpoint {ckpt}", flush=True)
            shutil.rmtree(ckpt)
    return complete[-1] if complete else None


def backbone_hash(backbone: str) -> str:
    """Content hash of every file of a local backbone (weights, config, tokenizer, code), or of a hub backbone's
    cached weight files, so a backbone rebuilt at the same path is a different input."""
    from hrsa.io import sha256_tree

    local = Path(backbone)
    if local.is_dir():
        return sha256_tree(local)
    from hrsa.hub import hub_content_hash

    return hub_content_hash(backbone)


def training_fingerprint(backbone: str, data_path: str, seed: int, recipe: Recipe, device: str,
                         trust_remote_code: bool = False) -> dict[str, Any]:
    """What the checkpoints of a run depend on, by content: backbone files, training data, recipe (attention, LoRA,
    schedule...), seed, device and the versions of the training stack. Paths are deliberately left out, and so is
    training.devices: every layout trains on the same global batches (split over the processes), so a run
    checkpointed on N processes resumes on M."""
    from hrsa.io import package_versions, sha256_file

    # require_learning only decides whether a finished run fails, and every layout of devices trains on the same
    # global batches: neither changes a checkpoint
    settings = {k: v for k, v in recipe.__dict__.items() if k not in ("require_learning", "devices")}
    return {"backbone": backbone_hash(backbone), "data": sha256_file(data_path), "seed": seed,
            "recipe": settings, "device": device, "trust_remote_code": trust_remote_code,
            "packages": package_versions(TRAINING_PACKAGES)}


def resume_point(trainer: Any, checkpoints: str, fingerprint: Callable[[], dict[str, Any]]) -> Path | None:
    """The checkpoint this run resumes from: the newest complete one written under the same fingerprint. Rank 0
    hashes the inputs and discards a directory written from other ones; the other ranks wait, then resume from the
    same state."""
    from hrsa.io import fingerprinted_dir

    if is_main_process():
        with contextlib.suppress(OSError):
            Path(checkpoints).rmdir()  # the one the trainer just created, if empty: no stale state to report
        fingerprinted_dir(checkpoints, fingerprint())
    trainer.accelerator.wait_for_everyone()
    resume = last_checkpoint(Path(checkpoints))
    if resume:
        print(f"resuming from {resume}", flush=True)
    return resume


def run_training(trainer: Any, resume: Path | None) -> None:
    """trainer.train() with resume; a checkpoint that already completes the schedule is taken as the result."""
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except ScheduleComplete:
        print(f"{resume} already completes the schedule ({trainer.state.global_step} steps): no further training",
              flush=True)
