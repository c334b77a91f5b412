"""Results that must not be lost or misread (issue 20, section 3, and the read errors of section 2): job records
never cause a recomputation, a non-finite task score is an error, one seed gives no verdict, a killed report's
temporary folder is removed, multi-device training takes its checkpoint lock once, and every JSON, JSONL and Parquet
read fails with one line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from smk import demo_config, dry_run, job_blocks, job_counts, write_config  # noqa: E402


def fake_finished_run(cwd: Path, configfile: Path) -> list[str]:
    """Every output the dry run of `configfile` plans, created empty in `cwd` with one modification time (as if the
    whole DAG had run); returns them. Benchmark TSVs (job records) are outputs too."""
    outputs = [f for blocks in job_blocks(dry_run(cwd, configfile).stdout).values() for block in blocks
               for line in map(str.strip, block.splitlines()) if line.startswith(("output: ", "benchmark: "))
               for f in line.split(": ", 1)[1].split(", ")]
    for f in outputs:
        (cwd / f).parent.mkdir(parents=True, exist_ok=True)
        (cwd / f).touch()
    for f in outputs:
        os.utime(cwd / f, (1e9, 1e9))
    return outputs


def test_a_copy_of_results_alone_plans_only_a_new_seeds_jobs(tmp_path):
    """Job records live with the outputs (results/benchmarks/): a copy of results/ alone (modification times kept, as
    `cp -a` or `rsync -a` copy) has nothing to do, and adding a seed there plans that seed's 36 jobs, not 112: no
    backbone, mining or extraction of a finished model, no training of a finished seed."""
    cfg = demo_config()
    run = tmp_path / "run"
    run.mkdir()
    outputs = fake_finished_run(run, write_config(run, cfg))
    records = [f for f in outputs if "/benchmarks/" in f]
    assert records and all(f.startswith("results/benchmarks/") for f in records)  # copied with results/
    copy = tmp_path / "copy"
    shutil.copytree(run / "results", copy / "results")  # copy2: modification times kept
    assert {str(p.relative_to(copy)) for p in (copy / "results/benchmarks").rglob("*.tsv")} == set(records)
    again = dry_run(copy, write_config(copy, cfg))
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    cfg["seeds"] = [*cfg["seeds"], max(cfg["seeds"]) + 1]
    out = dry_run(copy, write_config(copy, cfg, "three.yaml")).stdout
    counts = job_counts(out)
    assert not {"build_backbone", "mine_hard_negatives", "prepare_training_data", "prepare_probe"} & set(counts)
    assert counts["train_embedder"] == 3 and counts["extract_activations"] == counts["knn_graph"] == 6
    assert sum(counts.values()) == 36
    new_seed = f"s{cfg['seeds'][-1]}"
    assert all(new_seed in b for b in job_blocks(out)["train_embedder"] + job_blocks(out)["extract_activations"])
    shutil.rmtree(copy / "results/benchmarks")  # job records are no input: losing them reruns nothing either
    assert "Nothing to be done" in (p := dry_run(copy, copy / "config.yaml")).stdout + p.stderr


def test_one_seed_gives_no_verdict_and_claims_no_seed_count():
    """With `seeds: [0]` the spread is unknown: the verdict says so instead of 'no seed count up to 1000 would show
    equivalence'."""
    from hrsa.report import equivalence, verdict_lines
    from hrsa.schema import with_defaults
    from test_report_stats import scores

    eq = equivalence(scores(0.0, 1, 0.1), with_defaults("report"))
    assert set(eq.n_seeds) == {1} and set(eq.verdict) == {"inconclusive"} and eq.seeds_needed.isna().all()
    (line,) = verdict_lines(eq, "mean_task")
    assert line.endswith("(1 seeds x 8 tasks; TOST p = nan, difference p = nan, Holm): one seed: no spread, no "
                         "verdict [Mean(Type): inconclusive]"), line
    assert "seed count" not in line and "seeds would show" not in line


def test_a_killed_reports_temporary_folders_are_removed_by_the_next_run(tmp_path):
    from hrsa.report import build_report

    out = tmp_path / "report"
    stale = [out / ".figures.tmp-k1ll3d" / "figures", out / ".tables.tmp-x" / "tables"]
    for d in stale:
        d.mkdir(parents=True)
        (d / "half.png").write_bytes(b"\x89PNG")
    (out / ".index.md.tmp-y").mkdir()
    keep = out / "notes.txt"  # anything else in the folder is not the report's to remove
    keep.write_text("mine")
    build_report([], [], {}, out)
    assert sorted(p.name for p in out.iterdir()) == ["answer.rst", "figures", "index.html", "index.md", "notes.txt",
                                                     "tables"]
    assert keep.read_text() == "mine"


def test_only_rank_0_of_a_torchrun_group_takes_the_checkpoint_lock(tmp_path, monkeypatch):
    """A sibling rank (RANK 1) proceeds while its rank 0 holds the lock, instead of waiting for it for ever."""
    import io

    from hrsa.locks import exclusive_dir_lock, lock_path, run_lock

    ckpt = tmp_path / "ck"
    with exclusive_dir_lock(ckpt):  # rank 0's lock, taken in this process
        monkeypatch.setenv("RANK", "1")
        log = io.StringIO()
        with run_lock(ckpt, log=log) as held:
            assert held is None and log.getvalue() == ""
        monkeypatch.setenv("RANK", "0")
        from hrsa.errors import HrsaError

        with pytest.raises(HrsaError, match="being written by another job"), exclusive_dir_lock(ckpt, wait=False):
            pass
    with run_lock(ckpt) as held:
        assert held == lock_path(ckpt)


