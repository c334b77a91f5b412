"""bf16, as the study trained and extracted, runs on CPU: training.precision bf16 trains under bf16 autocast, and
activations.precision bf16 extracts from bf16 weights; both differ from fp32 by bf16 rounding, not more."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from hrsa.activations import load_layer, read_meta
from hrsa.cli import main

RECIPE = {"max_length": 64, "batch_size": 8, "mini_batch_size": 4, "max_steps": 2, "save_steps": 10,
          "learning_rate": 1e-4}


@pytest.fixture(scope="module")
def data(tmp_path_factory, repo) -> Path:
    path = tmp_path_factory.mktemp("bf16") / "train.jsonl"
    spec = {"builtin": "demo", "n_records": 32, "num_negatives": 2}
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo), "--out", str(path)]) == 0
    return path


def train(tmp: Path, backbone: Path, data: Path, precision: str) -> Path:
    out = tmp / precision
    assert main(["train", "--backbone", str(backbone), "--data", str(data), "--seed", "0", "--config",
                 json.dumps({**RECIPE, "precision": precision}), "--num-negatives", "2", "--checkpoints",
                 str(tmp / f"ck-{precision}"), "--model-id", "t.base-E.s0", "--device", "cpu", "--out", str(out)]) == 0
    return out


def test_bf16_trainer_runs_under_bf16_autocast(tmp_path, tiny_backbone, data):
    from hrsa.data import validate_training_records
    from hrsa.train import Recipe, build_trainer

    records = validate_training_records(str(data), 2)
    for precision, expected in (("bf16", "bf16"), ("fp32", "no"), ("auto", "no")):  # auto: fp32 on a CPU
        trainer = build_trainer(str(tiny_backbone), records, str(tmp_path / precision), 0,
                                Recipe.from_config({**RECIPE, "precision": precision}, 2), "cpu")
        assert str(trainer.accelerator.mixed_precision) == expected


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


def test_bf16_training_on_cpu_ends_near_fp32(tmp_path, tiny_backbone, data):
    a_dir, b_dir = train(tmp_path, tiny_backbone, data, "fp32"), train(tmp_path, tiny_backbone, data, "bf16")
    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert all(t.dtype == a[k].dtype for k, t in b.items())  # fp32 master weights, as mixed precision keeps them
    # step 1 scores the same weights: its losses differ by bf16 rounding only (not 0: bf16 arithmetic did run)
    la, lb = losses(a_dir), losses(b_dir)
    assert len(lb) == RECIPE["max_steps"] and all(np.isfinite(lb))
    assert 0 < abs(la[0] - lb[0]) < 5e-2 * abs(la[0])
    # each Adam step moves a weight by at most about the learning rate, so the runs part by at most twice that a step
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert 0 < diff <= 2 * RECIPE["max_steps"] * RECIPE["learning_rate"] * 1.01
    assert json.loads((b_dir / "provenance.json").read_text())["params"]["recipe"]["precision"] == "bf16"


def test_bf16_extraction_on_cpu(tmp_path, tiny_backbone, probe):
    outs = {}
    for precision in ("fp32", "bf16"):
        outs[precision] = tmp_path / precision
        assert main(["extract", "--model", str(tiny_backbone), "--model-id", "t.base", "--probe", str(probe),
                     "--config", json.dumps({"granularity": "token", "max_length": 24}), "--layers", "0,2",
                     "--device", "cpu", "--precision", precision, "--out", str(outs[precision])]) == 0
    assert read_meta(outs["bf16"])["compute_dtype"] == "bfloat16"
    assert read_meta(outs["fp32"])["compute_dtype"] == "float32"
    x, y = load_layer(outs["fp32"], "2"), load_layer(outs["bf16"], "2")
    rel = np.linalg.norm(x - y) / np.linalg.norm(x)
    assert 1e-4 < rel < 5e-2  # bf16 keeps 8 bits of mantissa: rounding, not a different model
