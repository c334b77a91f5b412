"""The schema is the one source of defaults: every verb run without config flags uses the schema's values, read here
straight from the YAML file (not through hrsa.schema), and no settings class or flag keeps a copy of its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from hrsa.cli import build_parser
from hrsa.commands.options import config_of

SCHEMA = Path(__file__).resolve().parents[1] / "src/hrsa/config.schema.yaml"


def yaml_default(dpath: str) -> Any:
    """The default of a config key as the schema file writes it (`*` steps into list items)."""
    node: Any = yaml.safe_load(SCHEMA.read_text())
    for part in dpath.split("/"):
        node = node["items"] if part == "*" else node["properties"][part]
    return node["default"]


def parsed(verb: str, *argv: str) -> Any:
    return build_parser(only=verb).parse_args([verb, *argv])


# verb -> (the flags a job must give anyway, {flag dest: config key it mirrors})
FLAG_VERBS = {
    "mine": (["--data", "d.jsonl", "--out", "o.jsonl"],
             {"model": "training_data/mine/model", "num_negatives": "training_data/num_negatives",
              "relative_margin": "training_data/mine/relative_margin", "range_max": "training_data/mine/range_max",
              "device": "resources/device"}),
    "extract": (["--model", "m", "--model-id", "t.base", "--probe", "p.jsonl", "--layers", "0", "--out", "o"],
                {"dtype": "activation_dtype", "batch_size": "activations/batch_size",
                 "shard_rows": "activations/shard_rows", "compression": "activations/compression",
                 "attention": "activations/attention", "device": "resources/device"}),
}


@pytest.mark.parametrize("verb", sorted(FLAG_VERBS))
def test_flags_that_mirror_config_keys_default_to_the_schema(verb: str) -> None:
    argv, keys = FLAG_VERBS[verb]
    args = parsed(verb, *argv)
    for dest, dpath in keys.items():
        assert getattr(args, dest) == yaml_default(dpath), (verb, dest)


def _recipe_settings(verb: str, args: Any) -> Any:
    from hrsa.backbones.pretrain import PretrainSettings
    from hrsa.backbones.rlvr import RlvrSettings
    from hrsa.backbones.sft import SftSettings

    if verb == "pretrain":
        return PretrainSettings.from_config(config_of(args))
    cls = RlvrSettings if verb == "rlvr" else SftSettings
    return cls.from_config(config_of(args), args.trust_remote_code)


@pytest.mark.parametrize("verb,argv", [("pretrain", ["--corpus", "c", "--out", "o"]),
                                       ("rlvr", ["--model", "m", "--out", "o"]),
                                       ("sft", ["--model", "m", "--out", "o"])])
def test_recipe_verbs_without_config_use_the_schema(verb: str, argv: list[str]) -> None:
    settings = _recipe_settings(verb, parsed(verb, *argv))
    for field in dataclasses.fields(settings):
        if field.name == "trust_remote_code":  # the pair's flag, not a recipe key
            assert settings.trust_remote_code is False
            continue
        expected = yaml_default(f"recipes/{verb}/{field.name}")
        if field.name in ("problems", "data"):  # no source given: the generated arithmetic
            assert expected in ({}, "") and getattr(settings, field.name) is None
        else:
            assert getattr(settings, field.name) == expected, field.name
    assert not any(f.default is not dataclasses.MISSING for f in dataclasses.fields(settings)
                   if f.name != "trust_remote_code"), "a settings class keeps a default of its own"


def test_rlvr_learning_rate_is_the_schemas() -> None:
    """The three copies that disagreed (schema 1e-3, RlvrSettings 2e-4) are one: the schema's 2e-4."""
    settings = _recipe_settings("rlvr", parsed("rlvr", "--model", "m", "--out", "o"))
    assert settings.lr == yaml_default("recipes/rlvr/lr") == 2e-4


