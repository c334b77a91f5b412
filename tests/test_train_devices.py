"""training.devices: 2 on CPU (torchrun, gloo) trains the embedder that devices: 1 trains with the same global batch,
and checkpoints written by either layout resume under the other.

Tolerance: float32 all-reduce sums the two halves' gradients in another order than one process does, so weights agree
to within 1e-6 absolute and logged losses to within 1e-5 relative (measured: 1e-8 and 1e-6 after 3 steps), not bit
for bit.
"""

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

RECIPE = {"max_length": 64, "batch_size": 8, "mini_batch_size": 4, "max_steps": 8, "save_steps": 2,
          "learning_rate": 1e-3}
WEIGHT_ATOL, LOSS_RTOL = 1e-6, 1e-5


def train_cmd(backbone: Path, data: Path, ckpt: Path, out: Path, devices: int) -> list[str]:
    verb = ["train", "--threads", "1", "--backbone", str(backbone), "--data", str(data), "--seed", "3",
            "--config", json.dumps({**RECIPE, "devices": devices}), "--num-negatives", "2",
            "--checkpoints", str(ckpt), "--model-id", "t.base-E.s3", "--device", "cpu", "--out", str(out)]
    if devices == 1:
        return [sys.executable, "-m", "hrsa.cli", *verb]
    # what the train rule runs (common.smk: training_launcher), with this interpreter
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(devices),
            "-m", "hrsa.cli", *verb]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def killed_at(cmd: list[str], ckpt: Path, step: int) -> None:
    """Run until checkpoint-{step} is complete, then SIGKILL every process of the run (as a lost node would; torchrun
    starts its workers in sessions of their own, so killing its process group would leave them running)."""
    import psutil

    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (ckpt / f"checkpoint-{step}" / "trainer_state.json").is_file() and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.01)
    tree = [psutil.Process(proc.pid)]
    tree += tree[0].children(recursive=True)
    for p in tree:
        p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(tree, timeout=30)
    assert (ckpt / f"checkpoint-{step}").is_dir(), "the run ended before it could be killed mid-way"


def assert_same_embedder(a_dir: Path, b_dir: Path) -> None:
    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < WEIGHT_ATOL, worst
    la = [r["loss"] for r in map(json.loads, (a_dir / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
    lb = [r["loss"] for r in map(json.loads, (b_dir / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(la) == RECIPE["max_steps"]
    assert la == pytest.approx(lb, rel=LOSS_RTOL)


@pytest.fixture(scope="module")
def data(tmp_path_factory, repo) -> Path:
    from hrsa.cli import main

    path = tmp_path_factory.mktemp("devices") / "train.jsonl"
    spec = {"builtin": "demo", "n_records": 64, "num_negatives": 2}
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_backbone, data) -> Path:
    out = tmp_path_factory.mktemp("ref") / "one"
    run(train_cmd(tiny_backbone, data, out.parent / "ck", out, 1))
    return out


def test_two_processes_train_the_one_process_embedder(tmp_path, tiny_backbone, data, reference):
    out = tmp_path / "two"
    run(train_cmd(tiny_backbone, data, tmp_path / "ck", out, 2))
    assert_same_embedder(reference, out)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["params"]["recipe"]["devices"] == 2


@pytest.mark.parametrize(("written", "resumed"), [(2, 1), (1, 2)])
def test_checkpoints_resume_under_the_other_layout(tmp_path, tiny_backbone, data, reference, written, resumed):
    ckpt, out = tmp_path / "ck", tmp_path / "out"
    killed_at(train_cmd(tiny_backbone, data, ckpt, out, written), ckpt, 4)
    assert not out.exists()
    done = run(train_cmd(tiny_backbone, data, ckpt, out, resumed))
    assert "resuming from" in done.stdout
    assert_same_embedder(reference, out)
