"""The report on a demo-like fixture (the demo's grid: one pair with reason and sft, 2 seeds, 2 probe sets, 5 local
tasks, every comparison kind incl. noise floors, every registry metric): every figure exists as PNG, PDF and TSV, and
its plotted values equal the table values; the sentences follow the numbers; the CLI reads the run records."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

PAIR, SEEDS, PROBES = "tiny", (0, 1), ("prose", "works")
LAYERS = ["0", "1", "2", "3", "4"]
TASKS = {"HrsaWordSim353": "WordSimilarity", "HrsaSimLex999": "WordSimilarity", "HrsaLee50": "STS",
         "HrsaMiltonRetrieval": "Retrieval", "HrsaArithmeticReasoningRetrieval": "Retrieval"}
COMPARISONS = ["base~reason", "base~sft", "base-E~reason-E", "base-E~sft-E", "base~base-E", "reason~reason-E",
               "base-E~base-E", "reason-E~reason-E"]
COLUMNS = ["comparison", "layer_x", "layer_y", "metric", "value", "ci_low", "ci_high", "null_mean", "null_q95", "n",
           "bias", "se", "ci_method", "resample_unit", "n_units", "null_kind", "flag"]
#: similarity level of each comparison kind (the fixture's "truth"): backbones apart, embedders realigned
LEVEL = {"base~reason": 0.70, "base~sft": 0.50, "base-E~reason-E": 0.90, "base-E~sft-E": 0.80, "base~base-E": 0.60,
         "reason~reason-E": 0.60, "base-E~base-E": 0.92, "reason-E~reason-E": 0.91}
METRICS = ["cka-linear-biased", "cka-linear-debiased", "dimwise-corr", "procrustes-rvr", "procrustes-cosine",
           "procrustes-rie", "procrustes-sparsity", "knn-jaccard-k5-cosine", "knn-jaccard-k10-cosine",
           "knn-jaccard-k50-cosine", "knn-retention-k5-cosine", "knn-retention-k10-cosine",
           "twonn-id-absdiff-cosine", "twonn-id-left", "twonn-id-right"]
PROBE_METRICS = [f"probe-transfer-{s}-{m}" for s in ("target", "source") for m in ("accuracy", "macro-f1")]
ID = {"base": 9.0, "reason": 10.0, "sft": 12.0, "base-E": 6.0, "reason-E": 6.5, "sft-E": 7.0}


def comparison_names() -> list[str]:
    names = []
    for kind in COMPARISONS:
        left, right = kind.split("~")
        if left == right:
            names.append(f"{PAIR}.{kind}.s0-s1")
        elif "-E" in kind:
            names += [f"{PAIR}.{kind}.s{s}" for s in SEEDS]
        else:
            names.append(f"{PAIR}.{kind}")
    return names


def _value(metric: str, level: float, li: int, rng: np.random.Generator) -> float:
    v = level - 0.03 * li + rng.normal(0, 0.005)
    if metric.startswith("knn-"):
        return v * 0.5
    if metric == "procrustes-rvr":
        return 1.2 * (1 - v)
    if metric.startswith("twonn-id-absdiff"):
        return 1 - v
    if metric.startswith("probe-transfer-source"):
        return 0.8
    return v


def hrsa_rows(name: str, probe: str, rng: np.random.Generator) -> list[dict[str, Any]]:
    from hrsa.grid import parse_comparison

    c = parse_comparison(name)
    level = LEVEL[c.kind]
    layers = LAYERS + (["pooled"] if "-E" in c.left and "-E" in c.right else [])
    rows = []
    base = dict.fromkeys(COLUMNS, np.nan) | {"comparison": name, "n": 240, "ci_method": "bca(R=30)",
                                            "resample_unit": "text-blocks", "n_units": 30, "null_kind": "none",
                                            "flag": ""}
    metrics = METRICS + (PROBE_METRICS if probe == "works" else [])
    for li, layer in enumerate(layers):
        for metric in metrics:
            if metric in ("twonn-id-left", "twonn-id-right"):
                role = c.left if metric.endswith("left") else c.right
                v = ID[role] + 0.3 * li
            else:
                v = _value(metric, level, li, rng)
            se = 0.01
            row = base | {"layer_x": layer, "layer_y": layer, "metric": metric, "value": v, "se": se,
                          "ci_low": v - 2 * se, "ci_high": v + 2 * se, "bias": 0.001}
            if probe == "prose" and layer == "0" and metric.startswith("twonn-id-"):
                row["flag"] = "duplicate-rows"  # a token probe's layer 0: one vector per token id
            if metric == "cka-linear-biased":
                row |= {"null_mean": 0.02, "null_q95": 0.03, "null_kind": "rv-exact-moments"}
            rows.append(row)
        for lj, other in enumerate(layers):
            if other != layer:
                rows.append(base | {"layer_x": layer, "layer_y": other, "metric": "cka-linear-biased",
                                    "value": level * 0.8 - 0.05 * abs(li - lj)})
    return rows


def write_eval(root: Path, model: str, scores: dict[str, float]) -> list[Path]:
    paths = []
    for task, score in scores.items():
        path = root / model / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"task_type": TASKS[task], "eval_splits": ["test"], "split_scores": {"test": score},
                 "main_score": score, "main_score_name": "x"}
        path.write_text(json.dumps({"model": {"name": f"hrsa/{model}"}, "results": {task: entry}}))
        paths.append(path)
    return paths


def demo_scores(shift: float = 0.0) -> dict[str, dict[str, float]]:
    """{model: {task: score in [0, 1]}}: reason-E within noise of base-E (+ shift), sft-E 5 points lower."""
    rng = np.random.default_rng(1)
    out = {}
    for s in SEEDS:
        base = {t: 0.4 + 0.1 * i + rng.normal(0, 0.002) for i, t in enumerate(TASKS)}
        out[f"{PAIR}.base-E.s{s}"] = base
        out[f"{PAIR}.reason-E.s{s}"] = {t: v + shift + rng.normal(0, 0.002) for t, v in base.items()}
        out[f"{PAIR}.sft-E.s{s}"] = {t: v - 0.05 + rng.normal(0, 0.002) for t, v in base.items()}
    return out


def build_demo(root: Path, scores: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The demo's result files under root/results and run records under root/benchmarks (a working directory)."""
    rng = np.random.default_rng(0)
    hrsa = []
    for probe in PROBES:
        for name in comparison_names():
            path = root / "results/hrsa" / probe / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(hrsa_rows(name, probe, rng), columns=COLUMNS).to_parquet(path)
            hrsa.append(path)
    evals = []
    for model, s in (scores or demo_scores()).items():
        evals += write_eval(root / "results/eval", model, s)
    from hrsa.compare import save_procrustes_map

    maps = []
    for name in (f"{PAIR}.base~reason", f"{PAIR}.base-E~reason-E.s0"):
        q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
        path = root / "results/hrsa/works" / f"{name}.procrustes.npz"
        save_procrustes_map(path, q, "4")
        maps.append(path)
    probe_file = root / "results/data/probes/works.jsonl"  # labelled: 3 classes, majority share 0.5
    probe_file.parent.mkdir(parents=True, exist_ok=True)
    probe_file.write_text("".join(json.dumps({"id": i, "text": f"t{i}", "label": "abcb"[i % 4]}) + "\n"
                                  for i in range(240)))
    provenance = []
    for model in [m for m in (scores or demo_scores()) if "-E.s" in m]:
        d = root / "results/embedders" / model
        d.mkdir(parents=True, exist_ok=True)
        (d / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 2.0 / s, "epoch": s / 10})
                                                   + "\n" for s in range(1, 11)))
        (d / "provenance.json").write_text(json.dumps({"params": {"device": "cpu"}, "packages": {}}))
        provenance.append(d / "provenance.json")
    reason = root / "results/backbones" / f"{PAIR}.reason"
    reason.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"step": range(1, 21), "reward": np.linspace(0.1, 0.6, 20), "reward_std": 0.1,
                  "completion_length": 30.0}).to_csv(reason / "reward_curve.tsv", sep="\t", index=False)
    (reason / "provenance.json").write_text(json.dumps({"params": {"device": "cpu"}, "packages": {}}))
    provenance.append(reason / "provenance.json")
    config = {"pairs": [{"name": PAIR, "base": {"recipe": "pretrain"}, "reason": {"recipe": "rlvr", "from": "base"},
                         "sft": {"recipe": "sft", "from": "base"}}], "seeds": list(SEEDS), "layers": "all",
              "probes": [{"name": p} for p in PROBES], "comparisons": COMPARISONS, "hrsa": {"knn_k": [5, 10, 50]},
              "report": {"equivalence_margin": 1.0, "alpha": 0.05}}
    return {"hrsa": hrsa, "evals": evals, "maps": maps, "config": config, "probe_files": [probe_file],
            "provenance": provenance, "task_benchmarks": dict.fromkeys(TASKS)}


