"""What a config costs before it runs: GPU-hours and CPU-hours requested, submissions, and the storage of activations
and kNN graphs, from Snakemake's own DAG of the config (every job, finished or not) seen through a profile.

Requests are what the rules ask of a scheduler (`resources:` of the config, scaled by `params_b`; attempt 1, capped by
the profile as the scheduler would see them): GPU-hours = runtime x GPUs, CPU-hours = runtime x threads, summed by
rule. They are time *limits*, so the totals are upper bounds, and planning values until the first jobs' records
(`results/benchmarks/`) say better. Submissions follow the profile's groups (profiles/slurm: a model's extractions
and kNN graphs are one, comparisons go `HRSA_SLURM_COMPARISONS_PER_JOB` to one); `localrules` run in the submitting
process and are no submission. Storage is uncompressed: rows x layers x width x dtype per model and probe (token probes:
`max_tokens`, else `n_texts` x `max_length`, an upper bound, else the planning figure cost.probe_tokens; sentence
probes: `n_texts`), kNN graphs rows x k x 8 bytes
(int32 index + float32 similarity) per layer, rows capped by `hrsa.knn_max_rows`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
_MARK = "HRSA_COST "

# Runs in a child Snakemake process (Snakemake keeps global state): the CLI builds the DAG with the profile's settings
# (groups included), then Workflow.execute is replaced by a dump of every job and the study's storage.
_CHILD = """
import json, sys
import snakemake.api
import snakemake.workflow as W
from hrsa.cost import dag_jobs, storage

def _dump(self, *args, **kwargs):
    self._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
    self._build_dag()
    self.dag.update_groups()
    jobs = dag_jobs(self)
    print({mark!r} + json.dumps({{"jobs": jobs, "storage": storage(self.globals["STUDY"], jobs)}}))
    sys.exit(0)

