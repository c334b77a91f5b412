"""Drift over one RL run (issue 21, item 7): a comparison names a kept RLVR checkpoint `reason@N`, the grid extracts
(and, for `-E` sides, trains) exactly those checkpoints, and the report draws each headline metric against the RL
step."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from snakemake.utils import validate

from hrsa.cli import main
from hrsa.errors import ConfigError
from hrsa.grid import Study, parse_comparison, parse_model_id
from smk import REPO, demo_config, dry_run, job_blocks, job_counts, shell_commands, write_config


def validated(cfg: dict, repo: Path) -> dict:
    validate(cfg, str(repo / "src/hrsa/config.schema.yaml"))
    return cfg


# ---- ids ----------------------------------------------------------------------------------------------------------
def test_checkpoint_ids_round_trip() -> None:
    c = parse_comparison("tiny.base~reason@50")
    assert (c.left, c.right, c.seed) == ("base", "reason@50", None)
    assert c.model("right") == "tiny.reason@50" and c.name == "tiny.base~reason@50"
    e = parse_comparison("tiny.base-E~reason@200-E.s1")
    assert e.model("right") == "tiny.reason@200-E.s1"
    assert parse_model_id("tiny.reason@200-E.s1") == ("tiny", "reason@200", 1)
    assert parse_model_id("tiny.reason@200") == ("tiny", "reason@200", None)


@pytest.mark.parametrize("name", ["tiny.base~reason@0", "tiny.base~reason@", "tiny.base~reason@5x",
                                  "tiny.base~reason@5\n", "tiny.base~reason@-5"])
def test_bad_checkpoint_ids_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        parse_comparison(name)


# ---- the grid -----------------------------------------------------------------------------------------------------
def _study(comparisons: list[str], **rlvr: object) -> Study:
    cfg = demo_config()
    cfg["comparisons"] = comparisons
    cfg["recipes"]["rlvr"].update(rlvr)
    return Study(validated(cfg, REPO), root=REPO)


def test_demo_keeps_two_checkpoints_and_compares_one() -> None:
    study = Study(validated(demo_config(), REPO), root=REPO)
    opts = study.recipe_options(study.backbone("tiny", "reason"))
    assert list(range(opts["save_steps"], opts["steps"] + 1, opts["save_steps"])) == [20, 40]
    assert "tiny.base~reason@20" in [c.name for c in study.comparisons]
    assert study.checkpoint_models() == ["tiny.reason@20"]
    assert study.source_path("tiny.reason@20") == "results/backbones/tiny.reason/checkpoints/step-20"
    assert study.built_input("tiny.reason@20") == "results/backbones/tiny.reason"  # the run that keeps it
    assert study.rl_steps() == {"tiny": 40}


def test_a_step_the_run_does_not_keep_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"comparisons\[0\].*step 30.*save_steps 20"):
        _study(["base~reason@30"])
    with pytest.raises(ConfigError, match="step 60"):
        _study(["base~reason@60"])
    with pytest.raises(ConfigError, match="save_steps 0"):
        _study(["base~reason@20"], save_steps=0)


def test_a_published_sibling_has_no_checkpoints_to_compare(tmp_path: Path, tiny_backbone: Path) -> None:
    cfg = demo_config()
    cfg["pairs"].append({"name": "hub", "base": str(tiny_backbone), "reason": str(tiny_backbone)})
    study = Study(validated(cfg, REPO), root=REPO)
    assert not [c for c in study.comparisons if c.pair == "hub" and "@" in c.kind]
    assert any("reason@20" in n and "'hub'" in n and "not built by the rlvr recipe" in n for n in study.notes())


def test_checkpoint_embedders_are_trained_from_the_kept_step(tmp_path: Path) -> None:
    cfg = demo_config()
    cfg["comparisons"] = ["base~reason@20", "base-E~reason@20-E"]
    out = dry_run(tmp_path, write_config(tmp_path, cfg)).stdout
    train = [c for c in shell_commands(out) if c.startswith("hrsa train") and "reason@20" in c]
    assert len(train) == 2  # one per seed
    assert all("--backbone results/backbones/tiny.reason/checkpoints/step-20" in c for c in train)
    assert any("--model-id tiny.reason@20-E.s0" in c for c in train)
    blocks = [b for b in job_blocks(out)["train_embedder"] if "reason@20" in b]
    assert all("input: results/backbones/tiny.reason," in b for b in blocks)  # waits for the run that keeps it
    compare = [c for c in shell_commands(out) if c.startswith("hrsa compare")]
    assert any("'tiny.base-E~reason@20-E.s1'" in c for c in compare)


def test_demo_dry_run_adds_the_drift_jobs(tmp_path: Path) -> None:
    cfg = demo_config()
    with_drift = job_counts(dry_run(tmp_path, write_config(tmp_path, cfg)).stdout)
    cfg["comparisons"] = [c for c in cfg["comparisons"] if "@" not in c]
    without = job_counts(dry_run(tmp_path, write_config(tmp_path, cfg, "plain.yaml")).stdout)
    extra = {k: with_drift.get(k, 0) - without.get(k, 0) for k in with_drift}
    # two probe sets: one checkpoint extracted, graphed and compared on each; nothing trained or scored
    assert {k: v for k, v in extra.items() if v} == {"extract_activations": 2, "knn_graph": 2, "compare": 2}


# ---- end to end: a kept checkpoint through extract, compare and the report ----------------------------------------
SPEC = {"granularity": "sentence", "max_length": 24}
LAYERS = ["0", "1", "2"]


def _features(model: Path, model_id: str, probe: Path, root: Path) -> None:
    acts, knn = root / "acts" / model_id, root / "knn" / model_id
    assert main(["extract", "--model", str(model), "--model-id", model_id, "--probe", str(probe), "--config",
                 json.dumps(SPEC), "--layers", ",".join(LAYERS), "--device", "cpu", "--out", str(acts)]) == 0
    assert main(["knn", "--activations", str(acts), "--layers", ",".join(LAYERS), "--config",
                 json.dumps({"knn_k": [10]}), "--out-dir", str(knn)]) == 0


def test_a_kept_checkpoint_is_compared_and_drawn(tmp_path: Path, tiny_backbone: Path, probe: Path) -> None:
    from hrsa.report import build_report, grid_summary

    reason = tmp_path / "tiny.reason"
    rlvr = {"steps": 4, "save_steps": 2, "batch_size": 8, "num_generations": 4, "lr": 1e-3}
    assert main(["rlvr", "--model", str(tiny_backbone), "--out", str(reason), "--config", json.dumps(rlvr),
                 "--threads", "1"]) == 0
    assert sorted(p.name for p in (reason / "checkpoints").iterdir()) == ["step-2", "step-4"]
    for model, mid in ((tiny_backbone, "tiny.base"), (reason / "checkpoints/step-2", "tiny.reason@2"),
                       (reason, "tiny.reason")):
        _features(model, mid, probe, tmp_path)
    tables = []
    for right in ("reason@2", "reason"):
        name = f"tiny.base~{right}"
        out = tmp_path / "hrsa" / "lines" / f"{name}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        assert main(["compare", "--left", str(tmp_path / "acts/tiny.base"), "--right",
                     str(tmp_path / f"acts/tiny.{right}"), "--knn-left", str(tmp_path / "knn/tiny.base"),
                     "--knn-right", str(tmp_path / f"knn/tiny.{right}"), "--config",
                     json.dumps({"bootstrap": 0, "permutations": 0, "knn_k": [10]}), "--comparison", name,
                     "--out", str(out)]) == 0
        tables.append(out)
    grid = {**grid_summary({"pairs": [{"name": "tiny"}]}), "rl_steps": {"tiny": 4}}
    build_report(tables, [], {}, tmp_path / "report", grid=grid)
    drift = pd.read_csv(tmp_path / "report/tables/drift.tsv", sep="\t")
    cka = drift[(drift.metric == "cka-linear-biased") & (drift.stage == "before")]
    assert list(cka.step) == [2, 4] and list(cka.layer.astype(str)) == ["2", "2"]
    direct = pd.read_parquet(tables[0]).query("metric == 'cka-linear-biased' and layer_x == 2 and layer_y == 2")
    assert cka["mean"].iloc[0] == pytest.approx(float(direct.value.iloc[0]))
    assert (tmp_path / "report/figures/drift_tiny_lines.png").is_file()
    plotted = pd.read_csv(tmp_path / "report/figures/drift_tiny_lines.tsv", sep="\t")
    assert set(plotted.step) == {2, 4} and "Drift over one RL run" in (tmp_path / "report/index.md").read_text()


def test_drift_table_before_and_after_from_synthetic_tables() -> None:
    from hrsa.report.drift import drift_table

    rows = []
    for kind, value in (("base~reason@20", 0.9), ("base~reason", 0.8), ("base-E~reason@20-E", 0.95),
                        ("base-E~reason-E", 0.93), ("base~sft", 0.1)):
        for layer in ("0", "3", "pooled"):
            rows.append({"probe": "p", "pair": "t", "kind": kind, "layer": layer, "metric": "cka-linear-biased",
                         "mean": value if layer == "3" else 0.0, "std": 0.0, "count": 2, "ci_low": value - 0.01,
                         "ci_high": value + 0.01})
    d = drift_table(pd.DataFrame(rows), ["cka-linear-biased"], {"t": 40})
    got = {(r.stage, r.step): r["mean"] for _, r in d.iterrows()}
    assert got == {("before", 20): 0.9, ("before", 40): 0.8, ("after", 20): 0.95, ("after", 40): 0.93}
    assert drift_table(pd.DataFrame(rows).query("~kind.str.contains('@')"), ["cka-linear-biased"], {"t": 40}).empty


def test_paper_grid_lists_third_pair_health_and_drift_offline(tmp_path: Path) -> None:
    out = dry_run(tmp_path, REPO / "config/paper.yaml").stdout
    counts = job_counts(out)
    assert counts["sibling_health"] == 8  # 3 + 3 + 2 roles, hub and recipe siblings alike
    cmds = shell_commands(out)
    assert any("--model Qwen/Qwen3-0.6B " in c and c.startswith("hrsa health") for c in cmds)  # the third pair
    assert any("'qwen3-0b6-post.base~reason'" in c for c in cmds if c.startswith("hrsa compare"))
    drift = {c.split("--comparison ")[1].split()[0] for c in cmds if c.startswith("hrsa compare") and "@" in c}
    assert drift == {f"'qwen3-0b6.base~reason@{n}'" for n in (100, 200, 300)}  # the hub siblings keep none
    assert any("results/backbones/qwen3-0b6.reason/checkpoints/step-100" in c for c in cmds
               if c.startswith("hrsa extract"))
