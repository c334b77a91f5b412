"""Score an embedder on local, mteb or benchmark tasks with mteb (result cache keyed by --model-name and --revision).

Writes {"results": {task: {main_score, main_score_name, scores}}, "model": ..., "provenance": ...} to --out.
Tasks already in the cache for the same name and revision are not rerun.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa evaluate`."""
    parser.add_argument(
        "--model", required=True, type=Path, metavar="DIR", help="sentence-transformers model directory"
    )
    parser.add_argument(
        "--task",
        required=True,
        action="append",
        metavar="NAME",
        dest="tasks",
        help="local task, mteb task or mteb benchmark name; repeatable",
    )
    parser.add_argument(
        "--model-name",
        required=True,
        metavar="ORG/ID",
        help="name under which mteb caches the results, e.g. hrsa/tiny.base-E.s0",
    )
    parser.add_argument(
        "--revision",
        required=True,
        metavar="REV",
        help="revision under which mteb caches the results: put the checkpoint identity here",
    )
    parser.add_argument("--cache", required=True, type=Path, metavar="DIR", help="mteb ResultCache folder")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, metavar="JSON", help="summary JSON of every task (written atomically)")
    out.add_argument("--out-dir", type=Path, metavar="DIR",
                     help="one summary JSON per task, DIR/{task}.json (a grouped job: a failing task fails alone)")
    parser.add_argument("--batch-size", type=int, default=32, help="encoding batch size (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument(
        "--benchmark",
        default=None,
        metavar="NAME",
        help="take mteb tasks as this benchmark defines them (its language subsets and splits)",
    )
    parser.add_argument(
        "--instructions",
        choices=["task", "model"],
        default="model",
        help="task: each task's own query instruction (config override, task metadata, mteb default for its type); "
        "model: the embedder's saved query prompt for every task (default)",
    )
    parser.add_argument(
        "--task-instructions",
        default="{}",
        metavar="JSON",
        help="per-task instruction overrides as a JSON object {task: instruction} (with --instructions task)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the embedder's custom modelling code (its pair's trust_remote_code; off)",
    )
    parser.add_argument(
        "--instruction-table",
        action="append",
        default=[],
        type=Path,
        metavar="JSON",
        dest="instruction_tables",
        help="table {task: instruction or {query: ...}} in the study's format (with --instructions task); repeatable, "
        "the first table naming a task wins; tasks in none fall back to mteb's metadata (logged)",
    )
    parser.add_argument(
        "--max-seq-length",
        type=int,
        default=None,
        metavar="N",
        help="tokens per text, longer texts truncated (default: the length saved with the model)",
    )
    parser.add_argument(
        "--max-tokens-per-batch",
        type=int,
        default=None,
        metavar="N",
        help="token budget per encoding batch: batch size = max(1, min(--batch-size, N // max_seq_length))",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="data/ folder holding eval/ for the local tasks (default $HRSA_DATA_DIR or the repo's data/)",
    )


def run(args: argparse.Namespace) -> None:
    """Evaluate, then write the summary with the model identity and package versions."""
    from hrsa.errors import HrsaError
    from hrsa.evaluation.run import EvaluationFailed
    from hrsa.io import package_versions, write_json

    if args.batch_size < 1:
        raise HrsaError(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        overrides = json.loads(args.task_instructions)
    except ValueError:
        overrides = None
    if not isinstance(overrides, dict) or not all(isinstance(v, str) for v in overrides.values()):
        raise HrsaError(f"--task-instructions must be a JSON object of strings, got {args.task_instructions!r}")
    try:
        results = _evaluate(args, overrides)
    except EvaluationFailed as exc:
        if args.out_dir is not None:  # the tasks that were scored keep their files
            _write_each(args, exc.results, package_versions())
        raise
    if args.out_dir is not None:
        _write_each(args, results, package_versions())
    else:
        write_json(args.out, summary_document(args, results, package_versions()))


def _write_each(args: argparse.Namespace, results: dict[str, Any], packages: dict[str, str]) -> None:
    """DIR/{task}.json per scored task, each a summary document of that task alone."""
    from hrsa.io import write_json

    for task, entry in results.items():
        write_json(args.out_dir / f"{task}.json", summary_document(args, {task: entry}, packages))


def _evaluate(args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, Any]:
    from hrsa.evaluation.run import evaluate

    return evaluate(
        args.model,
        args.tasks,
        args.model_name,
        args.revision,
        args.cache,
        args.batch_size,
        args.device,
        benchmark=args.benchmark,
        data_dir=args.data_dir,
        instructions=args.instructions,
        task_instructions=overrides,
        trust_remote_code=args.trust_remote_code,
        instruction_tables=args.instruction_tables,
        max_seq_length=args.max_seq_length,
        max_tokens_per_batch=args.max_tokens_per_batch,
    )


def summary_document(args: argparse.Namespace, results: dict[str, Any], packages: dict[str, str]) -> dict[str, Any]:
    """The --out JSON: results plus what produced them (model dir, name, revision, tasks, versions)."""
    return {
        "results": results,
        "model": {"dir": str(Path(args.model).resolve()), "name": args.model_name, "revision": args.revision},
        "tasks": list(results),
        "provenance": {
            "params": {
                "tasks": args.tasks,
                "benchmark": args.benchmark,
                "batch_size": args.batch_size,
                "device": args.device,
                "cache": str(Path(args.cache).resolve()),
                "data_dir": str(args.data_dir) if args.data_dir else None,
                "instructions": args.instructions,
                "instruction_tables": [str(t) for t in args.instruction_tables],
                "max_seq_length": args.max_seq_length,
                "max_tokens_per_batch": args.max_tokens_per_batch,
            },
            "mteb_version": packages.get("mteb"),
            "packages": packages,
        },
    }
