"""The workflow's wiring is trustworthy: verbs read exactly their inputs, no config string reaches a shell unquoted,
--trust-remote-code reaches exactly the verbs that load the pair's models, and params hold no checkout path."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hrsa.cli import build_parser, main
from smk import REPO, dry_run, hrsa_argv, shell_commands

UNQUOTED = re.compile(r"\{(output|log|input|wildcards)(\.[A-Za-z_]+)?\}")


def demo_config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for key, value in changes.items():
        if key == "trust_remote_code":
            cfg["pairs"][0]["trust_remote_code"] = value
        else:
            cfg[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trusted_single_seed(tmp_path_factory) -> list[str]:
    """Shell commands of the demo DAG with seeds [0] and trust_remote_code: true on its pair."""
    tmp = tmp_path_factory.mktemp("trusted")
    proc = dry_run(tmp, demo_config(tmp, seeds=[0], trust_remote_code=True), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return shell_commands(proc.stdout)


# ---- item 5: the report reads exactly the files it is given ---------------------------------------------------
def _write_eval(root: Path, model: str, task: str, score: float) -> Path:
    path = root / "eval" / model / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": {"name": f"hrsa/{model}"},
                                "results": {task: {"main_score": score, "main_score_name": "ndcg"}}}))
    return path


def _write_hrsa(root: Path, comparison: str, value: float) -> Path:
    path = root / "hrsa" / "probe" / f"{comparison}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"comparison": comparison, "layer_x": "0", "layer_y": "0", "metric": "cka-linear-biased", "value": value}]
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_report_verb_ignores_stray_results_of_another_seed(tmp_path):
    """Seed 1's files lie in results/eval and results/hrsa (an earlier run), but the config now has seeds [0]."""
    for seed, (base, reason) in enumerate([(0.50, 0.55), (0.90, 0.99)]):
        _write_eval(tmp_path, f"t.base-E.s{seed}", "TaskA", base)
        _write_eval(tmp_path, f"t.reason-E.s{seed}", "TaskA", reason)
    wanted = _write_hrsa(tmp_path, "t.base-E~reason-E.s0", 0.80)
    _write_hrsa(tmp_path, "t.base-E~reason-E.s1", 0.20)
    code = main(["report", "--hrsa", str(wanted), "--eval-dir", str(tmp_path / "eval"),
                 "--models", "t.base-E.s0", "t.reason-E.s0", "--tasks", "TaskA",
                 "--config", json.dumps({"pairs": [{"name": "t"}], "seeds": [0]}), "--out", str(tmp_path / "report")])
    assert code == 0
    emb = pd.read_csv(tmp_path / "report/tables/embedding_scores.tsv", sep="\t")
    emb = emb[emb.task == "TaskA"].set_index("role")
    assert emb["seeds"].tolist() == [1, 1]
    assert emb.loc["base-E", "mean"] == pytest.approx(0.50)  # with seed 1 read as well: 0.70
    assert emb.loc["reason-E", "mean"] == pytest.approx(0.55)  # with seed 1: 0.77
    assert emb.loc["reason-E", "delta"] == pytest.approx(0.05)
    hr = pd.read_csv(tmp_path / "report/tables/hrsa_all.tsv", sep="\t")
    assert hr["value"].tolist() == [pytest.approx(0.80)]
    assert set(hr["seed"]) == {0}


def test_report_verb_names_a_missing_evaluation(tmp_path, capsys):
    _write_eval(tmp_path, "t.base-E.s0", "TaskA", 0.5)
    code = main(["report", "--eval-dir", str(tmp_path / "eval"), "--models", "t.base-E.s0", "--tasks", "TaskA",
                 "TaskB", "--out", str(tmp_path / "report")])
    assert code == 2
    assert "t.base-E.s0/TaskB.json is missing" in capsys.readouterr().err


def test_report_rule_passes_exactly_the_configured_seeds(trusted_single_seed):
    (report,) = [c for c in trusted_single_seed if c.startswith("hrsa report ")]
    args = build_parser(only="report").parse_args(hrsa_argv(report))
    assert args.models == ["tiny.base-E.s0", "tiny.reason-E.s0", "tiny.sft-E.s0"]
    assert args.tasks == ["HrsaWordSim353", "HrsaSimLex999", "HrsaLee50", "HrsaMiltonRetrieval",
                          "HrsaArithmeticReasoningRetrieval"]
    # 7 comparisons on 2 probes: the 6 of one seed and the drift checkpoint's base~reason@20 (no seed~seed floor)
    assert len(args.hrsa) == 2 * 7 and all(".s1" not in str(p) for p in args.hrsa)
    assert all(p.suffix == ".parquet" and p.parts[:2] == ("results", "hrsa") for p in args.hrsa)


