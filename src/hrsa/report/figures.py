"""The report's figures: the shared style (Okabe-Ito colours, backbones told from embedders by colour and line style,
9 pt text at page width, one shared legend per figure), saving (PNG, PDF and the plotted values as TSV) and the
per-layer curves. figures_maps (CKA, Procrustes) and figures_more (probe transfer, intrinsic dimension, training and
reward curves) draw the rest; these three modules are the only ones of hrsa that import matplotlib (report.pairwise and
report.drift draw through pyplot() here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrsa.metrics.manifold import DUPLICATE_SHARE
from hrsa.metrics.registry import display_name
from hrsa.report.context import Context, Figure
from hrsa.report.layers import degenerate, knn_metrics, layer_key, siblings

#: Okabe & Ito's colour-blind-safe palette
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermilion": "#D55E00", "purple": "#CC79A7"}
#: series styles (colour, line style, marker): backbones and embedders differ in colour AND line style
STYLES = {"backbones": (OKABE_ITO["blue"], "-", "o"), "embedders": (OKABE_ITO["vermilion"], "--", "s"),
          "noise": (OKABE_ITO["green"], ":", "^"), "permutation": (OKABE_ITO["black"], "-.", None),
          "chance": (OKABE_ITO["black"], "-.", None)}
#: per model role: backbones cool and solid, embedders warm and dashed; roles by marker
ROLE_STYLES = {"base": (OKABE_ITO["blue"], "-", "o"), "reason": (OKABE_ITO["sky"], "-", "^"),
               "sft": (OKABE_ITO["green"], "-", "v"), "base-E": (OKABE_ITO["vermilion"], "--", "o"),
               "reason-E": (OKABE_ITO["orange"], "--", "^"), "sft-E": (OKABE_ITO["purple"], "--", "v")}
#: PNGs are for the screen (the PDF beside each is for print): at 110 dpi the page that embeds every PNG stays small
#: enough for Snakemake's report, which shows index.html as a data URL (Chromium blocks those over 2 MB)
SCREEN_DPI = 110
PAGE_WIDTH = 6.5  # inches: a paper's text width; figures are drawn at it, so 9 pt text stays 9 pt on the page
FONT_PT = 9
RC: dict[str, Any] = {
    "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT, "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT, "figure.titlesize": FONT_PT + 1, "pdf.fonttype": 42}
#: legend entry of the hollow markers drawn over degenerate estimates (flag duplicate-rows), and what they mean
FLAGGED = "flagged: duplicate rows"
FLAG_NOTE = (f"Hollow markers: flagged duplicate-rows (more than {DUPLICATE_SHARE:.0%} of rows coincide with their "
             "first neighbour, e.g. layer 0 of a token probe; TwoNN leaves those rows out and kNN ties are broken "
             "arbitrarily): artefacts, not findings.")


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(RC)  # type: ignore[arg-type]
    import matplotlib.pyplot as plt

    return plt


def figure(nrows: int = 1, ncols: int = 1, height: float = 3.0, width: float = PAGE_WIDTH) -> tuple[Any, Any]:
    """A page-width figure with constrained layout (nothing clipped) and a 2-D array of axes."""
    return pyplot().subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")


def shared_legend(fig: Any, axes: Any, ncols: int = 3) -> None:
    """One legend for the whole figure, below the panels: every distinct label of every axes, once."""
    seen: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(ncols, len(seen)),
                   frameon=False)


def save(fig: Any, data: pd.DataFrame, out: Path, name: str, caption: str) -> Figure:
    """PNG and PDF of a figure, and the plotted values beside it as TSV (same stem)."""
    plt = pyplot()
    fig.savefig(out / f"{name}.png", dpi=SCREEN_DPI, pil_kwargs={"optimize": True})
    fig.savefig(out / f"{name}.pdf")
    plt.close(fig)
    data.to_csv(out / f"{name}.tsv", sep="\t", index=False)
    return Figure(out / f"{name}.png", caption)


def layer_ticks(ax: Any, pos: dict[str, int], label: str = "layer") -> None:
    """Layer tick labels, thinned to at most 8 so that 9 pt labels never collide."""
    step = max(1, math.ceil(len(pos) / 8))
    items = list(pos.items())
    shown = items[::step] if items[-1] in items[::step] else [*items[::step][:-1], items[-1]]
    ax.set_xticks([i for _, i in shown], [x for x, _ in shown])
    ax.set_xlabel(label)


def positions(layers: Sequence[str]) -> dict[str, int]:
    return {x: i for i, x in enumerate(sorted(set(layers), key=layer_key))}


def ordered(sub: pd.DataFrame) -> pd.DataFrame:
    return sub.sort_values("layer", key=lambda c: c.map(layer_key))


def flags_of(s: pd.DataFrame) -> pd.Series:
    return s["flag"].fillna("").astype(str) if "flag" in s else pd.Series([""] * len(s), index=s.index)


def mark_flagged(ax: Any, x: Sequence[int], y: Any, flags: pd.Series, colour: Any, marker: str | None) -> None:
    """Large hollow markers over the points whose flags mark a degenerate estimate (legend entry FLAGGED)."""
    bad = degenerate(flags).to_numpy()
    if bad.any():
        ax.plot(np.asarray(x)[bad], np.asarray(y, dtype=float)[bad], linestyle="none", marker=marker or "o", ms=9,
                color=colour, markerfacecolor="white", markeredgecolor=colour, markeredgewidth=1.5, zorder=3,
                label=FLAGGED)


def methods(rows: pd.DataFrame) -> tuple[str, str]:
    """The interval methods and nulls named by the rows (for captions)."""
    def join(col: str) -> str:
        vals = sorted({v for x in rows.get(col, []) for v in str(x).split(";") if v and v not in ("none", "nan")})
        return ", ".join(vals) or "none"
    return join("ci_method"), join("null_kind")


def _curve_series(tab: pd.DataFrame, sib: str, metric: str) -> list[tuple[str, pd.DataFrame]]:
    """(series name, rows with layer, y, low, high) of one panel: backbones, embedders, noise floor, null."""
    m = tab[tab.metric == metric]
    series = []
    for label, kind in (("backbones", f"base~{sib}"), ("embedders", f"base-E~{sib}-E")):
        s = ordered(m[m.kind == kind])
        if not s.empty:
            series.append((f"{label} {kind}", s.assign(y=s["mean"], low=s["ci_low"], high=s["ci_high"])))
    floor = m[m.kind.isin(["base-E~base-E", f"{sib}-E~{sib}-E"])]
    if not floor.empty:
        f = floor.groupby("layer", as_index=False)["mean"].mean()
        series.append(("noise floor: seeds of one recipe",
                       ordered(f).assign(y=lambda d: d["mean"], low=np.nan, high=np.nan)))
    emb = m[m.kind == f"base-E~{sib}-E"]
    if not emb.empty and emb["null_mean"].notna().any():
        n = ordered(emb.dropna(subset=["null_mean"]))
        series.append(("permutation null", n.assign(y=n["null_mean"], low=np.nan, high=np.nan)))
    return series


def _plot_panel(ax: Any, series: list[tuple[str, pd.DataFrame]], metric: str) -> list[dict[str, Any]]:
    """Draw one panel's series; returns the plotted values as rows."""
    pos = positions([x for _, s in series for x in s["layer"]])
    rows = []
    for name, s in series:
        colour, ls, marker = STYLES[name.split(" ")[0]]
        x = [pos[v] for v in s["layer"]]
        ax.plot(x, s["y"], color=colour, linestyle=ls, marker=marker, ms=4, lw=1.6, label=name)
        if s["low"].notna().any():
            ax.fill_between(x, s["low"], s["high"], color=colour, alpha=0.2, linewidth=0)
        flags = (flags_of(s) if name.startswith(("backbones", "embedders"))
                 else pd.Series([""] * len(s), index=s.index))
        mark_flagged(ax, x, s["y"], flags, colour, marker)
        rows += [{"metric": metric, "series": name, "layer": lay, "y": y, "low": lo, "high": hi, "flag": f}
                 for lay, y, lo, hi, f in zip(s["layer"], s["y"], s["low"], s["high"], flags, strict=True)]
    layer_ticks(ax, pos)
    ax.set_title(display_name(metric))
    return rows


