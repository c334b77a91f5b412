"""Scoring as the study ran it: its instruction tables, BRIGHT's standard domains, full-length settings, one mteb cache
revision per embedder, and Table 1's aggregation. Offline: mteb task metadata only, tiny local tasks, a tiny model."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import yaml

from hrsa.errors import ConfigError, DataError, HrsaError
from hrsa.runtime import limit_threads

limit_threads(1)

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "data" / "eval" / "study"
NAME, REV = "hrsa/tiny.base-E.s0", "w1"
QUERY = "Instruct: {}\nQuery: ".format


@pytest.fixture(scope="module")
def paper_eval() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["evaluation"]


@pytest.fixture(scope="module")
def paper_refs(paper_eval: dict[str, Any]) -> dict[str, str | None]:
    """{task: benchmark} of the paper grid, expanded offline as the workflow does."""
    from hrsa.evaluation.names import task_refs_for

    refs: dict[str, str | None] = {}
    for task, bench in task_refs_for(paper_eval["tasks"]):
        refs.setdefault(task, bench)
    return refs


@pytest.fixture(scope="module")
def tiny_embedder(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 backbone as an untrained embedder (mean pooling without the prompt), saved like training does."""
    from hrsa.train import Recipe, build_model

    out = tmp_path_factory.mktemp("tiny-embedder") / "st"
    build_model(str(tiny_backbone), Recipe.from_config({"max_length": 64})).save(str(out))
    return out


def _paper_table(paper_eval: dict[str, Any]) -> dict[str, str]:
    from hrsa.evaluation.prompts import read_instruction_tables

    return read_instruction_tables([REPO / t for t in paper_eval["instruction_tables"]])


# ------------------------------------------------------------------------------------------- 1. the study's table
def test_study_table_is_shipped_byte_identical_with_its_source() -> None:
    data = (STUDY / "task_prompts.json").read_bytes()
    assert len(data) == 24359  # the upstream file's size at commit 761051b
    assert hashlib.sha256(data).hexdigest() == "378cd53977925d0e241979abd9b2257b104f5bc5941288551ad1a1ddfc77229d"
    readme = (STUDY / "README.md").read_text()
    for fact in ("HKUST-KnowComp/Reasoning-Embedding", "761051bc8d9450a20bee0dddfb3c28c714c9d23a", "MIT",
                 "evaluation/task_prompts.json", "evaluate_bright.py"):
        assert fact in readme


def test_instruction_table_reading_takes_the_query_string_and_drops_default(tmp_path: Path) -> None:
    from hrsa.evaluation.prompts import read_instruction_table, read_instruction_tables

    table = read_instruction_table(STUDY / "task_prompts.json")
    assert "default" not in table and len(table) == 263
    assert table["ArguAna"] == "Given a claim, find documents that refute the claim"  # {"query", "passage"} entry
    assert table["NorwegianCourtsBitextMining"] == "Retrieve parallel sentences in Norwegian Bokmål and Nynorsk"
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"STS12": "first"}))
    second.write_text(json.dumps({"STS12": "second", "STS13": {"query": "q13", "passage": "p13"}}))
    assert read_instruction_tables([first, second]) == {"STS12": "first", "STS13": "q13"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"STS12": {"passage": "only"}}))
    with pytest.raises(HrsaError, match="bad.json: entry 'STS12'"):
        read_instruction_table(bad)
    with pytest.raises(HrsaError, match="cannot read .*missing.json"):
        read_instruction_table(tmp_path / "missing.json")


