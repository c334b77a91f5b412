"""Each pipeline verb on tiny inputs, through the real CLI entry point (real torch, sentence-transformers, Parquet)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from hrsa.cli import main

RECIPE = {"max_length": 64, "batch_size": 8, "mini_batch_size": 4, "max_steps": 4, "save_steps": 2,
          "learning_rate": 1e-3}  # the `training:` slice (--config); the data has 2 negatives (--num-negatives)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, repo, tiny_backbone) -> Path:
    """Training data, two probe sets and one trained embedder, shared by the tests of this module."""
    wd = tmp_path_factory.mktemp("verbs")
    spec = {"builtin": "demo", "n_records": 48, "num_negatives": 2}
    assert main(["make-data", "train", "--config", json.dumps(spec), "--root", str(repo),
                 "--out", str(wd / "train.jsonl")]) == 0
    for name, spec in {"tok": {"builtin": "milton-lines", "n_texts": 40},
                       "sent": {"builtin": "milton-works", "n_texts": 60, "granularity": "sentence"}}.items():
        assert main(["make-data", "probe", "--config", json.dumps(spec), "--root", str(repo),
                     "--out", str(wd / f"{name}.jsonl")]) == 0
    assert main(["train", "--backbone", str(tiny_backbone), "--data", str(wd / "train.jsonl"), "--seed", "0",
                 "--config", json.dumps(RECIPE), "--num-negatives", "2", "--checkpoints", str(wd / "ckpt"),
                 "--model-id", "t.base-E.s0",
                 "--device", "cpu", "--out", str(wd / "emb")]) == 0
    return wd


def test_training_data_records(workdir):
    rows = [json.loads(x) for x in (workdir / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 48
    for r in rows:
        assert len(r["query"]) == 2 and r["pos"] and len(r["neg"]) == 2
        assert r["pos"][0] not in r["neg"]
    math = [r for r in rows if r["source"] == "arithmetic"]
    # hard negatives never share the positive's answer
    for r in math:
        answer = r["pos"][0].rsplit(" ", 1)[-1]
        assert all(not n.endswith(" " + answer) for n in r["neg"])


def test_bad_training_data_names_file_and_line(tmp_path, tiny_backbone):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": ["i", "q"], "pos": ["p"], "neg": ["a", "b"]}) + "\n"
                   + json.dumps({"query": ["i", "q"], "pos": [], "neg": ["a", "b"]}) + "\n")
    rc = main(["train", "--backbone", str(tiny_backbone), "--data", str(bad), "--seed", "0", "--config",
               json.dumps(RECIPE), "--num-negatives", "2",
               "--checkpoints", str(tmp_path / "c"), "--model-id", "t.base-E.s0",
               "--out", str(tmp_path / "o")])
    assert rc == 2
    assert not (tmp_path / "o").exists()


def test_embedder_output(workdir):
    emb = workdir / "emb"
    prov = json.loads((emb / "provenance.json").read_text())
    assert prov["params"]["steps"] == 4 and prov["params"]["seed"] == 0
    assert (emb / "revision.txt").read_text().strip() == prov["revision"]
    cfg = json.loads((emb / "config.json").read_text())
    assert cfg["is_causal"] is False  # bidirectional attention persisted
    log = [json.loads(x) for x in (emb / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert len(set(losses)) > 1 and all(r["grad_norm"] > 0 for r in log if "grad_norm" in r)  # it really learns


def test_instruction_longer_than_max_length_is_refused(workdir, tiny_backbone, tmp_path, capsys):
    rc = main(["train", "--backbone", str(tiny_backbone), "--data", str(workdir / "train.jsonl"), "--seed", "0",
               "--config", json.dumps(dict(RECIPE, max_length=16)), "--num-negatives", "2",
               "--checkpoints", str(tmp_path / "c"),
               "--model-id", "t.base-E.s0", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert rc == 2 and "training.max_length: 16 tokens" in capsys.readouterr().err


def test_reload_gives_identical_embeddings(workdir):
    """The trained model in memory and its saved directory encode identically (checked at save, recorded)."""
    from hrsa.embedder import load_embedder

    prov = json.loads((workdir / "emb" / "provenance.json").read_text())
    assert prov["reload_max_abs_diff"] == 0.0
    texts = ["Of Man's first disobedience", "Q: 3+4=? A: 7"]
    a = load_embedder(workdir / "emb").encode(texts, convert_to_numpy=True)
    b = load_embedder(workdir / "emb").encode(texts, convert_to_numpy=True, prompt_name="query")
    assert np.abs(a).sum() > 0 and not np.allclose(a, b)  # the saved query prompt is applied


def test_reload_check_catches_a_lossy_save(workdir, tmp_path):
    """Saving without the bidirectional attention flag changes the embeddings: the check must refuse it."""
    import shutil

    from hrsa.embedder import check_reload, load_embedder
    from hrsa.errors import HrsaError

    model = load_embedder(workdir / "emb")
    shutil.copytree(workdir / "emb", tmp_path / "lossy")
    cfg = json.loads((tmp_path / "lossy" / "config.json").read_text())
    (tmp_path / "lossy" / "config.json").write_text(json.dumps({**cfg, "is_causal": True}))
    assert check_reload(model, workdir / "emb") == 0.0
    with pytest.raises(HrsaError, match="encodes differently"):
        check_reload(model, tmp_path / "lossy")


def test_bidirectional_differs_from_causal(tiny_backbone):
    """With bidirectional attention the first token sees later tokens; with causal attention it must not."""
    import torch

    from hrsa.train import Recipe, build_model

    first = {}
    for mode in ("bidirectional", "causal"):
        model = build_model(str(tiny_backbone), Recipe.from_config({"attention": mode, "max_length": 16}))
        tok, auto = model[0].tokenizer, model[0].auto_model
        with torch.inference_mode():
            outs = [auto(**tok(t, return_tensors="pt")).last_hidden_state[0, 0]
                    for t in ("And the end", "And then more")]
        first[mode] = float((outs[0] - outs[1]).abs().max())
    assert first["causal"] < 1e-6
    assert first["bidirectional"] > 1e-4


def test_prompt_is_excluded_from_pooling(workdir, tiny_backbone):
    """The query instruction reaches the collator as anchor_prompt_length, which Pooling uses to drop it."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from hrsa.data import read_jsonl
    from hrsa.train import Recipe, build_model, records_to_datasets

    recipe = Recipe.from_config({"max_length": 32}, num_negatives=2)
    model = build_model(str(tiny_backbone), recipe)
    dsd, prompts = records_to_datasets(list(read_jsonl(workdir / "train.jsonl")), 2)
    name = next(iter(dsd))
    assert prompts[name]["anchor"].startswith("Instruct: ") and prompts[name]["anchor"].endswith("\nQuery: ")
    args = SentenceTransformerTrainingArguments(output_dir=str(workdir / "tmp-args"), prompts=prompts, use_cpu=True,
                                                report_to="none")
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dsd,
                                         loss=MultipleNegativesRankingLoss(model))
    batch = trainer.data_collator([{**dsd[name][0], "dataset_name": name}])
    assert "anchor_prompt_length" in batch


