"""Models known to have learned: every training run writes its summary (loss vs chance, held-out accuracy before and
after, `learned`); `training.require_learning` fails the job; the report flags an embedder that did not learn and
draws no verdict from it."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from hrsa.train.health import split_heldout, summarise
from test_report_demo import PAIR, SEEDS, build_demo, run_report


def test_summary_known_answers():
    log = [{"loss": v} for v in (5.0, 5.0, 4.0, 3.0, 3.0, 3.0, 2.0, 2.0)] + [{"train_runtime": 1.0}]
    s = summarise(log, batch_size=32, num_negatives=3, acc_before=0.1, acc_after=0.3, heldout=64, model_id="m")
    # 8 logged steps: k = 2; first = (5 + 5) / 2, last = (2 + 2) / 2; chance = ln(32 x 4) = ln 128
    assert s["loss_window"] == 2 and s["first_loss"] == 5.0 and s["last_loss"] == 2.0
    assert s["chance_loss"] == pytest.approx(math.log(128)) and s["learned"] is True
    # each clause of the rule on its own makes it fail
    assert not summarise(log, 32, 3, 0.3, 0.3, 64, "m")["learned"]  # accuracy did not rise
    assert not summarise([{"loss": 4.8}] * 4 + [{"loss": 4.0}] * 4, 32, 3, 0.1, 0.3, 64, "m")["learned"]  # > 0.8x
    assert not summarise([{"loss": 9.0}] * 4 + [{"loss": 5.0}] * 4, 32, 3, 0.1, 0.3, 64, "m")["learned"]  # > chance


def test_heldout_slice_is_fixed_and_left_out(repo):
    from hrsa.data import demo_training_records

    records = demo_training_records(repo / "data/corpus/milton", 96, num_negatives=2)
    train, held = split_heldout(records, 64)
    assert len(held) == 24 and len(train) == 72  # at most a quarter
    assert not {r["query"][1] for r in held} & {r["query"][1] for r in train}
    assert split_heldout(records, 64) == (train, held)  # the same slice every run (role and seed alike)
    assert split_heldout(records, 0) == (records, [])


def _train(tiny_backbone, tmp_path, repo, **training):
    from hrsa.cli import main

    data = tmp_path / "train.jsonl"
    spec = {"builtin": "demo", "n_records": 96, "num_negatives": 2}
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo), "--out", str(data)]) == 0
    cfg = {"max_length": 64, "batch_size": 8, "mini_batch_size": 8, "max_steps": 6, "heldout_rows": 16, **training}
    health = tmp_path / "tiny.base-E.s0.training.json"
    argv = ["train", "--backbone", str(tiny_backbone), "--data", str(data), "--seed", "0", "--config",
            json.dumps(cfg), "--num-negatives", "2", "--checkpoints", str(tmp_path / "ckpt"), "--model-id",
            "tiny.base-E.s0", "--device", "cpu", "--out", str(tmp_path / "emb"), "--health", str(health)]
    return main(argv), health


def test_every_run_writes_its_summary_and_require_learning_fails_the_job(tiny_backbone, tmp_path, repo, capsys):
    """A learning rate of ~0 cannot learn: the summary says so, and with require_learning the job exits 2 with one
    line naming the embedder and its numbers, writing no embedder."""
    rc, health = _train(tiny_backbone, tmp_path / "a", repo, learning_rate=1e-12)
    assert rc == 0 and (tmp_path / "a/emb/modules.json").is_file()
    s = json.loads(health.read_text())
    assert s["model"] == "tiny.base-E.s0" and s["steps"] == 6 and s["heldout_rows"] == 16
    assert s["chance_loss"] == pytest.approx(math.log(8 * 3))
    assert 0 <= s["accuracy_before"] <= 1 and s["accuracy_after"] == s["accuracy_before"]  # weights did not move
    assert s["learned"] is False
    capsys.readouterr()
    rc, health = _train(tiny_backbone, tmp_path / "b", repo, learning_rate=1e-12, require_learning=True)
    line = capsys.readouterr().err.strip().splitlines()[-1]  # above it: progress bars of the libraries
    assert rc == 2 and line.startswith("hrsa train: error: tiny.base-E.s0 did not learn") and "loss" in line
    assert "held-out top-1 accuracy" in line and "training.require_learning" in line
    assert not (tmp_path / "b/emb").exists() and json.loads(health.read_text())["learned"] is False


def _summaries(root, bad: set[str]) -> list:
    files = []
    for role in ("base", "reason", "sft"):
        for s in SEEDS:
            model = f"{PAIR}.{role}-E.s{s}"
            learned = model not in bad
            summary = {"model": model, "steps": 30, "loss_window": 5, "first_loss": 5.0,
                       "last_loss": 3.2 if learned else 6.1, "chance_loss": math.log(128), "heldout_rows": 64,
                       "accuracy_before": 0.05, "accuracy_after": 0.15 if learned else 0.05, "learned": learned}
            path = root / "results/embedders" / f"{model}.training.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary))
            files.append(path)
    return files


def test_report_flags_unlearned_embedders_and_draws_no_verdict_from_them(tmp_path):
    """sft-E did not learn (learning rate 0, say): Table 1 flags it with its numbers, the equivalence and realignment
    tables hold no sft-E row, and the answer says why; reason-E keeps its verdict."""
    demo = build_demo(tmp_path)
    bad = {f"{PAIR}.sft-E.s{s}" for s in SEEDS}
    run_report(tmp_path, demo, training_files=_summaries(tmp_path, bad))
    report = tmp_path / "results/report"
    eq = pd.read_csv(report / "tables/equivalence.tsv", sep="\t")
    assert set(eq.sibling) == {"reason-E"}
    real = pd.read_csv(report / "tables/realignment.tsv", sep="\t")
    assert set(real.sibling) == {"reason"}
    health = pd.read_csv(report / "tables/training_health.tsv", sep="\t")
    assert sorted(health.loc[~health.learned, "model"]) == sorted(bad)
    index = (report / "index.md").read_text()
    assert "NOT LEARNED (no verdict): s0: loss 5.00→6.10 (chance 4.85), top-1 0.05→0.05" in index
    assert "tiny sft-E: left out of every verdict (equivalence, realignment), did not learn" in index
    assert "Training health" in index


def test_report_keeps_every_verdict_when_all_learned(tmp_path):
    demo = build_demo(tmp_path)
    run_report(tmp_path, demo, training_files=_summaries(tmp_path, set()))
    eq = pd.read_csv(tmp_path / "results/report/tables/equivalence.tsv", sep="\t")
    assert set(eq.sibling) == {"reason-E", "sft-E"}
    assert "NOT LEARNED" not in (tmp_path / "results/report/index.md").read_text()


def test_rules_write_and_pass_the_training_summaries(tmp_path):
    """The train rule writes each embedder's summary beside it; the report rule declares and reads every one."""
    from smk import demo_config, dry_run, shell_commands, write_config

    proc = dry_run(tmp_path, write_config(tmp_path, demo_config()))
    cmds = shell_commands(proc.stdout)
    train = [c for c in cmds if c.startswith("hrsa train ")]
    assert len(train) == 6 and any("--health results/embedders/tiny.base-E.s0.training.json" in c for c in train)
    (report,) = [c for c in cmds if c.startswith("hrsa report ")]
    assert all(f"results/embedders/{PAIR}.{r}-E.s{s}.training.json" in report
               for r in ("base", "reason", "sft") for s in SEEDS)
