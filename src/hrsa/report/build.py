"""Build the report: read exactly the given files, compute Table 1, equivalence, realignment and the HRSA tables,
draw the figures, and write index.md, index.html, tables/*.tsv and figures/* (each atomically)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hrsa.aggregate import NonFiniteScore, aggregate
from hrsa.errors import DataError
from hrsa.io import atomic_path
from hrsa.report.drift import DRIFT_NOTE, drift_table, plot_drift
from hrsa.report.figures import (
    CURVE_NOTE,
    FLAG_NOTE,
    plot_cka_matrices,
    plot_intrinsic_dimension,
    plot_layer_curves,
    plot_probe_transfer,
    plot_procrustes_maps,
)
from hrsa.report.health import HEALTH_NOTE, load_health
from hrsa.report.inference import (
    MEASURES,
    T1_METHOD,
    T1_NULL,
    T1_UNIT,
    baseline_rows,
    embedding_table,
    equivalence,
    table1,
    verdict_lines,
)
from hrsa.report.layers import hrsa_table, intrinsic_dimension, knn_metrics
from hrsa.report.load import load_evaluations, load_hrsa, read_benchmarks, read_provenance, report_host
from hrsa.report.realignment import REALIGN_METHOD, REALIGN_NULL, REALIGN_UNIT, pair_sentences, realignment
from hrsa.report.records import grid_summary
from hrsa.report.render import Report, fmt, table1_display
from hrsa.report.training import (
    add_training_health,
    drop_unlearned_comparisons,
    drop_unlearned_scores,
    load_training,
    unlearned,
)
from hrsa.schema import with_defaults


def settings_of(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config's `report:` block with every key it leaves out taken from the schema."""
    return with_defaults("report", report)


def build_report(hrsa_files: Sequence[Path], eval_files: Sequence[Path], report: Mapping[str, Any], out: Path, *,
                 grid: Mapping[str, Any] | None = None, task_benchmarks: Mapping[str, Any] | None = None,
                 benchmark_files: Sequence[Path] = (), provenance_files: Sequence[Path] = (),
                 procrustes_maps: Sequence[Path] = (), missing_records: Sequence[Path] = (),
                 health_files: Sequence[Path] = (),
                 training_files: Sequence[Path] = ()) -> Path:
    """Write out/index.md, out/index.html, out/tables/*.tsv and out/figures/* (PNG, PDF and the plotted values as
    TSV) from exactly the given files; returns the index path. `report`: the config's `report:` block (missing keys
    from the schema); `grid`: grid_summary of the study config, shown under "what was run"; `missing_records`: job
    records (benchmark TSVs) of the grid that do not exist, listed under "what was run" (never a reason to rerun);
    `training_files`: the embedders' training summaries: one that did not learn is flagged and no verdict uses it."""
    settings = settings_of(report)
    grid = {**grid_summary({}), **(grid or {})}  # every key _grid_lines shows, empty where not given
    ev, hr = load_evaluations(eval_files), load_hrsa(hrsa_files)
    emb, tab = embedding_table(ev), hrsa_table(hr)
    tb = dict(task_benchmarks) if task_benchmarks is not None else {t: None for t in sorted(set(ev.task))}
    t1_note = ""
    try:
        long_df, means = aggregate(eval_files, tb)
    except NonFiniteScore:
        raise  # a broken score fails the report, naming task and model: it is never averaged or noted away
    except DataError as exc:  # summaries without per-split scores (written before `hrsa evaluate` recorded them)
        long_df, means, t1_note = pd.DataFrame(), pd.DataFrame(), f"Table 1 not computed: {exc}"
    base_means = pd.DataFrame()
    if not long_df.empty:  # raw-backbone baselines (no seed) stay out of every seed statistic
        base_means, means = means[means.seed.isna()], means[means.seed.notna()]
        long_df = long_df[long_df.seed.notna()]
    t1 = table1(means) if not means.empty else pd.DataFrame()
    if not base_means.empty:
        t1 = pd.concat([t1, baseline_rows(base_means)], ignore_index=True).sort_values(
            ["pair", "benchmark"], kind="stable", ignore_index=True)
    training = load_training(training_files)
    bad = unlearned(training)  # embedders that did not learn: flagged, and left out of every verdict
    verdict_df = drop_unlearned_scores(long_df, bad)
    eq = equivalence(verdict_df, settings) if not verdict_df.empty else pd.DataFrame()
    metrics = list(dict.fromkeys([*settings["headline_metrics"], *(knn_metrics(tab) if not tab.empty else [])]))
    real = realignment(drop_unlearned_comparisons(hr, bad), metrics)
    ids = intrinsic_dimension(hr)
    health = load_health(health_files)
    drift = drift_table(tab, metrics, grid.get("rl_steps") or {})
    jobs, prov = read_benchmarks(benchmark_files), read_provenance(provenance_files)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tables", "figures", "index.html", "index.md"):  # what a killed report left (atomic_path's folders)
        for stale in out.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    tables = {"embedding_scores": emb, "table1": t1, "table1_long": long_df, "equivalence": eq, "hrsa_layers": tab,
              "hrsa_all": hr, "realignment": real, "intrinsic_dimension": ids, "drift": drift, "health": health,
              "training_health": training,
              "jobs": jobs, "provenance": prov}
    with atomic_path(out / "tables") as tdir:
        tdir.mkdir()
        for name, df in tables.items():
            df.to_csv(tdir / f"{name}.tsv", sep="\t", index=False)
    with atomic_path(out / "figures") as fdir:
        fdir.mkdir()
        figures = {"curves": plot_layer_curves(tab, fdir, settings["headline_metrics"]) if not tab.empty else [],
                   "cka": plot_cka_matrices(hr, fdir) if not hr.empty else [],
                   "procrustes": plot_procrustes_maps(procrustes_maps, hr, fdir),
                   "probe": plot_probe_transfer(tab, fdir) if not tab.empty else [],
                   "id": plot_intrinsic_dimension(ids, fdir),
                   "drift": plot_drift(drift, fdir)}
    figures = {k: [out / "figures" / p.name for p in v] for k, v in figures.items()}  # after the rename
    rep = _assemble(grid, settings, ev, hr, emb, t1, t1_note, eq, real, jobs, prov, figures, out / "figures")
    if not health.empty:  # beside Table 1: whether each sibling reasons better than its base, and how far it moved
        s = dict(rep.sections)["Table 1: embedding scores per pair and benchmark (×100)"]
        s += [("text", f"Sibling health: {HEALTH_NOTE}."), ("table", health)]
    add_training_health(rep, training)
    if missing_records:
        dict(rep.sections)["What was run"].append(("list", [
            f"job records missing ({len(missing_records)}, not read): " + ", ".join(map(str, missing_records))]))
    title = "Do reasoning backbones make better embedding models? (HRSA report)"
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(rep.html(title))
    with atomic_path(out / "index.md") as tmp:
        tmp.write_text(rep.markdown(title))
    return out / "index.md"


