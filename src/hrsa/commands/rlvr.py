"""Make the RLVR sibling of a backbone: GRPO on arithmetic prompts, reward = exact first integer of the answer."""

from __future__ import annotations

import argparse

from hrsa.backbones.rlvr import RlvrSettings

_D = RlvrSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa rlvr`; defaults run well under 25 s on one CPU thread (see RlvrSettings for the lr)."""
    parser.add_argument("--model", required=True, help="base backbone: local directory or hub id")
    parser.add_argument("--out", required=True, help="output model directory (written atomically)")
    parser.add_argument("--steps", type=int, default=_D.steps, help="GRPO optimizer steps")
    parser.add_argument("--lr", type=float, default=_D.lr)
    parser.add_argument(
        "--batch-size", type=int, default=_D.batch_size, help="completions per step (a multiple of --num-generations)"
    )
    parser.add_argument("--num-generations", type=int, default=_D.num_generations, help="completions per prompt")
    parser.add_argument("--max-completion-length", type=int, default=_D.max_completion_length)
    parser.add_argument("--seed", type=int, default=_D.seed)
    parser.add_argument(
        "--reward", default=_D.reward, help="first_integer | math_verify | auto (math_verify when --problems is given)"
    )
    parser.add_argument("--temperature", type=float, default=_D.temperature, help="rollout sampling temperature")
    parser.add_argument(
        "--save-steps", type=int, default=_D.save_steps, help="keep a loadable model every N steps (0: none)"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="JSONL with 'prompt' and 'answer' fields (default: seeded arithmetic, operands 0-9)",
    )
    parser.add_argument(
        "--problems",
        default=None,
        help="maths problems as JSON: {dataset|path, config, split, question_field, solution_field, answer_format"
        " (gsm8k|boxed), limit}; the same set serves the RLVR and SFT siblings",
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off)")


def run(args: argparse.Namespace) -> None:
    """Validate inputs, run GRPO, save model + tokenizer + train_log.jsonl (rewards per step) + provenance.json."""
    from hrsa.backbones.rlvr import rlvr

    settings = RlvrSettings(
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        seed=args.seed,
        trust_remote_code=args.trust_remote_code,
        problems=args.problems,
        reward=args.reward,
        temperature=args.temperature,
        save_steps=args.save_steps,
    )
    rlvr(args.model, args.out, settings, data=args.data)
