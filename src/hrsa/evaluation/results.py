"""Summaries of mteb results: one entry per task (main score, headline metrics, per-split scores, how it was scored)
and the summary documents `hrsa evaluate` writes (results plus the model identity and what produced them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hrsa.errors import HrsaError

# Metrics copied into the summary when a task reports them (the full record stays in the mteb cache).
SUMMARY_METRICS = (
    "cosine_spearman",
    "cosine_pearson",
    "spearman",
    "pearson",
    "ndcg_at_10",
    "map_at_10",
    "mrr_at_10",
    "recall_at_10",
    "recall_at_100",
    "precision_at_1",
    "accuracy",
    "f1",
    "ap",
    "v_measure",
    "map",
    "mrr",
)


def _split_entries(result: Any, task: Any, split: str) -> list[dict[str, Any]]:
    """Score dicts of one split restricted to the task's subsets (a cache may hold more subsets than asked for)."""
    subsets = set(task.hf_subsets)
    return [s for s in result.scores.get(split, []) if s.get("hf_subset") in subsets]


def summarize(result: Any, task: Any) -> dict[str, Any]:
    """{main_score, main_score_name, scores, split_scores, eval_splits, task_type}: main_score and scores are means over
    the task's subsets on 'test' (or all its eval splits); split_scores holds the mean main score of each eval split
    (Table 1 takes the first one, as the study did)."""
    splits = ["test"] if "test" in task.eval_splits else list(task.eval_splits)
    entries = [e for split in splits for e in _split_entries(result, task, split)]
    if not entries:
        raise HrsaError(f"mteb returned no scores for task {task.metadata.name} on splits {splits}")
    scores = {
        key: sum(float(e[key]) for e in entries) / len(entries)
        for key in SUMMARY_METRICS
        if all(isinstance(e.get(key), (int, float)) for e in entries)
    }
    split_scores = {}
    for split in task.eval_splits:
        per_subset = [float(e["main_score"]) for e in _split_entries(result, task, split)]
        if per_subset:
            split_scores[split] = sum(per_subset) / len(per_subset)
    return {
        "main_score": sum(float(e["main_score"]) for e in entries) / len(entries),
        "main_score_name": task.metadata.main_score,
        "splits": splits,
        "scores": scores,
        "eval_splits": list(task.eval_splits),
        "split_scores": split_scores,
        "task_type": task.metadata.type,
    }


def summary_document(results: Mapping[str, Any], model: Mapping[str, Any], params: Mapping[str, Any],
                     packages: Mapping[str, str]) -> dict[str, Any]:
    """A result file: {task: summary} of the tasks given, the model identity (dir, name, revision) and what produced
    the results (the run's params and the package versions)."""
    return {
        "results": dict(results),
        "model": dict(model),
        "tasks": list(results),
        "provenance": {"params": dict(params), "mteb_version": packages.get("mteb"), "packages": dict(packages)},
    }