def test_paper_tasks_all_get_the_study_instruction_and_it_reaches_the_encoder(
    paper_eval: dict[str, Any], paper_refs: dict[str, str | None], tiny_embedder: Path
) -> None:
    """Every paper task's instruction comes from the study's tables (none falls back), and the wrapper mteb drives
    hands the study's wording to queries and nothing to documents."""
    from mteb.types import PromptType

    from hrsa.evaluation.encoder import load_encoder
    from hrsa.evaluation.names import resolve_tasks
    from hrsa.evaluation.prompts import prompts_for, resolve_instructions

    table = _paper_table(paper_eval)
    tasks = []
    for bench in dict.fromkeys(paper_refs.values()):
        names = [t for t, b in paper_refs.items() if b == bench]
        tasks += resolve_tasks(names, benchmark=bench)  # metadata only: nothing is downloaded
    sources = resolve_instructions(tasks, None, table)
    assert len(sources) == len(paper_refs) == 154
    assert {src for _, src in sources.values()} == {"table"}  # nothing falls back to mteb's wording

    by_name = {t.metadata.name: t for t in tasks}
    wrapper = load_encoder(tiny_embedder, NAME, REV, "cpu", prompts_for(sources))
    st_prompts = wrapper.model.prompts
    expected = {
        "ArguAna": "Given a claim, find documents that refute the claim",
        "CodeSearchNetRetrieval": "Given a code snippet, retrieve the comment corresponding to that code.",
        "MassiveIntentClassification": "Given a user utterance as query, find the user intents",
        "BrightAopsRetrieval": "Given a Math problem, retrieve relevant examples that help answer the problem.",
    }
    for name, instruction in expected.items():
        meta = by_name[name].metadata
        assert st_prompts[wrapper.get_prompt_name(meta, PromptType.query)] == QUERY(instruction), name
        if meta.type == "Retrieval":
            assert st_prompts[wrapper.get_prompt_name(meta, PromptType.document)] == "", name
    # symmetric tasks encode every text as a query and get the instruction too
    sts = by_name["STS17"].metadata
    assert st_prompts[wrapper.get_prompt_name(sts, None)] == QUERY("Retrieve semantically similar text")


# ------------------------------------------------------------------------------------------------------ 2. BRIGHT
def test_paper_bright_is_the_12_standard_domains_each_with_its_study_instruction(
    paper_eval: dict[str, Any], paper_refs: dict[str, str | None]
) -> None:
    from hrsa.evaluation.names import resolve_tasks, task_refs_for
    from hrsa.evaluation.prompts import resolve_instructions

    bright = [t for t, b in paper_refs.items() if b == "BRIGHT(v1.1)"]
    assert len(bright) == 12 and not any("Long" in t for t in bright)
    tasks = resolve_tasks(bright, benchmark="BRIGHT(v1.1)")
    assert {t.metadata.main_score for t in tasks} == {"ndcg_at_10"}
    assert {tuple(t.eval_splits) for t in tasks} == {("standard",)}
    sources = resolve_instructions(tasks, None, _paper_table(paper_eval))
    assert sources["BrightBiologyRetrieval"] == ("Given a post, retrieve relevant passages that help answer the post.",
                                                 "table")
    assert sources["BrightTheoremQATheoremsRetrieval"][0] == (
        "Given a Math problem, retrieve relevant theorems that help answer the problem.")
    assert sources["BrightPonyRetrieval"][0] == (
        "Given a question about pony program language, retrieve relevant passages that help answer the question.")
    assert len({i for i, _ in sources.values()}) == 10  # 12 domains, 10 distinct wordings, none of mteb's
    assert not any(i.startswith("Represent this") for i, _ in sources.values())
    # the long-document tasks come back when the exclude list goes; a stray exclude is named
    assert len(task_refs_for({"benchmark": "BRIGHT(v1.1)"})) == 20
    with pytest.raises(HrsaError, match="exclude names tasks it does not have: \\['BrightNoSuchRetrieval'\\]"):
        task_refs_for({"benchmark": "BRIGHT(v1.1)", "exclude": ["BrightNoSuchRetrieval"]})