def test_make_data_fills_a_probe_entry_from_the_schema(repo: Path, tmp_path: Path) -> None:
    """`make-data probe` with only a source: n_texts, seed... from the schema (256 texts of milton-lines)."""
    import json

    from hrsa.cli import main

    out = tmp_path / "p.jsonl"
    assert main(["make-data", "probe", "--config", json.dumps({"builtin": "milton-lines"}), "--root", str(repo),
                 "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == yaml_default("probes/*/n_texts") == 256


def _flat_defaults(dpath: str) -> dict[str, Any]:
    """Every key of a config object with the default its schema file writes (objects as dicts of theirs)."""
    node: Any = yaml.safe_load(SCHEMA.read_text())
    for part in dpath.split("/"):
        node = node["properties"][part]
    out = {}
    for key, sub in node["properties"].items():
        if sub.get("type") == "object" and "properties" in sub:
            out[key] = _flat_defaults(f"{dpath}/{key}")
        elif "default" in sub:
            out[key] = sub["default"]
    return out


def test_train_without_config_trains_the_schemas_recipe() -> None:
    from hrsa.train import Recipe

    args = parsed("train", "--backbone", "b", "--data", "d.jsonl", "--seed", "0", "--checkpoints", "c",
                  "--model-id", "t.base-E.s0", "--out", "o")
    recipe = Recipe.from_config(config_of(args), args.num_negatives)
    expected = _flat_defaults("training")
    assert expected.pop("lora")["enabled"] is False and recipe.lora is None  # LoRA off: full fine-tuning
    for key, value in expected.items():
        assert getattr(recipe, key) == value, key
    assert recipe.num_negatives == yaml_default("training_data/num_negatives")


@pytest.mark.parametrize("verb,argv,dpath", [
    ("compare", ["--left", "l", "--right", "r", "--knn-left", "a", "--knn-right", "b", "--comparison", "t.base~reason",
                 "--out", "o"], "hrsa"),
    ("report", ["--hrsa", "h.parquet", "--eval-dir", "e", "--out", "o"], "report"),
])
def test_analysis_verbs_without_config_use_the_schema(verb: str, argv: list[str], dpath: str) -> None:
    from hrsa.compare.plan import settings_of as compare_settings
    from hrsa.report.build import settings_of as report_settings

    settings = {"compare": compare_settings, "report": report_settings}[verb](config_of(parsed(verb, *argv)))
    assert settings == _flat_defaults(dpath)


def test_knn_and_evaluate_fill_their_slices_from_the_schema() -> None:
    from hrsa.metrics.registry import graph_k
    from hrsa.schema import with_defaults

    knn = with_defaults("hrsa", config_of(parsed("knn", "--activations", "a", "--out-dir", "o", "--layers", "0")))
    assert knn["knn_k"] == yaml_default("hrsa/knn_k") and graph_k(knn["knn_k"]) == max(yaml_default("hrsa/knn_k"))
    evaluation = with_defaults("evaluation", config_of(parsed("evaluate", "--model", "m", "--task", "t",
                                                              "--model-name", "a/b", "--revision", "r",
                                                              "--cache", "c", "--out", "o.json")))
    assert evaluation["instructions"] == yaml_default("evaluation/instructions") == "task"
    assert evaluation["batch_size"] == yaml_default("evaluation/batch_size")


def test_health_fills_its_slice_from_the_schema() -> None:
    from hrsa.backbones.health import settings_of

    settings = settings_of(config_of(parsed("health", "--model", "m", "--out", "o.json")))
    assert settings["problems"] == yaml_default("siblings/problems") and settings["min_gain"] is None
    assert [s["builtin"] for s in settings["sets"]] == ["arithmetic"]


def test_every_verb_is_covered() -> None:
    """A verb added later must join one of the tests above."""
    from hrsa.cli import COMMANDS

    covered = {"pretrain", "rlvr", "sft", "mine", "extract", "make-data", "train", "compare", "report", "knn",
               "evaluate", "download", "baseline", "health"}
    # `cost` has no config slice: it reads whole config files through Snakemake's DAG (schema defaults included);
    # `pairwise` writes a whole config and runs the DAG; `figures` (report slice) is checked in test_pairwise
    assert set(COMMANDS) == covered | {"cost", "pairwise", "figures"}
