"""Contrastive training of one backbone into an embedder for one seed (resumes from checkpoints)."""

from __future__ import annotations

import argparse

from hrsa.commands.options import add_config, config_of
from hrsa.schema import default


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `hrsa train`: backbone, data, seed, the `training:` slice and the hard negatives per record."""
    p.add_argument("--backbone", required=True, help="backbone directory or hub id")
    p.add_argument("--data", required=True, help="training records JSONL")
    p.add_argument("--seed", type=int, required=True)
    add_config(p, "training")
    p.add_argument("--num-negatives", type=int, metavar="N",
                   help="hard negatives per record, as the data was made with (training_data.num_negatives; "
                        f"default {default('training_data/num_negatives')})")
    p.add_argument("--checkpoints", required=True, help="checkpoint directory kept across killed runs")
    p.add_argument("--model-id", required=True, help="model id, e.g. tiny.base-E.s0")
    p.add_argument("--device", default=default("resources/device"), choices=["auto", "cpu", "cuda"],
                   help="torch device (resources.device); the workflow passes --gpus instead")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom modelling code from the hub")
    p.add_argument("--out", required=True, help="output SentenceTransformer directory")
    p.add_argument("--health", help="training summary JSON (hrsa.train.health): loss vs chance, held-out accuracy")


def run(args: argparse.Namespace) -> None:
    """Train (resuming from the checkpoints of a killed run with the same inputs) and save the embedder."""
    from hrsa.locks import run_lock
    from hrsa.train import Recipe, train_embedder

    recipe = Recipe.from_config(config_of(args), args.num_negatives)
    # one writer per checkpoint directory (an orphaned job may still run): rank 0 locks for its torchrun group
    with run_lock(args.checkpoints):
        prov = train_embedder(
            args.backbone, args.data, args.out, args.seed, recipe, args.checkpoints, args.model_id, args.device,
            args.trust_remote_code, args.health,
        )
    print(f"saved {args.out} (revision {prov['revision']}, {prov['params']['steps']} steps)")