# ------------------------------------------------------------------------------------- 3. length and batch budget
def test_max_seq_length_reaches_the_model_and_the_token_budget_sets_the_batch(tiny_embedder: Path) -> None:
    from hrsa.evaluation.encoder import load_encoder, token_batch_size

    assert load_encoder(tiny_embedder, NAME, REV, "cpu").model.max_seq_length == 64  # as saved by training
    assert load_encoder(tiny_embedder, NAME, REV, "cpu", max_seq_length=8192).model.max_seq_length == 8192
    assert token_batch_size(64, 32768, 8192) == 4
    assert token_batch_size(64, 32768, 512) == 64
    assert token_batch_size(64, 100, 8192) == 1
    assert token_batch_size(64, None, 8192) == 64


def test_paper_jobs_get_full_length_budget_and_tables(paper_eval: dict[str, Any], paper_refs: dict[str, Any]) -> None:
    from hrsa.evaluation.groups import job_config, task_groups

    groups = task_groups(paper_refs, paper_eval)
    bright = next(tasks for tasks in groups.values() if "BrightAopsRetrieval" in tasks)
    job = job_config(bright, paper_refs, paper_eval, REPO)
    assert job["instruction_tables"] == [str(REPO / "data/eval/study/task_prompts.json"),
                                         str(REPO / "data/eval/study/bright_instructions.json")]
    assert job["max_seq_length"] == {"default": 8192} and job["max_tokens_per_batch"] == 32768
    per = {**paper_eval, "max_seq_length": {"default": 8192, "MTEB(Code, v1)": 4096, "STS17": 256}}
    known = {**paper_refs, "STS17": "MTEB(Multilingual, v2)", "CosQA": "MTEB(Code, v1)"}
    assert job_config(["STS17"], known, per, REPO)["max_seq_length"] == {"default": 256}  # task beats benchmark
    assert job_config(["CosQA"], known, per, REPO)["max_seq_length"] == {"default": 4096}  # benchmark beats default
    assert job_config(["STS17"], {"STS17": None}, {}, REPO)["max_seq_length"] == {}  # demo: the saved length
    with pytest.raises(ConfigError, match="evaluation.max_seq_length: \\['STS99'\\]"):
        task_groups(paper_refs, {"max_seq_length": {"STS99": 8}})


def test_groups_are_named_from_the_config_and_each_job_gets_only_its_own_settings(
    paper_eval: dict[str, Any], paper_refs: dict[str, Any]
) -> None:
    """Group names are readable and stable (benchmark, length, index), unique after sanitising; a job's slice holds
    its own tasks' overrides and no DAG keys, so an override of another group's task reruns nothing here."""
    import re

    from hrsa.evaluation.groups import job_config, task_groups

    groups = task_groups(paper_refs, paper_eval)
    assert [t for tasks in groups.values() for t in tasks] == list(paper_refs)  # every task once, in config order
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) for name in groups)
    assert task_groups(paper_refs, paper_eval) == groups
    demo = {t: None for t in ("HrsaLee50", "STS12", "STS13")}
    assert task_groups(demo, {"tasks_per_job": 2}) == {"tasks-saved-0": ["HrsaLee50", "STS12"],
                                                       "tasks-saved-1": ["STS13"]}
    clash = {"a": "MTEB(x)", "b": "MTEB x", "c": None}
    assert task_groups(clash, {"max_seq_length": {"c": 64}}) == {"MTEB_x-saved-0": ["a"], "MTEB_x-saved-1": ["b"],
                                                                  "tasks-64-0": ["c"]}
    cfg = {"task_instructions": {"HrsaLee50": "x", "STS13": "y"}, "tasks_per_job": 2}
    job = job_config(["HrsaLee50", "STS12"], demo, cfg, ".")
    assert job["task_instructions"] == {"HrsaLee50": "x"}
    assert not set(job) & {"tasks", "tasks_per_job", "baseline"}


# ----------------------------------------------------------------------------- 4. one cache revision per embedder
def _files(cache: Path) -> dict[str, int]:
    folder = cache / "results" / NAME.replace("/", "__") / REV
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}


