"""Build the report: Table 1 with equivalence tests and verdicts, HRSA figures, realignment summary, what was run.

Reads exactly the files named: the HRSA tables given, `{eval-dir}/{model}/{task}.json` for every model and task given,
and (with --run-records) the provenance files and `benchmark:` job records of the grid named by --models,
--eval-groups, --backbones, --probes, --extract-models, --mine and the HRSA tables (named by grid, not listed, so the
command line stays short on the paper's grid of ~5,800 input files; the rule declares the same provenance files
through hrsa.report.run_inputs). Job records are no input of the rule: those that exist are read, the others are
listed as missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hrsa.commands.options import add_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hrsa", nargs="*", default=[], type=Path, metavar="PARQUET",
                   help="HRSA tables to report ({probe}/{comparison}.parquet); only these are read")
    p.add_argument("--eval-dir", required=True, type=Path, help="directory of evaluation results ({model}/{task}.json)")
    p.add_argument("--models", nargs="*", default=[], metavar="MODEL",
                   help="evaluated models (embedders, and raw-backbone baselines) whose evaluations are read")
    p.add_argument("--tasks", nargs="*", default=[], metavar="TASK", help="tasks whose evaluations are read")
    p.add_argument("--task-benchmarks", default=None,
                   help="JSON {task: benchmark, null or [every benchmark that counts it]}: Table 1's grouping "
                        "(default: every task on its own list)")
    add_config(p, "report")
    p.add_argument("--grid", default=None,
                   help="JSON grid summary shown under 'what was run' (hrsa.report.grid_summary of the study config)")
    p.add_argument("--run-records", action="store_true",
                   help="read the grid's provenance.json and results/benchmarks/*.tsv job records (paths from the cwd)")
    p.add_argument("--backbones", nargs="*", default=[], metavar="MODEL",
                   help="workflow-built backbones (their provenance and build_backbone benchmark)")
    p.add_argument("--extract-models", nargs="*", default=[], metavar="MODEL",
                   help="models whose extraction benchmarks are read")
    p.add_argument("--probes", nargs="*", default=[], metavar="PROBE", help="probe sets of the grid")
    p.add_argument("--mine", action="store_true", help="the grid mines hard negatives (read its benchmark)")
    p.add_argument("--eval-groups", nargs="*", default=[], metavar="GROUP",
                   help="task groups each model is scored in (records: results/benchmarks/eval/{model}/{group}.tsv)")
    p.add_argument("--procrustes-maps", nargs="*", default=[], type=Path, metavar="NPZ",
                   help="Procrustes maps ({probe}/{comparison}.procrustes.npz with O and layer) to draw")
    p.add_argument("--health", nargs="*", default=[], type=Path, metavar="JSON",
                   help="sibling health files ({pair}.{role}.json) shown beside Table 1")
    p.add_argument("--training", nargs="*", default=[], type=Path, metavar="JSON",
                   help="embedders' training summaries ({model}.training.json): one that did not learn is flagged in "
                        "Table 1 and left out of the verdicts")
    p.add_argument("--out", required=True, help="report directory")


def evaluation_files(eval_dir: Path, models: list[str], tasks: list[str]) -> list[Path]:
    """`{eval_dir}/{model}/{task}.json` for every model and task; DataError naming the first that is missing."""
    from hrsa.errors import DataError

    files = [eval_dir / model / f"{task}.json" for model in models for task in tasks]
    for path in files:
        if not path.is_file():
            raise DataError(f"evaluation result {path} is missing: run its evaluate job first")
    return files


def _existing(paths: list[Path], what: str, fix: str) -> list[Path]:
    from hrsa.errors import DataError

    for path in paths:
        if not path.is_file():
            raise DataError(f"{what} {path} is missing: {fix}")
    return paths


def run(args: argparse.Namespace) -> None:
    from hrsa import paths
    from hrsa.report import build_report, run_inputs

    _existing(list(args.hrsa), "HRSA table", "run its compare job first")
    _existing(list(args.procrustes_maps), "Procrustes map", "run its compare job first")
    _existing(list(args.health), "health file", "run its sibling_health job first")
    _existing(list(args.training), "training summary", "run its train job first")
    evals = evaluation_files(args.eval_dir, args.models, args.tasks)
    bench: list[Path] = []
    missing: list[Path] = []
    prov: list[Path] = []
    probes: list[Path] = []
    if args.run_records:
        rec = run_inputs(args.models, args.eval_groups, args.probes, args.extract_models, args.backbones, args.hrsa,
                         args.mine, [Path(h).stem for h in args.health])
        # job records (timings) are read where they exist and listed where not: they are no rule's input, so a
        # deleted results/benchmarks/ (or a copy of results/ alone) never reruns a finished job
        records = [Path(p) for p in rec["benchmarks"]]
        bench = [p for p in records if p.is_file()]
        missing = [p for p in records if not p.is_file()]
        prov = _existing([Path(p) / "provenance.json" for p in rec["models"]], "provenance file",
                         "rerun the job that builds that model")
        probes = [p for p in (Path(paths.PROBE.format(probe=name)) for name in args.probes) if p.is_file()]
    tb = json.loads(args.task_benchmarks) if args.task_benchmarks else None
    grid = json.loads(args.grid) if args.grid else None
    index = build_report(args.hrsa, evals, json.loads(args.config), Path(args.out), grid=grid, task_benchmarks=tb,
                         benchmark_files=bench, missing_records=missing,
                         provenance_files=prov, procrustes_maps=args.procrustes_maps, health_files=args.health,
                         training_files=args.training, probe_files=probes)
    print(f"report: {index.resolve()}")
