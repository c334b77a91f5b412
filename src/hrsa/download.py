"""Everything a config fetches from the Hugging Face hub, as a plan computed offline, and the fetch itself.

Compute nodes of a cluster often have no network: the workflow's `download` rule runs `hrsa download` on the login
node, which fetches every hub model (backbones given as hub ids, the miner), hub dataset (training sets, probe sets,
maths problems) and mteb task dataset the config names into the Hugging Face cache; the other jobs then run with
HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (hrsa.hub turns a miss of that cache into one line naming the id).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa.hub import is_hub_id

KINDS = ("models", "datasets", "mteb_tasks")
# Weight formats no loader of this workflow reads: skipped by the model snapshot (they can be many GB).
SKIPPED_FILES = ["*.onnx", "onnx/*", "openvino/*", "*.gguf", "*.msgpack", "*.h5", "*.ot", "coreml/*", "*.tflite"]


def _add(entries: dict[tuple[Any, ...], dict[str, Any]], key: tuple[Any, ...], entry: dict[str, Any],
         used_by: str) -> None:
    """Add one use of a hub item, merging uses of the same item."""
    entries.setdefault(key, {**entry, "used_by": []})["used_by"].append(used_by)


def _models(config: Mapping[str, Any], study: Any, root: Path) -> list[dict[str, Any]]:
    """Backbones given as hub ids, and the miner when mining is on and it is a hub id."""
    from hrsa.mining import OFFLINE_MINER

    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for roles in study.pairs.values():
        for bb in roles.values():
            if bb.source and is_hub_id(bb.source, root):
                _add(found, (bb.source,), {"id": bb.source}, f"backbone {bb.model_id}")
    mine = (config.get("training_data") or {}).get("mine") or {}
    miner = str(mine.get("model") or "")
    if mine.get("enabled") and miner != OFFLINE_MINER and is_hub_id(miner, root):
        _add(found, (miner,), {"id": miner}, "training_data.mine.model")
    return list(found.values())


def _datasets(config: Mapping[str, Any], study: Any, root: Path) -> list[dict[str, Any]]:
    """Hub datasets as loaded: training sets, probe sets and the maths problems of recipes that some role uses."""
    from hrsa.backbones.maths import ProblemSource
    from hrsa.data import probe_dataset_args, training_dataset_args

    found: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(args: tuple[str, str | None, str], used_by: str) -> None:
        if is_hub_id(args[0], root):
            _add(found, args, {"id": args[0], "config": args[1], "split": args[2]}, used_by)

    data = config.get("training_data") or {}
    if not data.get("builtin"):
        for i, entry in enumerate(data.get("hf") or []):
            add(training_dataset_args(entry), f"training_data.hf[{i}]")
    for name, probe in study.probes.items():
        if (probe.get("hf") or {}).get("dataset"):
            add(probe_dataset_args(probe["hf"]), f"probe {name}")
    for bb in study.built_backbones():
        problems = study.recipe_options(bb).get("problems") or {}
        if problems.get("dataset") or problems.get("path"):
            for source in ProblemSource.parse(problems).sources():  # the source and its mix
                if source.dataset is not None:
                    add((source.dataset, source.config, source.split),
                        f"problems of {bb.model_id} ({bb.recipe} recipe)")
    for entry in (config.get("siblings") or {}).get("sets") or []:  # sibling health's problem sets
        if entry.get("dataset"):
            add((entry["dataset"], entry.get("config") or None, entry.get("split") or "test"),
                f"siblings.sets {entry['name']}")
    return list(found.values())


def _task_datasets(task: Any) -> list[dict[str, str | None]]:
    """{path, revision} of a task's hub dataset(s); an aggregate task's come from its sub-tasks."""
    subtasks = getattr(task, "tasks", None)
    if subtasks:
        return [d for sub in subtasks for d in _task_datasets(sub)]
    dataset = task.metadata.dataset or {}
    return [{"path": dataset.get("path"), "revision": dataset.get("revision")}] if dataset.get("path") else []


def _mteb_tasks(task_refs: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """Every evaluated mteb task (local tasks need nothing) with its benchmark and datasets, from mteb's metadata."""
    from hrsa.evaluation.names import LOCAL_TASK_NAMES, resolve_tasks

    out = []
    for bench, names in _by_benchmark(task_refs, skip=LOCAL_TASK_NAMES).items():
        for task in resolve_tasks(names, benchmark=bench):
            out.append({"task": task.metadata.name, "benchmark": bench, "datasets": _task_datasets(task)})
    order = list(task_refs)
    return sorted(out, key=lambda t: order.index(t["task"]))