def test_mteb_load_results_sees_all_tasks_of_an_embedder_and_settings_guard_reuse(
    tiny_embedder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mteb

    from hrsa.evaluation.run import evaluate

    cache = tmp_path / "cache"
    tasks = ["HrsaWordSim353", "HrsaLee50"]  # different instructions: before, each landed in its own revision folder
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"HrsaLee50": "Given a news article, retrieve articles on the same story"}))
    first: dict[str, Any] = {}
    for task in tasks:  # one call per task, as the workflow's jobs do
        first |= evaluate(tiny_embedder, [task], NAME, REV, cache, device="cpu", instructions="task",
                          instruction_tables=[table], max_seq_length=48)
    assert "mteb's metadata instruction is used: ['HrsaWordSim353']\n" in capsys.readouterr().err
    assert first["HrsaLee50"]["instruction_source"] == "table"
    assert first["HrsaLee50"]["query_prompt"] == QUERY("Given a news article, retrieve articles on the same story")
    assert first["HrsaWordSim353"]["instruction_source"] == "mteb"
    assert first["HrsaLee50"]["settings"]["max_seq_length"] == 48
    assert first["HrsaLee50"]["split_scores"] == {"test": first["HrsaLee50"]["main_score"]}

    loaded = mteb.ResultCache(str(cache)).load_results(models=[NAME], tasks=tasks, include_remote=False)
    assert len(loaded.model_results) == 1
    model = loaded.model_results[0]
    assert (model.model_name, model.model_revision) == (NAME, REV)
    assert sorted(r.task_name for r in model.task_results) == sorted(tasks)

    # cached and same settings: nothing is loaded (the model path does not exist) and the numbers are the same
    before = _files(cache)
    kwargs: dict[str, Any] = {"device": "cpu", "instructions": "task", "instruction_tables": [table]}
    assert evaluate(tmp_path / "no-model", tasks, NAME, REV, cache, max_seq_length=48, **kwargs) == first
    # another length or another instruction is scored again, never read from the entry scored under other settings
    with pytest.raises(HrsaError, match="no sentence-transformers model"):
        evaluate(tmp_path / "no-model", tasks, NAME, REV, cache, max_seq_length=32, **kwargs)
    table.write_text(json.dumps({"HrsaLee50": "Find similar news"}))
    again = evaluate(tiny_embedder, tasks, NAME, REV, cache, max_seq_length=48, **kwargs)
    after = _files(cache)
    assert after["HrsaWordSim353.json"] == before["HrsaWordSim353.json"]  # same settings: kept
    assert after["HrsaLee50.json"] != before["HrsaLee50.json"]  # other instruction: scored again
    assert again["HrsaLee50"]["query_prompt"] == QUERY("Find similar news")
    record = json.loads((cache / "results" / "hrsa__tiny.base-E.s0" / REV / "hrsa-settings" / "HrsaLee50.json")
                        .read_text())
    assert record["prompts"]["HrsaLee50-query"] == QUERY("Find similar news") and record["max_seq_length"] == 48


def test_cli_passes_length_budget_and_tables(tiny_embedder: Path, tmp_path: Path) -> None:
    from hrsa.commands import evaluate as verb

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    verb.add_arguments(parser)
    out = tmp_path / "eval.json"
    args = parser.parse_args(["--model", str(tiny_embedder), "--task", "HrsaWordSim353", "--model-name", NAME,
                              "--revision", REV, "--cache", str(tmp_path / "c"), "--out", str(out), "--device", "cpu",
                              "--config", json.dumps({"instructions": "task",
                                                      "instruction_tables": [str(STUDY / "task_prompts.json")],
                                                      "max_seq_length": {"default": 40},
                                                      "max_tokens_per_batch": 400})])
    verb.run(args)
    doc = json.loads(out.read_text())
    assert doc["results"]["HrsaWordSim353"]["settings"]["max_seq_length"] == 40
    assert doc["provenance"]["params"]["max_tokens_per_batch"] == 400
    assert doc["provenance"]["params"]["instruction_tables"] == [str(STUDY / "task_prompts.json")]