def test_extract_token_and_sentence(workdir, tiny_backbone):
    out = workdir / "acts"
    spec = {"granularity": "token", "max_tokens": 200, "max_length": 24, "seed": 1}
    for model, mid in ((tiny_backbone, "t.base"), (workdir / "emb", "t.base-E.s0")):
        assert main(["extract", "--model", str(model), "--model-id", mid, "--probe", str(workdir / "tok.jsonl"),
                     "--config", json.dumps(spec), "--layers", "0,1,2", "--device", "cpu",
                     "--out", str(out / mid)]) == 0
    meta_a = json.loads((out / "t.base/_meta.json").read_text())
    meta_b = json.loads((out / "t.base-E.s0/_meta.json").read_text())
    assert meta_a["n_rows"] == 200 and meta_a["row_hash"] == meta_b["row_hash"]  # same subsample for both models
    assert meta_a["tokenizer_hash"] == meta_b["tokenizer_hash"]  # the embedder keeps its backbone's tokenizer
    assert meta_a["attention"] == meta_b["attention"] == "bidirectional"  # the study's default, backbone included
    dataset = ds.dataset(str(out / "t.base"), format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 600 and set(table.column("layer").to_pylist()) == {0, 1, 2}
    assert table.schema.field("vector").type.list_size == 32
    # layer 0 is the token embedding: identical rows for identical token ids
    from hrsa.activations import load_layer, load_rows

    X0 = load_layer(out / "t.base", "0")
    tid = ds.dataset(str(out / "t.base/layer=0")).to_table().column("token_id").to_numpy()
    same = np.nonzero(tid == tid[0])[0]
    assert np.allclose(X0[same], X0[same[0]])
    text_ids, pos = load_rows(out / "t.base", "0")
    assert (pos >= 0).all() and len(set(zip(text_ids, pos, strict=True))) == 200

    sspec = {"granularity": "sentence", "max_length": 64}  # = the embedder's max_seq_length
    assert main(["extract", "--model", str(workdir / "emb"), "--model-id", "t.base-E.s0", "--probe",
                 str(workdir / "sent.jsonl"), "--config", json.dumps(sspec), "--layers", "0,2,pooled",
                 "--device", "cpu", "--out", str(out / "sent")]) == 0
    from hrsa.embedder import load_embedder

    texts = [json.loads(x)["text"] for x in (workdir / "sent.jsonl").read_text().splitlines()]
    ids, _ = load_rows(out / "sent", "pooled")
    pooled = load_layer(out / "sent", "pooled")
    ref = load_embedder(workdir / "emb").encode([texts[i] for i in ids], convert_to_numpy=True)
    assert np.allclose(pooled, ref, atol=1e-4)  # `pooled` is the embedder's own sentence embedding


def test_extract_rejects_bad_layer(workdir, tiny_backbone, capsys):
    rc = main(["extract", "--model", str(tiny_backbone), "--model-id", "t.base", "--probe", str(workdir / "tok.jsonl"),
               "--layers", "0,7", "--device", "cpu", "--out", str(workdir / "bad")])
    assert rc == 2 and "layer 7 is out of range" in capsys.readouterr().err
    assert not (workdir / "bad").exists()


def test_misaligned_models_are_refused(workdir):
    from hrsa.activations import check_aligned
    from hrsa.errors import HrsaError

    a = {"model_id": "a", "probe_hash": "x", "granularity": "token", "row_hash": "1", "tokenizer_hash": "t"}
    check_aligned(a, dict(a, model_id="b"))
    with pytest.raises(HrsaError, match="do not align: rows differ"):
        check_aligned(a, dict(a, model_id="b", row_hash="2"))
    with pytest.raises(HrsaError, match="do not align: probe set differ"):
        check_aligned(a, dict(a, model_id="b", probe_hash="y"))
    # same token positions under another vocabulary are other pieces of text; sentence rows align by text alone
    with pytest.raises(HrsaError, match="do not align: tokenizers differ"):
        check_aligned(a, dict(a, model_id="b", tokenizer_hash="u"))
    s = dict(a, granularity="sentence")
    check_aligned(s, dict(s, model_id="b", tokenizer_hash="u"))


def test_lora_trains_adapters_only_and_saves_merged_weights(tmp_path, workdir, tiny_backbone):
    from safetensors.torch import load_file

    from hrsa.embedder import load_embedder
    from hrsa.train import Recipe, build_model

    recipe = Recipe.from_config({"max_length": 32, "lora": {"enabled": True, "r": 4, "alpha": 8}})
    model = build_model(str(tiny_backbone), recipe)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < trainable < total / 10  # adapters only
    lora_recipe = dict(RECIPE, lora={"enabled": True, "r": 4, "alpha": 8})
    assert main(["train", "--backbone", str(tiny_backbone), "--data", str(workdir / "train.jsonl"), "--seed", "0",
                 "--config", json.dumps(lora_recipe), "--num-negatives", "2",
                 "--checkpoints", str(tmp_path / "ck"), "--model-id",
                 "t.base-E.s0", "--device", "cpu", "--out", str(tmp_path / "lora")]) == 0
    saved = load_file(tmp_path / "lora/model.safetensors")
    assert not any("lora" in k for k in saved)  # merged: plain weights, loadable without peft
    assert json.loads((tmp_path / "lora/config.json").read_text())["is_causal"] is False
    base = load_file(tiny_backbone / "model.safetensors")
    key = next(k for k in saved if k.endswith("q_proj.weight"))
    ref = base["model." + key] if "model." + key in base else base[key]
    assert not np.allclose(saved[key].numpy(), ref.numpy())
    emb = load_embedder(tmp_path / "lora").encode(["a test"], convert_to_numpy=True)
    assert np.isfinite(emb).all()


def test_same_seed_same_weights_other_seed_other_weights(workdir, tiny_backbone, tmp_path):
    """Two independent runs with one seed give bit-identical weights (revision = hash of the safetensors)."""
    revisions = {}
    for name, seed in (("again", "0"), ("other", "1")):
        assert main(["train", "--backbone", str(tiny_backbone), "--data", str(workdir / "train.jsonl"), "--seed", seed,
                     "--config", json.dumps(RECIPE), "--num-negatives", "2",
                     "--checkpoints", str(tmp_path / f"ckpt-{name}"),
                     "--model-id", f"t.base-E.s{seed}", "--device", "cpu", "--out", str(tmp_path / name)]) == 0
        revisions[name] = (tmp_path / name / "revision.txt").read_text()
    assert revisions["again"] == (workdir / "emb" / "revision.txt").read_text()
    assert revisions["other"] != revisions["again"]


def test_extraction_attention_is_configurable_recorded_and_checked(workdir, tiny_backbone):
    """Raw backbones are extracted bidirectionally by default; causal when configured; the mode is in the metadata,
    and activations taken under different modes are refused by check_aligned unless allowed."""
    from hrsa.activations import check_aligned, load_layer, load_rows
    from hrsa.errors import HrsaError

    spec = {"granularity": "token", "max_length": 24}
    metas, firsts = {}, {}
    for mode in ("default", "causal", "model"):
        out = workdir / "attn" / mode
        extra = [] if mode == "default" else ["--attention", mode]
        assert main(["extract", "--model", str(tiny_backbone), "--model-id", "t.base", "--probe",
                     str(workdir / "tok.jsonl"), "--config", json.dumps(spec), "--layers", "2",
                     "--device", "cpu", "--out", str(out), *extra]) == 0
        metas[mode] = json.loads((out / "_meta.json").read_text())
        X = load_layer(out, "2")
        _, pos = load_rows(out, "2")
        firsts[mode] = X[pos == 0]  # first token of every text: sees later tokens only when bidirectional
    assert metas["default"]["attention"] == "bidirectional"
    assert metas["causal"]["attention"] == metas["model"]["attention"] == "causal"  # a raw LM's own mask is causal
    assert np.abs(firsts["default"] - firsts["causal"]).max() > 1e-3
    assert np.array_equal(firsts["causal"], firsts["model"])
    with pytest.raises(HrsaError, match="different attention masks"):
        check_aligned(metas["default"], metas["causal"])
    check_aligned(metas["default"], metas["causal"], allow_mixed_attention=True)


def test_embedder_outputs_have_unit_norm(workdir):
    """Embedders end with Normalize (as the study's evaluation pipeline): every task sees unit-norm vectors."""
    from sentence_transformers.sentence_transformer.modules import Normalize

    from hrsa.embedder import load_embedder

    model = load_embedder(workdir / "emb")
    assert isinstance(list(model)[-1], Normalize)
    texts = ["Of Man's first disobedience", "Q: 3+4=? A:", "x"]
    vecs = model.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    query = model.encode(texts, prompt_name="query", convert_to_numpy=True)
    assert np.allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
