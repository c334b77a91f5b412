"""Config errors that used to pass silently (issue 10 items 3, 4, 7, 9, 12) and the noise-floor comparisons (issue 11).

Study is exercised directly; the DAG-time wiring (notes on stderr, noise-floor jobs, recipe flags) by one dry run.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from hrsa.cli import main as hrsa_main
from hrsa.errors import ConfigError
from hrsa.grid import RECIPE_FLAGS, SAFE_NAME, Study, parse_comparison

SCHEMA = "src/hrsa/config.schema.yaml"


@pytest.fixture()
def config(repo):
    return yaml.safe_load((repo / "config/config.yaml").read_text())


def validated(cfg, repo):
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(repo / SCHEMA))
    return cfg


def published(root: Path, name: str, depth: int = 4, width: int = 32, vocab: dict | None = None) -> str:
    """A local 'published' backbone directory holding only config.json and tokenizer.json (no weights needed)."""
    d = root / name
    d.mkdir()
    config = {"model_type": "qwen2", "num_hidden_layers": depth, "hidden_size": width}
    (d / "config.json").write_text(json.dumps(config))
    vocab = {"a": 0, "b": 1} if vocab is None else vocab
    (d / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab, "merges": []},
                                                 "added_tokens": [{"id": 2, "content": "<|eos|>"}]}))
    return f"./{name}"


def local_pair(config, **roles):
    config["pairs"] = [{"name": "loc", **roles}]
    config["comparisons"] = ["base~reason", "base-E~reason-E"]
    return config


# ---- item 4: depth comes from the model; num_layers may not contradict it ----------------------------------------
def test_num_layers_contradicting_the_recipe_depth_is_an_error(config, repo):
    config["pairs"][0]["num_layers"] = 2  # the pretrain recipe builds 4 blocks: `layers: all` would stop at 2
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.num_layers: 2 contradicts the base model, which has 4 blocks "
                                          r"\(pretrain recipe of tiny\.base\)"):
        Study(validated(config, repo), root=repo)
    config["pairs"][0]["num_layers"] = 4  # agreeing is fine
    assert Study(validated(config, repo), root=repo).num_layers == {"tiny": 4}


def test_role_override_sets_the_depth_and_siblings_inherit_it(config, repo):
    config["pairs"][0]["base"] = {"recipe": "pretrain", "num_layers": 6}
    study = Study(validated(config, repo), root=repo)
    assert study.num_layers == {"tiny": 6}
    assert study.layers("tiny")[-2:] == ["6", "pooled"]
    assert study.unchecked == []  # siblings built from the base share its depth, width and tokenizer by construction


def test_roles_of_different_depth_are_an_error(config, repo):
    config["pairs"][0]["reason"] = {"recipe": "pretrain", "num_layers": 6}  # base keeps the recipe's 4
    with pytest.raises(ConfigError, match=r"pairs\[0\]: the roles of pair 'tiny' differ in depth .*base 4 .*reason 6"):
        Study(validated(config, repo), root=repo)


def test_published_depth_is_read_from_config_json_and_checked(config, repo, tmp_path):
    local_pair(config, base=published(tmp_path, "b", depth=3), reason=published(tmp_path, "r", depth=3))
    study = Study(validated(config, repo), root=tmp_path)
    assert study.num_layers == {"loc": 3} and study.unchecked == []
    config["pairs"][0]["reason"] = published(tmp_path, "deeper", depth=5)
    with pytest.raises(ConfigError, match=r"differ in depth \(num_hidden_layers\): base 3 .*reason 5"):
        Study(validated(config, repo), root=tmp_path)


def test_num_layers_contradicting_any_role_is_an_error(config, repo, tmp_path):
    # the base is a hub id nobody has cached; the reason's config.json says 5 blocks
    local_pair(config, base="org/not-cached-anywhere", reason=published(tmp_path, "r", depth=5), num_layers=28)
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.num_layers: 28 contradicts the reason model, which has 5"):
        Study(validated(config, repo), root=tmp_path)


def test_hub_cache_config_is_read_offline(config, repo, tmp_path, monkeypatch):
    import huggingface_hub.constants

    snap = tmp_path / "hub/models--org--cached/snapshots/0123abcd"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"num_hidden_layers": 24, "hidden_size": 64}))
    (tmp_path / "hub/models--org--cached/refs").mkdir()
    (tmp_path / "hub/models--org--cached/refs/main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    local_pair(config, base="org/cached", reason={"recipe": "rlvr", "from": "base"})
    assert Study(validated(config, repo), root=tmp_path).num_layers == {"loc": 24}  # no num_layers needed
    config["pairs"][0]["num_layers"] = 28
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.num_layers: 28 contradicts the base model, which has 24"):
        Study(validated(config, repo), root=tmp_path)


def test_missing_local_path_is_named(config, repo, tmp_path):
    local_pair(config, base="./no/such/model", reason="org/other")
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.base: local path './no/such/model' does not exist"):
        Study(validated(config, repo), root=tmp_path)


# ---- item 12: widths and tokenizers at DAG time; an empty probe at make-data ------------------------------------
def test_roles_of_different_width_are_an_error(config, repo, tmp_path):
    local_pair(config, base=published(tmp_path, "b", width=32), reason=published(tmp_path, "r", width=64))
    with pytest.raises(ConfigError, match=r"differ in width \(hidden_size\): base 32 .*reason 64"):
        Study(validated(config, repo), root=tmp_path)
    config["pairs"][0]["reason"] = {"recipe": "pretrain", "hidden_size": 64}
    config["pairs"][0]["base"] = {"recipe": "pretrain"}  # the recipe default: 128 wide
    config.setdefault("recipes", {})["pretrain"] = {"corpus": str(repo / "data/corpus/milton")}  # root is tmp_path
    with pytest.raises(ConfigError, match=r"differ in width \(hidden_size\): base 128 .*reason 64"):
        Study(validated(config, repo), root=tmp_path)


def test_roles_with_different_tokenizers_are_an_error(config, repo, tmp_path):
    local_pair(config, base=published(tmp_path, "b"), reason=published(tmp_path, "r", vocab={"a": 0, "c": 1}))
    with pytest.raises(ConfigError, match=r"differ in tokenizer vocabulary"):
        Study(validated(config, repo), root=tmp_path)


def test_what_cannot_be_read_offline_is_noted(repo):
    study = Study(validated(yaml.safe_load((repo / "config/paper.yaml").read_text()), repo), root=repo)
    # the published roles of qwen25 (three) and of qwen3-0b6-post (two) cannot be compared offline; qwen3-0b6's
    # siblings are built from its base
    assert len(study.unchecked) == 2
    assert "pair 'qwen25-1b5'" in study.unchecked[0] and "pair 'qwen3-0b6-post'" in study.unchecked[1]
    assert all("widths" in u and "tokenizers" in u and "hrsa compare" in u for u in study.unchecked)


def test_empty_probe_fails_make_data(tmp_path, repo, capsys):
    out = tmp_path / "few.jsonl"
    spec = {"name": "few", "builtin": "milton-works", "n_texts": 3}  # 3 // 5 works = no text per work
    rc = hrsa_main(["make-data", "probe", "--config", json.dumps(spec), "--root", str(repo), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "probe 'few': no texts: builtin 'milton-works' gave none for n_texts=3" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    spec = {"name": "mine", "path": str(empty), "n_texts": 10}
    rc = hrsa_main(["make-data", "probe", "--config", json.dumps(spec), "--root", str(tmp_path), "--out", str(out)])
    assert rc == 2 and not out.exists()
    assert f"probe 'mine': no texts: {empty} has no rows" in capsys.readouterr().err


# ---- item 7: comparisons, recipe overrides and hf blocks ------------------------------------------------------
def test_comparison_that_applies_to_no_pair_is_an_error(config, repo):
    del config["pairs"][0]["sft"]
    config["comparisons"] = ["base~reason", "base-E~sft-E"]
    with pytest.raises(ConfigError, match=r"comparisons\[1\]: 'base-E~sft-E' applies to no pair"):
        Study(validated(config, repo), root=repo)


def test_comparison_skipped_for_one_pair_is_recorded(repo):
    paper = yaml.safe_load((repo / "config/paper.yaml").read_text())
    del paper["pairs"][1]["sft"]  # a pair without an sft sibling
    study = Study(validated(paper, repo), root=repo)
    skipped = study.skipped_comparisons
    i = paper["comparisons"].index("base~sft")
    assert f"comparisons[{i}] base~sft is skipped for pair 'qwen3-0b6': it has no sft role" in skipped
    mine = [s for s in skipped if "pair 'qwen3-0b6'" in s]
    assert len(mine) == 3  # base~sft, base-E~sft-E, sft~sft-E
    # the drift checkpoints of the pairs whose reason comes from the hub are skipped too, each named
    drift = [s for s in skipped if "reason@" in s]
    assert drift and all("its reason is not built by the rlvr recipe" in s for s in drift)
    assert any(c.name == "qwen25-1b5.base~sft" for c in study.comparisons)
    assert skipped[0] in study.notes()


def test_unknown_recipe_override_key_is_an_error(config, repo):
    config["pairs"][0]["reason"] = {"recipe": "rlvr", "from": "base", "stpes": 10}
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.reason\.stpes: not an option of recipe 'rlvr'"):
        Study(validated(config, repo), root=repo)
    config["pairs"][0]["reason"] = {"recipe": "rlvr", "from": "base", "hidden_size": 64}  # a pretrain-only option
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.reason\.hidden_size: not an option of recipe 'rlvr'"):
        Study(validated(config, repo), root=repo)


def test_unknown_probe_hf_key_is_refused_by_the_schema(config, repo):
    config["probes"][0] = {"name": "p", "hf": {"dataset": "org/set", "text_fild": "body"}}
    with pytest.raises(Exception, match="text_fild"):
        validated(config, repo)


def test_recipe_flags_and_schema_list_the_same_options(repo):
    schema = yaml.safe_load((repo / SCHEMA).read_text())
    for recipe, flags in RECIPE_FLAGS.items():
        assert set(schema["properties"]["recipes"]["properties"][recipe]["properties"]) == set(flags), recipe


# ---- item 9: names anchored at the true end ------------------------------------------------------------------
def test_safe_name_rejects_a_trailing_newline(config, repo):
    assert SAFE_NAME.match("prose") and not SAFE_NAME.match("prose\n") and not SAFE_NAME.search("prose\n")
    config["probes"][0]["name"] = "prose\n"
    with pytest.raises(ConfigError, match=r"probes\[0\]\.name: 'prose\\n' is not safe"):
        Study(config, root=repo)  # no schema: the Study itself must refuse it
    config["probes"][0]["name"] = "prose"
    config["pairs"][0]["name"] = "tiny\n"
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.name"):
        Study(config, root=repo)


def test_mteb_revision_rejects_a_trailing_newline():
    from hrsa.errors import HrsaError
    from hrsa.evaluation.encoder import check_model_id

    check_model_id("hrsa/tiny", "r1")
    with pytest.raises(HrsaError, match="revision"):
        check_model_id("hrsa/tiny", "r1\n")  # the revision becomes a folder name


@pytest.mark.parametrize("where", ["pair", "probe", "comparison"])
def test_schema_patterns_reject_a_trailing_newline(config, repo, where):
    if where == "pair":
        config["pairs"][0]["name"] = "tiny\n"
    elif where == "probe":
        config["probes"][0]["name"] = "prose\n"
    else:
        config["comparisons"][0] = "base~reason\n"
    with pytest.raises(Exception, match="does not match"):
        validated(config, repo)


# ---- issue 10 item 3 (DAG-time part): k below every probe's rows -------------------------------------------
def test_knn_k_above_a_sentence_probe_is_an_error(config, repo):
    config["hrsa"]["knn_k"] = [5, 240]  # `works` has 240 texts, one row each
    with pytest.raises(ConfigError, match=r"hrsa\.knn_k: \[240\] too large for probe 'works' \(probes\[1\]\), which "
                                          r"has at most 240 rows \(n_texts=240, one row per text\)"):
        Study(validated(config, repo), root=repo)
    config["hrsa"]["knn_k"] = [239]
    Study(validated(config, repo), root=repo)


def test_knn_k_above_a_token_probe_is_an_error(config, repo):
    config["hrsa"]["knn_k"] = [5]
    config["probes"][0].update(n_texts=2, max_length=4, max_tokens=0)  # at most 2 texts x 4 tokens
    config["probes"][1]["n_texts"] = 100
    Study(validated(config, repo), root=repo)
    config["hrsa"]["knn_k"] = [8]
    with pytest.raises(ConfigError, match=r"hrsa\.knn_k: \[8\] too large for probe 'prose' .* at most 8 rows "
                                          r"\(n_texts=2 x max_length=4\)"):
        Study(validated(config, repo), root=repo)
    config["probes"][0].update(n_texts=192, max_length=48, max_tokens=6)
    with pytest.raises(ConfigError, match=r"at most 6 rows \(max_tokens=6\)"):
        Study(validated(config, repo), root=repo)


# ---- issue 11: the noise floor --------------------------------------------------------------------------------
def test_noise_floor_compares_every_pair_of_seeds(config, repo):
    config["seeds"] = [2, 0, 1]
    config["comparisons"] = ["base-E~base-E", "base~reason"]
    study = Study(validated(config, repo), root=repo)
    names = [c.name for c in study.comparisons]
    assert names == ["tiny.base-E~base-E.s0-s1", "tiny.base-E~base-E.s0-s2", "tiny.base-E~base-E.s1-s2",
                     "tiny.base~reason"]
    c = study.comparison("tiny.base-E~base-E.s0-s2")
    assert (c.model("left"), c.model("right")) == ("tiny.base-E.s0", "tiny.base-E.s2")
    assert c.kind == "base-E~base-E"
    for c in study.comparisons:
        assert parse_comparison(c.name) == c


def test_noise_floor_needs_two_seeds_and_base_base_stays_an_error(config, repo):
    config["seeds"] = [0]
    config["comparisons"] = ["base~reason", "reason-E~reason-E"]
    study = Study(validated(config, repo), root=repo)  # one seed: the noise floor is skipped, and said so
    assert [c.name for c in study.comparisons] == ["tiny.base~reason"]
    assert any("comparisons[1] reason-E~reason-E (noise floor) is skipped" in n for n in study.notes())
    config["comparisons"] = ["reason-E~reason-E"]
    with pytest.raises(ConfigError, match=r"comparisons: none applies, so no HRSA would run \(comparisons\[0\]"):
        Study(validated(config, repo), root=repo)
    config["seeds"] = [0, 1]
    config["comparisons"] = ["base~base"]
    with pytest.raises(ConfigError, match=r"comparisons\[0\]: 'base~base' compares a model with itself"):
        Study(validated(config, repo), root=repo)


def test_comparison_names_parse_back(repo):
    for name in ("config/config.yaml", "config/paper.yaml"):
        study = Study(validated(yaml.safe_load((repo / name).read_text()), repo), root=repo)
        for c in study.comparisons:
            assert parse_comparison(c.name) == c and re.fullmatch(r"[\w.~@-]+", c.name)
    with pytest.raises(ConfigError, match="not a comparison name"):
        parse_comparison("tiny.base~reason.s0\n")


# ---- DAG-time wiring ------------------------------------------------------------------------------------------
def test_dry_run_prints_skipped_comparisons_and_schedules_noise_floors(tmp_path, repo):
    from smk import snakemake

    cfg = yaml.safe_load((repo / "config/config.yaml").read_text())
    cfg["pairs"].append({"name": "solo", "base": {"recipe": "pretrain", "num_layers": 2},
                         "reason": {"recipe": "rlvr", "from": "base", "steps": 40}})  # keeps step 20 (base~reason@20)
    path = tmp_path / "two-pairs.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "-p", "--configfile", str(path), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if ln.startswith("hrsa config: ")]
    assert "hrsa config: comparisons[2] base~sft is skipped for pair 'solo': it has no sft role" in notes
    assert len(notes) == 2  # base~sft and base-E~sft-E, once each
    assert "results/hrsa/works/solo.reason-E~reason-E.s0-s1.parquet" in out
    assert "results/activations/works/solo.reason-E.s1" in out
    # the role's override reaches the recipe's --config slice
    assert re.search(r"hrsa rlvr .*--model results/backbones/solo\.base --config .*\"steps\": 40[,}]", out)
    assert re.search(r"hrsa pretrain .*--config .*\"num_layers\": 2[,}]", out)
