"""The training recipe as wired into sentence-transformers: values from config reach the trainer, one source per
batch."""

from __future__ import annotations

import math

import pytest

from hrsa.data import QUERY_TEMPLATE, demo_training_records
from hrsa.train import Recipe, build_trainer


@pytest.fixture(scope="module")
def records(repo):
    """48 verse and 48 arithmetic records: two sources with their own instruction."""
    return demo_training_records(repo / "data/corpus/milton", 96, num_negatives=2)


def _trainer(tiny_backbone, records, tmp_path, seed=0, **overrides):
    recipe = Recipe.from_config({"max_length": 64, "batch_size": 8, "mini_batch_size": 4, **overrides},
                                num_negatives=2)
    return build_trainer(str(tiny_backbone), records, str(tmp_path / "ckpt"), seed, recipe, "cpu")


def _batches(trainer) -> list[list[int]]:
    """Row indices (into the concatenated per-source datasets) of every training batch, in order."""
    loader = trainer._build_dataloader(trainer.train_dataset, trainer.args.train_batch_size, dataset_kind="train")
    return [list(b) for b in loader.batch_sampler]


def test_every_batch_draws_from_one_source(tiny_backbone, records, tmp_path):
    trainer = _trainer(tiny_backbone, records, tmp_path)
    names = list(trainer.train_dataset)
    assert [n.split("-", 1)[1] for n in names] == ["arithmetic", "verse"]
    sizes = [len(trainer.train_dataset[n]) for n in names]
    bounds = [0, sizes[0], sizes[0] + sizes[1]]
    batches = _batches(trainer)
    assert len(batches) == sum(s // 8 for s in sizes)  # drop_last per source; nothing else dropped
    used = set()
    for batch in batches:
        assert len(batch) == 8
        source = [k for k in range(2) if bounds[k] <= batch[0] < bounds[k + 1]][0]
        assert all(bounds[source] <= i < bounds[source + 1] for i in batch), f"batch {batch} mixes sources"
        used.add(source)
    assert used == {0, 1}  # both sources are trained on
    # each source's query carries its own instruction, and only the anchor column gets one
    for name in names:
        (column, prompt), = trainer.args.prompts[name].items()
        assert column == "anchor" and prompt.startswith("Instruct: ") and prompt.endswith("\nQuery: ")
    assert {p["anchor"] for p in trainer.args.prompts.values()} == {
        QUERY_TEMPLATE.format(instruction=r["query"][0]) for r in records}


def test_seed_sets_the_data_order(tiny_backbone, records, tmp_path):
    first = _batches(_trainer(tiny_backbone, records, tmp_path / "a", seed=0))
    again = _batches(_trainer(tiny_backbone, records, tmp_path / "b", seed=0))
    other = _batches(_trainer(tiny_backbone, records, tmp_path / "c", seed=1))
    assert first == again
    assert first != other and sorted(map(sorted, first)) != sorted(map(sorted, other))


def test_recipe_values_reach_the_trainer(tiny_backbone, records, tmp_path):
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    trainer = _trainer(tiny_backbone, records, tmp_path, temperature=0.05, learning_rate=3e-4, weight_decay=0.1,
                       warmup_ratio=0.1, epochs=2)
    loss = trainer.loss
    assert isinstance(loss, CachedMultipleNegativesRankingLoss)
    assert loss.scale == pytest.approx(20.0) and loss.mini_batch_size == 4
    args = trainer.args
    assert args.learning_rate == 3e-4 and args.weight_decay == 0.1 and args.num_train_epochs == 2
    assert args.lr_scheduler_type.value == "cosine" and args.optim.value.startswith("adamw")
    assert args.get_warmup_steps(200) == 20 and args.get_warmup_steps(7) == math.ceil(0.7)
    assert trainer.model[0].auto_model.config.is_causal is False
    assert loss.gather_across_devices is False and args.per_device_train_batch_size == 8  # one device: all of it
    pooling = trainer.model[1]
    assert pooling.get_config_dict()["pooling_mode"] == "mean" and pooling.include_prompt is False


def test_recipe_rejects_bad_values():
    from hrsa.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown keys \\['lr'\\]"):
        Recipe.from_config({"lr": 1e-4})
    with pytest.raises(ConfigError, match="training.attention"):
        Recipe.from_config({"attention": "sliding"})
    with pytest.raises(ConfigError, match="training.lora: unknown keys \\['rank'\\]"):
        Recipe.from_config({"lora": {"enabled": True, "rank": 8}})
    assert Recipe.from_config({"lora": {"enabled": False, "r": 8}}).lora is None


def test_global_batch_splits_over_devices_and_the_launch_must_match(tiny_backbone, records, tmp_path):
    from hrsa.errors import ConfigError
    from hrsa.train import per_device_batch

    assert per_device_batch(4096, 1) == 4096 and per_device_batch(4096, 8) == 512
    with pytest.raises(ConfigError, match="training.batch_size 4096 is not a multiple of the 3 training devices"):
        per_device_batch(4096, 3)
    with pytest.raises(ConfigError, match="training.devices is 2 but this run has 1 process"):
        _trainer(tiny_backbone, records, tmp_path, devices=2)
