"""Bidirectional attention (config.is_causal = False) takes effect in every decoder family the config may name, under
SDPA and eager attention, with and without padding; a family or implementation where it does not is refused when the
DAG is built, naming both."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
import transformers as tf
import yaml
from snakemake.utils import validate

from hrsa.embedder import set_attention
from hrsa.errors import ConfigError, HrsaError
from hrsa.grid import Study
from hrsa.grid.attention import BIDIRECTIONAL, check_bidirectional

FAMILIES = {
    "qwen2": tf.Qwen2Config, "qwen3": tf.Qwen3Config, "llama": tf.LlamaConfig, "mistral": tf.MistralConfig,
    "gemma2": tf.Gemma2Config, "gemma3_text": tf.Gemma3TextConfig, "phi3": tf.Phi3Config, "olmo2": tf.Olmo2Config,
}
TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
            eos_token_id=2)
CASES = [(family, impl) for family in FAMILIES for impl in ("sdpa", "eager")]
PAD = 0


def tiny(family: str, impl: str):
    torch.manual_seed(0)
    return tf.AutoModel.from_config(FAMILIES[family](**TINY), attn_implementation=impl).eval()


def first_token_shift(model, padding: str, change: int) -> float:
    """Change the token `change` places after the first real one of a 4-token text (padded to 6 on the given side,
    beside an unpadded 6-token text) and return how much the first real token's output moved."""
    real = [5, 6, 7, 8]
    pad = {"none": ([], []), "right": ([], [PAD, PAD]), "left": ([PAD, PAD], [])}[padding]
    row = pad[0] + real + pad[1]
    first = len(pad[0])
    other = row.copy()
    other[first + change] = 11 if other[first + change] != PAD else 12  # a later token, or a pad token (change < 0)
    mask = [0 if i < first or i >= first + len(real) else 1 for i in range(len(row))]
    full = [9, 10, 11, 12, 13, 14]
    with torch.no_grad():
        out = [model(input_ids=torch.tensor([full, ids] if padding != "none" else [ids]),
                     attention_mask=torch.tensor([[1] * 6, mask] if padding != "none" else [mask])).last_hidden_state
               for ids in (row, other)]
    i = 1 if padding != "none" else 0
    return float((out[0][i, first] - out[1][i, first]).abs().max())


def test_the_verified_table_is_what_this_file_checks():
    verified = {(f, i) for f, impls in BIDIRECTIONAL.items() for i in impls}
    assert verified == set(CASES) - {("gemma2", "sdpa")}


@pytest.mark.parametrize(("family", "impl"), CASES)
def test_bidirectional_attention_is_bidirectional(family, impl):
    try:
        model = tiny(family, impl)
    except ValueError as exc:  # transformers itself refuses the implementation for this family
        assert (family, impl) == ("gemma2", "sdpa"), exc
        with pytest.raises(ConfigError, match="'gemma2'.*'sdpa'"):
            check_bidirectional(family, impl, "t")
        return
    assert model.config._attn_implementation == impl
    assert set_attention(model, "causal") == "causal"
    for padding in ("none", "right", "left"):  # the test can fail: causal, token 0 never sees a later token
        assert first_token_shift(model, padding, 3) == 0.0
    assert set_attention(model, "bidirectional") == "bidirectional"
    for padding in ("none", "right", "left"):
        assert first_token_shift(model, padding, 3) > 1e-3, padding  # it sees the last real token
        assert first_token_shift(model, padding, 2) > 1e-3, padding
    for padding in ("right", "left"):  # and padding stays masked: a pad token's id changes nothing
        row_change = 4 if padding == "right" else -1
        assert first_token_shift(model, padding, row_change) < 1e-6, padding


def test_flash_attention_and_unknown_families_are_refused_at_load():
    model = tiny("qwen2", "eager")
    model.config._attn_implementation = "flash_attention_2"  # takes its causal flag from the modules: stays causal
    with pytest.raises(HrsaError, match="'qwen2'.*'flash_attention_2'"):
        set_attention(model, "bidirectional")
    with pytest.raises(ConfigError, match="'gpt2'"):
        check_bidirectional("gpt2", "sdpa", "t")


@pytest.mark.parametrize(("edit", "pattern"), [
    ({"_attn_implementation": "flash_attention_2"}, r"pairs\[0\]\.base .*'qwen2'.*'flash_attention_2'"),
    ({"model_type": "gpt_neox"}, r"pairs\[0\]\.base .*'gpt_neox'.*'sdpa'"),
    ({"model_type": "gemma2"}, None),  # eager by default: verified
])
def test_unverified_families_are_refused_when_the_dag_is_built(tmp_path, repo, tiny_backbone, edit, pattern):
    local = tmp_path / "bb"
    shutil.copytree(tiny_backbone, local)
    cfg_json = json.loads((local / "config.json").read_text())
    (local / "config.json").write_text(json.dumps({**cfg_json, **edit}))
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config["pairs"] = [{"name": "t", "base": str(local), "reason": str(local)}]
    config["comparisons"] = ["base~reason", "base-E~reason-E"]
    validate(config, str(repo / "src/hrsa/config.schema.yaml"))
    if pattern is None:
        Study(copy.deepcopy(config), root=repo)
        return
    with pytest.raises(ConfigError, match=pattern):
        Study(copy.deepcopy(config), root=repo)
    causal = {**config, "training": {**config.get("training", {}), "attention": "causal"},
              "activations": {**config.get("activations", {}), "attention": "causal"}}
    Study(causal, root=repo)  # causal everywhere: nothing to refuse
