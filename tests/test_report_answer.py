"""The report answers first, in plain words: per pair one short paragraph (benchmark verdicts with Δ and interval,
then realignment against seed noise, then where the backbones differ), a "plumbing, not a finding" banner for the
embedded default or a model flagged not learned, tables a reader can scan (three significant digits, ✓/✗), metric
names as the paper writes them, and answer.rst for Snakemake's report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hrsa.metrics.registry import REGISTRY, display_name  # noqa: E402
from hrsa.report.answer import PLUMBING, banner  # noqa: E402
from test_report_demo import PAIR, build_demo, run_report  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("answer")
    run_report(root, build_demo(root))
    return root / "results/report"


def _answer(report: Path) -> str:
    return next(line for line in (report / "index.md").read_text().splitlines() if line.startswith(f"{PAIR}: "))


def test_the_answer_opens_on_the_verdicts_in_about_sixty_words(report):
    text = _answer(report)
    assert len(text.split()) - 1 <= 60, f"{len(text.split()) - 1} words after the pair's name: {text}"
    # verdicts first (Δ with its 90% interval), then realignment against seed noise, then the backbones
    assert text.startswith(f"{PAIR}: On the task list, reason-E is equivalent to base-E (Δ +0.01 points, 90% CI ")
    assert "sft-E differs (Δ -5.06, 90% CI" in text
    verdicts, realign, backbones = (text.index(w) for w in ("equivalent", "within seed noise", "Backbones differ"))
    assert verdicts < realign < backbones
    assert "contrastive training moved" not in text  # the old 170-word sentence
    index = (report / "index.md").read_text()
    assert index.index("## Answer") < index.index(f"{PAIR}: On the task list") < index.index("## Table 1")


def test_embedded_default_and_not_learned_models_get_the_banner(report):
    index = (report / "index.md").read_text()
    assert f"**{PLUMBING}: the backbones are tiny models pretrained here on bundled text ({PAIR}.base)" in index
    hub = {"backbones": {"q.base": "Qwen/Qwen3-0.6B", "q.reason": "some/reasoner"},
           "config": {"probes": [{"name": "agnews", "hf": {"path": "ag_news"}}]}}
    assert banner(hub, pd.DataFrame()) is None  # hub backbones, probes from the hub: a finding, no banner
    prov = pd.DataFrame({"model": ["q.base-E.s0", "q.reason-E.s0"], "not_learned": [False, "loss never fell"]})
    text = banner(hub, prov)
    assert text is not None and text.startswith(PLUMBING) and "q.reason-E.s0 (loss never fell)" in text
    assert "q.base-E.s0" not in text
    builtin = {**hub, "config": {"probes": [{"name": "prose", "builtin": "milton-lines"}]}}
    assert "bundled ones (prose)" in (banner(builtin, pd.DataFrame()) or "")


def test_not_learned_flag_in_provenance_reaches_the_banner(tmp_path):
    demo = build_demo(tmp_path)
    flagged = demo["provenance"][0]
    flagged.write_text(json.dumps({"params": {"device": "cpu"}, "packages": {}, "not_learned": True}))
    run_report(tmp_path, demo)
    index = (tmp_path / "results/report/index.md").read_text()
    assert f"flagged as not learned: {flagged.parent.name}" in index
    assert pd.read_csv(tmp_path / "results/report/tables/provenance.tsv", sep="\t").not_learned.sum() == 1


def test_tables_show_three_significant_digits_and_check_marks(report):
    index = (report / "index.md").read_text()
    table1 = index[index.index("## Table 1"):index.index("Equivalence (TOST")]
    assert "| 60.0 ± 0.1 |" in table1 and "| -5.06 ± 0.03 |" in table1
    assert "own task list (HrsaWordSim353, HrsaSimLex999, HrsaLee50 +2 more)" in table1  # not "tasks"
    realign = index[index.index("## Manifold realignment"):index.index("## Figures")]
    assert "| ✓ |" in realign and "| ✗ |" in realign and "True" not in realign and "False" not in realign
    assert "linear CKA" in realign and "cka-linear-biased |" not in realign
    per_task = index[index.index("## Per-task scores"):index.index("## What was run")]
    assert "(×100" in index[index.index("## Per-task scores"):][:40] and "Benchmark: own task list" in per_task
    cells = [c.strip() for line in per_task.splitlines() if line.startswith("| tiny") for c in line.split("|")[3:-1]]
    assert cells and all(float(c.split(" ± ")[0]) > 1 for c in cells)  # ×100, as Table 1


def test_answer_rst_for_snakemakes_report(report):
    rst = (report / "answer.rst").read_text()
    assert rst.startswith(f"**{PLUMBING}**: ") and f"**{PAIR}**: On the task list" in rst
    from docutils.core import publish_parts

    html = publish_parts(rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 2})
    assert "On the task list" in html["html_body"]


def test_every_registry_metric_has_a_printed_name():
    for name in REGISTRY:
        assert display_name(name) != name and display_name(name) not in REGISTRY, name
    assert display_name("cka-linear-biased") == "linear CKA"
    assert display_name("knn-jaccard-k25-cosine") == "kNN Jaccard@25"


def test_a_section_named_twice_is_one_section():
    """Sibling health adds its table to Table 1's section: one heading, the items in order."""
    from hrsa.report.render import Report

    rep = Report()
    rep.section("Table 1").append(("text", "scores"))
    rep.section("Other").append(("text", "x"))
    rep.section("Table 1").append(("text", "sibling health"))
    assert [t for t, _ in rep.sections] == ["Table 1", "Other"]
    assert rep.markdown("T").count("## Table 1") == 1 and rep.sections[0][1] == [("text", "scores"),
                                                                               ("text", "sibling health")]