def _assemble(grid: Mapping[str, Any], settings: Mapping[str, Any], ev: pd.DataFrame, hr: pd.DataFrame,
              emb: pd.DataFrame, t1: pd.DataFrame, t1_note: str, eq: pd.DataFrame, real: pd.DataFrame,
              jobs: pd.DataFrame, prov: pd.DataFrame, figures: dict[str, list[Path]], fdir: Path) -> Report:
    """The report's sections in reading order (figures are referenced from fdir)."""
    primary = str(settings["primary_measure"])
    rep = Report()
    answer = rep.section("Answer")
    sentences = pair_sentences(real, eq, primary, settings["headline_metrics"])
    answer.append(("list", list(sentences.values()) or ["nothing to report"]))
    answer.append(("list", verdict_lines(eq, primary) or ["no Table 1 verdict: no evaluation results"]))
    s = rep.section("Table 1: embedding scores per pair and benchmark (×100)")
    s.append(("text", "Mean(Task) and Mean(Type) per benchmark as mean ± std over seeds; Δ = sibling - base-E as "
                      "mean ± std over seeds of the same-seed differences. Missing tasks are listed, never imputed."))
    if t1_note:
        s.append(("text", t1_note))
    elif t1.empty:
        s.append(("text", "No evaluation results were given: no Table 1."))
    if not t1.empty:
        s.append(("table", table1_display(t1)))
    if not eq.empty:
        s.append(("text", f"Equivalence (TOST, margin ±{float(settings['equivalence_margin']):g} points, "
                          f"alpha {float(settings['alpha']):g}; primary measure {MEASURES[primary]}). "
                          f"Resampling unit: {T1_UNIT}. Interval: 90% {T1_METHOD}. Null: {T1_NULL}."))
        s.append(("table", _compact_equivalence(eq)))
    s = rep.section("Manifold realignment: similarity(base-E, X-E) - similarity(base, X)")
    s.append(("text", f"Unit: {REALIGN_UNIT}. Interval: {REALIGN_METHOD}. Null: {REALIGN_NULL}. within_floor: the "
                      "embedders are not detectably less similar than two seeds of one recipe."))
    if not real.empty:
        s.append(("table", _compact_realignment(real)))
    s = rep.section("HRSA figures")
    s.append(("text", f"Curves: {CURVE_NOTE}. CKA heatmaps: before (backbones) and after (embedders, mean over "
                      "seeds). Procrustes map: |O*| of the last layer, titled with its RIE. Probe transfer: accuracy "
                      "of a probe trained on the left model, tested on left (source) and right (target) features; the "
                      "headline is layer `pooled` (each model's encode() output, L2-normalised; StandardScaler + "
                      "logistic regression on the source's 0.8/0.1/0.1 train split, seed 42), per-layer probes are "
                      "rows of tables/hrsa_layers.tsv. "
                      f"Intrinsic dimension: TwoNN (cosine neighbours). Curves and ID: {FLAG_NOTE}. "
                      "Plotted values: figures/*.tsv."))
    if figures["drift"]:
        s.append(("text", f"Drift over the RL run (figures drift_*): {DRIFT_NOTE}."))
    if not figures["procrustes"]:
        s.append(("text", "No Procrustes map: compare saves none ({probe}/{comparison}.procrustes.npz)."))
    for paths in figures.values():
        s += [("figure", p) for p in paths]
    s = rep.section("Per-task scores (mteb main score, mean ± std over seeds; descriptive, no test per task)")
    if not emb.empty:
        show = emb.assign(score=[fmt(m, sd, 4) for m, sd in zip(emb["mean"], emb["std"], strict=True)])
        wide = show.pivot_table(index=["pair", "role"], columns="task", values="score", aggfunc="first", sort=False)
        s.append(("table", wide.reset_index()))
    s = rep.section("What was run")
    s.append(("list", _grid_lines(grid, hr, ev)))
    host = report_host()
    s.append(("text", "Report host: " + ", ".join(f"{k}={v}" for k, v in host.items() if not k.startswith("pkg:"))))
    s.append(("text", "Packages (report host): " + ", ".join(f"{k[4:]} {v}" for k, v in host.items()
                                                              if k.startswith("pkg:"))))
    if not prov.empty:
        s.append(("text", "Provenance of each trained or built model (device, hardware, package versions):"))
        s.append(("table", prov))
    if not jobs.empty:
        s.append(("text", "Wall time and peak memory (max RSS) per job, from the rules' benchmark: files:"))
        s.append(("table", jobs))
    s.append(("code", json.dumps({"report": dict(settings), **grid}, indent=1, sort_keys=True, default=str)))
    return rep