# --------------------------------------------------------------------------------------------- 5. Table 1 means
def _summary(path: Path, model: str, entries: dict[str, tuple[str, list[str], dict[str, float]]]) -> Path:
    """A `hrsa evaluate` summary with {task: (type, eval_splits, split_scores)}."""
    results = {t: {"task_type": ty, "eval_splits": sp, "split_scores": sc, "main_score": sc.get("test", 0.0)}
               for t, (ty, sp, sc) in entries.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": results, "model": {"name": f"hrsa/{model}"}}))
    return path


def test_aggregation_reproduces_hand_computed_mean_task_and_mean_type(tmp_path: Path) -> None:
    from hrsa.aggregate import aggregate

    benchmarks = {"T1": "B1", "T2": "B1", "T3": "B1", "T4": "B1", "U1": "B2", "HrsaLee50": None}
    m = "p.base-E.s0"
    files = [
        _summary(tmp_path / m / "T1.json", m, {"T1": ("STS", ["test"], {"test": 0.5})}),
        _summary(tmp_path / m / "T2.json", m, {"T2": ("STS", ["test"], {"test": 0.123456})}),
        # first eval split, as the study: validation, not test
        _summary(tmp_path / m / "T3.json", m, {"T3": ("Retrieval", ["validation", "test"],
                                                      {"validation": 0.3, "test": 0.9})}),
        _summary(tmp_path / m / "U1.json", m, {"U1": ("Retrieval", ["test"], {"test": 0.8})}),
        _summary(tmp_path / "p.reason-E.s0" / "T1.json", "p.reason-E.s0", {"T1": ("STS", ["test"], {"test": 0.6})}),
    ]
    long_df, means = aggregate(files, benchmarks)
    scores = {(r.model, r.task): r.score for r in long_df.itertuples()}
    assert scores == {(m, "T1"): 50.0, (m, "T2"): 12.35, (m, "T3"): 30.0, (m, "U1"): 80.0,
                      ("p.reason-E.s0", "T1"): 60.0}
    assert list(long_df.columns[:4]) == ["benchmark", "pair", "role", "seed"]
    # every embedder of the pair is averaged over the tasks scored for all of them: B1's T1 only
    both = means[means.benchmark == "B1"].set_index("role")
    assert both.loc["base", "mean_task"] == 50.0 and both.loc["reason", "mean_task"] == 60.0
    assert set(both["missing"]) == {"T2,T3,T4"}  # missing tasks listed, never imputed
    _, means = aggregate(files[:4], benchmarks)  # base-E alone: its own scored tasks
    b1 = means[(means.benchmark == "B1") & (means.role == "base")].iloc[0]
    assert b1.mean_task == pytest.approx((50.0 + 12.35 + 30.0) / 3)  # 30.7833
    assert b1.mean_type == pytest.approx(((50.0 + 12.35) / 2 + 30.0) / 2)  # STS 31.175, Retrieval 30 -> 30.5875
    assert (b1.n_tasks, b1.n_expected, b1.n_types, b1.complete, b1.missing) == (3, 4, 2, False, "T4")
    b2 = means[(means.benchmark == "B2")].iloc[0]
    assert (b2.mean_task, b2.mean_type, b2.complete) == (80.0, 80.0, True)  # never mixed with B1
    assert set(means.benchmark) == {"B1", "B2"}  # the local task has no scores here: no row, no imputed mean

    old = tmp_path / "old" / "T1.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"results": {"T1": {"main_score": 0.5}}, "model": {"name": f"hrsa/{m}"}}))
    with pytest.raises(DataError, match="old/T1.json \\[T1\\]: no per-split scores"):
        aggregate([old], benchmarks)
