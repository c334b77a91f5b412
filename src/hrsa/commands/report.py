"""Build the report: embedding-score tables with deltas and paired tests, HRSA tables and figures.

Reads exactly the files named: the HRSA tables given, and `{eval-dir}/{model}/{task}.json` for every model and task
given (named by model and task, not listed, so the command line stays short on the paper's grid of ~2,400 files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hrsa", nargs="*", default=[], type=Path, metavar="PARQUET",
                   help="HRSA tables to report ({probe}/{comparison}.parquet); only these are read")
    p.add_argument("--eval-dir", required=True, type=Path, help="directory of evaluation results ({model}/{task}.json)")
    p.add_argument("--models", nargs="*", default=[], metavar="MODEL", help="embedders whose evaluations are read")
    p.add_argument("--tasks", nargs="*", default=[], metavar="TASK", help="tasks whose evaluations are read")
    p.add_argument("--config", default="{}", help="the study config as JSON (for the header)")
    p.add_argument("--out", required=True, help="report directory")


def evaluation_files(eval_dir: Path, models: list[str], tasks: list[str]) -> list[Path]:
    """`{eval_dir}/{model}/{task}.json` for every model and task; DataError naming the first that is missing."""
    from hrsa.errors import DataError

    files = [eval_dir / model / f"{task}.json" for model in models for task in tasks]
    for path in files:
        if not path.is_file():
            raise DataError(f"evaluation result {path} is missing: run its evaluate job first")
    return files


def run(args: argparse.Namespace) -> None:
    from hrsa.errors import DataError
    from hrsa.report import build_report

    missing = [p for p in args.hrsa if not p.is_file()]
    if missing:
        raise DataError(f"HRSA table {missing[0]} is missing: run its compare job first")
    evals = evaluation_files(args.eval_dir, args.models, args.tasks)
    index = build_report(args.hrsa, evals, json.loads(args.config), Path(args.out))
    print(f"report: {index.resolve()}")
