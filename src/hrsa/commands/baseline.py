"""Save a raw backbone as an untrained embedder (mean pooling, the study's attention and prompts) for scoring beside
the trained embedders with `hrsa evaluate`."""

from __future__ import annotations

import argparse

from hrsa.commands.options import add_config, config_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `hrsa baseline`."""
    p.add_argument("--backbone", required=True, help="backbone directory or hub id")
    add_config(p, "training", "the pair's `training:` slice (attention, pooling and max_length are used)")
    p.add_argument("--model-id", required=True, help="the backbone's model id, e.g. tiny.base")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom modelling code from the hub")
    p.add_argument("--out", required=True, help="output SentenceTransformer directory")


def run(args: argparse.Namespace) -> None:
    """Build and save the baseline."""
    from hrsa.baseline import build_baseline
    from hrsa.errors import ConfigError
    from hrsa.grid import parse_model_id
    from hrsa.runtime import torch_device

    training = config_of(args)
    if parse_model_id(args.model_id)[2] is not None:
        raise ConfigError(f"--model-id {args.model_id!r} names an embedder; a baseline is a backbone (PAIR.ROLE)")
    prov = build_baseline(args.backbone, training, args.out, args.model_id, args.trust_remote_code,
                          torch_device(args.device))
    print(f"saved {args.out} (revision {prov['revision']})")
