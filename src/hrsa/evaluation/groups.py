"""Evaluation jobs of the workflow: the evaluated tasks grouped into named jobs, and the `evaluation:` slice each job
receives. Light: no mteb import, so the DAG builds fast.

A group holds tasks that share a benchmark and a max_seq_length (one model load serves them; a failing task fails
alone, named), at most evaluation.tasks_per_job of them. Its name, `<benchmark or 'tasks'>-<max_seq_length or
'saved'>-<i>` with every run of characters outside [A-Za-z0-9_.-] made one '_' (e.g. `MTEB_eng_v2-saved-0`,
`BRIGHT_v1.1-8192-0`, `tasks-saved-0`), follows from the config alone, so it is the same in every DAG build and can
be targeted by name; i counts the groups of one name prefix in config order, so names never collide.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError
from hrsa.schema import with_defaults

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Keys of the `evaluation:` block that only shape the DAG (which tasks, how many per job, which models): never part of
# one job's slice, so changing them reruns no finished group.
DAG_KEYS = ("tasks", "tasks_per_job", "baseline")


def seq_length_for(task: str, benchmark: str | None, spec: Mapping[str, int | None] | None) -> int | None:
    """evaluation.max_seq_length for one task: its own entry, else its benchmark's, else "default"; None = the length
    saved with the embedder (its training max length)."""
    spec = spec or {}
    for key in (task, benchmark, "default"):
        if key is not None and key in spec:
            return spec[key]
    return None


def check_lengths(lengths: Mapping[str, Any], known: Mapping[str, str | None]) -> None:
    """ConfigError for a max_seq_length key that is no evaluated task, none of their benchmarks and not "default".
    `known` maps every evaluated task to its benchmark."""
    stray = sorted(set(lengths) - set(known) - {b for b in known.values() if b} - {"default"})
    if stray:
        raise ConfigError(f"evaluation.max_seq_length: {stray} are neither evaluated tasks, their benchmarks nor "
                          "'default'")


def _slug(text: str) -> str:
    """`text` reduced to [A-Za-z0-9_.-] (a run of other characters becomes one '_', none at either end)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def task_groups(known: Mapping[str, str | None], evaluation: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """{group name: [task, ...]} of the evaluated tasks `known` ({task: benchmark or None}, in config order) under the
    `evaluation:` block (filled from the schema): tasks sharing a benchmark and max_seq_length, at most tasks_per_job
    per group, named as the module docstring says."""
    spec = with_defaults("evaluation", evaluation)
    lengths = spec["max_seq_length"] or {}
    check_lengths(lengths, known)
    buckets: dict[tuple[str | None, int | None], list[str]] = {}
    for task, bench in known.items():
        buckets.setdefault((bench, seq_length_for(task, bench, lengths)), []).append(task)
    per_job = int(spec["tasks_per_job"])
    groups: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for (bench, length), tasks in buckets.items():
        prefix = f"{_slug(bench or 'tasks')}-{'saved' if length is None else length}"
        for start in range(0, len(tasks), per_job):
            index = counts.get(prefix, 0)
            counts[prefix] = index + 1
            groups[f"{prefix}-{index}"] = tasks[start : start + per_job]
    return groups


def job_config(tasks: Sequence[str], known: Mapping[str, str | None], evaluation: Mapping[str, Any] | None,
               root: str | os.PathLike[str]) -> dict[str, Any]:
    """The `evaluation:` slice one group's job gets (`hrsa evaluate --config`): the block filled from the schema, less
    the DAG keys, with the task_instructions of these tasks only, their shared max_seq_length as the "default" entry
    (none: the length saved with the embedder) and the instruction tables joined to `root` (the repository as jobs see
    it). A job's slice changes only when a setting of its own tasks changes."""
    spec = with_defaults("evaluation", evaluation)
    bench = known.get(tasks[0])
    length = seq_length_for(tasks[0], bench, spec["max_seq_length"])
    overrides = spec["task_instructions"] or {}
    job = {key: value for key, value in spec.items() if key not in DAG_KEYS}
    job.update(
        task_instructions={task: overrides[task] for task in tasks if task in overrides},
        instruction_tables=[str(Path(root, table)) for table in spec["instruction_tables"] or []],
        max_seq_length={} if length is None else {"default": length},
    )
    return job


def check_query_lengths(benchmarks: Mapping[str, str | None], spec: Mapping[str, Any], saved_length: int,
                        root: str | os.PathLike[str] = ".") -> None:
    """ConfigError where a task's max_seq_length (else the embedders' saved `saved_length`) leaves no token for the
    query after its instruction prompt (hrsa.grid.checks.check_query_room); instructions as far as known offline:
    task_instructions, then the instruction tables (relative to `root`); others count as empty."""
    from hrsa.grid.checks import check_query_room, read_instruction_table

    spec = with_defaults("evaluation", spec)
    instructions: dict[str, str] = {}
    if spec["instructions"] == "task":
        for i, table in enumerate(spec["instruction_tables"]):
            for task, text in read_instruction_table(Path(root) / table, f"evaluation.instruction_tables[{i}]").items():
                instructions.setdefault(task, text)
        instructions.update(spec["task_instructions"])
    lengths = {t: seq_length_for(t, b, spec["max_seq_length"]) or saved_length for t, b in benchmarks.items()}
    check_query_room(lengths, instructions)
