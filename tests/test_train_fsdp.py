"""training.fsdp shards full fine-tuning over training.devices with HF Trainer's FSDP (for 7B-class pairs).

Accelerate (1.15) builds FSDP only for accelerators: on CPU processes it falls back to unsharded DDP without a word.
So on CPU the run is refused, and what is tested here is what the GPU run gets: the TrainingArguments (and the
accelerate FSDP plugin they build) and the launch the workflow writes (torchrun, one process per device)."""

from __future__ import annotations

import json

import pytest
import yaml

from hrsa.errors import ConfigError
from hrsa.train import Recipe
from hrsa.train.trainer import fsdp_arguments
from smk import REPO, snakemake

SHARDED = {"devices": 2, "fsdp": True, "max_length": 64, "batch_size": 8, "mini_batch_size": 4}


def test_fsdp_arguments_shard_every_decoder_layer(tmp_path, tiny_backbone):
    from sentence_transformers import SentenceTransformerTrainingArguments

    from hrsa.train import build_model

    recipe = Recipe.from_config({**SHARDED, "gradient_checkpointing": True}, 2)
    model = build_model(str(tiny_backbone), recipe)
    kwargs = fsdp_arguments(model, recipe)
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), report_to="none", **kwargs)
    plugin = args.fsdp_plugin_args
    assert plugin["fsdp_version"] == 2
    assert plugin["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert plugin["transformer_cls_names_to_wrap"] == "Qwen2DecoderLayer"  # the backbone's own decoder layer
    assert plugin["reshard_after_forward"] is True  # full sharding (ZeRO-3): weights, gradients, Adam states
    assert plugin["activation_checkpointing"] is True
    assert plugin["state_dict_type"] == "FULL_STATE_DICT"
    assert not args.gradient_checkpointing  # FSDP's own checkpointing instead (no redundant all-gather)

    from accelerate.utils import FullyShardedDataParallelPlugin

    FullyShardedDataParallelPlugin(**plugin)  # accelerate accepts the plugin the Trainer will build
    assert fsdp_arguments(model, Recipe.from_config({"devices": 2}, 2)) == {}


@pytest.mark.parametrize(("training", "pattern"), [
    ({"fsdp": True}, r"training\.fsdp: .*devices > 1 \(it is 1\)"),
    ({"fsdp": True, "devices": 2, "lora": {"enabled": True}}, r"training\.fsdp: .*lora off"),
])
def test_fsdp_needs_several_devices_and_full_fine_tuning(training, pattern):
    with pytest.raises(ConfigError, match=pattern):
        Recipe.from_config(training, 2)


def test_fsdp_on_cpu_is_refused_not_run_unsharded(tmp_path, tiny_backbone, repo):
    from hrsa.cli import main
    from hrsa.train import build_trainer

    data = tmp_path / "train.jsonl"
    spec = {"builtin": "demo", "n_records": 16, "num_negatives": 2}
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo), "--out", str(data)]) == 0
    from hrsa.data import validate_training_records

    with pytest.raises(ConfigError, match="training.fsdp: shards over GPUs only"):
        build_trainer(str(tiny_backbone), validate_training_records(str(data), 2), str(tmp_path / "ck"), 0,
                      Recipe.from_config(SHARDED, 2), "cpu")


def test_fsdp_pair_launches_one_process_per_gpu(tmp_path):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["training"].update(devices=2, fsdp=True)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = snakemake("results/embedders/tiny.base-E.s0", "-n", "-p", "--configfile", str(tmp_path / "c.yaml"),
                    cwd=tmp_path).stdout
    train = out.split("rule train_embedder:", 1)[1]
    assert "gpu=2" in train.split("Shell command", 1)[0]
    command = train.split("Shell command: ", 1)[1].splitlines()[0]
    assert command.startswith("torchrun --standalone --nproc-per-node 2 --no-python hrsa train ")
    sliced = json.loads(command.split("--config '", 1)[1].split("'", 1)[0])
    assert sliced["fsdp"] is True and sliced["devices"] == 2
