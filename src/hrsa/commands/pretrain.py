"""Pretrain a tiny Qwen2 base backbone (and its BPE tokenizer) from scratch on the bundled offline corpus."""

from __future__ import annotations

import argparse

from hrsa.commands.options import add_config, config_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa pretrain`: the corpus, the output and the `recipes.pretrain` slice."""
    parser.add_argument("--corpus", required=True, help="directory of *.txt files (e.g. data/corpus/milton)")
    parser.add_argument("--out", required=True, help="output model directory (written atomically)")
    add_config(parser, "recipes/pretrain", "the `recipes.pretrain:` slice (corpus is --corpus)")


def run(args: argparse.Namespace) -> None:
    """Validate the corpus, train, and save model + tokenizer + train_log.jsonl + provenance.json."""
    from hrsa.backbones.pretrain import PretrainSettings, pretrain

    pretrain(args.corpus, args.out, PretrainSettings.from_config(config_of(args)))
