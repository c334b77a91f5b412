"""Make the SFT sibling of a backbone: next-token fine-tuning on worked solutions (or a JSONL of texts)."""

from __future__ import annotations

import argparse

from hrsa.commands.options import add_config, config_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa sft`: the parent backbone, the output and the `recipes.sft` slice."""
    parser.add_argument("--model", required=True, help="base backbone: local directory or hub id")
    parser.add_argument("--out", required=True, help="output model directory (written atomically)")
    add_config(parser, "recipes/sft")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off)")


def run(args: argparse.Namespace) -> None:
    """Validate inputs, fine-tune, save model + tokenizer + train_log.jsonl + provenance.json."""
    from hrsa.backbones.sft import SftSettings, sft

    sft(args.model, args.out, SftSettings.from_config(config_of(args), args.trust_remote_code))
