"""The report rule reads only its declared inputs: the files `hrsa report` derives from its flags (evaluations,
model directories with provenance) are exactly the rule's declared inputs in a real dry run; its job records (benchmark
TSVs) are none of them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pytest  # noqa: E402
import yaml  # noqa: E402

from hrsa import paths  # noqa: E402
from hrsa.cli import build_parser  # noqa: E402
from smk import REPO, dry_run, hrsa_argv, shell_commands  # noqa: E402


@pytest.mark.parametrize("baseline", [False, True])
def test_report_verb_reads_exactly_the_declared_inputs(tmp_path, baseline):
    from hrsa.evaluation.groups import task_groups
    from hrsa.report import run_inputs

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["evaluation"]["baseline"] = baseline
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = dry_run(tmp_path, tmp_path / "config.yaml", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (command,) = [c for c in shell_commands(proc.stdout) if c.startswith("hrsa report ")]
    args = build_parser(only="report").parse_args(hrsa_argv(command))
    block = proc.stdout.split("rule report:", 1)[1]
    declared = set(re.search(r"input: (.*)", block).group(1).split(", "))
    assert args.run_records and args.mine and args.task_benchmarks
    rec = run_inputs(args.models, args.eval_groups, args.probes, args.extract_models, args.backbones, args.hrsa,
                     args.mine)
    # the report reads {eval_dir}/{model}/{task}.json; each is written by the declared job of its task's group
    members = json.loads(args.task_benchmarks)  # {task: every benchmark counting it}; scored in the first
    groups = task_groups({t: benches[0] for t, benches in members.items()}, cfg["evaluation"])
    assert list(groups) == args.eval_groups and sorted(t for g in groups.values() for t in g) == sorted(args.tasks)
    evals = {f"{args.eval_dir}/{m}/groups/{g}.json" for m in args.models for g in args.eval_groups}
    maps = {str(p) for p in args.procrustes_maps}
    assert len(maps) == len(args.hrsa) and all(m.endswith(".procrustes.npz") for m in maps)
    probe_sets = {paths.PROBE.format(probe=p) for p in args.probes}  # the chance line of probe transfer
    read = ({str(p) for p in args.hrsa} | maps | evals | set(rec["models"]) | {str(p) for p in args.training}
            | {str(p) for p in args.health} | probe_sets)
    assert len(args.training) == 6  # every embedder's training summary
    assert len(args.health) == 3  # every role's sibling health
    assert read == declared  # job records (results/benchmarks/) are read where they exist, never declared
    assert not {p for p in declared if p.startswith("results/benchmarks/")}
    # backbones, mine, train, extract, knn (9 models + the drift checkpoint reason@20, 2 probes each), compare (13
    # comparisons incl. base~reason@20, 2 probes), evaluate groups (embedders; with the baseline also the 3 raw
    # backbones)
    assert len(groups) >= 1
    assert len(rec["benchmarks"]) == 3 + 1 + 6 + 20 + 20 + 26 + (6 + (3 if baseline else 0)) * len(groups)
    assert ("results/eval/tiny.base/groups/tasks-saved-0.json" in declared) == baseline
    assert {"results/embedders/tiny.sft-E.s1", "results/backbones/tiny.reason"} <= declared
