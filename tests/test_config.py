"""Config validation (schema + Study) and grid expansion, without running Snakemake."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate

from hrsa.errors import ConfigError
from hrsa.grid import Study, model_id, parse_model_id


@pytest.fixture()
def config(repo):
    return yaml.safe_load((repo / "config/config.yaml").read_text())


def validated(cfg, repo):
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(repo / "src/hrsa/config.schema.yaml"))
    return cfg


def test_default_grid(config, repo):
    study = Study(validated(config, repo), root=repo)
    assert list(study.pairs) == ["tiny"]
    assert study.num_layers == {"tiny": 4}
    assert study.layers("tiny") == ["0", "1", "2", "3", "4", "pooled"]
    assert study.layers("tiny", "prose") == ["0", "1", "2", "3", "4"]  # token level: no pooled
    assert study.embedder_models() == [model_id("tiny", f"{r}-E", s) for r in ("base", "reason", "sft") for s in (0, 1)]
    names = [c.name for c in study.comparisons]
    assert "tiny.base~reason" in names and "tiny.base-E~reason-E.s1" in names
    # 3 backbone-only comparisons (one with the RL run's kept step 20) + 4 per-seed kinds x 2 seeds + 2 noise floors
    # x 1 pair of seeds
    assert len(names) == 3 + 4 * 2 + 2
    assert "tiny.base-E~base-E.s0-s1" in names and "tiny.reason-E~reason-E.s0-s1" in names
    assert study.comparison("tiny.base~base-E.s0").model("right") == "tiny.base-E.s0"


def test_model_id_round_trip():
    assert parse_model_id("p.reason-E.s3") == ("p", "reason", 3)
    assert parse_model_id(model_id("p", "base")) == ("p", "base", None)
    with pytest.raises(ConfigError, match="not a model id"):
        parse_model_id("p.teacher")


def test_schema_rejects_typo(config, repo):
    config["seedz"] = [0]
    with pytest.raises(Exception, match="seedz"):
        validated(config, repo)


def test_schema_rejects_unsafe_pair_name(config, repo):
    config["pairs"][0]["name"] = "../evil"
    with pytest.raises(Exception, match="evil"):
        validated(config, repo)


def test_schema_fills_defaults(config, repo):
    del config["hrsa"]
    cfg = validated(config, repo)
    assert cfg["hrsa"]["knn_k"] == [5, 10, 50]


def test_duplicate_pair_name(config, repo):
    config["pairs"].append(copy.deepcopy(config["pairs"][0]))
    with pytest.raises(ConfigError, match=r"pairs\[1\]\.name: duplicate pair name 'tiny'"):
        Study(validated(config, repo), root=repo)


def test_unsafe_name_without_schema(config, repo):
    config["pairs"][0]["name"] = "a/b"
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.name"):
        Study(config, root=repo)


def test_layer_out_of_range(config, repo):
    config["layers"] = [0, 2, 9]
    with pytest.raises(ConfigError, match=r"layers: 9 is out of range for pair 'tiny' \(hidden states 0\.\.4"):
        Study(validated(config, repo), root=repo)


def test_layer_list(config, repo):
    config["layers"] = [0, 4, "pooled"]
    study = Study(validated(config, repo), root=repo)
    assert study.layers("tiny", "works") == ["0", "4", "pooled"]
    assert study.layers("tiny", "prose") == ["0", "4"]


def test_recipe_from_unknown_role(config, repo):
    del config["pairs"][0]["sft"]
    config["pairs"][0]["reason"] = {"recipe": "rlvr", "from": "sft"}
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.reason\.from: role 'sft' is not defined"):
        Study(validated(config, repo), root=repo)


def test_hub_id_needs_num_layers(config, repo):
    config["pairs"] = [{"name": "q", "base": "Qwen/Not-A-Real-Model", "reason": "org/other"}]
    config["comparisons"] = ["base~reason", "base-E~reason-E"]  # a comparison that applies to no pair is an error
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.num_layers: required for 'Qwen/Not-A-Real-Model'"):
        Study(validated(config, repo), root=repo)
    config["pairs"][0]["num_layers"] = 28
    study = Study(validated(config, repo), root=repo)
    assert study.layers("q")[-2:] == ["28", "pooled"]
    assert study.backbone_path(study.backbone("q", "base")) == "Qwen/Not-A-Real-Model"


def test_bad_comparison(config, repo):
    config["comparisons"] = ["base~base"]
    with pytest.raises(ConfigError, match="compares a model with itself"):
        Study(validated(config, repo), root=repo)


def test_probe_needs_one_source(config, repo):
    config["probes"][0]["path"] = "data/x.jsonl"
    with pytest.raises(ConfigError, match=r"probes\[0\]: give exactly one of builtin, path, hf"):
        Study(validated(config, repo), root=repo)


def test_paper_config(repo):
    cfg = validated(yaml.safe_load((repo / "config/paper.yaml").read_text()), repo)
    study = Study(cfg, root=repo)
    assert study.seeds == [0, 1, 2]
    assert study.num_layers == {"qwen25-1b5": 28, "qwen3-0b6": 28, "qwen3-0b6-post": 28}
    assert len(study.layers("qwen25-1b5")) == 30  # hidden states 0..28 plus pooled
    built = study.built_backbones()
    assert [(b.pair, b.role, b.recipe, b.parent) for b in built] == [
        ("qwen3-0b6", "reason", "rlvr", "base"), ("qwen3-0b6", "sft", "sft", "base")]
    rlvr, sft = (study.recipe_options(b) for b in built)
    # SimpleRL-Zoo's Qwen-small settings (hkust-nlp/simpleRL-reason README + train_grpo_math_tune_ray.sh)
    assert rlvr["steps"] == 400 and rlvr["lr"] == 5e-7 and rlvr["num_generations"] == 8
    assert rlvr["beta"] == 1e-4 and rlvr["entropy_coef"] == 1e-3 and rlvr["max_completion_length"] == 8192
    assert rlvr["prompts_per_step"] * rlvr["updates_per_rollout"] == 1024  # train_batch_size, in 4 mini-batches
    assert rlvr["temperature"] == 1.0 and rlvr["save_steps"] > 0
    assert rlvr["problems"] == sft["problems"] and rlvr["problems"]["levels"] == [3, 4, 5]  # same problems: MATH 3-5


def test_pair_training_overrides_only_its_keys(config, repo):
    config["training"]["lora"] = {"enabled": True, "r": 4}
    config["pairs"].append({"name": "other", "base": {"recipe": "pretrain"},
                            "training": {"learning_rate": 1e-4, "lora": {"r": 8}}})
    study = Study(validated(config, repo), root=repo)
    tiny, other = study.training("tiny"), study.training("other")
    assert other["learning_rate"] == 1e-4 and tiny["learning_rate"] == config["training"]["learning_rate"]
    # global keys and schema defaults reach the pair; the pair's lora is merged key by key
    assert other["max_steps"] == tiny["max_steps"] and other["temperature"] == 0.02
    assert other["lora"]["enabled"] is True and other["lora"]["r"] == 8 and tiny["lora"]["r"] == 4


def test_pair_training_rejects_unknown_or_bad_keys(config, repo):
    config["pairs"][0]["training"] = {"learning_rat": 1e-4}
    with pytest.raises(Exception, match="learning_rat"):
        validated(config, repo)
    config["pairs"][0]["training"] = {"attention": "sideways"}
    with pytest.raises(Exception, match="sideways"):
        validated(config, repo)