W.Workflow.execute = _dump
W.Workflow.local_exec = property(lambda self: False)  # see the DAG as the cluster executor does (groups on)
W.Workflow.non_local_exec_or_dryrun = property(lambda self: True)
from snakemake.cli import main
main({argv!r})
"""


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def dag_jobs(workflow: Any) -> list[dict[str, Any]]:
    """Every job of a built DAG (the target rule left out): rule, wildcards, threads, GPUs (`gpu_slots`, which every
    GPU rule sets in either GPU flavour), runtime (minutes), whether it runs in the submitting process, and its
    submission (a group's jobs share one)."""
    out = []
    for job in workflow.dag.needrun_jobs():
        if job.rule.norun:
            continue
        local = job.rule.group is None and job.rule.name in workflow._localrules
        group = workflow.dag._group.get(job)
        unit = (f"group {workflow.parent_groupids.get(group.groupid, group.groupid)} {id(group)}"
                if group is not None else f"job {job.jobid}")
        res = job.resources
        out.append({"rule": job.rule.name, "wildcards": dict(job.wildcards_dict), "threads": int(job.threads),
                    "gpus": _number(res.get("gpu_slots", 0)), "runtime_min": _number(res.get("runtime", 0)),
                    "local": local, "submission": None if local else unit})
    return out


def probe_rows(probe: Mapping[str, Any], planned: int | None = None) -> int | None:
    """Rows one model writes for a probe: sentence probes one per text; token probes `max_tokens` when set, else at
    most `n_texts` x `max_length`; a probe that keeps every token (both 0): `planned` (cost.probe_tokens), else
    None (unknown until its texts are tokenised)."""
    if probe.get("granularity", "token") == "sentence":
        return int(probe["n_texts"])
    capped = int(probe.get("max_tokens") or 0) or int(probe["n_texts"]) * int(probe.get("max_length") or 0)
    return capped or planned


def pair_width(study: Any, pair: str) -> int | None:
    """A pair's hidden size: read offline from a role, else `pairs[].hidden_size`, else unknown."""
    widths = {s.width for s in study.shapes[pair].values() if s.width}
    if widths:
        return int(next(iter(widths)))
    entry = next(e for e in study.config["pairs"] if e["name"] == pair)
    return int(entry["hidden_size"]) if entry.get("hidden_size") else None


def storage(study: Any, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per probe: the models extracted (extract_activations jobs), rows, layers, and bytes of activations and kNN
    graphs (None where a pair's width is unknown offline)."""
    from hrsa.grid import parse_model_id
    from hrsa.metrics import graph_k  # the registry decides the stored k (imports torch: in the child only)

    config = study.config
    dtype = str(config.get("activation_dtype", "float32"))
    hrsa = config.get("hrsa", {})
    k_stored, cap = graph_k(hrsa.get("knn_k", [10])), int(hrsa.get("knn_max_rows", 0))
    rows_out = []
    planned = (config.get("cost") or {}).get("probe_tokens") or {}
    for probe, spec in study.probes.items():
        rows = probe_rows(spec, planned.get(probe))
        if rows is None:  # every token of an uncapped probe, and no planning figure: unknown
            rows_out.append({"probe": probe, "granularity": spec.get("granularity", "token"), "rows": None,
                             "knn_rows": None, "k": None, "layers": [], "models": 0, "dtype": dtype,
                             "activations_bytes": None, "knn_bytes": None})
            continue
        knn_rows = min(rows, cap) if cap > 0 else rows
        models = [j["wildcards"]["model"] for j in jobs
                  if j["rule"] == "extract_activations" and j["wildcards"]["probe"] == probe]
        act: float | None = 0.0
        graphs = 0.0
        layers = set()
        for model in models:
            pair = parse_model_id(model)[0]
            n_layers = len(study.layers(pair, probe))
            layers.add(n_layers)
            width = pair_width(study, pair)
            if act is not None:
                act = None if width is None else act + rows * n_layers * width * DTYPE_BYTES.get(dtype, 4)
            k = min(k_stored, knn_rows - 1)
            graphs += n_layers * (knn_rows * k * 8 + (knn_rows * 8 if knn_rows < rows else 0))
        rows_out.append({"probe": probe, "granularity": spec.get("granularity", "token"), "rows": rows,
                         "knn_rows": knn_rows, "k": min(k_stored, knn_rows - 1), "layers": sorted(layers),
                         "models": len(models), "dtype": dtype, "activations_bytes": act, "knn_bytes": graphs})
    return rows_out


def dag_cost(configfiles: Sequence[str | Path], profile: str | Path | None, snakefile: str | Path,
             workdir: str | Path, timeout: int = 300) -> dict[str, Any]:
    """Jobs and storage of a config's whole DAG, from a child Snakemake (dry, offline; nothing is run or written
    besides Snakemake's own .snakemake/ folder in `workdir`)."""
    argv = ["all", "-n", "--snakefile", str(snakefile), "--directory", str(workdir)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    argv += ["--configfile", *map(str, configfiles)]
    code = _CHILD.format(mark=_MARK, argv=argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK):])
            return result
    raise ConfigError(f"the DAG of {' '.join(map(str, configfiles))} could not be built: "
                      f"{_why(proc.stderr + proc.stdout)}")


def _why(output: str) -> str:
    """The one line of Snakemake's output that says what is wrong (and where, for a schema violation)."""
    lines = [x.strip() for x in output.splitlines() if x.strip()]
    why = next((x for x in reversed(lines) if "invalid config" in x), None)
    why = why or next((x for x in reversed(lines) if x.split(":")[0].endswith(("Error", "Exception"))
                       and not x.startswith("WorkflowError in file")), lines[-1] if lines else "no output")
    where = next((x for x in lines if x.startswith("On instance")), None)
    return f"{why} (at config{where.removeprefix('On instance').rstrip(':')})" if where else why


def summarise(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per rule: jobs, GPU-hours, CPU-hours, submissions (local rules: none, and no hours: they run in the submitting
    process); totals, and submissions that ask for a GPU (any job of the submission does) vs the others."""
    rules: dict[str, dict[str, Any]] = {}
    units: dict[str, bool] = {}
    for j in jobs:
        row = rules.setdefault(j["rule"], {"jobs": 0, "gpu_hours": 0.0, "cpu_hours": 0.0, "submissions": set(),
                                           "local": j["local"]})
        row["jobs"] += 1
        if j["local"]:  # runs in the submitting process: asks the scheduler for nothing
            continue
        row["gpu_hours"] += j["runtime_min"] / 60 * j["gpus"]
        row["cpu_hours"] += j["runtime_min"] / 60 * j["threads"]
        if j["submission"] is not None:
            row["submissions"].add(j["submission"])
            units[j["submission"]] = units.get(j["submission"], False) or j["gpus"] > 0
    for row in rules.values():
        row["submissions"] = len(row["submissions"])
    gpu_subs = sum(units.values())
    return {"rules": dict(sorted(rules.items())), "jobs": len(jobs),
            "gpu_hours": sum(r["gpu_hours"] for r in rules.values()),
            "cpu_hours": sum(r["cpu_hours"] for r in rules.values()),
            "submissions": len(units), "gpu_submissions": gpu_subs, "other_submissions": len(units) - gpu_subs}


def _size(n: float | None) -> str:
    if n is None:
        return "unknown (set pairs[].hidden_size)"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def render(summary: Mapping[str, Any], stores: Sequence[Mapping[str, Any]], title: str) -> str:
    """The cost as Markdown tables (what `hrsa cost` prints)."""
    lines = [f"# Cost of {title}", "",
             "Requests (time limits x devices, attempt 1): upper bounds and planning values, not measurements.", "",
             "| rule | jobs | GPU-hours | CPU-hours | submissions |", "|---|---:|---:|---:|---:|"]
    for rule, r in summary["rules"].items():
        if r["local"]:
            lines.append(f"| {rule} | {r['jobs']} | - | - | local |")
            continue
        lines.append(f"| {rule} | {r['jobs']} | {r['gpu_hours']:,.1f} | {r['cpu_hours']:,.1f} | {r['submissions']} |")
    lines.append(f"| **total** | {summary['jobs']} | {summary['gpu_hours']:,.1f} | {summary['cpu_hours']:,.1f} | "
                 f"{summary['submissions']} ({summary['gpu_submissions']} GPU, {summary['other_submissions']} other) |")
    lines += ["", "Storage (uncompressed; activations: rows x layers x width x dtype per model; kNN graphs: rows x k x "
              "8 bytes per layer):", "",
              "| probe | rows per model | layers | models | activations | kNN graphs (rows, k) |",
              "|---|---:|---:|---:|---:|---:|"]
    total_act: float | None = 0.0
    total_knn = 0.0
    for s in stores:
        if s["rows"] is None:
            lines.append(f"| {s['probe']} | unknown: every token (set cost.probe_tokens) | - | - | unknown | unknown |")
            total_act = None
            continue
        layers = "/".join(map(str, s["layers"])) or "-"
        what = "tokens" if s["granularity"] == "token" else "texts"
        lines.append(f"| {s['probe']} | {s['rows']:,} {what} | {layers} | {s['models']} | "
                     f"{_size(s['activations_bytes'])} ({s['dtype']}) | {_size(s['knn_bytes'])} "
                     f"({s['knn_rows']:,}, {s['k']}) |")
        total_act = None if total_act is None or s["activations_bytes"] is None else total_act + s["activations_bytes"]
        total_knn += s["knn_bytes"]
    lines.append(f"| **total** | | | | {_size(total_act)} | {_size(total_knn)} |")
    return "\n".join(lines)
