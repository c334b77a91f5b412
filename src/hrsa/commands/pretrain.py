"""Pretrain a tiny Qwen2 base backbone (and its BPE tokenizer) from scratch on the bundled offline corpus."""

from __future__ import annotations

import argparse

from hrsa.backbones.pretrain import PretrainSettings

_D = PretrainSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa pretrain`; defaults are the measured FACTS.md recipe."""
    parser.add_argument("--corpus", required=True, help="directory of *.txt files (e.g. data/corpus/milton)")
    parser.add_argument("--out", required=True, help="output model directory (written atomically)")
    parser.add_argument("--vocab-size", type=int, default=_D.vocab_size, help="BPE vocabulary size")
    parser.add_argument("--hidden-size", type=int, default=_D.hidden_size)
    parser.add_argument("--num-layers", type=int, default=_D.num_layers)
    parser.add_argument("--num-heads", type=int, default=_D.num_heads)
    parser.add_argument("--num-kv-heads", type=int, default=_D.num_kv_heads)
    parser.add_argument("--intermediate-size", type=int, default=_D.intermediate_size)
    parser.add_argument("--steps", type=int, default=_D.steps, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=_D.batch_size)
    parser.add_argument("--max-length", type=int, default=_D.max_length, help="tokens per training text")
    parser.add_argument("--lr", type=float, default=_D.lr, help="peak AdamW learning rate")
    parser.add_argument(
        "--arithmetic-share",
        type=float,
        default=_D.arithmetic_share,
        help="fraction of training texts that are 'Q: a+b=? A: c' lines",
    )
    parser.add_argument("--seed", type=int, default=_D.seed)


def run(args: argparse.Namespace) -> None:
    """Validate the corpus, train, and save model + tokenizer + train_log.jsonl + provenance.json."""
    from hrsa.backbones.pretrain import pretrain

    settings = PretrainSettings(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads,
        intermediate_size=args.intermediate_size,
        steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lr=args.lr,
        arithmetic_share=args.arithmetic_share,
        seed=args.seed,
    )
    pretrain(args.corpus, args.out, settings)