def test_two_device_training_on_cpu_runs_to_the_end(tmp_path, tiny_backbone, repo):
    """`training.devices: 2` as the train rule runs it (torchrun, two processes, gloo on CPU) ends with the embedder
    saved once, instead of one rank waiting for its sibling's lock for ever."""
    import json
    import subprocess

    from hrsa.data import demo_training_records, write_jsonl
    from smk import BIN, environment

    data = tmp_path / "train.jsonl"
    write_jsonl(data, demo_training_records(repo / "data/corpus/milton", 64, num_negatives=2))
    recipe = {"max_length": 64, "batch_size": 8, "mini_batch_size": 4, "max_steps": 4, "save_steps": 2,
              "learning_rate": 1e-3, "devices": 2}
    cmd = ["timeout", "-k", "10", "240", str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2",
           "--no-python", "hrsa", "train", "--backbone", str(tiny_backbone), "--data", str(data), "--seed", "0",
           "--config", json.dumps(recipe), "--num-negatives", "2", "--checkpoints", str(tmp_path / "ck"),
           "--model-id", "t.base-E.s0", "--device", "cpu", "--out", str(tmp_path / "emb")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=environment(OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "waiting for" not in proc.stdout + proc.stderr
    assert (tmp_path / "emb/revision.txt").read_text().strip() and "4 steps" in proc.stdout


def test_truncated_evaluation_json_and_hrsa_parquet_fail_the_report_with_one_line(tmp_path, capsys):
    from hrsa.cli import main

    model = tmp_path / "eval/tiny.base-E.s0"
    model.mkdir(parents=True)
    (model / "HrsaLee50.json").write_text('{"results": {"HrsaLee50": {"main_score": 0.')  # killed mid-write
    args = ["report", "--eval-dir", str(tmp_path / "eval"), "--models", "tiny.base-E.s0", "--tasks", "HrsaLee50",
            "--out", str(tmp_path / "report")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"evaluation result {model / 'HrsaLee50.json'} is truncated" in err
    table = tmp_path / "works/tiny.base~reason.parquet"
    table.parent.mkdir()
    table.write_bytes(b"PAR1\x00\x01")
    assert main(["report", "--hrsa", str(table), "--eval-dir", str(tmp_path / "eval"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"HRSA table {table} is not a readable Parquet file" in err


@pytest.mark.parametrize(("content", "message"), [
    (b'{"text": "ok"}\n{"text": "caf\xe9"}\n', ":2: not valid UTF-8"),
    (b'{"text": "ok"}\n["a", "list"]\n', ":2: expected a JSON object per line, got a list"),
])
def test_bad_probe_and_training_jsonl_lines_are_one_line_errors(tmp_path, content, message):
    """Invalid UTF-8 or a row that is a JSON list in a probe or training JSONL: a DataError naming file and line."""
    from hrsa.data import read_jsonl, validate_training_records
    from hrsa.errors import DataError

    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"^{path}{message}"):
        list(read_jsonl(path))
    if "UTF-8" in message:  # a list row is refused by the record check already
        path.write_bytes(content.split(b"\n")[1] + b"\n")
        with pytest.raises(DataError, match=f"^{path}:1: not valid UTF-8"):
            validate_training_records(path, 0)


def test_a_nan_task_score_is_an_error_naming_task_and_model(tmp_path):
    """A NaN score was dropped from one seed's Mean(Task) while Table 1 said complete (Δ moved): now one line naming
    the task and the model's summary."""
    from hrsa.aggregate import aggregate
    from hrsa.errors import DataError
    from test_evaluation_study import _summary

    m = "p.reason-E.s0"
    good = _summary(tmp_path / m / "T1.json", m, {"T1": ("STS", ["test"], {"test": 0.6})})
    bad = _summary(tmp_path / m / "T2.json", m, {"T2": ("STS", ["test"], {"test": float("nan")})})
    with pytest.raises(DataError, match=rf"^{tmp_path / m / 'T2.json'} \[T2\]: score nan is not finite"):
        aggregate([good, bad], {"T1": "B", "T2": "B"})


def test_a_nan_task_score_fails_the_report_and_every_model_shares_one_task_set(tmp_path):
    """The report fails on a NaN score (no 'Table 1 not computed' note with exit 0), and a task scored for one model
    only is left out of every model's mean of that pair, listed as missing (Δ never mixes task sets)."""
    from hrsa.aggregate import aggregate
    from hrsa.errors import DataError
    from hrsa.report import build_report
    from test_evaluation_study import _summary

    files = []
    for model, scores in (("p.base-E.s0", {"T1": 0.6, "T2": 0.2}), ("p.reason-E.s0", {"T1": 0.5})):
        for task, score in scores.items():
            files.append(_summary(tmp_path / model / f"{task}.json", model, {task: ("STS", ["test"], {"test": score})}))
    _, means = aggregate(files, {"T1": "B", "T2": "B"})
    assert means["mean_task"].tolist() == [60.0, 50.0]  # base-E over T1 only (T2 is not scored for reason-E)
    assert means["missing"].tolist() == ["T2", "T2"] and not means["complete"].any()
    nan = {"T2": ("STS", ["test"], {"test": float("nan")})}
    bad = _summary(tmp_path / "p.reason-E.s0" / "T2.json", "p.reason-E.s0", nan)
    with pytest.raises(DataError, match="T2.*score nan is not finite"):
        build_report([], [*files, bad], {}, tmp_path / "report", task_benchmarks={"T1": "B", "T2": "B"})
