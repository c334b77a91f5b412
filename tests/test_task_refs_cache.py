"""The DAG-time task-name check keeps mteb's answer in a cache keyed by the entries and mteb's version, and the answer
the repository ships for config/paper.yaml is exactly mteb's (so a DAG build of the paper grid skips importing mteb)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hrsa.evaluation.names import (
    benchmark_members,
    cached_config_memberships,
    cached_config_task_refs,
    config_memberships,
    config_task_refs,
    task_refs_cache_name,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data/eval/task-refs"


def test_shipped_answer_for_the_paper_grid_equals_mteb() -> None:
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "src/hrsa/config.schema.yaml"))  # the schema's defaults, as the DAG sees them
    entries = config["evaluation"]["tasks"]
    shipped = SHIPPED / task_refs_cache_name(entries)
    assert shipped.is_file(), f"regenerate {shipped.name} (mteb version or paper.yaml's tasks changed)"
    fresh = config_memberships(entries)
    assert [tuple(x) for x in json.loads(shipped.read_text())] == fresh
    assert cached_config_memberships(entries, REPO / "no-such-dir", SHIPPED) == fresh
    scored = config_task_refs(entries)  # each task scored once: 154 tasks, 155 memberships (StackOverflowQA twice)
    assert len(scored) == 154 and len(fresh) == 155 and sum(b == "BRIGHT(v1.1)" for b in scored.values()) == 12
    assert scored["StackOverflowQA"] == "MTEB(Multilingual, v2)"


def test_benchmark_means_run_over_exactly_mtebs_task_lists(tmp_path: Path) -> None:
    """Synthetic scores for every task of the paper grid: MTEB(Code, v1) averages its 12 tasks (StackOverflowQA,
    scored once in the multilingual job, counts in both), each benchmark exactly mteb's list less `exclude:`."""
    import mteb

    from hrsa.aggregate import aggregate
    from test_evaluation_study import _summary

    entries = yaml.safe_load((REPO / "config/paper.yaml").read_text())["evaluation"]["tasks"]
    members = benchmark_members(config_memberships(entries))
    model = "p.base-E.s0"
    files = [_summary(tmp_path / model / f"{task}.json", model,
                      {task: ("Retrieval" if i % 2 else "STS", ["test"], {"test": (i % 7) / 10})})
             for i, task in enumerate(config_task_refs(entries))]  # one summary per task: scored once
    long_df, means = aggregate(files, json.loads(json.dumps(members)))  # as the report rule passes it (JSON)
    per_bench = means.set_index("benchmark")
    for entry in entries:
        bench = entry["benchmark"]
        expected = {t.metadata.name for t in mteb.get_benchmark(bench).tasks} - set(entry.get("exclude") or [])
        assert set(long_df[long_df.benchmark == bench].task) == expected
        assert per_bench.loc[bench, "n_tasks"] == per_bench.loc[bench, "n_expected"] == len(expected)
        assert per_bench.loc[bench, "complete"]
        scores = long_df[long_df.benchmark == bench].score
        assert per_bench.loc[bench, "mean_task"] == scores.mean()
    assert per_bench.loc["MTEB(Code, v1)", "n_tasks"] == 12
    shared = long_df[long_df.task == "StackOverflowQA"]
    assert sorted(shared.benchmark) == ["MTEB(Code, v1)", "MTEB(Multilingual, v2)"] and shared.score.nunique() == 1


def test_cache_is_keyed_by_the_entries_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    a, b = ["HrsaLee50", "STS12"], ["HrsaLee50", "STS13"]
    assert task_refs_cache_name(a) != task_refs_cache_name(b)
    assert cached_config_task_refs(a, tmp_path) == {"HrsaLee50": None, "STS12": None}
    cached = tmp_path / task_refs_cache_name(a)
    assert json.loads(cached.read_text()) == [["HrsaLee50", None], ["STS12", None]]
    # the cached answer is what is read next time (a planted answer shows it), never another entry list's
    cached.write_text(json.dumps([["HrsaLee50", None]]))
    assert cached_config_task_refs(a, tmp_path) == {"HrsaLee50": None}
    assert cached_config_task_refs(b, tmp_path) == {"HrsaLee50": None, "STS13": None}
    cached.write_text("{truncated")
    assert cached_config_task_refs(a, tmp_path) == {"HrsaLee50": None, "STS12": None}


def test_a_bad_name_is_never_cached(tmp_path: Path) -> None:
    import pytest

    from hrsa.errors import ConfigError

    with pytest.raises(ConfigError, match=r"evaluation.tasks\[1\]"):
        cached_config_task_refs(["HrsaLee50", "NoSuchTask"], tmp_path)
    assert not list(tmp_path.iterdir())
