"""Sibling health (issue 21, item 6.2): greedy pass@1 before (base) and after (sibling), the gain, the relative
weight change, siblings.min_gain refusing a sibling, the report's table beside Table 1, and the rule on the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrsa.cli import main
from smk import demo_config, dry_run, job_counts, shell_commands, write_config

SETTINGS = {"problems": 16, "max_new_tokens": 4, "batch_size": 8}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory, tiny_backbone: Path) -> Path:
    """The tiny backbone with every parameter scaled by 1.1: its relative weight change is exactly 0.1."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("scaled")
    lm = AutoModelForCausalLM.from_pretrained(tiny_backbone, dtype=torch.float32)
    with torch.no_grad():
        for p in lm.parameters():
            p.mul_(1.1)
    lm.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(out)
    return out


def _health(model: Path, out: Path, base: Path | None = None, base_health: Path | None = None, **cfg) -> int:
    extra = ["--base", str(base), "--base-health", str(base_health)] if base else []
    return main(["health", "--model", str(model), *extra, "--config", json.dumps({**SETTINGS, **cfg}),
                 "--device", "cpu", "--out", str(out)])


def test_health_before_after_gain_and_weight_change(tmp_path: Path, tiny_backbone: Path, scaled: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from hrsa.report import build_report, grid_summary

    assert _health(tiny_backbone, tmp_path / "t.base.json") == 0
    base = json.loads((tmp_path / "t.base.json").read_text())
    assert base["sets"]["arithmetic"]["n"] == 16 and 0.0 <= base["sets"]["arithmetic"]["pass_at_1"] <= 1.0
    assert _health(scaled, tmp_path / "t.reason.json", tiny_backbone, tmp_path / "t.base.json") == 0
    sib = json.loads((tmp_path / "t.reason.json").read_text())
    entry = sib["sets"]["arithmetic"]
    assert entry["base_pass_at_1"] == base["sets"]["arithmetic"]["pass_at_1"]
    assert entry["gain"] == pytest.approx(entry["pass_at_1"] - entry["base_pass_at_1"])
    assert sib["weight_change"] == pytest.approx(0.1, rel=1e-6)
    # a base measured against itself: no gain, no change
    assert _health(tiny_backbone, tmp_path / "t.sft.json", tiny_backbone, tmp_path / "t.base.json") == 0
    same = json.loads((tmp_path / "t.sft.json").read_text())
    assert same["weight_change"] == 0.0 and same["gain"] == 0.0
    build_report([], [], {}, tmp_path / "report", grid=grid_summary({}),
                 health_files=[tmp_path / f"t.{r}.json" for r in ("base", "reason", "sft")])
    text = (tmp_path / "report/index.md").read_text()
    assert "Sibling health" in text and "weight_change" in text
    table = (tmp_path / "report/tables/health.tsv").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("t\treason\tarithmetic\t16\t")


def test_min_gain_refuses_a_sibling_in_one_line(tmp_path: Path, tiny_backbone: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _health(tiny_backbone, tmp_path / "t.base.json") == 0
    capsys.readouterr()
    assert _health(tiny_backbone, tmp_path / "t.reason.json", tiny_backbone, tmp_path / "t.base.json",
                   min_gain=0.05) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "min_gain" in line]
    assert len(err) == 1 and "gain +0.000" in err[0] and "siblings.min_gain 0.05" in err[0]
    assert not (tmp_path / "t.reason.json").exists()


def test_health_jobs_of_the_default_and_their_gate(tmp_path: Path) -> None:
    cfg = demo_config()
    out = dry_run(tmp_path, write_config(tmp_path, cfg)).stdout
    assert job_counts(out)["sibling_health"] == 3  # one per role of the tiny pair
    cmds = [c for c in shell_commands(out) if c.startswith("hrsa health")]
    reason = next(c for c in cmds if "--out results/health/tiny.reason.json" in c)
    assert "--base results/backbones/tiny.base --base-health results/health/tiny.base.json" in reason
    assert '"builtin": "arithmetic"' in reason and '"min_gain": null' in reason  # offline, local problems
    report = next(c for c in shell_commands(out) if c.startswith("hrsa report"))
    assert "--health results/health/tiny.base.json results/health/tiny.reason.json" in report
    cfg["siblings"] = {"min_gain": 0.1}
    out = dry_run(tmp_path, write_config(tmp_path, cfg, "gate.yaml")).stdout
    assert all('"min_gain": 0.1' in c for c in shell_commands(out) if c.startswith("hrsa health"))
