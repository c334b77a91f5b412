"""Build the report: read exactly the given files, compute Table 1, equivalence, realignment and the HRSA tables into
a Context, draw every figure of FIGURES, assemble the sections of hrsa.report.sections.SECTIONS and write index.md,
index.html, answer.rst (the answer for Snakemake's report), tables/*.tsv and figures/* (each atomically).

Extension: a new figure is `FIGURES.append((key, heading, draw))` with `draw(ctx, out_dir) -> list[Figure]`; a new
table or section is a function appended to (or inserted in) SECTIONS."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hrsa.aggregate import NonFiniteScore, aggregate
from hrsa.errors import DataError
from hrsa.io import atomic_path
from hrsa.report.context import Context, Figure
from hrsa.report.drift import draw_drift, drift_table
from hrsa.report.figures import plot_layer_curves
from hrsa.report.figures_maps import plot_cka_matrices, plot_procrustes_maps
from hrsa.report.figures_more import (
    plot_intrinsic_dimension,
    plot_probe_transfer,
    plot_reward_curves,
    plot_training_curves,
)
from hrsa.report.health import load_health
from hrsa.report.inference import baseline_rows, embedding_table, equivalence, table1
from hrsa.report.layers import hrsa_table, intrinsic_dimension, knn_metrics
from hrsa.report.load import (
    load_evaluations,
    load_hrsa,
    probe_chance,
    read_benchmarks,
    read_provenance,
)
from hrsa.report.realignment import realignment
from hrsa.report.records import grid_summary
from hrsa.report.render import Report
from hrsa.report.sections import SECTIONS, answer_rst
from hrsa.report.training import drop_unlearned_comparisons, drop_unlearned_scores, load_training, unlearned
from hrsa.schema import with_defaults

TITLE = "Do reasoning backbones make better embedding models? (HRSA report)"

#: (key, heading in the report, draw(ctx, figure_dir) -> figures), in reading order
FIGURES: list[tuple[str, str, Callable[[Context, Path], list[Figure]]]] = [
    ("curves", "Similarity per layer", plot_layer_curves),
    ("cka", "Linear CKA, layer by layer: before, after and the change", plot_cka_matrices),
    ("procrustes", "Procrustes maps at the last layer", plot_procrustes_maps),
    ("probe", "Probe transfer at the headline layer (pooled)", plot_probe_transfer),
    ("id", "Intrinsic dimension per layer", plot_intrinsic_dimension),
    ("training", "Contrastive training of every embedder", plot_training_curves),
    ("reward", "RL reward of every recipe-built sibling", plot_reward_curves),
    ("drift", "Drift over one RL run: each headline metric against the RL step", draw_drift),
]


def settings_of(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config's `report:` block with every key it leaves out taken from the schema."""
    return with_defaults("report", report)


def build_context(hrsa_files: Sequence[Path], eval_files: Sequence[Path], report: Mapping[str, Any], *,
                  grid: Mapping[str, Any] | None = None, task_benchmarks: Mapping[str, Any] | None = None,
                  benchmark_files: Sequence[Path] = (), provenance_files: Sequence[Path] = (),
                  procrustes_maps: Sequence[Path] = (), missing_records: Sequence[Path] = (),
                  probe_files: Sequence[Path] = (), health_files: Sequence[Path] = (),
                  training_files: Sequence[Path] = ()) -> Context:
    """Every table of the report, computed from exactly the given files (see build_report)."""
    settings = settings_of(report)
    ev, hr = load_evaluations(eval_files), load_hrsa(hrsa_files)
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
    tab = hrsa_table(hr)
    metrics = list(dict.fromkeys([*settings["headline_metrics"], *(knn_metrics(tab) if not tab.empty else [])]))
    grid = {**grid_summary({}), **(grid or {})}
    # {task: every benchmark counting it} (a task shared by two benchmarks counts in both); shown under its first
    members = {t: list(b) if isinstance(b, list | tuple) else [b] for t, b in tb.items()}
    dirs = [Path(p).parent if Path(p).name == "provenance.json" else Path(p) for p in provenance_files]
    return Context(settings=settings, grid=grid, ev=ev, hr=hr, tab=tab,
                   emb=embedding_table(ev), long_df=long_df, t1=t1, t1_note=t1_note, eq=eq,
                   real=realignment(drop_unlearned_comparisons(hr, bad), metrics), ids=intrinsic_dimension(hr),
                   jobs=read_benchmarks(benchmark_files), prov=read_provenance(provenance_files),
                   task_benchmarks={t: m[0] if m else None for t, m in members.items()}, task_members=members,
                   health=load_health(health_files), training=training,
                   drift=drift_table(tab, metrics, grid.get("rl_steps") or {}), model_dirs=dirs,
                   procrustes_maps=list(map(Path, procrustes_maps)), chance=probe_chance(probe_files),
                   missing_records=list(map(Path, missing_records)))


def build_report(hrsa_files: Sequence[Path], eval_files: Sequence[Path], report: Mapping[str, Any], out: Path,
                 **inputs: Any) -> Path:
    """Write out/index.md, out/index.html, out/answer.rst, out/tables/*.tsv and out/figures/* (PNG, PDF and the
    plotted values as TSV) from exactly the given files; returns the index path. `report`: the config's `report:`
    block (missing keys from the schema); keyword inputs as build_context: `grid` (grid_summary of the study config,
    shown under "what was run"), `task_benchmarks`, `benchmark_files` (job records), `provenance_files` (of every
    built model; their directories' train_log.jsonl and reward_curve.tsv are drawn), `procrustes_maps`,
    `missing_records` (job records of the grid that do not exist, listed, never a reason to rerun), `probe_files`
    (labelled probe sets: the chance line of probe transfer), `health_files` (sibling health, beside Table 1),
    `training_files` (embedders' training summaries: one that did not learn is flagged and no verdict uses it)."""
    ctx = build_context(hrsa_files, eval_files, report, **inputs)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tables", "figures", "index.html", "index.md", "answer.rst"):  # what a killed report left
        for stale in out.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    tables = {"embedding_scores": ctx.emb, "table1": ctx.t1, "table1_long": ctx.long_df, "equivalence": ctx.eq,
              "hrsa_layers": ctx.tab, "hrsa_all": ctx.hr, "realignment": ctx.real, "intrinsic_dimension": ctx.ids,
              "drift": ctx.drift, "health": ctx.health, "training_health": ctx.training, "jobs": ctx.jobs,
              "provenance": ctx.prov}
    with atomic_path(out / "tables") as tdir:
        tdir.mkdir()
        for name, df in tables.items():
            df.to_csv(tdir / f"{name}.tsv", sep="\t", index=False)
    with atomic_path(out / "figures") as fdir:
        fdir.mkdir()
        drawn = {heading: draw(ctx, fdir) for _, heading, draw in FIGURES}
    ctx.figures = {h: [Figure(out / "figures" / f.path.name, f.caption) for f in v] for h, v in drawn.items()}
    rep = Report()
    for section in SECTIONS:
        section(ctx, rep)
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(rep.html(TITLE))
    with atomic_path(out / "index.md") as tmp:
        tmp.write_text(rep.markdown(TITLE))
    with atomic_path(out / "answer.rst") as tmp:
        tmp.write_text(answer_rst(ctx))
    return out / "index.md"

