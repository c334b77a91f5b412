"""The Snakemake workflow itself: lint, format, config errors, the paper DAG offline, and the whole demo DAG."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from smk import BIN, REPO, demo_config, job_counts, snakemake, write_config


def test_lint(tmp_path):
    proc = snakemake("--lint", "--configfile", str(REPO / "config/config.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_snakefmt_check():
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_paper_dag_offline(tmp_path):
    out = snakemake("-n", "--configfile", str(REPO / "config/paper.yaml"), cwd=tmp_path, timeout=600).stdout
    counts = job_counts(out)
    # (3 + 3 + 2 roles) x 3 seeds: qwen3's sft sibling is built by recipe; the third pair (Qwen3-0.6B-Base against
    # Qwen3-0.6B) has no sft role
    assert counts["train_embedder"] == 24
    assert counts["build_backbone"] == 2  # the qwen3 RLVR and SFT siblings built by recipe
    assert counts["prepare_training_data"] == counts["mine_hard_negatives"] == 1
    # backbones 3 + 3 + 2, the drift checkpoints reason@100/200/300, 24 embedders; on 2 probes
    assert counts["extract_activations"] == 2 * (8 + 3 + 24)
    assert counts["knn_graph"] == 2 * (8 + 3 + 24)  # one job per (model, probe): every layer of it
    assert counts["sibling_health"] == 8  # every role of every pair
    groups = re.findall(r"wildcards: model=\S+, group=(\S+)", out)
    assert {g: groups.count(g) for g in groups} == {g: 24 for g in PAPER_GROUPS}  # every task group once per embedder
    # 154 tasks in groups of at most evaluation.tasks_per_job (48), split by benchmark: Multilingual 131 in 3, Code 1,
    # BRIGHT 1
    assert counts["evaluate"] == 24 * 5


PAPER_GROUPS = ["MTEB_Multilingual_v2-8192-0", "MTEB_Multilingual_v2-8192-1", "MTEB_Multilingual_v2-8192-2",
                "MTEB_Code_v1-8192-0", "BRIGHT_v1.1-8192-0"]


def test_one_evaluation_group_is_targeted_and_forced_by_name(tmp_path):
    """The evaluate rule's jobs are named by model and group: one group's summary is a target, `-R evaluate` forces
    every evaluation and nothing else."""
    config = str(REPO / "config/config.yaml")
    target = "results/eval/tiny.base-E.s0/groups/tasks-saved-0.json"
    out = snakemake("-n", target, "--configfile", config, cwd=tmp_path).stdout
    assert job_counts(out)["evaluate"] == 1 and "group=tasks-saved-0" in out
    assert "--task HrsaWordSim353" in snakemake("-n", "-p", target, "--configfile", config, cwd=tmp_path).stdout
    forced = job_counts(snakemake("-n", "-R", "evaluate", "--configfile", config, cwd=tmp_path).stdout)
    assert forced["evaluate"] == 6


def test_config_error_names_key(tmp_path, repo):
    cfg = demo_config()
    cfg["layers"] = [0, 9]
    proc = snakemake("-n", "--configfile", str(write_config(tmp_path, cfg, "bad.yaml")), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "layers: 9 is out of range for pair 'tiny'" in proc.stdout + proc.stderr


def test_instruction_override_of_a_task_not_evaluated_is_refused(tmp_path, repo):
    cfg = demo_config()
    cfg["evaluation"]["task_instructions"] = {"HrsaWordSim": "Compare words"}
    proc = snakemake("-n", "--configfile", str(write_config(tmp_path, cfg, "bad.yaml")), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "task_instructions names tasks that are not evaluated: ['HrsaWordSim']" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_dag_end_to_end(tmp_path):
    """Runs the embedded default; then a re-run has nothing to do and adding a seed schedules only its jobs."""
    work = tmp_path / "demo"
    work.mkdir()
    cfg = str(REPO / "config/config.yaml")
    snakemake("--cores", "2", "--configfile", cfg, cwd=work, timeout=1500)
    index = (work / "results/report/index.md").read_text()
    assert "Table 1" in index and "tiny" in index
    figures = list((work / "results/report/figures").glob("*.png"))
    assert figures

    import pandas as pd

    scores = pd.read_csv(work / "results/report/tables/embedding_scores.tsv", sep="\t")
    assert set(scores.role) == {"base-E", "reason-E", "sft-E"}
    assert scores["mean"].between(-1, 1).all() and scores["mean"].std() > 0
    hr = pd.read_parquet(work / "results/hrsa/works/tiny.base-E~reason-E.s0.parquet")
    cka = hr[(hr.metric == "cka-linear-biased") & (hr.layer_x == hr.layer_y)]
    assert len(cka) == 6 and cka.value.between(0, 1 + 1e-6).all()

    again = snakemake("-n", "--cores", "2", "--configfile", cfg, cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr

    # scheduling keys never rerun a finished job: every stage's threads, memory and time, GPU requests and device
    rescheduled = yaml.safe_load(Path(cfg).read_text())
    stages = ("backbone", "mine", "train", "extract", "knn", "compare", "evaluate", "baseline")
    rescheduled["resources"] = {"device": "cpu", **{s: {"threads": 2, "mem_mb": 999, "runtime": 7} for s in stages}}
    rescheduled["resources"]["compare"]["gpu"] = rescheduled["resources"]["knn"]["gpu"] = True
    moved = tmp_path / "rescheduled.yaml"
    moved.write_text(yaml.safe_dump(rescheduled))
    same = snakemake("-n", "--cores", "2", "--configfile", str(moved), cwd=work)
    assert "Nothing to be done" in same.stdout + same.stderr, same.stdout[-3000:]

    three_seeds = tmp_path / "three-seeds.yaml"
    three_seeds.write_text(Path(cfg).read_text().replace("seeds: [0, 1]", "seeds: [0, 1, 2]"))
    more = snakemake("-n", "--cores", "2", "--configfile", str(three_seeds), cwd=work)
    counts = job_counts(more.stdout)
    assert counts["train_embedder"] == 3  # one new seed per role, nothing else retrained
    assert not {"build_backbone", "prepare_training_data", "mine_hard_negatives"} & set(counts)
    shutil.rmtree(work / "results/activations")  # keep the tmp dir small


def test_multi_device_training_launches_one_process_per_device(tmp_path):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["training"]["devices"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("results/embedders/tiny.base-E.s0", "-n", "-p", "--configfile", str(tmp_path / "c.yaml"),
                    cwd=tmp_path).stdout
    train = out.split("rule train_embedder:", 1)[1]
    assert "gpu=2" in train.split("Shell command", 1)[0]
    assert "torchrun --standalone --nproc-per-node 2 --no-python hrsa train " in train


def test_every_rule_has_a_log_a_job_record_and_resources():
    """Each rule of workflow/rules/ declares log:, benchmark: and resources: (the house style, and the job records
    the report and bench/rehearsal.py read)."""
    rule = re.compile(r"^rule (\w+):\n((?:(?:    .*)?\n)*)", flags=re.M)
    seen = {}
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for name, body in rule.findall(smk.read_text()):
            seen[name] = {key for key in ("log", "benchmark", "resources") if f"\n    {key}:" in f"\n{body}"}
    assert len(seen) >= 14, seen
    lacking = {name: {"log", "benchmark", "resources"} - keys for name, keys in seen.items() if len(keys) < 3}
    assert not lacking, lacking
