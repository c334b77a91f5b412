"""The figures and table of one HRSA table alone (two models compared on one probe set, no evaluations): per-layer
curves of the headline metrics with their intervals and chance levels, the L x L CKA map, and a per-layer table, with
a page (index.md) whose captions name the probe, the layers, the interval method and the null.

What `hrsa pairwise` draws for any two models; the study's report (hrsa.report.build) needs evaluations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hrsa.errors import DataError
from hrsa.io import atomic_path
from hrsa.metrics.registry import display_name
from hrsa.report.figures import OKABE_ITO, SCREEN_DPI, pyplot
from hrsa.report.load import load_hrsa

#: colour-blind-safe (Okabe-Ito) colours of the curve, its interval band and the chance level
CURVE, BAND, NULL = OKABE_ITO["blue"], OKABE_ITO["sky"], OKABE_ITO["vermilion"]


def _layer_order(names: pd.Series) -> list[str]:
    """Numbered layers in numeric order, then `pooled`."""
    return sorted(set(names), key=lambda n: (1, 0) if n == "pooled" else (0, int(n)))


def curve_metrics(diag: pd.DataFrame, headline: list[str]) -> list[str]:
    """The metrics drawn: the headline metrics the table holds, with kNN Jaccard at every k it holds."""
    held = list(dict.fromkeys(diag.metric))
    knn = [m for m in held if m.startswith("knn-jaccard-")]
    return [m for m in held if m in headline or m in knn]


def _uncertainty(rows: pd.DataFrame) -> str:
    """One line naming the resampling unit, the interval method and the null of these rows."""
    with_ci = rows[rows.ci_method != "none"]
    if with_ci.empty:
        interval = "no intervals (hrsa.bootstrap: 0)"
    else:
        r = with_ci.iloc[0]
        interval = (f"bands: 95% {r.ci_method} intervals, block bootstrap over {int(r.n_units)} {r.resample_unit} "
                    "of the probe's texts")
    nulls = sorted(set(rows.null_kind) - {"none"})
    null = ("chance level (dashed): " + ", ".join(nulls)) if nulls else "no chance level"
    return f"{interval}; {null}"


def draw_curves(diag: pd.DataFrame, metrics: list[str], title: str, out: Path) -> Path:
    """One panel per metric: value per layer, its interval band and its chance level."""
    plt = pyplot()
    layers = _layer_order(diag.layer_x)
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows + 0.6), squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        m = diag[diag.metric == metric].set_index("layer_x").reindex(layers)
        x = np.arange(len(layers))
        ax.plot(x, m.value, color=CURVE, marker="o", ms=3, lw=1.5, label="value")
        if m.ci_low.notna().any():
            ax.fill_between(x, m.ci_low, m.ci_high, color=BAND, alpha=0.35, lw=0, label="95% interval")
        if m.null_mean.notna().any():
            ax.plot(x, m.null_mean, color=NULL, ls="--", lw=1.2, label="chance level")
        ax.set_title(display_name(metric), fontsize=9)
        step = max(1, len(layers) // 8)
        ax.set_xticks(x[::step], [layers[i] for i in range(0, len(layers), step)], fontsize=9)
        ax.tick_params(labelsize=9)
        ax.set_xlabel("layer", fontsize=9)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path = out / "curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=SCREEN_DPI, format="png")
    plt.close(fig)
    return path


def draw_cka_grid(table: pd.DataFrame, title: str, out: Path) -> Path | None:
    """Linear CKA of every layer of the left model against every layer of the right one (None: no grid rows)."""
    cka = table[table.metric == "cka-linear-biased"]
    layers = _layer_order(cka.layer_x)
    mat = cka.pivot_table(index="layer_x", columns="layer_y", values="value", aggfunc="mean").reindex(
        index=layers, columns=layers)
    if len(layers) < 2 or mat.isna().all().all():
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    im = ax.imshow(mat.to_numpy(dtype=float), origin="lower", cmap="cividis", vmin=0, vmax=1)
    step = max(1, len(layers) // 8)
    ticks = list(range(0, len(layers), step))
    ax.set_xticks(ticks, [layers[i] for i in ticks], fontsize=9)
    ax.set_yticks(ticks, [layers[i] for i in ticks], fontsize=9)
    ax.set_xlabel("layer of the right model", fontsize=9)
    ax.set_ylabel("layer of the left model", fontsize=9)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="linear CKA")
    fig.tight_layout()
    path = out / "cka_layers.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=SCREEN_DPI, format="png")
    plt.close(fig)
    return path


def layer_table(diag: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Layers x metrics: value with its interval and chance level, three significant digits."""
    out = []
    for layer in _layer_order(diag.layer_x):
        row: dict[str, str] = {"layer": layer}
        for metric in metrics:
            sel = diag[(diag.layer_x == layer) & (diag.metric == metric)]
            if sel.empty:
                row[metric] = ""
                continue
            r = sel.iloc[0]
            cell = f"{r.value:.3g}"
            if np.isfinite(r.ci_low):
                cell += f" [{r.ci_low:.3g}, {r.ci_high:.3g}]"
            if np.isfinite(r.null_mean):
                cell += f" (chance {r.null_mean:.3g})"
            row[metric] = cell
        out.append(row)
    return pd.DataFrame(out, columns=["layer", *metrics])


def build_pairwise(table_path: Path, out: Path, headline: list[str], names: tuple[str, str] | None = None) -> Path:
    """Figures, table and index.md of one HRSA table into `out` (`names`: how the page names the left and right
    models, default their model ids); returns the page."""
    table = load_hrsa([table_path])
    if table.empty:
        raise DataError(f"HRSA table {table_path} has no rows: rerun its compare job")
    diag = table[table.layer_x == table.layer_y]
    metrics = curve_metrics(diag, headline)
    if not metrics:
        raise DataError(f"HRSA table {table_path} holds none of report.headline_metrics ({', '.join(headline)})")
    r = table.iloc[0]
    name, probe = str(r.comparison), str(r.probe)
    left, right = names or (str(r.model_x), str(r.model_y))
    out.mkdir(parents=True, exist_ok=True)
    curves = draw_curves(diag, metrics, f"{left} vs {right} on probe {probe}", out)
    grid = draw_cka_grid(table, f"{name} on probe {probe}", out)
    tab = layer_table(diag, metrics)
    with atomic_path(out / "table.tsv") as tmp:
        tab.to_csv(tmp, sep="\t", index=False)
    layers = _layer_order(diag.layer_x)
    note = _uncertainty(diag[diag.metric.isin(metrics)])
    lines = [f"# HRSA of {left} (left) and {right} (right)", "",
             f"Probe set `{probe}` ({int(r.n)} rows), layers {layers[0]}..{layers[-1]} (hidden states; `pooled` = the "
             "sentence embedding).", "",
             f"![per-layer metrics]({curves.name})", "",
             f"*Per-layer similarity of the two models on probe `{probe}`, layers {', '.join(layers)}; {note}.*", ""]
    if grid is not None:
        lines += [f"![layer x layer CKA]({grid.name})", "",
                  f"*Linear CKA of every left layer against every right layer on probe `{probe}` (point estimates; "
                  "no intervals).*", ""]
    lines += [f"Per layer: value [95% interval] (chance level); {note}.", "",
              tab.to_markdown(index=False), ""]
    page = out / "index.md"
    with atomic_path(page) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    return page
