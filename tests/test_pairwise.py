"""`hrsa pairwise`: HRSA of two models on a text file through the workflow's rules (extract, kNN, compare, figures),
on the suite's tiny backbones; bad inputs are one line before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hrsa.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sibling(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny backbone with perturbed weights (same architecture and tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_backbone)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out = tmp_path_factory.mktemp("sibling")
    model.save_pretrained(out)
    for f in tiny_backbone.glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hrsa.corpus import read_corpus

    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(read_corpus(REPO / "data/corpus/milton")[:40]) + "\n")
    return path


def test_two_models_give_the_table_and_figures(tiny_backbone, sibling, texts, tmp_path, capsys):
    out = tmp_path / "run"
    settings = {"bootstrap": 20, "blocks": 5, "permutations": 2, "knn_k": [3]}
    assert main(["pairwise", str(tiny_backbone), str(sibling), "--texts", str(texts), "--out", str(out),
                 "--max-length", "16", "--config", json.dumps(settings), "--cores", "1"]) == 0
    table = pd.read_parquet(out / "results/hrsa/texts/pairwise.base~reason.parquet")
    assert table.layer_x.dtype == "int64" and set(table.probe) == {"texts"}  # --probe-name from the rule
    diag = table[(table.layer_x == table.layer_y) & (table.metric == "cka-linear-biased")]
    assert sorted(diag.layer_x) == [0, 1, 2]  # a 2-block model: hidden states 0..2 (token probe: no pooled)
    assert diag.value.between(0, 1 + 1e-6).all() and (diag.ci_method != "none").all()
    figures = out / "results/hrsa/texts/pairwise.base~reason.figures"
    for name in ("curves.png", "cka_layers.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tab = pd.read_csv(figures / "table.tsv", sep="\t", dtype=str)
    assert tab.layer.tolist() == ["0", "1", "2"] and "cka-linear-biased" in tab  # the schema's headline metrics
    page = (figures / "index.md").read_text()
    assert str(tiny_backbone) in page and "probe `texts`" in page and "block bootstrap" in page
    config = (out / "config.yaml").read_text()
    assert "evaluation" in config and "tasks: []" in config  # no training, no evaluation
    assert "figures:" in capsys.readouterr().out


def _error(capsys, *argv: str) -> str:
    assert main(["pairwise", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_are_one_line_before_anything_runs(tiny_backbone, sibling, texts, tmp_path, capsys):
    out = tmp_path / "run"
    err = _error(capsys, str(tiny_backbone), str(sibling), "--texts", str(tmp_path / "missing.txt"), "--out", str(out))
    assert "missing.txt: no such file" in err
    err = _error(capsys, str(tiny_backbone), str(tmp_path / "nope"), "--texts", str(texts), "--out", str(out))
    assert "MODEL_B" in err and "no such model directory" in err
    wide = tmp_path / "wide"
    shutil.copytree(sibling, wide)
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "hidden_size": 64}))
    err = _error(capsys, str(tiny_backbone), str(wide), "--texts", str(texts), "--out", str(out))
    assert "differ in width (hidden_size) (32 vs 64)" in err
    deep = tmp_path / "deep"
    shutil.copytree(sibling, deep)
    (deep / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    assert "differ in depth" in _error(capsys, str(tiny_backbone), str(deep), "--texts", str(texts), "--out", str(out))
    other = tmp_path / "other-tokenizer"
    shutil.copytree(sibling, other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["zz-not-in-the-other"] = vocab.pop(next(iter(vocab)))
    (other / "tokenizer.json").write_text(json.dumps(tok))
    assert "differ in tokenizer vocabulary" in _error(capsys, str(tiny_backbone), str(other), "--texts", str(texts),
                                                              "--out", str(out))
    err = _error(capsys, str(tiny_backbone), str(sibling), "--texts", str(texts), "--out", str(out), "--layers", "0,x")
    assert "--layers" in err
    err = _error(capsys, str(tiny_backbone), str(sibling), "--texts", str(texts), "--out", str(out), "--layers", "7")
    assert "layers" in err  # beyond the models' depth (2 blocks), from the config checks
    assert not (out / "config.yaml").exists() and not (out / "results").exists()  # nothing ran
