"""The `evaluation.tasks` config entries as concrete (task, benchmark) references, every name checked at DAG time.

Local task names are known without importing mteb (slow to import), so a config of local tasks builds its DAG fast;
mteb is imported only when an entry is not a local task.
"""

from __future__ import annotations

from collections.abc import Sequence
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
