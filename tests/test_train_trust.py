"""Training trust: resumable state is keyed by the content of its inputs; a diverged run fails instead of saving."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

RECIPE = {"max_length": 64, "batch_size": 8, "mini_batch_size": 8, "max_steps": 6, "save_steps": 3,
          "learning_rate": 1e-3}  # the `training:` slice; the records carry two negatives each


@pytest.fixture(scope="module")
def data(tmp_path_factory, repo) -> Path:
    """64 demo training records (verse and arithmetic) with two negatives each."""
    from hrsa.data import demo_training_records, write_jsonl

    path = tmp_path_factory.mktemp("trust") / "train.jsonl"
    write_jsonl(path, demo_training_records(repo / "data/corpus/milton", 64, num_negatives=2))
    return path


def train(backbone: Path, data: Path, ckpt: Path, out: Path, **recipe: object) -> int:
    from hrsa.cli import main

    return main(["train", "--backbone", str(backbone), "--data", str(data), "--seed", "0", "--config",
                 json.dumps({**RECIPE, **recipe}), "--num-negatives", "2",
                 "--checkpoints", str(ckpt), "--model-id", "t.base-E.s0",
                 "--device", "cpu", "--out", str(out)])


def revision(embedder: Path) -> str:
    return (embedder / "revision.txt").read_text().strip()


def resumable(ckpt: Path) -> list[str]:
    return sorted(p.name for p in ckpt.glob("checkpoint-*")) if ckpt.is_dir() else []


def rebuild(backbone: Path, seed: int) -> None:
    """Rebuild the backbone in place, as a changed recipe does: same path, same tokenizer, other weights."""
    from transformers import AutoTokenizer

    from hrsa.backbones.pretrain import PretrainSettings, build_model

    tok = AutoTokenizer.from_pretrained(backbone)
    settings = PretrainSettings.from_config(dict(vocab_size=512, hidden_size=32, num_layers=2, num_heads=2,
                                                 num_kv_heads=1, intermediate_size=64, seed=seed))
    build_model(settings, tok).save_pretrained(backbone)


def test_rebuilt_backbone_at_same_path_is_not_resumed(tmp_path, tiny_backbone, data):
    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_backbone, backbone)
    ckpt = tmp_path / "ck"
    assert train(backbone, data, ckpt, tmp_path / "before") == 0
    assert resumable(ckpt) == []  # a finished run leaves nothing a later run could resume from

    rebuild(backbone, seed=1)
    assert train(backbone, data, ckpt, tmp_path / "after") == 0
    assert train(backbone, data, tmp_path / "ck-clean", tmp_path / "clean") == 0
    assert revision(tmp_path / "after") != revision(tmp_path / "before")
    assert revision(tmp_path / "after") == revision(tmp_path / "clean")


def test_fingerprint_follows_content_not_path(tmp_path, tiny_backbone, data):
    from hrsa.train import Recipe, training_fingerprint

    recipe = Recipe.from_config(RECIPE, num_negatives=2)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_backbone, copy)
    base = training_fingerprint(str(tiny_backbone), str(data), 0, recipe, "cpu")
    assert training_fingerprint(str(copy), str(data), 0, recipe, "cpu") == base  # same content elsewhere: same state
    (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text() + " ")
    assert training_fingerprint(str(copy), str(data), 0, recipe, "cpu") != base  # any backbone file counts
    moved = tmp_path / "train.jsonl"
    moved.write_text(data.read_text().replace("a", "b", 1))
    assert training_fingerprint(str(tiny_backbone), str(moved), 0, recipe, "cpu") != base
    assert training_fingerprint(str(tiny_backbone), str(data), 1, recipe, "cpu") != base
    lora = Recipe.from_config({**RECIPE, "lora": {"enabled": True, "r": 4}}, num_negatives=2)
    assert training_fingerprint(str(tiny_backbone), str(data), 0, lora, "cpu") != base


def test_resuming_a_finished_schedule_trains_no_further(tmp_path, tiny_backbone, data, monkeypatch):
    """Killed after its last checkpoint, before the save: the rerun ends at exactly the scheduled steps."""
    import hrsa.train.trainer

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a kill between the final checkpoint and the save (cannot be timed for real)

    ckpt = tmp_path / "ck"
    with monkeypatch.context() as m:
        m.setattr(hrsa.train.trainer, "save_embedder", killed)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_backbone, data, ckpt, tmp_path / "out")
    assert resumable(ckpt) == ["checkpoint-3", "checkpoint-6"]
    assert train(tiny_backbone, data, ckpt, tmp_path / "out") == 0
    assert train(tiny_backbone, data, tmp_path / "ck-clean", tmp_path / "clean") == 0
    prov = json.loads((tmp_path / "out/provenance.json").read_text())
    assert prov["params"]["steps"] == 6 and prov["params"]["resumed_from"].endswith("checkpoint-6")
    assert revision(tmp_path / "out") == revision(tmp_path / "clean")
    assert resumable(ckpt) == []


def test_diverged_run_fails_and_writes_no_embedder(tmp_path, tiny_backbone, data, capsys):
    ckpt, out = tmp_path / "ck", tmp_path / "out"
    assert train(tiny_backbone, data, ckpt, out, learning_rate=1e6, max_steps=20) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hrsa train: error:")]
    assert len(err) == 1, err  # one line, naming the step and the setting to look at
    assert re.search(r"training diverged: (loss|grad_norm) is (nan|inf) at step [1-9][0-9]* of 20 ", err[0]), err[0]
    assert "training.learning_rate=1000000.0" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
    assert resumable(ckpt) == []  # checkpoints of a diverged run may hold non-finite weights: none is resumed


def test_non_finite_weights_are_refused_at_save(tiny_backbone):
    import torch

    from hrsa.errors import HrsaError
    from hrsa.train import Recipe, build_model, check_finite_weights

    model = build_model(str(tiny_backbone), Recipe.from_config(RECIPE))
    check_finite_weights(model, step=6, recipe=Recipe.from_config(RECIPE))  # fresh weights pass
    with torch.no_grad():
        next(model.parameters()).view(-1)[3] = float("inf")
    with pytest.raises(HrsaError, match=r"non-finite weights .* after step 6 .*training\.learning_rate"):
        check_finite_weights(model, step=6, recipe=Recipe.from_config(RECIPE))


def test_provenance_records_the_hardware():
    from hrsa.io import provenance

    hw = provenance({"x": 1})["hardware"]
    assert hw["cpus"] >= 1 and hw["host"] and "slurm_job" in hw