def _curve_figure(tab: pd.DataFrame, pair: str, probe: str, sib: str, metrics: Sequence[str], what: str,
                  out: Path, name: str) -> Figure | None:
    panels = [(m, _curve_series(tab, sib, m)) for m in metrics]
    panels = [(m, s) for m, s in panels if any(n.startswith(("backbones", "embedders")) for n, _ in s)]
    if not panels:
        return None
    ncols = 2 if len(panels) == 4 else min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = figure(nrows, ncols, height=2.3 * nrows + 0.7)
    rows: list[dict[str, Any]] = []
    for ax, (metric, series) in zip(axes.ravel(), panels, strict=False):
        rows += _plot_panel(ax, series, metric)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    shared_legend(fig, axes, ncols=2)
    ci, null = methods(tab[tab.kind.isin([f"base~{sib}", f"base-E~{sib}-E"]) & tab.metric.isin(metrics)])
    seeds = tab[(tab.kind == f"base-E~{sib}-E")]["count"].max()
    caption = (f"{what} per layer, pair {pair}, {sib} vs base, probe set {probe} (layers 0 = embedding output to "
               f"the last block; pooled = the sentence embedding): {', '.join(display_name(m) for m, _ in panels)}. "
               f"Backbones base~{sib} before contrastive training, embedders base-E~{sib}-E after (mean over "
               f"{int(seeds) if pd.notna(seeds) else 0} seeds). Bands: envelope of the per-seed 95% intervals "
               f"({ci}; resampling unit: blocks of probe texts). Noise floor: X-E~X-E, mean over seed pairs. "
               f"Null: {null} (chance level drawn where computed)."
               + (f" {FLAG_NOTE}" if degenerate(pd.Series([r["flag"] for r in rows], dtype=str)).any() else ""))
    return save(fig, pd.DataFrame(rows), out, name, caption)


def plot_layer_curves(ctx: Context, out: Path) -> list[Figure]:
    """Per pair, probe and sibling: headline metrics per layer, and kNN Jaccard at every configured k."""
    tab, figs = ctx.tab, list[Figure]()
    if tab.empty:
        return figs
    for (probe, pair), sub in tab.groupby(["probe", "pair"], sort=True):
        for sib in siblings(sub):
            for what, ms, stem in (("Similarity", ctx.settings["headline_metrics"], "layers"),
                                   ("kNN Jaccard", knn_metrics(sub), "knn")):
                f = _curve_figure(sub, pair, probe, sib, ms, what, out, f"{stem}_{pair}_{probe}_{sib}")
                if f is not None:
                    figs.append(f)
    return figs
