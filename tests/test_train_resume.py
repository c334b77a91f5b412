"""A training job killed mid-way (SIGKILL, as a SLURM time limit does) resumes and ends with the uninterrupted
weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

RECIPE = {"max_length": 64, "batch_size": 8, "mini_batch_size": 4, "max_steps": 30, "save_steps": 3,
          "learning_rate": 1e-3}  # the `training:` slice; the records carry two negatives each


def train_cmd(backbone: Path, data: Path, ckpt: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "hrsa.cli", "train", "--threads", "1", "--backbone", str(backbone),
            "--data", str(data), "--seed", "3", "--config", json.dumps(RECIPE), "--num-negatives", "2",
            "--checkpoints", str(ckpt), "--model-id", "t.base-E.s3",
            "--device", "cpu", "--out", str(out)]


@pytest.fixture(scope="module")
def data(tmp_path_factory, repo) -> Path:
    from hrsa.cli import main

    path = tmp_path_factory.mktemp("resume") / "train.jsonl"
    spec = {"builtin": "demo", "n_records": 256, "num_negatives": 2}
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo), "--out", str(path)]) == 0
    return path


def test_sigkill_then_resume_is_bit_identical(tmp_path, tiny_backbone, data):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(train_cmd(tiny_backbone, data, tmp_path / "ck-ref", tmp_path / "ref"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-2000:]

    ckpt, out = tmp_path / "ck", tmp_path / "out"
    proc = subprocess.Popen(train_cmd(tiny_backbone, data, ckpt, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (ckpt / "checkpoint-9").is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ckpt / "checkpoint-9").is_dir(), "the run ended before it could be killed mid-way"
    assert not out.exists()  # nothing that looks complete

    resumed = subprocess.run(train_cmd(tiny_backbone, data, ckpt, out), env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    a, b = load_file(tmp_path / "ref/model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert (tmp_path / "ref/revision.txt").read_text() == (out / "revision.txt").read_text()


def test_stale_checkpoints_of_other_settings_are_discarded(tmp_path, tiny_backbone, data):
    from hrsa.io import fingerprinted_dir

    ckpt = tmp_path / "ck"
    fingerprinted_dir(ckpt, {"seed": 1})
    (ckpt / "checkpoint-3").mkdir()
    fingerprinted_dir(ckpt, {"seed": 1})
    assert (ckpt / "checkpoint-3").is_dir()  # same settings: kept for resuming
    fingerprinted_dir(ckpt, {"seed": 2})
    assert not (ckpt / "checkpoint-3").exists()  # other settings: a resume would continue the wrong run


def test_checkpoint_cut_off_mid_write_is_skipped(tmp_path):
    from hrsa.train import last_checkpoint

    for step, complete in ((3, True), (6, True), (9, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-6"
    assert not (tmp_path / "checkpoint-9").exists()
