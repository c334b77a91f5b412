"""Drift over one RL run: each headline metric of base against the RLVR sibling's kept checkpoints (`base~reason@N`),
and the run's end (`base~reason`, at the run's last step), before contrastive training and, where the checkpoints were
trained into embedders (`base-E~reason@N-E`), after it. The study's "coordinate basis drift during prolonged
training", read off one run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hrsa.grid.ids import split_role
from hrsa.metrics.registry import display_name
from hrsa.report.context import Context, Figure
from hrsa.report.figures import STYLES, figure, save, shared_legend
from hrsa.report.layers import last_layer

DRIFT_NOTE = ("x: RL step of the sibling's kept checkpoint (the last point is the run's final model); y: the metric at "
              "the deepest numbered layer, mean over seeds for embedders; bands: envelope of the per-seed 95% "
              "block-bootstrap intervals (unit: probe texts); null: permutation chance level (hrsa tables)")
STAGES = {"before": "backbones", "after": "embedders"}


def _step_of(kind: str, final: int | None) -> tuple[str, int] | None:
    """(stage, RL step) of a base-vs-reason comparison kind: `base~reason@20` -> ("before", 20), `base-E~reason-E`
    -> ("after", final); None for any other kind (or the run's end where its step is unknown)."""
    left, _, right = kind.partition("~")
    stage = {"base": "before", "base-E": "after"}.get(left)
    role, step = split_role(right)
    if stage is None or role != "reason" or right.endswith("-E") != (stage == "after"):
        return None
    step = final if step is None else step
    return None if step is None else (stage, step)


def drift_table(tab: pd.DataFrame, metrics: Sequence[str], rl_steps: Mapping[str, int]) -> pd.DataFrame:
    """Per probe, pair, stage (before/after contrastive training), metric and RL step: the metric at the deepest
    numbered layer (seed mean ± std, bootstrap envelope) from hrsa_table's rows, for pairs with kept checkpoints."""
    cols = ["probe", "pair", "stage", "metric", "step", "layer", "mean", "std", "ci_low", "ci_high", "count"]
    if tab.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (probe, pair), sub in tab.groupby(["probe", "pair"], sort=True):
        if not any("@" in k for k in sub.kind):  # no checkpoint compared: no drift to draw
            continue
        for kind, rk in sub[sub.metric.isin(metrics)].groupby("kind", sort=False):
            where = _step_of(str(kind), rl_steps.get(str(pair)))
            layer = last_layer(list(rk.layer))
            if where is None or layer is None:
                continue
            for _, r in rk[rk.layer == layer].iterrows():
                rows.append({"probe": probe, "pair": pair, "stage": where[0], "metric": r.metric, "step": where[1],
                             "layer": layer, "mean": r["mean"], "std": r["std"], "ci_low": r.ci_low,
                             "ci_high": r.ci_high, "count": r["count"]})
    return pd.DataFrame(rows, columns=cols).sort_values(["probe", "pair", "metric", "stage", "step"],
                                                        ignore_index=True)


def plot_drift(drift: pd.DataFrame, out: Path) -> list[Figure]:
    """One figure per pair and probe: a panel per metric, the metric against the RL step, before and after."""
    figs = []
    for (probe, pair), sub in drift.groupby(["probe", "pair"], sort=True):
        metrics = list(dict.fromkeys(sub.metric))
        ncols = min(3, len(metrics))
        nrows = -(-len(metrics) // ncols)
        fig, axes = figure(nrows, ncols, height=2.3 * nrows + 0.7)
        rows: list[dict[str, Any]] = []
        for ax, metric in zip(axes.ravel(), metrics, strict=False):
            for stage, name in STAGES.items():
                s = sub[(sub.metric == metric) & (sub.stage == stage)].sort_values("step")
                if s.empty:
                    continue
                colour, ls, marker = STYLES[name]
                ax.plot(s.step, s["mean"], color=colour, linestyle=ls, marker=marker, ms=4,
                        label=f"{name} ({stage} contrastive training)")
                if s.ci_low.notna().any():
                    ax.fill_between(s.step, s.ci_low, s.ci_high, color=colour, alpha=0.18, linewidth=0)
                rows += [{"metric": metric, "series": name, "step": int(r.step), "layer": r.layer, "y": r["mean"],
                          "low": r.ci_low, "high": r.ci_high} for _, r in s.iterrows()]
            ax.set_xlabel("RL step")
            ax.set_title(display_name(metric))
        for ax in axes.ravel()[len(metrics):]:
            ax.set_visible(False)
        shared_legend(fig, axes, ncols=2)
        layer = str(sub.layer.iloc[0]) if not sub.empty else "last"
        caption = (f"Drift over one RL run, pair {pair}, probe set {probe}: base against the reason sibling's kept "
                   f"checkpoints at layer {layer}. {DRIFT_NOTE}.")
        figs.append(save(fig, pd.DataFrame(rows), out, f"drift_{pair}_{probe}", caption))
    return figs


def draw_drift(ctx: Context, out: Path) -> list[Figure]:
    """The drift figures of a report (nothing when no comparison names a kept checkpoint)."""
    return plot_drift(ctx.drift, out) if not ctx.drift.empty else []
