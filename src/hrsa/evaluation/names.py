"""The `evaluation.tasks` config entries as concrete (task, benchmark) references, every name checked at DAG time.

Local task names are known without importing mteb (slow to import), so a config of local tasks builds its DAG fast;
mteb is imported only when an entry is not a local task, and its answer can be kept in a cache file keyed by the
entries and the installed mteb version (the registry is part of the package), so later DAG builds skip the import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError, HrsaError

# The names of hrsa.evaluation.tasks.LOCAL_TASKS (kept equal by a test), readable without importing mteb.
LOCAL_TASK_NAMES = (
    "HrsaWordSim353",
    "HrsaSimLex999",
    "HrsaLee50",
    "HrsaMiltonRetrieval",
    "HrsaArithmeticReasoningRetrieval",
)


def task_refs_cache_name(entries: Sequence[Any]) -> str:
    """File name of the cached answer for these entries under the installed mteb version."""
    from importlib.metadata import version

    key = hashlib.sha256(json.dumps([list(entries), version("mteb")], sort_keys=True, default=str).encode())
    return f"task-refs-{key.hexdigest()[:24]}.json"


def cached_config_task_refs(entries: Sequence[Any], cache_dir: str | Path,
                            shipped_dir: str | Path | None = None) -> dict[str, str | None]:
    """config_task_refs, kept in cache_dir under a key of the entries and the installed mteb version (only answers
    that passed every check are kept; an unreadable file is recomputed). shipped_dir holds answers the repository
    ships for its own configs under the pinned mteb (a test keeps them equal to mteb's)."""
    name = task_refs_cache_name(entries)
    for folder in filter(None, (shipped_dir, cache_dir)):
        try:
            return {task: bench for task, bench in json.loads((Path(folder) / name).read_text())}
        except (OSError, ValueError, TypeError):
            pass
    refs = config_task_refs(entries)
    try:
        from hrsa.io import write_json

        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(cache_dir) / name, list(refs.items()))
    except OSError:  # a read-only working directory only loses the speed-up
        pass
    return refs


def config_task_refs(entries: Sequence[Any]) -> dict[str, str | None]:
    """{task: benchmark or None} for `evaluation.tasks`, in order; ConfigError naming evaluation.tasks[i] if unknown.

    A plain name is a local task, an mteb task or an mteb benchmark (expanded into its tasks, as a {benchmark: NAME}
    entry is); the benchmark is kept because it may restrict a task's subsets.
    """
    refs: dict[str, str | None] = {}
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and entry in LOCAL_TASK_NAMES:
            refs.setdefault(entry, None)
            continue
        from hrsa.evaluation.run import task_refs_for

        try:
            found = task_refs_for(entry)
        except HrsaError as exc:
            if not isinstance(entry, str):
                raise ConfigError(f"evaluation.tasks[{i}]: {exc}") from None
            raise ConfigError(
                f"evaluation.tasks[{i}]: {entry!r} is not a local task ({', '.join(LOCAL_TASK_NAMES)}), "
                "an mteb task or an mteb benchmark; fix the name"
            ) from None
        for task, bench in found:
            refs.setdefault(task, bench)
    return refs
