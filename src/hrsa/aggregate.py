"""Table 1 of the study from `hrsa evaluate` summaries: per-task scores and Mean(Task) / Mean(Type) per benchmark.

As evaluation/summary.py of the study's code (HKUST-KnowComp/Reasoning-Embedding on GitHub): a task's score is the
mean main score over the subsets of its first evaluation split, x100, rounded to 2 decimals; Mean(Task) averages the
scored tasks of one benchmark, Mean(Type) averages the per-type means of those tasks. A benchmark's tasks are exactly
mteb's list for it less `exclude:`; a task two benchmarks list (StackOverflowQA: MTEB(Multilingual, v2) and
MTEB(Code, v1)) is scored once and counted in both. Tasks with no score are listed, never imputed, and no average
mixes benchmarks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hrsa.errors import DataError
from hrsa.grid import parse_model_id

KEYS = ["benchmark", "pair", "role", "seed"]
LONG_COLUMNS = [*KEYS, "model", "task", "task_type", "split", "score"]
MEANS_COLUMNS = [*KEYS, "n_tasks", "n_expected", "mean_task", "n_types", "mean_type", "complete", "missing"]
# Benchmark label of tasks that come from no mteb benchmark (the local Hrsa* tasks, single mteb tasks).
NO_BENCHMARK = "tasks"
#: {task: its benchmark, None, or every benchmark that counts it}
TaskBenchmarks = Mapping[str, str | None | Sequence[str | None]]


def benchmarks_of(value: str | None | Sequence[str | None]) -> list[str]:
    """The benchmark labels one task counts toward (None: NO_BENCHMARK)."""
    values = [value] if value is None or isinstance(value, str) else list(value)
    return list(dict.fromkeys(v or NO_BENCHMARK for v in values)) or [NO_BENCHMARK]


class NonFiniteScore(DataError):
    """A task's score is NaN or infinite: never averaged, never turned into a note (the report fails on it)."""


def task_score(entry: Mapping[str, Any], where: str) -> tuple[str, float]:
    """(first eval split, its mean main score over subsets x100, rounded to 2 decimals) of one summary entry."""
    splits, split_scores = entry.get("eval_splits"), entry.get("split_scores")
    if not splits or not isinstance(split_scores, Mapping) or splits[0] not in split_scores:
        raise DataError(f"{where}: no per-split scores (eval_splits/split_scores); rerun `hrsa evaluate` to refresh it")
    score = float(split_scores[splits[0]])
    if not math.isfinite(score):  # a dropped NaN would move one seed's mean while Table 1 says "complete"
        raise NonFiniteScore(f"{where}: score {score} is not finite; rerun `hrsa evaluate` for this task and model")
    return splits[0], round(score * 100, 2)


def _model_id(doc: Mapping[str, Any], path: Path) -> str:
    """The model id of a summary: its mteb name without the 'hrsa/' namespace, else its folder's name."""
    name = (doc.get("model") or {}).get("name") or ""
    return name.split("/", 1)[1] if "/" in name else path.parent.name


def read_scores(eval_files: Iterable[Path], task_benchmarks: TaskBenchmarks) -> pd.DataFrame:
    """The long table: one row per (benchmark, pair, role, seed, task) found in the summaries (a task's one score
    repeated under every benchmark that counts it)."""
    rows = []
    for path in map(Path, eval_files):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read evaluation summary {path}: {exc}") from exc
        model = _model_id(doc, path)
        pair, role, seed = parse_model_id(model)
        for task, entry in (doc.get("results") or {}).items():
            if task not in task_benchmarks:
                raise DataError(f"{path}: task {task!r} is not among the tasks to aggregate; pass its benchmark")
            split, score = task_score(entry, f"{path} [{task}]")
            rows += [{"benchmark": bench, "pair": pair, "role": role, "seed": seed, "model": model, "task": task,
                      "task_type": entry.get("task_type") or "", "split": split, "score": score}
                     for bench in benchmarks_of(task_benchmarks[task])]
    long_df = pd.DataFrame(rows, columns=LONG_COLUMNS)
    dup = long_df.duplicated(["benchmark", "model", "task"], keep=False)
    if dup.any():
        first = long_df[dup].iloc[0]
        raise DataError(f"task {first.task} of {first.model} is scored in more than one summary file")
    return long_df.sort_values([*KEYS, "task"], na_position="first", ignore_index=True)


def benchmark_means(long_df: pd.DataFrame, task_benchmarks: TaskBenchmarks) -> pd.DataFrame:
    """Mean(Task) and Mean(Type) per (benchmark, pair, role, seed). Every model of a pair is averaged over the same
    tasks: those scored for all of them (a task one model lacks leaves every model's mean, listed as missing), so a
    Δ between two of them never mixes task sets."""
    expected: dict[str, list[str]] = {}
    for task, value in task_benchmarks.items():
        for bench in benchmarks_of(value):
            expected.setdefault(bench, []).append(task)
    trained = long_df.assign(trained=long_df["seed"].notna())  # embedders; raw-backbone baselines have no seed
    common = {key: set.intersection(*(set(g["task"]) for _, g in rows.groupby(["role", "seed"], dropna=False)))
              for key, rows in trained.groupby(["benchmark", "pair", "trained"], sort=True)}
    rows = []
    for key, group in long_df.groupby(KEYS, dropna=False, sort=True):
        bench = key[0]
        group = group[group["task"].isin(common[(bench, key[1], not pd.isna(key[3]))])]
        missing = [t for t in expected[bench] if t not in set(group["task"])]
        type_means = group.groupby("task_type")["score"].mean()
        rows.append({
            **dict(zip(KEYS, key, strict=True)),
            "n_tasks": len(group),
            "n_expected": len(expected[bench]),
            "mean_task": float(group["score"].mean()),
            "n_types": len(type_means),
            "mean_type": float(type_means.mean()),
            "complete": not missing,
            "missing": ",".join(missing),
        })
    return pd.DataFrame(rows, columns=MEANS_COLUMNS)


def aggregate(
    eval_files: Iterable[Path], task_benchmarks: TaskBenchmarks
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long_df, means_df) of Table 1 from `hrsa evaluate` summary files.

    task_benchmarks maps every task to aggregate to its benchmark, or the list of every benchmark that counts it
    (None: a task outside any benchmark, labelled "tasks"); it also defines the tasks each benchmark expects, so the
    ones without a score are listed in `missing`.
    long_df: benchmark, pair, role, seed, model, task, task_type, split, score (x100).
    means_df: benchmark, pair, role, seed, n_tasks, n_expected, mean_task, n_types, mean_type, complete, missing.
    """
    long_df = read_scores(eval_files, task_benchmarks)
    return long_df, benchmark_means(long_df, task_benchmarks)
