# Grid, input functions and wildcard constraints: everything expand() needs comes from one Study object.

import json
import os
import re
import shlex
import sys

sys.path.insert(0, str(REPO / "src"))

from hrsa import paths  # noqa: E402
from hrsa.errors import ConfigError  # noqa: E402
from hrsa.grid import (  # noqa: E402
    Study,
    knn_config,
    model_id,
    parse_model_id,
)
from hrsa.evaluation.groups import (  # noqa: E402
    check_query_lengths,
    job_config,
    task_groups,
)
from hrsa.evaluation.names import benchmark_members, first_benchmarks  # noqa: E402
from hrsa.grid.sizing import LOCAL_RESOURCES  # noqa: E402
from snakemake.exceptions import WorkflowError  # noqa: E402

try:
    STUDY = Study(config, root=REPO)
except ConfigError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None
for _note in STUDY.notes():  # comparisons skipped for a pair, checks left to later jobs
    print(f"hrsa config: {_note}", file=sys.stderr)


def _alternatives(values):
    return "|".join(re.escape(str(v)) for v in sorted(set(values), key=str)) or "(?!)"


def _eval_tasks():
    """[(task, benchmark or None)], every membership (a task of two benchmarks under both): every name checked now; a
    benchmark may restrict a task to some subsets. mteb's answer is cached in .snakemake/hrsa/ (keyed by the entries
    and mteb's version; data/eval/task-refs/ ships it for the repository's configs): DAG builds then skip its import.
    """
    from hrsa.evaluation.names import cached_config_memberships

    try:
        return cached_config_memberships(
            lookup(dpath="evaluation/tasks", within=config, default=[]),
            ".snakemake/hrsa",
            REPO / "data/eval/task-refs",
        )
    except ConfigError as exc:
        raise WorkflowError(f"invalid config: {exc}") from None


EVAL_MEMBERSHIPS = _eval_tasks()
# {task: its first benchmark}: where it is scored, once; EVAL_MEMBERS: {task: every benchmark whose means count it}
EVAL_BENCHMARKS = first_benchmarks(EVAL_MEMBERSHIPS)
EVAL_MEMBERS = benchmark_members(EVAL_MEMBERSHIPS)
EVAL_TASKS = list(EVAL_BENCHMARKS)
try:
    # {group name: [task, ...]}: one evaluate job per (evaluated model, group); hrsa.evaluation.groups names them
    # `<benchmark or 'tasks'>-<max_seq_length or 'saved'>-<i>` from the config alone, e.g. MTEB_eng_v2-saved-0
    EVAL_GROUPS = task_groups(
        EVAL_BENCHMARKS, lookup(dpath="evaluation", within=config, default={})
    )
    check_query_lengths(
        EVAL_BENCHMARKS,
        lookup(dpath="evaluation", within=config, default={}),
        min(STUDY.training(p)["max_length"] for p in STUDY.pairs),
        REPO,
    )
except ConfigError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None
_unknown_overrides = set(
    lookup(dpath="evaluation/task_instructions", within=config, default={})
) - set(EVAL_TASKS)
if _unknown_overrides:
    raise WorkflowError(
        f"invalid config: evaluation.task_instructions names tasks that are not evaluated: {sorted(_unknown_overrides)}"
    )


wildcard_constraints:
    pair=_alternatives(STUDY.pairs),
    role=r"(?:base|reason|sft)(?:@\d+)?",
    seed=r"\d+",
    model=_alternatives(STUDY.models()),
    probe=_alternatives(STUDY.probes),
    layer=r"\d+|pooled",
    comparison=_alternatives(c.name for c in STUDY.comparisons),
    task=_alternatives(EVAL_TASKS),
    group=_alternatives(EVAL_GROUPS),


def q(value):
    """Shell-quote a config value (never interpolate config strings unquoted)."""
    return shlex.quote(str(value))


def as_json(value):
    """A config slice as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def repo_path(value):
    """A path of the config (relative to the repository) as jobs see it: relative to the working directory, so a
    moved or cloned checkout keeps its params (no absolute checkout path); absolute values stay as given.
    """
    return str(value) if os.path.isabs(value) else os.path.relpath(REPO / value)


def model_path(model):
    """Directory or hub id a model is loaded from (a kept checkpoint `reason@N`: its step-N folder)."""
    return STUDY.source_path(model)


def model_input(model):
    """The workflow-built directory of a model (a kept checkpoint: its recipe run), or nothing for a published one."""
    return STUDY.built_input(model) or []


def trust_option(allowed):
    """--trust-remote-code when a config key allows it, else nothing."""
    return "--trust-remote-code" if allowed else ""


def trust_flag(pair):
    """--trust-remote-code for verbs that load one of this pair's models, where the pair's config says so."""
    return trust_option(STUDY.trust_remote_code[pair])


def recipe_trust_flag(pair, role):
    """The pair's trust flag for recipes that load a parent (rlvr, sft); pretrain builds from scratch and loads none."""
    return trust_flag(pair) if STUDY.backbone(pair, role).parent else ""


