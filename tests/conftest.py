"""Shared fixtures: a tiny randomly initialised Qwen2 backbone with a BPE tokenizer trained on the bundled corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide Qwen2ForCausalLM (random weights) and its tokenizer, saved like a published backbone."""
    import torch

    from hrsa.backbones.pretrain import PretrainSettings, build_model
    from hrsa.backbones.tokenizer import train_tokenizer
    from hrsa.corpus import read_corpus

    torch.set_num_threads(1)
    texts = read_corpus(REPO / "data/corpus/milton")[:2000]
    tok = train_tokenizer(texts, vocab_size=512)
    settings = PretrainSettings.from_config(dict(vocab_size=512, hidden_size=32, num_layers=2, num_heads=2,
                                                 num_kv_heads=1, intermediate_size=64, seed=0))
    model = build_model(settings, tok)
    out = tmp_path_factory.mktemp("tiny-backbone")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, repo: Path) -> Path:
    """240 Milton lines as a probe set (make-data probe), shared by the extraction and artefact tests."""
    import json

    from hrsa.cli import main

    out = tmp_path_factory.mktemp("probe") / "lines.jsonl"
    spec = {"builtin": "milton-lines", "n_texts": 240}
    assert main(["make-data", "probe", "--config", json.dumps(spec), "--root", str(repo), "--out", str(out)]) == 0
    return out
