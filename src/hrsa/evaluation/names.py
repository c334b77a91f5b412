"""Task names: the `evaluation.tasks` config entries as concrete (task, benchmark) references, benchmark expansion,
mteb task objects, and a cache of the expansion, every name checked at DAG time.

Local task names are known without importing mteb (slow to import), so a config of local tasks builds its DAG fast;
mteb is imported only when an entry is not a local task, and its answer can be kept in a cache file keyed by the
entries and the installed mteb version (the registry is part of the package), so later DAG builds skip the import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
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


# ------------------------------------------------------------------------------------------ config entries -> tasks
def _as_entries(spec: Any) -> list[Any]:
    """A config value (a name, a {benchmark|task|tasks: ...} mapping, or a list of those) as a flat list."""
    if isinstance(spec, (str, Mapping)):
        return [spec]
    if isinstance(spec, Iterable):
        return [e for item in spec for e in _as_entries(item)]
    raise HrsaError(f"evaluation task entry must be a name, a mapping or a list, got {spec!r}")


def _benchmark_tasks(name: str) -> list[Any]:
    """Task objects of an mteb benchmark (metadata only; offline-safe); HrsaError if the benchmark is unknown."""
    import mteb

    try:
        return list(mteb.get_benchmark(name).tasks)
    except KeyError as exc:
        raise HrsaError(f"unknown mteb benchmark {name!r}: {exc}") from exc


def _is_mteb_task(name: str) -> bool:
    import mteb

    try:
        mteb.get_tasks(tasks=[name])
    except KeyError:
        return False
    return True


def task_refs_for(spec: Any) -> list[tuple[str, str | None]]:
    """(task name, benchmark or None) per concrete task of a config entry, in order, without duplicates.

    The benchmark is kept because a benchmark may restrict a task (e.g. MTEB(eng, v2) evaluates only the English
    subsets of STS17): pass it back to `resolve_tasks(..., benchmark=...)` / `hrsa evaluate --benchmark`.
    """
    refs: list[tuple[str, str | None]] = []
    for entry in _as_entries(spec):
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"benchmark", "task", "tasks", "exclude"}
            if unknown or len(set(entry) - {"exclude"}) != 1 or ("exclude" in entry and "benchmark" not in entry):
                raise HrsaError(f"evaluation task entry {dict(entry)!r}: use one of benchmark (optionally with "
                                "exclude), task or tasks")
            if "benchmark" in entry:
                refs += _benchmark_refs(str(entry["benchmark"]), entry.get("exclude") or [])
            else:
                refs += task_refs_for(entry.get("task", entry.get("tasks")))
        elif entry in LOCAL_TASK_NAMES or _is_mteb_task(entry):
            refs.append((entry, None))
        else:  # a plain benchmark name
            refs += [(t.metadata.name, entry) for t in _benchmark_tasks(entry)]
    return list(dict.fromkeys(refs))


def _benchmark_refs(bench: str, exclude: Sequence[str]) -> list[tuple[str, str | None]]:
    """(task, bench) for the tasks of a benchmark less `exclude` (e.g. BRIGHT's long-document tasks); excluding a
    task the benchmark does not have is an error, so a typo cannot silently keep a task."""
    names = [t.metadata.name for t in _benchmark_tasks(bench)]
    if isinstance(exclude, str) or not all(isinstance(x, str) for x in exclude):
        raise HrsaError(f"evaluation task entry for {bench!r}: exclude must be a list of task names, got {exclude!r}")
    stray = sorted(set(exclude) - set(names))
    if stray:
        raise HrsaError(f"evaluation task entry for {bench!r}: exclude names tasks it does not have: {stray}")
    return [(name, bench) for name in names if name not in set(exclude)]


def task_names_for(spec: Any) -> list[str]:
    """Concrete task names of config entries such as {"benchmark": "MTEB(eng, v2)"} or plain names; no network."""
    return list(dict.fromkeys(name for name, _ in task_refs_for(spec)))


def resolve_tasks(
    names: Sequence[str], *, benchmark: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> list[Any]:
    """mteb task objects for local task names, mteb task names or benchmark names; HrsaError names all unknowns.

    With `benchmark`, an mteb task is taken as that benchmark defines it (its language subsets and splits).
    """
    import mteb

    from hrsa.evaluation.tasks import LOCAL_TASKS

    bench_tasks = {t.metadata.name: t for t in _benchmark_tasks(benchmark)} if benchmark else {}
    tasks: list[Any] = []
    unknown: list[str] = []
    for name in names:
        if name in LOCAL_TASKS:
            tasks.append(LOCAL_TASKS[name](data_dir=data_dir))
        elif name in bench_tasks:
            tasks.append(bench_tasks[name])
        elif _is_mteb_task(name):
            tasks.extend(mteb.get_tasks(tasks=[name]))
        else:
            try:
                tasks.extend(mteb.get_benchmark(name).tasks)
            except KeyError:
                unknown.append(name)
    if unknown:
        raise HrsaError(
            f"unknown evaluation task(s) {', '.join(map(repr, unknown))}: not a local task "
            f"({', '.join(LOCAL_TASKS)}), an mteb task or an mteb benchmark"
        )
    return list({t.metadata.name: t for t in tasks}.values())


# ---------------------------------------------------------------------------------- the config's tasks, cached
#: format of the cached answer: every (task, benchmark) membership, a task shared by two benchmarks listed under both
CACHE_FORMAT = "memberships-1"


def task_refs_cache_name(entries: Sequence[Any]) -> str:
    """File name of the cached answer for these entries under the installed mteb version."""
    from importlib.metadata import version

    key = hashlib.sha256(json.dumps([list(entries), version("mteb"), CACHE_FORMAT], sort_keys=True,
                                    default=str).encode())
    return f"task-refs-{key.hexdigest()[:24]}.json"


def cached_config_task_refs(entries: Sequence[Any], cache_dir: str | Path,
                            shipped_dir: str | Path | None = None) -> dict[str, str | None]:
    """config_task_refs from the cached memberships (cached_config_memberships)."""
    return first_benchmarks(cached_config_memberships(entries, cache_dir, shipped_dir))


def cached_config_memberships(entries: Sequence[Any], cache_dir: str | Path,
                              shipped_dir: str | Path | None = None) -> list[tuple[str, str | None]]:
    """config_memberships, kept in cache_dir under a key of the entries and the installed mteb version (only answers
    that passed every check are kept; an unreadable file is recomputed). shipped_dir holds answers the repository
    ships for its own configs under the pinned mteb (a test keeps them equal to mteb's)."""
    name = task_refs_cache_name(entries)
    for folder in [f for f in (shipped_dir, cache_dir) if f]:
        try:
            return [(str(task), bench) for task, bench in json.loads((Path(folder) / name).read_text())]
        except (OSError, ValueError, TypeError):
            pass
    refs = config_memberships(entries)
    try:
        from hrsa.io import write_json

        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(cache_dir) / name, [list(r) for r in refs])
    except OSError:  # a read-only working directory only loses the speed-up
        pass
    return refs


def first_benchmarks(memberships: Sequence[tuple[str, str | None]]) -> dict[str, str | None]:
    """{task: the first benchmark that lists it, or None}: where a task is scored (once, in that benchmark's job)."""
    refs: dict[str, str | None] = {}
    for task, bench in memberships:
        refs.setdefault(task, bench)
    return refs


def benchmark_members(memberships: Sequence[tuple[str, str | None]]) -> dict[str, list[str | None]]:
    """{task: every benchmark that counts it} (a task outside any benchmark: [None]), for Mean(Task)/Mean(Type)."""
    out: dict[str, list[str | None]] = {}
    for task, bench in memberships:
        if bench not in out.setdefault(task, []):
            out[task].append(bench)
    return out


def config_task_refs(entries: Sequence[Any]) -> dict[str, str | None]:
    """{task: benchmark or None} for `evaluation.tasks`, in order; ConfigError naming evaluation.tasks[i] if unknown.

    A plain name is a local task, an mteb task or an mteb benchmark (expanded into its tasks, as a {benchmark: NAME}
    entry is); the benchmark is kept because it may restrict a task's subsets. A task of two benchmarks is scored
    once, under the first (config_memberships lists both).
    """
    return first_benchmarks(config_memberships(entries))


def config_memberships(entries: Sequence[Any]) -> list[tuple[str, str | None]]:
    """Every (task, benchmark or None) of `evaluation.tasks`, in order, each pair once: a task a second benchmark
    also lists (StackOverflowQA: MTEB(Multilingual, v2) and MTEB(Code, v1)) appears under both, so each benchmark's
    means run over exactly mteb.get_benchmark(name).tasks less `exclude:`. ConfigError naming evaluation.tasks[i]
    if unknown."""
    refs: list[tuple[str, str | None]] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and entry in LOCAL_TASK_NAMES:
            refs.append((entry, None))
            continue
        try:
            found = task_refs_for(entry)
        except HrsaError as exc:
            if not isinstance(entry, str):
                raise ConfigError(f"evaluation.tasks[{i}]: {exc}") from None
            raise ConfigError(
                f"evaluation.tasks[{i}]: {entry!r} is not a local task ({', '.join(LOCAL_TASK_NAMES)}), "
                "an mteb task or an mteb benchmark; fix the name"
            ) from None
        refs += found
    return list(dict.fromkeys(refs))
