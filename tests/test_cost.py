"""`hrsa cost` (issue 23, item 5): GPU-hours, CPU-hours, submissions and storage of a config, checked against a hand
count on a small config (two roles, one seed, one probe, two comparisons, one task, sibling health)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from hrsa.cli import main
from smk import REPO, demo_config, write_config  # noqa: E402


def small_config() -> dict:
    cfg = demo_config()
    cfg["pairs"] = [{"name": "tiny", "base": {"recipe": "pretrain"}, "reason": {"recipe": "rlvr", "from": "base"}}]
    cfg["recipes"]["pretrain"] = {"hidden_size": 32, "num_layers": 2}
    cfg["seeds"] = [0]
    cfg["probes"] = [{"name": "prose", "builtin": "milton-lines", "n_texts": 192, "max_tokens": 3000,
                      "max_length": 48}]
    cfg["comparisons"] = ["base~reason", "base-E~reason-E"]
    cfg["evaluation"]["tasks"] = ["HrsaLee50"]
    cfg["activation_dtype"] = "float32"
    cfg["hrsa"].update(knn_k=[5], knn_max_rows=1000)
    stages = {"backbone": (60, 2), "mine": (30, 1), "train": (120, 4), "extract": (10, 1), "knn": (6, 2),
              "compare": (12, 3), "evaluate": (30, 1), "health": (15, 1)}
    cfg["resources"] = {stage: {"runtime": rt, "runtime_per_b": 0, "threads": th}
                        for stage, (rt, th) in stages.items()}
    return cfg


@pytest.fixture(scope="module")
def cost(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cost")
    path = write_config(tmp, small_config())
    out = {}
    for profile in ("slurm", "none"):
        argv = ["cost", "--configfile", str(path), "--json",
                "--profile", str(REPO / "profiles/slurm") if profile == "slurm" else "none"]
        out[profile] = argv
    return out


def run_json(argv, capsys):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_hours_submissions_and_storage_match_a_hand_count(cost, capsys):
    from hrsa.metrics import graph_k

    got = run_json(cost["slurm"], capsys)
    s = got["summary"]
    rules = {r: (v["jobs"], round(v["gpu_hours"], 4), round(v["cpu_hours"], 4)) for r, v in s["rules"].items()}
    # jobs: backbones base (pretrain, no GPU) and reason (rlvr, 1 GPU); the miner; 2 embedders; 4 models extracted
    # (base, reason, base-E.s0, reason-E.s0) and their kNN graphs (no GPU); 2 comparisons; 2 embedders x 1 task group
    assert rules == {
        "build_backbone": (2, 1.0, 2 * 1.0 * 2),  # 60 min: GPU-h 1 (rlvr only), CPU-h 2 jobs x 1 h x 2 threads
        "mine_hard_negatives": (1, 0.5, 0.5),
        "train_embedder": (2, 2 * 2.0, 2 * 2.0 * 4),
        "extract_activations": (4, round(4 * 10 / 60, 4), round(4 * 10 / 60, 4)),
        "knn_graph": (4, 0.0, round(4 * 0.1 * 2, 4)),
        "compare": (2, 0.0, round(2 * 0.2 * 3, 4)),
        "evaluate": (2, 2 * 0.5, 2 * 0.5),  # 30 min per task x 1 task
        "sibling_health": (2, 2 * 0.25, 2 * 0.25),  # base and reason, 15 min on 1 GPU each
        "prepare_training_data": (1, 0.0, 0.0),  # local rules: no submission, no hours
        "prepare_probe": (1, 0.0, 0.0),
        "report": (1, 0.0, 0.0),
    }
    assert s["jobs"] == 22
    assert s["gpu_hours"] == pytest.approx(1 + 0.5 + 4 + 4 / 6 + 1 + 0.5)
    assert s["cpu_hours"] == pytest.approx(4 + 0.5 + 16 + 4 / 6 + 0.8 + 1.2 + 1 + 0.5)
    # profiles/slurm groups: one features_{model} submission per model (extract + kNN), the 2 comparisons in one
    # `hrsa` submission; backbones 2, miner 1, training 2, evaluation 2, sibling health 2 on their own
    assert (s["submissions"], s["gpu_submissions"], s["other_submissions"]) == (14, 12, 2)
    (probe,) = got["storage"]
    k = graph_k([5])
    assert probe["rows"] == 3000 and probe["layers"] == [3] and probe["models"] == 4 and probe["k"] == k
    assert probe["activations_bytes"] == 4 * 3000 * 3 * 32 * 4  # models x rows x layers x width x float32
    assert probe["knn_bytes"] == 4 * 3 * (1000 * k * 8 + 1000 * 8)  # capped rows: int32 + float32, plus row ids


def test_without_the_profiles_components_each_comparison_is_a_submission_and_the_table_prints(cost, capsys):
    """No profile: a model's extraction and kNN graph stay one group (connected jobs), the two comparisons are two."""
    s = run_json(cost["none"], capsys)["summary"]
    assert (s["submissions"], s["gpu_submissions"]) == (2 + 1 + 2 + 4 + 2 + 2 + 2, 1 + 1 + 2 + 4 + 2 + 2)
    assert main([a for a in cost["slurm"] if a != "--json"]) == 0
    text = capsys.readouterr().out
    assert "| **total** | 22 | 7.7 | 24.7 | 14 (12 GPU, 2 other) |" in text
    assert "| prose | 3,000 tokens | 3 | 4 | 4.61 MB (float32) | 576 kB (1,000, 5) |" in text


def test_a_missing_or_bad_config_is_one_line(tmp_path, capsys):
    assert main(["cost", "--configfile", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.strip() == f"hrsa cost: error: --configfile {tmp_path / 'nope.yaml'}: no such file"
    bad = write_config(tmp_path, {**small_config(), "seeds": [0, 0.5]})
    assert main(["cost", "--configfile", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not be built" in err
    assert err.endswith("ValidationError: 0.5 is not of type 'integer' (at config['seeds'][1])"), err


def test_a_probe_that_keeps_every_token_uses_the_planning_figure_or_says_unknown():
    """MATH-500 keeps every token (max_tokens 0, max_length 0): its rows are known only once tokenised, so the cost
    takes cost.probe_tokens, else prints the storage as unknown instead of 0 B."""
    from hrsa.cost import probe_rows

    every = {"granularity": "token", "n_texts": 500, "max_tokens": 0, "max_length": 0}
    assert probe_rows(every) is None and probe_rows(every, 150_000) == 150_000
    assert probe_rows({**every, "max_length": 48}) == 500 * 48  # an upper bound when texts are capped
    assert probe_rows({**every, "max_tokens": 3000}, 150_000) == 3000  # the subsample wins over the planning figure
    assert probe_rows({"granularity": "sentence", "n_texts": 7}) == 7
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    assert paper["cost"]["probe_tokens"] == {"math500": 150_000}
