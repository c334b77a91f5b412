"""The report's sections in reading order: SECTIONS, a list of functions `section(ctx, report)` that each add one
section (or items of one) from a Context. A new table is one function appended here (or inserted where it belongs);
answer_rst is the answer as reStructuredText for Snakemake's report."""

from __future__ import annotations

import json
from collections.abc import Callable

from hrsa.aggregate import NO_BENCHMARK
from hrsa.metrics.registry import display_name
from hrsa.report.answer import banner, pair_answers
from hrsa.report.context import Context
from hrsa.report.health import HEALTH_NOTE
from hrsa.report.inference import MEASURES, T1_METHOD, T1_NULL, T1_UNIT, verdict_lines
from hrsa.report.load import report_host
from hrsa.report.realignment import REALIGN_METHOD, REALIGN_NULL, REALIGN_UNIT
from hrsa.report.render import Report, benchmark_name, fmt, table1_display
from hrsa.report.training import add_training_health, unlearned


def answer(ctx: Context, rep: Report) -> None:
    s = rep.section("Answer")
    warn = banner(ctx.grid, ctx.prov, unlearned(ctx.training))
    if warn:
        s.append(("banner", warn))
    answers = pair_answers(ctx)
    s += [("answer", f"{pair}: {text}") for pair, text in answers.items()] or [("text", "Nothing to report.")]
    s.append(("text", f"Verdicts on {MEASURES[str(ctx.settings['primary_measure'])]} (×100 points): TOST against "
                      f"±{float(ctx.settings['equivalence_margin']):g} points, Holm-adjusted; interval: 90% "
                      "seed-level t. Seed-to-seed noise: two seeds of one recipe (X-E~X-E), normal 95% intervals. "
                      "Details below."))


def table_1(ctx: Context, rep: Report) -> None:
    s = rep.section("Table 1: embedding scores per pair and benchmark (×100)")
    s.append(("text", "Mean(Task) and Mean(Type) per benchmark as mean ± std over seeds; Δ = sibling - base-E as "
                      "mean ± std over seeds of the same-seed differences. Missing tasks are listed, never imputed."))
    if ctx.t1_note:
        s.append(("text", ctx.t1_note))
    elif ctx.t1.empty:
        s.append(("text", "No evaluation results were given: no Table 1."))
    if not ctx.t1.empty:
        s.append(("table", table1_display(ctx.t1, dict(ctx.task_benchmarks))))
    if ctx.eq.empty:
        return
    primary = str(ctx.settings["primary_measure"])
    s.append(("text", f"Equivalence (TOST, margin ±{float(ctx.settings['equivalence_margin']):g} points, "
                      f"alpha {float(ctx.settings['alpha']):g}; primary measure {MEASURES[primary]}). "
                      f"Resampling unit: {T1_UNIT}. Interval: 90% {T1_METHOD}. Null: {T1_NULL}."))
    eq = ctx.eq.assign(benchmark=ctx.eq.benchmark.map(lambda b: _bench(ctx, str(b))))
    s.append(("list", verdict_lines(eq, primary)))
    cols = ["pair", "benchmark", "sibling", "measure", "n_seeds", "n_tasks", "delta", "se", "df", "low90", "high90",
            "p_tost", "p_tost_holm", "p_diff", "p_diff_holm", "verdict", "seeds_needed"]
    s.append(("table", eq[cols].assign(measure=eq.measure.map(MEASURES))))


def _bench(ctx: Context, bench: str) -> str:
    """A benchmark's printed name (the tasks themselves for tasks outside any mteb benchmark)."""
    members = ctx.task_members or {t: [b] for t, b in ctx.task_benchmarks.items()}
    tasks = [t for t, bs in members.items() if bench in [b or NO_BENCHMARK for b in bs]]
    return benchmark_name(bench, tasks)


def sibling_health(ctx: Context, rep: Report) -> None:
    """Beside Table 1: whether each sibling reasons better than its base, and how far its weights moved."""
    if ctx.health.empty:
        return
    s = rep.section("Table 1: embedding scores per pair and benchmark (×100)")
    s += [("text", f"Sibling health: {HEALTH_NOTE}."), ("table", ctx.health)]


def training_health(ctx: Context, rep: Report) -> None:
    """Table 1's training column, the verdicts' note of what they leave out, and the training-health section."""
    add_training_health(rep, ctx.training)


def realignment_section(ctx: Context, rep: Report) -> None:
    s = rep.section("Manifold realignment: similarity(base-E, X-E) - similarity(base, X)")
    s.append(("text", f"Unit: {REALIGN_UNIT}. Interval: {REALIGN_METHOD}. Null: {REALIGN_NULL}. within seed noise: "
                      "the embedders are not detectably less similar than two seeds of one recipe."))
    if ctx.real.empty:
        return
    cols = ["probe", "pair", "sibling", "metric", "scope", "before", "after", "delta", "delta_low", "delta_high",
            "floor", "gap_low", "gap_high", "within_floor"]
    show = ctx.real[cols].assign(metric=ctx.real.metric.map(display_name),
                                 within_floor=ctx.real.within_floor.map(lambda v: v if isinstance(v, bool) else None))
    s.append(("table", show.rename(columns={"within_floor": "within seed noise"})))


