"""Make the SFT sibling of a backbone: next-token fine-tuning on worked arithmetic solutions (or a JSONL of texts)."""

from __future__ import annotations

import argparse

from hrsa.backbones.sft import SftSettings

_D = SftSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa sft`; defaults keep the run around 20 s on one CPU thread."""
    parser.add_argument("--model", required=True, help="base backbone: local directory or hub id")
    parser.add_argument("--out", required=True, help="output model directory (written atomically)")
    parser.add_argument("--steps", type=int, default=_D.steps, help="optimizer steps")
    parser.add_argument("--lr", type=float, default=_D.lr, help="peak AdamW learning rate")
    parser.add_argument("--batch-size", type=int, default=_D.batch_size)
    parser.add_argument("--max-length", type=int, default=_D.max_length, help="tokens per training text")
    parser.add_argument("--seed", type=int, default=_D.seed)
    parser.add_argument(
        "--data", default=None, help="JSONL with a 'text' field (default: seeded worked solutions, operands 0-9)"
    )
    parser.add_argument(
        "--problems",
        default=None,
        help="maths problems as JSON: {dataset|path, config, split, question_field, solution_field, answer_format"
        " (gsm8k|boxed), limit}; the same set serves the RLVR and SFT siblings",
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off)")


def run(args: argparse.Namespace) -> None:
    """Validate inputs, fine-tune, save model + tokenizer + train_log.jsonl + provenance.json."""
    from hrsa.backbones.sft import sft

    settings = SftSettings(
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
        problems=args.problems,
    )
    sft(args.model, args.out, settings, data=args.data)
