"""Build the report: embedding-score tables with deltas and paired tests, HRSA tables and figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hrsa-dir", required=True, help="directory of HRSA tables ({probe}/{comparison}.parquet)")
    p.add_argument("--eval-dir", required=True, help="directory of evaluation results ({model}/{task}.json)")
    p.add_argument("--config", default="{}", help="the study config as JSON (for the header)")
    p.add_argument("--out", required=True, help="report directory")


def run(args: argparse.Namespace) -> None:
    from hrsa.report import build_report

    index = build_report(Path(args.hrsa_dir), Path(args.eval_dir), json.loads(args.config), Path(args.out))
    print(f"report: {index.resolve()}")
