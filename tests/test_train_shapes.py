"""What the full-size rehearsal found at real shapes: a backbone published in bf16 trains on float32 master weights,
and a batch larger than every source of the training data is refused instead of saving a 0-step "embedder"."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hrsa.cli import main
from hrsa.errors import ConfigError
from hrsa.train import Recipe, build_model, build_trainer


def test_a_bf16_backbone_trains_on_float32_weights(tmp_path, tiny_backbone):
    bf16 = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_backbone, dtype=torch.bfloat16).save_pretrained(bf16)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(bf16)
    assert json.loads((bf16 / "config.json").read_text())["dtype"] == "bfloat16"  # as published Qwen3 is
    model = build_model(str(bf16), Recipe.from_config({"max_length": 64}, 2))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_a_batch_no_source_can_fill_is_refused(tmp_path, tiny_backbone, repo):
    from hrsa.data import validate_training_records

    data = tmp_path / "train.jsonl"
    spec = {"builtin": "demo", "n_records": 32, "num_negatives": 2}  # two sources of 16
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo), "--out", str(data)]) == 0
    records = validate_training_records(str(data), 2)
    # the study's sampler pools the sources' leftovers into mixed batches: 16 + 16 records fill one batch of 32, but
    # no batch of 48
    with pytest.raises(ConfigError, match=r"training\.batch_size: 48 .*records per source: .* 16"):
        build_trainer(str(tiny_backbone), records, str(tmp_path / "ck"), 0,
                      Recipe.from_config({"max_length": 64, "batch_size": 48, "mini_batch_size": 8}, 2), "cpu")
    mixed = build_trainer(str(tiny_backbone), records, str(tmp_path / "ck"), 0,
                          Recipe.from_config({"max_length": 64, "batch_size": 32, "mini_batch_size": 8}, 2), "cpu")
    assert len(mixed.get_train_dataloader()) == 1
    trainer = build_trainer(str(tiny_backbone), records, str(tmp_path / "ck"), 0,
                            Recipe.from_config({"max_length": 64, "batch_size": 16, "mini_batch_size": 8}, 2), "cpu")
    assert len(trainer.get_train_dataloader()) == 2