def report_procrustes_maps():
    """The Procrustes map (last numbered layer) saved beside every HRSA table."""
    return [
        paths.PROCRUSTES_MAP.format(probe=probe, comparison=c.name)
        for c in STUDY.comparisons
        for probe in STUDY.probes
    ]


def report_hrsa_tables():
    """Every HRSA table of the grid: one per comparison and probe set."""
    return [
        paths.HRSA_TABLE.format(probe=probe, comparison=c.name)
        for c in STUDY.comparisons
        for probe in STUDY.probes
    ]


def all_targets():
    """The whole grid: report, HRSA tables, kNN graphs, evaluations, sibling health."""
    return [
        paths.REPORT_INDEX,
        *report_hrsa_tables(),
        *evaluation_results(),
        *health_results(),
    ]


def health_results():
    """Every role's health file (greedy pass@1; siblings: gain over base, weight change)."""
    return [
        paths.HEALTH.format(pair=pair, role=role)
        for pair, roles in STUDY.pairs.items()
        for role in roles
    ]


def health_base_flags(pair, role):
    """--base and --base-health of a sibling's health job (the base's own job measured its pass@1)."""
    if role == "base":
        return ""
    base = q(model_path(f"{pair}.base"))
    return (
        f"--base {base} --base-health {q(paths.HEALTH.format(pair=pair, role='base'))}"
    )


def training_summaries():
    """Every embedder's training summary (did it learn): the report flags those that did not."""
    return [paths.MODEL_TRAIN_HEALTH.format(model=m) for m in STUDY.embedder_models()]


def evaluated_models():
    """Models scored on every task: the embedders, and the raw backbones when evaluation.baseline is on."""
    baseline = lookup(dpath="evaluation/baseline", within=config, default=False)
    return STUDY.embedder_models() + (STUDY.backbone_models() if baseline else [])


def eval_model_dir(model):
    """The SentenceTransformer directory `hrsa evaluate` scores: an embedder, or a backbone's untrained baseline."""
    if parse_model_id(model)[2] is None:
        return paths.MODEL_BASELINE.format(model=model)
    return paths.MODEL_EMBEDDER.format(model=model)


def evaluation_results():
    """Every evaluate job's result of the grid: one per evaluated model (embedders, baselines) and task group. Each job
    also writes results/eval/{model}/{task}.json per task of its group, which the report reads.
    """
    return expand(paths.EVAL_GROUP, model=evaluated_models(), group=EVAL_GROUPS)


def eval_job_config(group):
    """The `evaluation:` slice of one group's job: its own tasks' settings only (hrsa.evaluation.groups.job_config)."""
    return job_config(
        EVAL_GROUPS[group],
        EVAL_BENCHMARKS,
        lookup(dpath="evaluation", within=config, default={}),
        repo_path("."),
    )


def prepared_data_spec():
    """`training_data` without the miner's settings (they belong to mine_hard_negatives, and must not rerun this)."""
    spec = dict(lookup(dpath="training_data", within=config))
    spec["mine"] = {
        "enabled": bool(lookup(dpath="training_data/mine/enabled", within=config))
    }
    return spec


def mine_replace_flag():
    """--replace-existing unless training_data.mine.keep_existing (mine only what records lack, the study's way)."""
    keep = lookup(dpath="training_data/mine/keep_existing", within=config)
    return "" if keep else "--replace-existing"


def report_mine_flag(records):
    """--mine when the grid mines hard negatives (the report then reads the miner's job record)."""
    return "--mine" if records["mine"] else ""


def training_records():
    """The records every embedder trains on: re-mined when training_data.mine.enabled, else as prepared."""
    if lookup(dpath="training_data/mine/enabled", within=config):
        return paths.TRAIN_MINED
    return paths.TRAIN_PREPARED


def backbone_parent(pair, role):
    """Input of a recipe backbone: the workflow-built directory it starts from (if any)."""
    bb = STUDY.backbone(pair, role)
    return model_input(f"{pair}.{bb.parent}") if bb.parent else []


def recipe_source(pair, role):
    """What a recipe starts from: `--model DIR` for siblings (rlvr, sft), `--corpus DIR` for pretrain; quoted."""
    bb = STUDY.backbone(pair, role)
    if bb.parent:
        return f"--model {q(model_path(f'{pair}.{bb.parent}'))}"
    return f"--corpus {q(repo_path(STUDY.recipe_options(bb)['corpus']))}"