def run_report(root: Path, demo: dict[str, Any], **extra: Any) -> Path:
    from hrsa.report import build_report, grid_summary

    return build_report(demo["hrsa"], demo["evals"], demo["config"]["report"], root / "results/report",
                        grid=grid_summary(demo["config"]), task_benchmarks=demo["task_benchmarks"],
                        procrustes_maps=demo["maps"], probe_files=demo.get("probe_files", ()),
                        provenance_files=demo.get("provenance", ()), **extra)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("demo")
    demo = build_demo(root)
    start = time.perf_counter()
    run_report(root, demo)
    return root / "results/report", time.perf_counter() - start


EXPECTED = ([f"{stem}_{PAIR}_{probe}_{sib}" for stem in ("layers", "knn", "cka") for probe in PROBES
             for sib in ("reason", "sft")]
            + [f"procrustes_{PAIR}_works", f"probe_{PAIR}_works", f"training_{PAIR}", f"reward_{PAIR}"]
            + [f"id_{PAIR}_{probe}" for probe in PROBES])


def test_every_figure_exists_as_png_pdf_and_plotted_values(demo_report):
    report, seconds = demo_report
    figs = report / "figures"
    for stem in EXPECTED:
        for ext in ("png", "pdf", "tsv"):
            assert (figs / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
    assert not (figs / f"probe_{PAIR}_prose.png").exists()  # token-level probe: no labels, no probe transfer
    print(f"report on the demo-like fixture: {seconds:.1f} s, {len(list(figs.glob('*.png')))} figures")
    assert seconds < 60


def test_layer_curves_plot_the_table_values(demo_report):
    report, _ = demo_report
    tab = pd.read_csv(report / "tables/hrsa_layers.tsv", sep="\t", dtype={"layer": str})
    tab = tab.set_index(["probe", "kind", "layer", "metric"])
    for probe in PROBES:
        for sib in ("reason", "sft"):
            plotted = pd.read_csv(report / f"figures/layers_{PAIR}_{probe}_{sib}.tsv", sep="\t", dtype={"layer": str})
            assert set(plotted.metric) == {"cka-linear-biased", "dimwise-corr", "knn-jaccard-k10-cosine",
                                           "procrustes-rvr"}
            for r in plotted.itertuples():
                if r.series.startswith(("backbones", "embedders")):
                    kind = r.series.split(" ", 1)[1]
                    row = tab.loc[(probe, kind, r.layer, r.metric)]
                    assert r.y == pytest.approx(row["mean"]) and r.low == pytest.approx(row["ci_low"])
                elif r.series.startswith("noise floor"):
                    keys = [(probe, k, r.layer, r.metric) for k in ("base-E~base-E", f"{sib}-E~{sib}-E")]
                    floor = [tab.loc[key, "mean"] for key in keys if key in tab.index]
                    assert len(floor) == (2 if sib == "reason" else 1)  # the demo has no sft-E~sft-E
                    assert r.y == pytest.approx(np.mean(floor))
                else:
                    assert r.series == "permutation null" and r.metric == "cka-linear-biased"
                    assert r.y == pytest.approx(0.02)
            emb = plotted[plotted.series == f"embedders base-E~{sib}-E"]
            assert "pooled" in set(emb.layer) and len(emb) == 4 * 6  # every layer of every panel
            knn = pd.read_csv(report / f"figures/knn_{PAIR}_{probe}_{sib}.tsv", sep="\t")
            assert set(knn.metric) == {f"knn-jaccard-k{k}-cosine" for k in (5, 10, 50)}


def test_heatmaps_maps_bars_and_id_plot_the_table_values(demo_report):
    report, _ = demo_report
    hr = pd.read_csv(report / "tables/hrsa_all.tsv", sep="\t", dtype={"layer_x": str, "layer_y": str})
    cka = pd.read_csv(report / f"figures/cka_{PAIR}_works_reason.tsv", sep="\t", dtype={"layer_x": str, "layer_y": str})
    assert set(cka.panel) == {"base~reason", "base-E~reason-E", "after - before"}
    change = cka[cka.panel == "after - before"].set_index(["layer_x", "layer_y"]).value
    before = cka[cka.panel == "base~reason"].set_index(["layer_x", "layer_y"]).value
    after = cka[cka.panel == "base-E~reason-E"].set_index(["layer_x", "layer_y"]).value
    assert np.allclose(change, (after - before).dropna().loc[change.index])
    assert "pooled" not in set(change.index.get_level_values(0))
    for r in cka[cka.panel != "after - before"].itertuples():
        raw = hr[(hr.probe == "works") & (hr.kind == r.panel) & (hr.layer_x == r.layer_x) & (hr.layer_y == r.layer_y)
                 & (hr.metric == "cka-linear-biased")]
        assert len(raw) == (2 if "-E" in r.panel else 1)  # after: mean over both seeds
        assert r.value == pytest.approx(raw.value.mean())
    with np.load(report.parents[1] / f"results/hrsa/works/{PAIR}.base~reason.procrustes.npz") as z:
        o = z["O"]
    maps = pd.read_csv(report / f"figures/procrustes_{PAIR}_works.tsv", sep="\t", dtype={"layer": str})
    assert set(maps.kind) == {"base~reason", "base-E~reason-E"}  # one map per comparison kind, last layer
    pm = maps[maps.kind == "base~reason"]
    assert np.allclose(pm.value.to_numpy().reshape(o.shape), o) and o.shape == (8, 8) and set(pm.layer) == {"4"}
    rie = hr[(hr.comparison == f"{PAIR}.base~reason") & (hr.probe == "works") & (hr.metric == "procrustes-rie")
             & (hr.layer_x == "4")].value.iloc[0]
    assert pm.rie.iloc[0] == pytest.approx(rie)
    tab = pd.read_csv(report / "tables/hrsa_layers.tsv", sep="\t", dtype={"layer": str})
    bars = pd.read_csv(report / f"figures/probe_{PAIR}_works.tsv", sep="\t", dtype={"layer": str})
    headline = "pooled" if "pooled" in set(tab.layer) else "4"  # the study's probe: encode() outputs
    kinds = tab[(tab.probe == "works") & (tab.layer == headline)
                & tab.metric.str.startswith("probe-transfer-source-accuracy")].kind.nunique()
    assert set(bars.layer) == {headline} and len(bars) == 2 * kinds and kinds >= 4
    assert set(bars.chance) == {0.5}  # majority-class share of the probe set's labels
    for r in bars.itertuples():
        t = tab[(tab.probe == "works") & (tab.kind == r.kind) & (tab.layer == headline)
                & (tab.metric == f"probe-transfer-{r.side}-accuracy")]
        assert r.y == pytest.approx(t["mean"].iloc[0])
    ids = pd.read_csv(report / "tables/intrinsic_dimension.tsv", sep="\t", dtype={"layer": str})
    plotted = pd.read_csv(report / f"figures/id_{PAIR}_prose.tsv", sep="\t", dtype={"layer": str})
    assert set(plotted.role) == set(ID)
    for r in plotted.itertuples():
        assert r.y == pytest.approx(ID[r.role] + 0.3 * LAYERS.index(r.layer) if r.layer != "pooled"
                                    else ID[r.role] + 0.3 * 5)
        t = ids[(ids.probe == "prose") & (ids.role == r.role) & (ids.layer == r.layer)]
        assert r.y == pytest.approx(t["mean"].iloc[0])


def test_table1_and_realignment_on_the_demo(demo_report):
    report, _ = demo_report
    t1 = pd.read_csv(report / "tables/table1.tsv", sep="\t").set_index("role")
    assert list(t1.index) == ["base-E", "reason-E", "sft-E"] and (t1.n_seeds == 2).all()
    assert t1.loc["sft-E", "delta_task"] == pytest.approx(-5.0, abs=0.1)  # ×100 scale
    eq = pd.read_csv(report / "tables/equivalence.tsv", sep="\t")
    verdict = eq[(eq.sibling == "sft-E") & (eq.measure == "mean_task")].iloc[0]
    assert verdict.delta == pytest.approx(-5.0, abs=0.1) and verdict.n_tasks == 5
    real = pd.read_csv(report / "tables/realignment.tsv", sep="\t")
    cka = real[(real.probe == "works") & (real.sibling == "reason") & (real.metric == "cka-linear-biased")
               & (real.scope == "last layer")].iloc[0]
    # fixture levels: base~reason 0.70, base-E~reason-E 0.90, floors 0.92 / 0.91, each minus 0.03 per layer (layer 4)
    assert cka.before == pytest.approx(0.70 - 0.12, abs=0.01) and cka.after == pytest.approx(0.90 - 0.12, abs=0.01)
    assert cka.delta_low > 0 and cka.floor == pytest.approx(0.915 - 0.12, abs=0.01)
    rvr = real[(real.probe == "works") & (real.sibling == "reason") & (real.metric == "procrustes-rvr")
               & (real.scope == "layer average")].iloc[0]
    assert rvr.delta < 0 and rvr.closer > 0  # lower RVR is closer
    index = (report / "index.md").read_text()
    assert "Table 1" in index
    assert "After training, reason-E is within seed noise of base-E on 12/12 last-layer metrics" in index


def test_the_sentence_follows_the_scores_and_the_hrsa_values(tmp_path):
    from hrsa.report import realignment

    def sentence(root: Path, scores: dict[str, dict[str, float]]) -> str:
        run_report(root, build_demo(root, scores))
        return next(line for line in (root / "results/report/index.md").read_text().splitlines()
                    if line.startswith("tiny: "))

    scores = demo_scores()
    first = sentence(tmp_path / "a", scores)
    scores[f"{PAIR}.reason-E.s1"]["HrsaLee50"] += 0.30  # one input score changes
    second = sentence(tmp_path / "b", scores)
    assert first != second
    assert "reason-E is inconclusive vs base-E" in second  # a 30-point jump on one seed: spread too wide to decide
    real = pd.read_csv(tmp_path / "a/results/report/tables/realignment.tsv", sep="\t")
    assert "reason in Procrustes RVR" in second
    demo = build_demo(tmp_path / "c", scores)
    for hr_file in [p for p in demo["hrsa"] if p.name == "tiny.base~reason.parquet"]:
        hr = pd.read_parquet(hr_file)
        hr.loc[hr.metric == "procrustes-rvr", "value"] = 0.0  # the backbones agree exactly after rotation
        hr.to_parquet(hr_file)
    run_report(tmp_path / "c", demo)
    third = next(line for line in (tmp_path / "c/results/report/index.md").read_text().splitlines()
                 if line.startswith("tiny: "))
    assert third != second and "reason in Procrustes RVR" not in third
    assert "reason in dimension-wise correlation" in third
    assert not real.empty and realignment(pd.DataFrame(), ["cka-linear-biased"]).empty


def test_raw_backbone_baselines_are_listed_apart_from_the_seed_statistics(tmp_path):
    scores = demo_scores()
    raw = {f"{PAIR}.{role}": {t: 0.1 for t in TASKS} for role in ("base", "reason", "sft")}
    run_report(tmp_path / "a", build_demo(tmp_path / "a", scores))
    run_report(tmp_path / "b", build_demo(tmp_path / "b", {**scores, **raw}))
    t1 = pd.read_csv(tmp_path / "b/results/report/tables/table1.tsv", sep="\t").set_index("role")
    assert t1.loc["base (untrained)", "mean_task"] == pytest.approx(10.0) and t1.loc["base (untrained)", "n_seeds"] == 0
    assert t1.loc["base-E", "n_seeds"] == 2
    eq_a, eq_b = (pd.read_csv(tmp_path / f"{x}/results/report/tables/equivalence.tsv", sep="\t") for x in "ab")
    pd.testing.assert_frame_equal(eq_a, eq_b)  # the baselines change no test
    emb = pd.read_csv(tmp_path / "b/results/report/tables/embedding_scores.tsv", sep="\t")
    assert set(emb.role) == {"base-E", "reason-E", "sft-E"}


GROUPS = ["tasks-saved-0", "tasks-saved-1"]  # two evaluation task groups, named as the workflow names them


def test_cli_reads_exactly_the_run_records(tmp_path, monkeypatch):
    from hrsa.cli import main

    demo = build_demo(tmp_path)
    monkeypatch.chdir(tmp_path)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    from hrsa.report import grid_summary, run_inputs

    models = [f"{PAIR}.{r}-E.s{s}" for r in ("base", "reason", "sft") for s in SEEDS]
    built = [f"{PAIR}.{r}" for r in ("base", "reason", "sft")]
    rec = run_inputs(models, GROUPS, list(PROBES), built + models, built,
                     [str(p.relative_to(tmp_path)) for p in demo["hrsa"]], True)
    for i, path in enumerate(rec["benchmarks"]):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(header + f"{10.0 + i}\t0:00:10\t{500.0 + i}\t1\t1\t1\t0\t0\t90.0\t9.0\n")
    for d in rec["models"]:
        Path(d).mkdir(parents=True, exist_ok=True)
        (Path(d) / "provenance.json").write_text(json.dumps({"params": {"device": "cuda"}, "packages": {"torch": "9"}}))
    args = ["report", "--hrsa", *[str(p.relative_to(tmp_path)) for p in demo["hrsa"]], "--eval-dir", "results/eval",
            "--models", *models, "--tasks", *TASKS, "--task-benchmarks", json.dumps(demo["task_benchmarks"]),
            "--config", json.dumps(demo["config"]["report"]), "--grid", json.dumps(grid_summary(demo["config"])),
            "--run-records", "--probes", *PROBES, "--backbones", *built, "--extract-models", *built, *models, "--mine",
            "--eval-groups", *GROUPS, "--out", "results/report"]
    assert main(args) == 0
    jobs = pd.read_csv("results/report/tables/jobs.tsv", sep="\t")
    assert len(jobs) == len(rec["benchmarks"]) and jobs.wall_s.iloc[0] == 10.0 and jobs.max_rss_mb.iloc[0] == 500.0
    assert set(jobs.rule) == {"backbones", "data", "train", "extract", "knn", "hrsa", "eval"}
    assert "eval/tiny.base-E.s0/tasks-saved-1" in set(jobs.job)
    prov = pd.read_csv("results/report/tables/provenance.tsv", sep="\t")
    assert set(prov.model) == set(built + models) and set(prov.device) == {"cuda"}
    Path(rec["benchmarks"][-1]).unlink()
    assert main(args) == 0  # a job record that is missing is listed, never a reason to fail or rerun
    jobs = pd.read_csv("results/report/tables/jobs.tsv", sep="\t")
    assert len(jobs) == len(rec["benchmarks"]) - 1
    assert f"job records missing (1, not read): {rec['benchmarks'][-1]}" in Path("results/report/index.md").read_text()


def test_run_records_include_every_roles_sibling_health_job():
    from hrsa.report import run_inputs

    rec = run_inputs([], [], [], [], [], [], False, ["tiny.base", "tiny.reason", "tiny.sft"])
    assert rec["benchmarks"] == [f"results/benchmarks/health/tiny.{r}.tsv" for r in ("base", "reason", "sft")]
