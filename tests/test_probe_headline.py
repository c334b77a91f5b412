"""The headline probe is the study's: each model's encode() output (L2-normalised), StandardScaler +
LogisticRegression fitted on the source's train split (0.8/0.1/0.1, seed 42) and applied unchanged to the target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hrsa.cli import main


def _perturbed(backbone: Path, out: Path) -> Path:
    """The backbone with every weight moved a little: a sibling that shares the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(backbone)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * p.std() * torch.randn(p.shape, generator=gen))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(backbone).save_pretrained(out)
    return out


def test_headline_probe_equals_sklearn_on_encode_outputs(tiny_backbone, repo, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hrsa.metrics.probe import split_indices

    probe = tmp_path / "works.jsonl"
    spec = {"builtin": "milton-works", "n_texts": 240}
    assert main(["make-data", "probe", "--config", json.dumps(spec), "--root", str(repo), "--out", str(probe)]) == 0
    rows = [json.loads(x) for x in probe.read_text().splitlines()]
    texts, labels = [r["text"] for r in rows], np.array([r["label"] for r in rows])
    models = {"base": tiny_backbone, "reason": _perturbed(tiny_backbone, tmp_path / "reason")}
    shape = {"attention": "bidirectional", "pooling": "mean", "max_length": 64}
    feats = {}
    for role, path in models.items():
        acts, graphs, st = tmp_path / "acts" / role, tmp_path / "knn" / role, tmp_path / "st" / role
        assert main(["extract", "--model", str(path), "--model-id", f"t.{role}", "--probe", str(probe),
                     "--config", json.dumps({"granularity": "sentence", "max_length": 64}), "--layers", "pooled",
                     "--dtype", "float32", "--device", "cpu", "--out", str(acts)]) == 0
        assert main(["knn", "--activations", str(acts), "--layer", "pooled", "--config",
                     json.dumps({"knn_k": [5]}), "--out", str(graphs / "layer=pooled.npz")]) == 0
        # the raw backbone as SentenceTransformer: mean pooling of its last hidden state, normalised
        assert main(["baseline", "--backbone", str(path), "--config", json.dumps(shape), "--model-id", f"t.{role}",
                     "--out", str(st)]) == 0
        feats[role] = SentenceTransformer(str(st), device="cpu").encode(texts, normalize_embeddings=True)
    out = tmp_path / "t.base~reason.parquet"
    assert main(["compare", "--left", str(tmp_path / "acts/base"), "--right", str(tmp_path / "acts/reason"),
                 "--knn-left", str(tmp_path / "knn/base"), "--knn-right", str(tmp_path / "knn/reason"),
                 "--probe", str(probe), "--config", json.dumps({"knn_k": [5], "bootstrap": 0, "permutations": 0}),
                 "--comparison", "t.base~reason", "--out", str(out)]) == 0
    got = pd.read_parquet(out).query("layer_x_name == 'pooled'").set_index("metric")["value"]

    train, _, test = split_indices(labels, seed=42)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=42))
    pipe.fit(feats["base"][train], labels[train])
    want = {"source": accuracy_score(labels[test], pipe.predict(feats["base"][test])),
            "target": accuracy_score(labels[test], pipe.predict(feats["reason"][test]))}
    assert got["probe-transfer-source-accuracy"] == want["source"]
    assert got["probe-transfer-target-accuracy"] == want["target"]