def recipe_config(pair, role):
    """The recipe's config slice (`recipes.<recipe>` and the role's overrides) as one quoted JSON argument; a local
    data file is given relative to the working directory."""
    opts = dict(STUDY.recipe_options(STUDY.backbone(pair, role)))
    opts.pop("corpus", None)  # pretrain's corpus is --corpus
    if opts.get("data"):
        opts["data"] = repo_path(opts["data"])
    problems = dict(opts.get("problems") or {})
    if problems.get("path"):  # relative to the repository, like data
        opts["problems"] = {**problems, "path": repo_path(problems["path"])}
    return as_json(opts)


def comparison_side(pattern, probe, comparison, side):
    """A path of one side of a comparison (its activations or kNN graphs: paths.ACTIVATIONS, paths.KNN)."""
    return pattern.format(probe=probe, model=STUDY.comparison(comparison).model(side))


def benchmark_flag(task):
    """--benchmark NAME for tasks that come from a benchmark (it may restrict their subsets)."""
    bench = EVAL_BENCHMARKS.get(task)
    return f"--benchmark {q(bench)}" if bench else ""


def training_devices(pair):
    """GPUs one training job of this pair asks for (training.devices)."""
    return int(STUDY.training(pair).get("devices", 1))


def training_launcher(pair):
    """Prefix of the train command: torchrun with one process per device when a job trains on several GPUs."""
    n = training_devices(pair)
    return f"torchrun --standalone --nproc-per-node {n} --no-python " if n > 1 else ""


# Offline compute nodes: the local `download` rule (download.smk) fetches what the config names from the hub first.
DOWNLOAD = bool(lookup(dpath="download/enabled", within=config))
DOWNLOADED = paths.DOWNLOADED

if DOWNLOAD:
    # every job's shell (here and on the compute nodes, which read this Snakefile too) runs offline; the download
    # rule alone unsets both
    shell.prefix("set -euo pipefail; export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1; ")


def hub_cache():
    """Input of every job that may load from the hub: the download when download.enabled, else nothing. Ancient: a
    download rerun for a new config entry never reruns finished jobs."""
    return ancient(DOWNLOADED) if DOWNLOAD else []


def stage_threads(stage):
    """Threads of a stage's jobs (resources.<stage>.threads)."""
    return lookup(dpath=f"resources/{stage}/threads", within=config)


def _scaled(stage, key, pair):
    """resources.<stage>.<key> + <key>_per_b x the pair's size in billions (no pair: the fixed part)."""
    spec = lookup(dpath=f"resources/{stage}", within=config)
    size = STUDY.params_b(pair) if pair is not None else 0.0
    return spec[key] + spec[f"{key}_per_b"] * size


def stage_mem_mb(stage, pair=None, extra=0):
    """Memory (MB) of a job: resources.<stage>.mem_mb + mem_mb_per_b x the pair's size (billions), plus `extra`."""
    return int(round(_scaled(stage, "mem_mb", pair) + extra))


def stage_runtime(stage, pair=None, attempt=1, tasks=1):
    """Minutes of a job: (runtime + runtime_per_b x size) x tasks (evaluation groups) x attempt (retries)."""
    return int(round(_scaled(stage, "runtime", pair) * tasks * attempt))


def model_pair(model):
    """The pair a model id belongs to."""
    return parse_model_id(model)[0]


# How a rule's GPUs reach SLURM (HRSA_SLURM_GPU_FLAG, documented in profiles/slurm): `gpu=N` (sbatch --gpus=N) or, for
# sites that only take generic resources, `gres=gpu:N` with gpu=0. `gpu_slots=N` is set either way: the profile
# limits it per group submission, so a group's GPU jobs take turns on one GPU in both flavours.
GPU_AS_GRES = os.environ.get("HRSA_SLURM_GPU_FLAG", "gpus") == "gres"


# resources.device: cpu asks for no GPU anywhere; a job's device then follows its request (`--gpus {resources.gpu_slots}`:
# 0 runs on CPU, more on CUDA where the node has it), so the device never enters a job's parameters.
GPU_JOBS = lookup(dpath="resources/device", within=config) != "cpu"


def gpu_request(count):
    """Resources of a rule that uses `count` GPUs (an int, or a function of the wildcards); none under
    resources.device: cpu. A rule that never asks for a GPU sets no `gres` (a group's jobs must agree on it).
    """
    if not GPU_JOBS or count == 0:
        return {"gpu": 0, "gpu_slots": 0}
    n = count if callable(count) else (lambda wc: count)
    if GPU_AS_GRES:
        return {
            "gpu": 0,
            "gres": lambda wc: f"gpu:{n(wc)}" if n(wc) else "",
            "gpu_slots": lambda wc: n(wc),
        }
    return {"gpu": lambda wc: n(wc), "gpu_slots": lambda wc: n(wc)}
