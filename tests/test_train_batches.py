"""Batches as the study's sampler builds them: one source per batch, leftovers pooled into mixed batches, every
record used once per epoch; a mixed batch gives each row its own instruction."""

from __future__ import annotations

import pytest

from hrsa.data import demo_training_records
from hrsa.train import Recipe, build_trainer
from hrsa.train.batches import source_batches


@pytest.fixture(scope="module")
def three_sources(repo):
    """20 verse, 13 arithmetic and 7 'extra' records (40 = 5 batches of 8): three sources, three instructions."""
    recs = demo_training_records(repo / "data/corpus/milton", 66, num_negatives=2)
    verse = [r for r in recs if r["source"] == "verse"][:27]
    arith = [r for r in recs if r["source"] == "arithmetic"][:13]
    extra = [{**r, "source": "extra", "query": ["Given verse, find a passage", r["query"][1]]} for r in verse[20:27]]
    return verse[:20] + arith + extra


def _sources(trainer) -> list[int]:
    """The source (dataset index) of every row of the concatenated training set."""
    return [k for k, name in enumerate(trainer.train_dataset) for _ in range(len(trainer.train_dataset[name]))]


def test_one_epoch_uses_every_record_once_and_single_source_batches(tiny_backbone, three_sources, tmp_path):
    recipe = Recipe.from_config({"max_length": 64, "batch_size": 8, "mini_batch_size": 4}, num_negatives=2)
    trainer = build_trainer(str(tiny_backbone), three_sources, str(tmp_path / "ckpt"), 0, recipe, "cpu")
    loader = trainer.get_train_dataloader()
    batches = [list(b) for b in loader.batch_sampler]
    source = _sources(trainer)
    assert sorted(len(trainer.train_dataset[n]) for n in trainer.train_dataset) == [7, 13, 20]
    used = sorted(i for b in batches for i in b)
    assert used == list(range(40))  # every record exactly once
    assert all(len(b) == 8 for b in batches) and len(loader) == 5
    kinds = sorted(len({source[i] for i in b}) for b in batches)
    # 20 -> 2 full batches + 4, 13 -> 1 + 5, 7 -> 0 + 7: three single-source batches, the 16 leftovers two mixed ones
    assert kinds == [1, 1, 1, 2, 2]

def test_mixed_batch_rows_keep_their_own_instruction(tiny_backbone, three_sources, tmp_path):
    """Each row of a mixed batch is embedded as `encode` embeds it alone with its own instruction (prompt excluded
    from the pooling), not with the first row's."""
    import torch

    recipe = Recipe.from_config({"max_length": 64, "batch_size": 8, "mini_batch_size": 4}, num_negatives=2)
    trainer = build_trainer(str(tiny_backbone), three_sources, str(tmp_path / "ckpt"), 0, recipe, "cpu")
    loader = trainer.get_train_dataloader()
    source = _sources(trainer)
    names = list(trainer.train_dataset)
    concat = loader.dataset
    batch_idx = next(b for b in loader.batch_sampler if len({source[i] for i in b}) > 1)
    batch = trainer.data_collator([concat[i] for i in batch_idx])
    model = trainer.model
    model.eval()
    features = {k.removeprefix("anchor_"): v for k, v in batch.items() if k.startswith("anchor_")}
    with torch.no_grad():
        got = model(features)["sentence_embedding"]
        want = torch.stack([
            torch.as_tensor(model.encode(concat[i]["anchor"], prompt=trainer.args.prompts[names[source[i]]]["anchor"]))
            for i in batch_idx])
    assert torch.allclose(got, want, atol=1e-5)


def test_source_batches_known_answer_and_seed():
    batches, n_mixed = source_batches([20, 13, 7], 8, seed=3)
    again, _ = source_batches([20, 13, 7], 8, seed=3)
    other, _ = source_batches([20, 13, 7], 8, seed=4)
    assert batches == again and batches != other
    assert n_mixed == 2 and len(batches) == 5
    # rows that do not fill a last mixed batch are left out, as the study's drop_last does: 41 rows -> 1 unused
    batches, n_mixed = source_batches([20, 14, 7], 8, seed=0)
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)) == 40 and n_mixed == 2
    # one source that fills its batches: no mixed batch, nothing dropped
    batches, n_mixed = source_batches([16], 8, seed=0)
    assert n_mixed == 0 and sorted(i for b in batches for i in b) == list(range(16))
