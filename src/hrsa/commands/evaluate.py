"""Score an embedder on local, mteb or benchmark tasks with mteb (result cache keyed by --model-name and --revision).

Writes {"results": {task: {main_score, main_score_name, scores}}, "model": ..., "provenance": ...} to --out (every
task), and one such file per task to --out-dir. Tasks already in the cache for the same name, revision and settings
are not rerun. How tasks are scored comes from --config, the `evaluation:` config slice, filled from the schema.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hrsa.commands.options import add_config
from hrsa.schema import default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `hrsa evaluate`: the job's model, tasks and files, and the `evaluation:` slice as --config."""
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
    add_config(parser, "evaluation", "the `evaluation:` slice (batch_size, instructions, task_instructions of these "
               "tasks, instruction_tables, max_seq_length, max_tokens_per_batch)")
    parser.add_argument("--out", type=Path, metavar="JSON", help="summary JSON of every task (written atomically)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="one summary JSON per task, DIR/{task}.json (a grouped job: a failing task fails alone); "
                        "with --out, --out is written last")
    parser.add_argument("--device", default=default("resources/device"), help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--benchmark",
        default=None,
        metavar="NAME",
        help="take mteb tasks as this benchmark defines them (its language subsets and splits)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the embedder's custom modelling code (its pair's trust_remote_code; off)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="data/ folder holding eval/ for the local tasks (default $HRSA_DATA_DIR or the repo's data/)",
    )


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The `evaluation:` slice of --config filled from the schema, checked, with the job's one max_seq_length."""
    from hrsa.errors import HrsaError
    from hrsa.evaluation.groups import seq_length_for
    from hrsa.schema import with_defaults

    try:
        given = json.loads(args.config)
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise HrsaError(f"--config must be a JSON object (the evaluation: config slice), got {args.config!r}")
    spec = with_defaults("evaluation", given)
    overrides = spec["task_instructions"]
    if not isinstance(overrides, dict) or not all(isinstance(v, str) for v in overrides.values()):
        raise HrsaError(f"evaluation.task_instructions must be a JSON object of strings, got {overrides!r}")
    if not isinstance(spec["batch_size"], int) or spec["batch_size"] < 1:
        raise HrsaError(f"evaluation.batch_size must be at least 1, got {spec['batch_size']!r}")
    lengths = {seq_length_for(task, args.benchmark, spec["max_seq_length"]) for task in args.tasks}
    if len(lengths) > 1:
        found = sorted(lengths, key=str)
        raise HrsaError(f"evaluation.max_seq_length gives the tasks of one job different lengths ({found}): score "
                        "them in separate jobs")
    return {**spec, "max_seq_length": lengths.pop()}


def run(args: argparse.Namespace) -> None:
    """Evaluate, then write the summaries with the model identity and package versions."""
    from hrsa.errors import HrsaError
    from hrsa.evaluation.run import EvaluationFailed
    from hrsa.io import package_versions

    if args.out is None and args.out_dir is None:
        raise HrsaError("give --out, --out-dir or both")
    settings = settings_of(args)
    try:
        results = _evaluate(args, settings)
    except EvaluationFailed as exc:
        if args.out_dir is not None:  # the tasks that were scored keep their files
            _write(args, settings, exc.results, package_versions(), whole=False)
        raise
    _write(args, settings, results, package_versions(), whole=True)


def _write(args: argparse.Namespace, settings: dict[str, Any], results: dict[str, Any], packages: dict[str, str],
           *, whole: bool) -> None:
    """DIR/{task}.json per scored task (each a summary of that task alone), then, for a whole run, --out."""
    from hrsa.io import write_json

    if args.out_dir is not None:
        for task, entry in results.items():
            write_json(args.out_dir / f"{task}.json", document(args, settings, {task: entry}, packages))
    if whole and args.out is not None:
        write_json(args.out, document(args, settings, results, packages))


def _evaluate(args: argparse.Namespace, settings: dict[str, Any]) -> dict[str, Any]:
    from hrsa.evaluation.run import evaluate

    return evaluate(
        args.model,
        args.tasks,
        args.model_name,
        args.revision,
        args.cache,
        settings["batch_size"],
        args.device,
        benchmark=args.benchmark,
        data_dir=args.data_dir,
        instructions=settings["instructions"],
        task_instructions=settings["task_instructions"],
        trust_remote_code=args.trust_remote_code,
        instruction_tables=settings["instruction_tables"],
        max_seq_length=settings["max_seq_length"],
        max_tokens_per_batch=settings["max_tokens_per_batch"],
    )


def document(args: argparse.Namespace, settings: dict[str, Any], results: dict[str, Any],
             packages: dict[str, str]) -> dict[str, Any]:
    """A result file: results plus what produced them (model dir, name, revision, tasks, settings, versions)."""
    from hrsa.evaluation.results import summary_document

    model = {"dir": str(Path(args.model).resolve()), "name": args.model_name, "revision": args.revision}
    params = {
        "tasks": args.tasks,
        "benchmark": args.benchmark,
        "batch_size": settings["batch_size"],
        "device": args.device,
        "cache": str(Path(args.cache).resolve()),
        "data_dir": str(args.data_dir) if args.data_dir else None,
        "instructions": settings["instructions"],
        "instruction_tables": [str(t) for t in settings["instruction_tables"]],
        "max_seq_length": settings["max_seq_length"],
        "max_tokens_per_batch": settings["max_tokens_per_batch"],
    }
    return summary_document(results, model, params, packages)
