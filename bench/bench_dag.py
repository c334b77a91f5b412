"""Benchmark of the workflow as a scheduler sees it: how long `snakemake -n --profile profiles/slurm` takes to build
the DAG, and how many SLURM submissions the run would make (GPU and others), with the largest request of each kind.

Submissions are counted from Snakemake's own DAG with the profile's groups applied (the dry run itself ignores
groups): a job of a `localrules` rule runs in the submitting process, a grouped job goes in its group's one
submission, every other job is one submission. The config is the paper grid by default, so the figures are at the
paper's shape; no projection is needed.

    .venv/bin/python bench/bench_dag.py                            # config/paper.yaml, 3 timed dry runs
    .venv/bin/python bench/bench_dag.py --configfile config/config.yaml --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: issue targets on the paper grid (150 and 10 before issue 21 added the third pair, 8 sibling health jobs and 3 drift
#: checkpoints: 190 GPU submissions and 13 others since)
MAX_GPU_SUBMISSIONS, MAX_OTHER_SUBMISSIONS, MAX_BUILD_S = 200, 15, 10.0


def snakemake_argv(profile: str, configfile: str, workdir: Path) -> list[str]:
    return ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--profile", profile,
            "--configfile", configfile]


def time_dry_run(argv: list[str], repeats: int) -> list[float]:
    """Wall seconds of `snakemake -n --profile ... --configfile ...` as a user types it (the DAG a user waits for
    before anything is submitted, job listing included), in fresh processes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", *argv], env=env,
                              capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"dry run failed:\n{proc.stderr[-3000:]}")
    return times


def count_submissions(argv: list[str]) -> dict[str, Any]:
    """In a child process: build the DAG through the CLI (profile included), then read its jobs and groups (the
    dry run's execution replaced by the count)."""
    code = f"""
import json, sys
from collections import defaultdict
import snakemake.api
import snakemake.workflow as W

def _count(self, *args, **kwargs):
    self._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
    self._build_dag()
    self.dag.update_groups()  # init() forms groups before needrun is known
    kinds = defaultdict(lambda: dict(submissions=0, jobs=0, gpu=0, threads=0, mem_mb=0, runtime=0, local=False))
    seen = set()
    def local(rule):  # Workflow.is_local without the local executor that --dag implies
        return rule.group is None and (rule.name in self._localrules or rule.norun)

    for job in self.dag.needrun_jobs():
        if job.rule.norun:  # the target rule `all`
            continue
        if local(job.rule):
            kind, unit = job.rule.name, job
        else:
            group = self.dag._group.get(job)
            unit = group if group is not None else job
            kind = ("group " + str(self.parent_groupids.get(group.groupid, group.groupid)) if group is not None
                    else job.rule.name)
        row = kinds[kind]
        row["jobs"] += 1
        row["local"] = local(job.rule)
        if unit in seen:
            continue
        seen.add(unit)
        row["submissions"] += 1
        res = unit.resources
        for key in ("gpu", "mem_mb", "runtime"):
            value = res.get(key, 0)
            row[key] = max(row[key], value if isinstance(value, int) else 0)
        row["threads"] = max(row["threads"], unit.threads)
    print("BENCH_DAG " + json.dumps(kinds))
    sys.exit(0)

W.Workflow.execute = _count  # after the CLI has set every setting (groups included), before anything runs
# a dry run builds the DAG as the local executor does (groups off); see it as the cluster executor does
W.Workflow.local_exec = property(lambda self: False)
W.Workflow.non_local_exec_or_dryrun = property(lambda self: True)
from snakemake.cli import main
main({["all", *argv, "-n"]!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_DAG "):
            return json.loads(line[len("BENCH_DAG "):])
    sys.exit(f"could not read the DAG:\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default="config/paper.yaml")
    ap.add_argument("--profile", default=str(REPO / "profiles/slurm"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        argv = snakemake_argv(args.profile, str(Path(args.configfile).resolve()), Path(tmp))
        kinds = count_submissions(argv)
        times = time_dry_run(argv, args.repeats)

    print(f"# {args.configfile} through {Path(args.profile).name} (site settings from HRSA_SLURM_*)\n")
    print("| rule or group | jobs | SLURM submissions | GPUs | CPUs | mem_mb | runtime min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    gpu = other = 0
    for kind in sorted(kinds):
        row = kinds[kind]
        subs = "local" if row["local"] else str(row["submissions"])
        print(f"| {kind} | {row['jobs']} | {subs} | {row['gpu']} | {row['threads']} | {row['mem_mb']} | "
              f"{row['runtime']} |")
        if row["local"]:
            continue
        if row["gpu"]:
            gpu += row["submissions"]
        else:
            other += row["submissions"]
    jobs = sum(r["jobs"] for r in kinds.values())
    build = statistics.median(times)
    print()
    print("| measure | value | target (paper grid) |")
    print("|---|---:|---:|")
    print(f"| jobs in the DAG | {jobs} | |")
    print(f"| GPU submissions | {gpu} | <= {MAX_GPU_SUBMISSIONS} |")
    print(f"| other submissions | {other} | <= {MAX_OTHER_SUBMISSIONS} |")
    print(f"| `snakemake -n` wall s (median of {len(times)}: {', '.join(f'{t:.1f}' for t in times)}) | {build:.1f} "
          f"| < {MAX_BUILD_S:.0f} |")


if __name__ == "__main__":
    main()
