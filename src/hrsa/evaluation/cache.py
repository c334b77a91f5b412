"""Bookkeeping around mteb's ResultCache: what decides a task's score besides the weights is recorded beside each
cached result, and a result scored under other settings is never reused.

mteb keys its cache by model name + revision only (not by settings), so the settings record lives in a folder inside
the revision folder that mteb does not read: it reads only {model}/{revision}/*.json and
{model}/{revision}/experiments/*/*.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Folder inside an mteb cache revision folder that records the settings each task was scored under (invisible to mteb).
SETTINGS_DIR = "hrsa-settings"


def scoring_settings(task: str, prompts: Mapping[str, str], instructions: str,
                     max_seq_length: int | None) -> dict[str, Any]:
    """What, besides the weights (the cache revision), decides a task's score: its prompts and the truncation length.
    Recorded beside the mteb result; a result whose record differs is never reused."""
    keys = (task, f"{task}-query", f"{task}-document")
    return {
        "task": task,
        "instructions": instructions,
        "prompts": {k: prompts[k] for k in keys if k in prompts},
        "max_seq_length": max_seq_length,
    }


def result_path(cache: Any, task: str, model_name: str, revision: str) -> Path:
    """mteb's {cache}/results/{model}/{revision}/{task}.json."""
    return Path(cache.get_task_result_path(task_name=task, model_name=model_name, model_revision=revision))


def settings_path(cache: Any, task: str, model_name: str, revision: str) -> Path:
    """{cache}/results/{model}/{revision}/hrsa-settings/{task}.json: beside mteb's {task}.json, out of its globs."""
    return result_path(cache, task, model_name, revision).parent / SETTINGS_DIR / f"{task}.json"


def _read_settings(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare_cache(cache: Any, settings: Mapping[str, Mapping[str, Any]], model_name: str, revision: str) -> None:
    """Before a run: drop every cached task result not recorded under this run's settings (other instructions or
    length, or no record), then record the settings, so mteb's only-missing resume continues only same-settings work."""
    from hrsa.io import write_json
    from hrsa.runtime import progress

    for task, wanted in settings.items():
        record = settings_path(cache, task, model_name, revision)
        if _read_settings(record) == wanted:
            continue
        stale = result_path(cache, task, model_name, revision)
        if stale.exists():
            progress("evaluate", f"{task}: cached result of {model_name}@{revision} was scored under other "
                     "settings (instructions or max_seq_length); scoring it again")
            stale.unlink()
        write_json(record, dict(wanted))


def cached_results(cache: Any, tasks: Sequence[Any], model_name: str, revision: str,
                   settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{task: cached TaskResult} for the tasks complete for (name, revision) and scored under `settings`."""
    found = {}
    for task in tasks:
        name = task.metadata.name
        if _read_settings(settings_path(cache, name, model_name, revision)) != settings[name]:
            continue
        res = cache.load_task_result(name, model_name, revision)
        if res is not None and not res.get_missing_evaluations(task):
            found[name] = res
    return found