def figures(ctx: Context, rep: Report) -> None:
    s = rep.section("Figures")
    s.append(("text", "Backbones (before contrastive training) are drawn in blue, solid; embedders (after) in "
                      "vermilion, dashed; the seed noise floor in green, dotted; chance in black, dash-dotted. "
                      "Every figure's plotted values are in figures/*.tsv beside it."))
    for heading, figs in ctx.figures.items():
        if figs:
            s.append(("subhead", heading))
            s += [("figure", f) for f in figs]
    if not ctx.figures.get("Procrustes maps at the last layer"):
        s.append(("text", "No Procrustes map: compare saves none ({probe}/{comparison}.procrustes.npz)."))


def per_task(ctx: Context, rep: Report) -> None:
    s = rep.section("Per-task scores (×100, mteb main score, mean ± std over seeds; descriptive, no test per task)")
    if ctx.emb.empty:
        return
    emb = ctx.emb
    show = emb.assign(score=[fmt(100 * m, 100 * sd) for m, sd in zip(emb["mean"], emb["std"], strict=True)],
                      benchmark=[_bench(ctx, ctx.task_benchmarks.get(t) or NO_BENCHMARK) if t != "Average"
                                 else "all tasks (unweighted average)" for t in emb.task])
    for bench, g in show.groupby("benchmark", sort=False):
        wide = g.pivot_table(index=["pair", "role"], columns="task", values="score", aggfunc="first", sort=False)
        s.append(("text", f"Benchmark: {bench}"))
        s.append(("table", wide.reset_index()))


def what_was_run(ctx: Context, rep: Report) -> None:
    s = rep.section("What was run")
    grid, hr = ctx.grid, ctx.hr
    s.append(("list", [f"pairs and roles: {grid['pairs']}", f"seeds: {grid['seeds']}", f"layers: {grid['layers']}",
                       f"probes: {grid['probes']}", f"comparisons configured: {grid['comparisons']}",
                       f"HRSA tables read: {hr.comparison.nunique() if not hr.empty else 0} comparisons on "
                       f"{hr.probe.nunique() if not hr.empty else 0} probe sets",
                       "rows compared per probe set (tokens of a token-level probe, texts of a sentence-level one; "
                       "every token unless the probe's max_length/max_tokens caps it): "
                       + (", ".join(f"{p}: {int(g.n.max()):,}" for p, g in hr.groupby("probe")) if "n" in hr
                          else "none"),
                       f"evaluation results read: {len(ctx.ev)} (embedder, task) scores"]))
    if ctx.missing_records:
        s.append(("list", [f"job records missing ({len(ctx.missing_records)}, not read): "
                           + ", ".join(map(str, ctx.missing_records))]))
    host = report_host()
    s.append(("text", "Report host: " + ", ".join(f"{k}={v}" for k, v in host.items() if not k.startswith("pkg:"))))
    s.append(("text", "Packages (report host): " + ", ".join(f"{k[4:]} {v}" for k, v in host.items()
                                                              if k.startswith("pkg:"))))
    if not ctx.prov.empty:
        s.append(("text", "Provenance of each trained or built model (device, hardware, package versions):"))
        s.append(("table", ctx.prov))
    if not ctx.jobs.empty:
        s.append(("text", "Wall time and peak memory (max RSS) per job, from the rules' benchmark: files:"))
        s.append(("table", ctx.jobs))
    s.append(("code", json.dumps({"report": dict(ctx.settings), **grid}, indent=1, sort_keys=True, default=str)))


#: the report's sections in reading order; append (or insert) a function(ctx, report) to add one
SECTIONS: list[Callable[[Context, Report], None]] = [answer, table_1, sibling_health, realignment_section,
                                                     training_health, figures, per_task, what_was_run]


def answer_rst(ctx: Context) -> str:
    """The answer as reStructuredText (the banner as a warning, one paragraph per pair), included by the workflow
    description of Snakemake's report (workflow/report/workflow.rst)."""
    parts = []
    warn = banner(ctx.grid, ctx.prov, unlearned(ctx.training))
    if warn:
        lead, rest = warn.split(": ", 1)
        parts += [f"**{_rst(lead)}**: {_rst(rest)}", ""]
    parts += [f"**{_rst(pair)}**: {_rst(text)}\n" for pair, text in pair_answers(ctx).items()]
    return "\n".join(parts) or "Nothing to report.\n"


def _rst(text: str) -> str:
    """Plain text safe inside a reStructuredText paragraph (markup characters escaped)."""
    return "".join("\\" + c if c in "*`_|\\[]" else c for c in text)


__all__ = ["SECTIONS", "answer_rst"]
