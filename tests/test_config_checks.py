"""Issue 20 section 2 (config): the whole config is checked when the DAG is built, so no job can fail on a config value.

Study is exercised directly on the validated demo config; the Snakefile-level checks (duplicate keys, NaN after
validate, a bad value refused before Snakemake can touch finished outputs) by real dry runs.
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
from hrsa.grid import Study
from smk import dry_run, write_config

NAN, INF = float("nan"), float("inf")


@pytest.fixture()
def config(repo):
    return yaml.safe_load((repo / "config/config.yaml").read_text())


def study(cfg, repo, root=None):
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(repo / "src/hrsa/config.schema.yaml"))  # as the Snakefile: defaults filled, bounds checked
    return Study(cfg, root=root or repo)


def refused(cfg, repo, pattern, root=None):
    with pytest.raises(ConfigError, match=pattern):
        study(cfg, repo, root)


def probe_file(tmp_path: Path, rows: int, name="p.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps({"text": f"text number {i}", "label": str(i % 2)}) + "\n" for i in range(rows)))
    return path


# ---- finite numbers everywhere -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("dpath", "value"), [
    ("report/equivalence_margin", NAN), ("report/equivalence_margin", INF),
    ("training_data/mine/relative_margin", NAN),
    ("hrsa/max_accumulator_gb", NAN), ("hrsa/max_accumulator_gb", INF),
    ("resources/train/runtime", NAN), ("resources/compare/runtime", INF),
    ("training/learning_rate", NAN),
    ("pairs/0/params_b", NAN), ("pairs/0/params_b", INF),
])
def test_non_finite_numbers_are_refused_naming_the_key(config, repo, dpath, value):
    node = config
    *parents, last = dpath.split("/")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    key = dpath.replace("/0/", "[0].").replace("/", ".")
    refused(config, repo, rf"^{re.escape(key)}: {value} is not a finite number$")


# ---- integers that are integers, seeds in numpy's range -----------------------------------------------------------
def test_a_float_seed_is_not_an_integer(config, repo):
    config["seeds"] = [0, 1.0]  # passes the schema's `integer`, then names the embedder `s1.0`
    refused(config, repo, r"^seeds\[1\]: 1\.0 is not an integer")
    config["seeds"] = [0, 1]
    config["hrsa"]["knn_k"] = [5, 10.0]
    refused(config, repo, r"^hrsa\.knn_k\[1\]: 10\.0 is not an integer")


def test_a_float_layer_is_not_an_integer(config, repo):
    config["layers"] = [1.0, "pooled"]  # a oneOf branch of integers
    refused(config, repo, r"^layers\[0\]: 1\.0 is not an integer")


def test_seeds_beyond_numpys_range_are_refused(config, repo):
    config["seeds"] = [0, 4294967296]
    with pytest.raises(Exception, match="4294967296 is greater than the maximum of 4294967295"):
        study(config, repo)
    config["seeds"] = [0, 4294967295]
    assert study(config, repo).seeds == [0, 4294967295]


# ---- layers, Procrustes layers, probes, comparisons ----------------------------------------------------------------
def test_pooled_only_with_a_token_probe_is_refused(config, repo):
    config["layers"] = ["pooled"]  # `prose` is a token-level probe: no pooled rows
    refused(config, repo, r"^layers: \['pooled'\] leaves no layer for probe 'prose', a token-level probe")
    config["probes"] = [config["probes"][1]]  # `works` is sentence-level: fine
    assert study(config, repo).layers("tiny", "works") == ["pooled"]


def test_procrustes_intervals_name_layers_of_every_pair(config, repo):
    config["hrsa"]["procrustes_intervals"] = ["99"]
    refused(config, repo, r"^hrsa\.procrustes_intervals\[0\]: '99' is not a layer of pair 'tiny' \(layers: 0, 1, 2, "
                          r"3, 4, pooled; or 'last', 'all'\)")
    config["hrsa"]["procrustes_intervals"] = ["2", "last", "pooled"]
    study(config, repo)


def test_no_probes_with_comparisons_is_refused(config, repo):
    config["probes"] = []
    refused(config, repo, r"^probes: empty, so no comparison can run")
    config["comparisons"] = []
    study(config, repo)  # evaluation only: fine


@pytest.mark.parametrize(("written", "canonical"), [("reason~base", "base~reason"),
                                                    ("reason-E~base-E", "base-E~reason-E"),
                                                    ("base-E~base", "base~base-E")])
def test_reversed_comparisons_are_refused_with_the_canonical_order(config, repo, written, canonical):
    config["comparisons"] = [written]
    refused(config, repo, rf"^comparisons: '{written}' is reversed: write '{canonical}'")


# ---- files the config names ----------------------------------------------------------------------------------------
def test_instruction_tables_must_exist_and_parse(config, repo, tmp_path):
    config["evaluation"]["instruction_tables"] = [str(tmp_path / "missing.json")]
    refused(config, repo, r"^evaluation\.instruction_tables\[0\]: cannot read .*missing\.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"HrsaLee50": "Retrieve')  # truncated
    config["evaluation"]["instruction_tables"] = [str(bad)]
    refused(config, repo, r"^evaluation\.instruction_tables\[0\]: .*bad\.json is not valid JSON")
    bad.write_text(json.dumps({"HrsaLee50": {"passage": "only"}}))
    refused(config, repo, r"^evaluation\.instruction_tables\[0\]: .*entry 'HrsaLee50' must be a string")
    bad.write_text(json.dumps({"HrsaLee50": {"query": "Retrieve passages"}}))
    study(config, repo)


def test_a_40_row_probe_file_with_knn_k_50_is_refused(config, repo, tmp_path):
    path = probe_file(tmp_path, 40)
    config["probes"] = [{"name": "small", "path": str(path), "granularity": "sentence"}]  # n_texts: 256 by default
    refused(config, repo, rf"^hrsa\.knn_k: \[50\] too large for probe 'small' \(probes\[0\]\), which has at most 40 "
                          rf"rows \({path} holds 40 texts, one row per text\)")
    config["hrsa"]["knn_k"] = [5, 10, 39]
    study(config, repo)


@pytest.mark.parametrize(("content", "message"), [
    (b'{"text": "ok"}\n\xff\xfe\n', r"is not UTF-8"),
    (b'{"text": "ok"}\n["a", "list"]\n', r"line 2 is not a JSON object"),
    (b'{"text": "ok"}\n{"text": \n', r"line 2 is not valid JSON"),
    (b'{"text": "ok"}\n{"label": "x"}\n', r"record 2 has no text"),
    (b"", r"holds no record"),
])
def test_a_local_probe_file_must_parse(config, repo, tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    config["probes"] = [{"name": "local", "path": str(path)}]
    refused(config, repo, rf"^probes\[0\]\.path: .*{message}")


def test_a_single_class_sentence_probe_is_refused_at_dag_time(config, repo, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": "a"}) + "\n" for i in range(40)))
    config["probes"] = [{"name": "one", "path": str(path), "granularity": "sentence"}]
    config["hrsa"]["knn_k"] = [5]
    refused(config, repo, r"^probes\[0\]\.path: .*one\.jsonl has 1 label class\(es\) \['a'\] after min_class_rows, "
                          r"and probe transfer needs 2 or more")
    config["probes"][0]["path"] = str(probe_file(tmp_path, 40))  # labels 0 and 1, 20 rows each
    study(config, repo)


def test_a_nan_probe_label_is_refused(config, repo, tmp_path):
    path = tmp_path / "nan.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": NaN}\n')  # json.loads reads NaN
    config["probes"] = [{"name": "nan", "path": str(path)}]
    config["hrsa"]["knn_k"] = [5]
    refused(config, repo, r"^probes\[0\]\.path: .*nan\.jsonl record 2 has label nan")


def test_training_data_paths_must_exist_and_parse(config, repo, tmp_path):
    config["training_data"] = {"builtin": "", "paths": [str(tmp_path / "none.jsonl")]}
    refused(config, repo, r"^training_data\.paths\[0\]: cannot read .*none\.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe{}\n")
    config["training_data"]["paths"] = [str(bad)]
    refused(config, repo, r"^training_data\.paths\[0\]: .*bad\.jsonl is not UTF-8")


def test_a_local_role_must_be_a_model_directory(config, repo):
    config["pairs"][0]["base"] = "/etc"
    refused(config, repo, r"^pairs\[0\]\.base: '/etc' is not a model directory \(no config\.json in /etc\)")


@pytest.mark.parametrize(("dpath", "value"), [
    ("pairs/0/reason", "org/model;rm -rf x"), ("pairs/0/reason", "org/model $(id)"),
    ("training_data/hf", [{"dataset": "org/data`id`", "instruction": "x"}]),
    ("probes/0/hf", {"dataset": "org/d|cat"}),
])
def test_ids_with_shell_characters_are_refused(config, repo, dpath, value):
    node = config
    *parents, last = dpath.split("/")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    if last == "hf" and parents == ["probes", "0"]:
        node.pop("builtin")
    refused(config, repo, r"is not a hub id or a path of letters, digits")


def test_names_too_long_for_derived_file_names_are_refused(config, repo):
    config["pairs"][0]["name"] = "p" * 220  # fine as a name; `<name>.reason-E~reason-E.s0-s1.procrustes.npz` is not
    refused(config, repo, r"^comparison names: 'p{220}\.(base|reason)-E~.* makes the file name .* over the 255-byte "
                          r"limit of file names: shorten the pair or probe name")
    config["pairs"][0]["name"] = "p" * 200
    study(config, repo)


# ---- Snakefile level: dry runs -------------------------------------------------------------------------------------
def test_dry_run_refuses_duplicate_keys_in_a_config_file(tmp_path, repo, capsys):
    text = (repo / "config/config.yaml").read_text() + "\nhrsa:\n  knn_k: [5]\n"  # a second hrsa: block
    path = tmp_path / "config.yaml"
    path.write_text(text)
    proc = dry_run(tmp_path, path, check=False)
    assert proc.returncode != 0
    assert f"invalid config: {path}: duplicate key 'hrsa'" in proc.stderr + proc.stdout
    capsys.readouterr()
    rc = hrsa_main(["download", "--plan", "--configfile", str(path), "--root", str(repo)])  # refused there too
    assert rc == 2
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("hrsa:"))
    assert f"--configfile {path}: duplicate key 'hrsa' (lines {first} and " in capsys.readouterr().err


def test_dry_run_refuses_nan_after_validation(tmp_path, repo):
    text = (repo / "config/config.yaml").read_text() + "\nreport: {equivalence_margin: .nan}\n"
    proc = dry_run(tmp_path, write_text(tmp_path / "config.yaml", text), check=False)
    assert proc.returncode != 0
    assert "invalid config: report.equivalence_margin: nan is not a finite number" in proc.stderr + proc.stdout


def test_a_bad_procrustes_layer_fails_the_dag_and_deletes_no_finished_table(tmp_path, repo, config):
    finished = tmp_path / "results/hrsa/prose/tiny.base~reason.parquet"
    finished.parent.mkdir(parents=True)
    finished.write_bytes(b"finished table")
    config["hrsa"]["procrustes_intervals"] = ["99"]
    proc = dry_run(tmp_path, write_config(tmp_path, config), check=False)
    assert proc.returncode != 0
    out = proc.stderr + proc.stdout
    assert "invalid config: hrsa.procrustes_intervals[0]: '99' is not a layer of pair 'tiny'" in out
    assert "Job stats" not in proc.stdout  # refused before any job was planned
    assert finished.read_bytes() == b"finished table"


def test_evaluation_length_shorter_than_the_instruction_is_refused(tmp_path, repo, config):
    config["evaluation"]["task_instructions"] = {"HrsaLee50": "Retrieve the passage that answers the question"}
    config["evaluation"]["max_seq_length"] = {"HrsaLee50": 8}  # the prompt alone is 9 words
    proc = dry_run(tmp_path, write_config(tmp_path, config), check=False)
    assert proc.returncode != 0
    assert ("invalid config: evaluation.max_seq_length: 8 tokens for HrsaLee50 leave no room for the query" in
            proc.stderr + proc.stdout)
    config["evaluation"]["max_seq_length"] = {"default": 2}  # even an empty instruction: 'Instruct:' 'Query:'
    proc = dry_run(tmp_path, write_config(tmp_path, config), check=False)
    assert "evaluation.max_seq_length: 2 tokens for HrsaWordSim353 leave no room" in proc.stderr + proc.stdout
    config["evaluation"]["max_seq_length"] = {"HrsaLee50": 16}
    dry_run(tmp_path, write_config(tmp_path, config))


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