def _compact_equivalence(eq: pd.DataFrame) -> pd.DataFrame:
    cols = ["pair", "benchmark", "sibling", "measure", "n_seeds", "n_tasks", "delta", "se", "df", "low90", "high90",
            "p_tost", "p_tost_holm", "p_diff", "p_diff_holm", "verdict", "seeds_needed"]
    return eq[cols] if not eq.empty else eq


def _compact_realignment(real: pd.DataFrame) -> pd.DataFrame:
    cols = ["probe", "pair", "sibling", "metric", "scope", "before", "after", "delta", "delta_low", "delta_high",
            "floor", "gap_low", "gap_high", "within_floor"]
    return real[cols] if not real.empty else real


def _grid_lines(grid: Mapping[str, Any], hr: pd.DataFrame, ev: pd.DataFrame) -> list[str]:
    """The grid that was run (grid_summary of the config) and how much of it the report read."""
    return [f"pairs and roles: {grid['pairs']}", f"seeds: {grid['seeds']}", f"layers: {grid['layers']}",
            f"probes: {grid['probes']}", f"comparisons configured: {grid['comparisons']}",
            f"HRSA tables read: {hr.comparison.nunique() * 1 if not hr.empty else 0} comparisons on "
            f"{hr.probe.nunique() if not hr.empty else 0} probe sets",
            "rows compared per probe set (tokens of a token-level probe, texts of a sentence-level one; every "
            "token unless the probe's max_length/max_tokens caps it): "
            + (", ".join(f"{p}: {int(g.n.max()):,}" for p, g in hr.groupby("probe")) if "n" in hr else "none"),
            f"evaluation results read: {len(ev)} (embedder, task) scores"]