def _by_benchmark(task_refs: Mapping[str, str | None], skip: Sequence[str] = ()) -> dict[str | None, list[str]]:
    """Task names grouped by the benchmark they come from (None: named directly)."""
    groups: dict[str | None, list[str]] = {}
    for task, bench in task_refs.items():
        if task not in skip:
            groups.setdefault(bench, []).append(task)
    return groups


def download_plan(config: Mapping[str, Any], root: str | os.PathLike[str] = ".") -> dict[str, list[dict[str, Any]]]:
    """{models, datasets, mteb_tasks}: every hub item a (schema-validated) config makes a job load, each with what
    uses it. Computed offline: ids from the config, mteb dataset paths and revisions from mteb's task metadata."""
    from hrsa.evaluation.names import config_task_refs
    from hrsa.grid import Study

    root = Path(root)
    study = Study(dict(config), root=root)
    refs = config_task_refs((config.get("evaluation") or {}).get("tasks") or [])
    return {"models": _models(config, study, root), "datasets": _datasets(config, study, root),
            "mteb_tasks": _mteb_tasks(refs)}


def plan_ids(plan: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """The ids of a plan by kind (mteb tasks by task name), for a short summary."""
    return {"models": [m["id"] for m in plan["models"]],
            "datasets": sorted({d["id"] for d in plan["datasets"]}),
            "mteb_tasks": [t["task"] for t in plan["mteb_tasks"]]}


# ------------------------------------------------------------------------------------------------------ the fetch
def fetch_model(repo_id: str) -> str:
    """Snapshot of a hub model in the hub cache (weights in the formats the loaders read); its local folder."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, ignore_patterns=SKIPPED_FILES)


def fetch_dataset(repo_id: str, config: str | None, split: str) -> int:
    """A hub dataset loaded once as the jobs load it (datasets then finds it in its cache offline); its rows."""
    import datasets

    return len(datasets.load_dataset(repo_id, config or None, split=split))


def fetch_tasks(task_refs: Mapping[str, str | None]) -> None:
    """Load every mteb task's data as the evaluation takes it (a benchmark's subsets), filling the datasets cache."""
    from hrsa.evaluation.names import LOCAL_TASK_NAMES, resolve_tasks

    for bench, names in _by_benchmark(task_refs, skip=LOCAL_TASK_NAMES).items():
        for task in resolve_tasks(names, benchmark=bench):
            task.load_data()


def fetch(plan: Mapping[str, list[dict[str, Any]]], log: Any = print) -> dict[str, list[str]]:
    """Fetch every item of a plan into the Hugging Face cache; {kind: ids fetched}. Needs the hub: run it where the
    network is (the workflow runs it as a local rule, on the login node)."""
    done: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for model in plan["models"]:
        log(f"model {model['id']}: {fetch_model(model['id'])}")
        done["models"].append(model["id"])
    for ds in plan["datasets"]:
        rows = fetch_dataset(ds["id"], ds["config"], ds["split"])
        log(f"dataset {ds['id']} (config {ds['config']}, split {ds['split']}): {rows} rows")
        done["datasets"].append(ds["id"])
    refs = {t["task"]: t["benchmark"] for t in plan["mteb_tasks"]}
    for task, bench in refs.items():
        fetch_tasks({task: bench})
        log(f"mteb task {task}: data loaded")
        done["mteb_tasks"].append(task)
    return done


# Config keys the plan reads: the download rule passes only these, so other config changes do not rerun it.
PLAN_KEYS = ("pairs", "recipes", "training_data", "probes", "siblings")


def plan_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The slice of a config that decides its download plan (evaluation only by its task list)."""
    out = {key: config[key] for key in PLAN_KEYS if key in config}
    out["evaluation"] = {"tasks": (config.get("evaluation") or {}).get("tasks") or []}
    return out