# ---- item 8: no config string reaches a shell unquoted; task names are checked at DAG time ---------------------
def test_no_rule_has_an_unquoted_path_placeholder():
    files = [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    found = [f"{f.name}:{i}: {line.strip()}" for f in files
             for i, line in enumerate(f.read_text().splitlines(), 1) if UNQUOTED.search(line)]
    assert not found, "\n".join(found)


def test_injected_task_name_fails_the_dag_and_runs_nothing(tmp_path):
    cfg = demo_config(tmp_path, evaluation={"tasks": ["HrsaLee50", "x$(touch pwned)"]})
    proc = dry_run(tmp_path, cfg, check=False)
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "evaluation.tasks[1]" in ln]
    assert lines and "'x$(touch pwned)' is not a local task" in lines[0] and "fix the name" in lines[0]
    assert not list(tmp_path.rglob("pwned")) and not (REPO / "pwned").exists()


def test_local_task_names_match_the_registry_without_importing_mteb():
    from hrsa.evaluation.names import LOCAL_TASK_NAMES, config_task_refs
    from hrsa.evaluation.tasks import LOCAL_TASKS

    assert LOCAL_TASK_NAMES == tuple(LOCAL_TASKS)
    code = ("from hrsa.evaluation.names import config_task_refs as f; import sys; "
            "f(['HrsaLee50']); print('mteb' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.stdout.strip() == "False"  # a local-only config builds its DAG without the slow mteb import
    assert config_task_refs(["HrsaLee50", "STS12", "HrsaLee50"]) == {"HrsaLee50": None, "STS12": None}


def test_unknown_benchmark_entry_names_its_index():
    from hrsa.errors import ConfigError
    from hrsa.evaluation.names import config_task_refs

    with pytest.raises(ConfigError, match=r"^evaluation\.tasks\[1\]: unknown mteb benchmark 'NoSuchBench'"):
        config_task_refs(["HrsaLee50", {"benchmark": "NoSuchBench"}])


# ---- item 10: --trust-remote-code reaches every verb that loads the pair's models, and nothing else -------------
def test_trust_flag_reaches_exactly_the_verbs_that_load_the_pairs_models(trusted_single_seed):
    carried: dict[str, set[bool]] = {}
    for command in trusted_single_seed:
        argv = hrsa_argv(command)
        args = build_parser(only=argv[0]).parse_args(argv)  # every routed flag is one the verb accepts
        carried.setdefault(argv[0], set()).add(bool(getattr(args, "trust_remote_code", False)))
    assert {verb: flags for verb, flags in carried.items() if flags == {True}} == {
        verb: {True} for verb in ("rlvr", "sft", "train", "extract", "evaluate", "health")
    }
    # pretrain builds from scratch; the miner is not the pair's model (training_data.mine.trust_remote_code: false)
    assert carried["pretrain"] == carried["mine"] == carried["knn"] == carried["compare"] == {False}


@pytest.mark.parametrize("verb, argv", [
    ("mine", ["--data", "d.jsonl", "--out", "o.jsonl"]),
    ("evaluate", ["--model", "m", "--task", "t", "--model-name", "a/b", "--revision", "r", "--cache", "c",
                  "--out", "o.json"]),
])
def test_verbs_accept_the_trust_flag(verb, argv):
    args = build_parser(only=verb).parse_args([verb, *argv, "--trust-remote-code"])
    assert args.trust_remote_code is True


# ---- item 13: no absolute checkout path in params: a moved or cloned project reruns nothing ---------------------
def _copy_checkout(dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for name in ("workflow", "config", "data", "src", "profiles"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_two_checkouts_give_identical_shell_commands_without_their_paths(tmp_path):
    commands = []
    for where in (tmp_path / "a" / "hrsa", tmp_path / "elsewhere" / "clone"):
        root = _copy_checkout(where)
        proc = dry_run(root, root / "config/config.yaml", snakefile=root / "Snakefile", check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        cmds = shell_commands(proc.stdout)
        assert cmds and not [c for c in cmds if str(tmp_path) in c]
        commands.append(sorted(cmds))
    assert commands[0] == commands[1]
    assert any(" --corpus data/corpus/milton " in c for c in commands[0])
    assert any(" --root . " in c for c in commands[0])


def test_local_backbone_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    from hrsa.grid import Study

    (tmp_path / "models/base").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"  # an absolute path outside the working directory
    (elsewhere / "reason").mkdir(parents=True)
    for model in (tmp_path / "models/base", elsewhere / "reason"):  # model directories: config.json
        (model / "config.json").write_text('{"model_type": "qwen2"}')  # a verified bidirectional family
    config = {"pairs": [{"name": "p", "base": "./models/base", "reason": str(elsewhere / "reason"), "num_layers": 2}],
              "seeds": [0]}
    monkeypatch.chdir(tmp_path)
    study = Study(config, root=tmp_path)
    assert study.backbone_path(study.backbone("p", "base")) == "models/base"
    assert study.backbone_path(study.backbone("p", "reason")) == str(elsewhere / "reason")  # the user's own path


# ---- item 14: the README says how to recover after a killed run ------------------------------------------------
def test_readme_says_to_unlock_after_a_killed_run():
    text = (REPO / "README.md").read_text()
    section = text.split("## When a job dies", 1)[1].split("\n## ", 1)[0]
    assert "snakemake --unlock" in section and "cannot be locked" in section
