"""Baselines: a raw backbone saved as an untrained embedder (mean pooling, bidirectional attention, the same
prompts) and scored by `hrsa evaluate` beside the trained embedders; the workflow schedules them only when
evaluation.baseline is on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hrsa.cli import main
from smk import demo_config, dry_run, job_counts, write_config

SHAPE = {"attention": "bidirectional", "pooling": "mean", "max_length": 64}
TEXTS = ["Of Man's first disobedience, and the fruit", "Q: 12+7=? A: 19", "Sing, heavenly Muse"]


@pytest.fixture(scope="module")
def baseline(tiny_backbone, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "t.base"
    training = {**SHAPE, "learning_rate": 1e-3, "lora": {"enabled": True}}  # optimisation settings do not apply
    assert main(["baseline", "--backbone", str(tiny_backbone), "--config", json.dumps(training), "--model-id", "t.base",
                 "--out", str(out)]) == 0
    return out


def test_baseline_is_the_mean_pooled_bidirectional_backbone(baseline, tiny_backbone):
    """Its embeddings are the normalised mean of the untrained backbone's last hidden states under a full
    (bidirectional) attention mask; the causal mask gives other embeddings."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    st = SentenceTransformer(str(baseline), device="cpu")
    got = st.encode(TEXTS, convert_to_numpy=True)
    tok, model = AutoTokenizer.from_pretrained(tiny_backbone), AutoModel.from_pretrained(tiny_backbone)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token

    def pooled(causal: bool) -> np.ndarray:
        model.config.is_causal = causal
        batch = tok(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(mean, dim=-1).numpy()

    np.testing.assert_allclose(got, pooled(causal=False), atol=1e-5)
    assert np.abs(got - pooled(causal=True)).max() > 1e-3
    assert json.loads((baseline / "config.json").read_text())["is_causal"] is False
    assert json.loads((baseline / "1_Pooling/config.json").read_text())["include_prompt"] is False
    prov = json.loads((baseline / "provenance.json").read_text())
    assert (baseline / "revision.txt").read_text().strip() == prov["revision"]
    assert prov["params"]["steps"] == 0 and prov["params"]["recipe"]["lora"] is None  # untrained, no adapters
    assert st.prompts["query"].startswith("Instruct: ")  # the embedders' default query prompt


def test_baseline_scores_offline_and_differs_from_the_trained_embedder(baseline, tiny_backbone, repo, tmp_path):
    """The baseline goes through `hrsa evaluate` like an embedder; a few contrastive steps change the score."""
    data = tmp_path / "train.jsonl"
    assert main(["make-data", "train", "--config", json.dumps({"builtin": "demo", "n_records": 48, "num_negatives": 2}),
                 "--root", str(repo), "--out", str(data)]) == 0
    recipe = {**SHAPE, "batch_size": 8, "mini_batch_size": 4, "max_steps": 4, "save_steps": 2, "learning_rate": 1e-3}
    embedder = tmp_path / "t.base-E.s0"
    assert main(["train", "--backbone", str(tiny_backbone), "--data", str(data), "--seed", "0", "--config",
                 json.dumps(recipe), "--num-negatives", "2",
                 "--checkpoints", str(tmp_path / "ckpt"), "--model-id", "t.base-E.s0",
                 "--device", "cpu", "--out", str(embedder)]) == 0
    scores = {}
    for model, path in (("t.base", baseline), ("t.base-E.s0", embedder)):
        out = tmp_path / "eval" / model / "HrsaLee50.json"
        assert main(["evaluate", "--model", str(path), "--task", "HrsaLee50", "--model-name", f"hrsa/{model}",
                     "--revision", (path / "revision.txt").read_text().strip(), "--cache", str(tmp_path / "mteb"),
                     "--config", json.dumps({"instructions": "task"}), "--device", "cpu", "--out", str(out)]) == 0
        result = json.loads(out.read_text())["results"]["HrsaLee50"]
        assert result["query_prompt"].startswith("Instruct: ")  # the task's own instruction, as for embedders
        scores[model] = result["main_score"]
    assert all(-1.0 <= s <= 1.0 for s in scores.values())
    print("HrsaLee50 main score (Spearman):", scores)
    assert abs(scores["t.base"] - scores["t.base-E.s0"]) > 1e-3, scores
    cached = sorted(p.name for p in (tmp_path / "mteb/results").iterdir())
    assert cached == ["hrsa__t.base", "hrsa__t.base-E.s0"]  # one mteb model per baseline and embedder


def test_a_baseline_of_an_embedder_id_is_refused(tiny_backbone, tmp_path, capsys):
    assert main(["baseline", "--backbone", str(tiny_backbone), "--model-id", "t.base-E.s0",
                 "--out", str(tmp_path / "o")]) == 2
    assert "names an embedder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _dry_run(tmp_path: Path, baseline: bool) -> str:
    cfg = demo_config()
    cfg["evaluation"]["baseline"] = baseline
    return dry_run(tmp_path, write_config(tmp_path, cfg, f"baseline-{baseline}.yaml")).stdout


def test_dry_run_lists_baseline_jobs_only_when_switched_on(repo, tmp_path):
    out = _dry_run(tmp_path, True)
    off, on = job_counts(_dry_run(tmp_path, False)), job_counts(out)
    # one evaluate job per model scores its 5 local tasks (one task group): 3 roles x 2 seeds, then + 3 baselines
    assert "baseline_embedder" not in off and off["evaluate"] == 6
    assert on["baseline_embedder"] == 3 and on["evaluate"] == 6 + 3
    assert {k: v for k, v in on.items() if k not in ("baseline_embedder", "evaluate")} == {
        k: v for k, v in off.items() if k != "evaluate"}
    job = out[out.index("output: results/eval/tiny.reason/groups/tasks-saved-0.json") - 300:]
    assert "input: results/baselines/tiny.reason" in job.split("output:")[0]
