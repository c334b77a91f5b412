"""Make the RLVR sibling of a backbone: GRPO with a verifiable reward (arithmetic, or maths problems with
math-verify)."""

from __future__ import annotations

import argparse

from hrsa.commands.options import add_config, config_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa rlvr`: the parent backbone, the output and the `recipes.rlvr` slice."""
    parser.add_argument("--model", required=True, help="base backbone: local directory or hub id")
    parser.add_argument("--out", required=True, help="output model directory (written atomically)")
    add_config(parser, "recipes/rlvr")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off)")


def run(args: argparse.Namespace) -> None:
    """Validate inputs, run GRPO, save model + tokenizer + train_log.jsonl (rewards per step) + provenance.json."""
    from hrsa.backbones.rlvr import RlvrSettings, rlvr

    rlvr(args.model, args.out, RlvrSettings.from_config(config_of(args), args.trust_remote_code))
