"""Every figure of the report (the only module of hrsa importing matplotlib): layer curves, CKA heatmaps, Procrustes
maps, probe transfer and intrinsic dimension. Each figure is saved as PNG and PDF with its plotted values as TSV;
series are styled to stay readable in grayscale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrsa.compare import load_procrustes_map
from hrsa.metrics.manifold import DUPLICATE_SHARE
from hrsa.report.layers import degenerate, knn_metrics, last_layer, layer_key, short_name, siblings

#: grayscale-readable series styles: (colour, line style, marker)
STYLES = {"backbones": ("black", "-", "o"), "embedders": ("0.45", "--", "s"), "noise": ("0.25", ":", None),
          "permutation": ("0.6", "-.", None)}
#: legend entry of the hollow markers drawn over degenerate estimates (flag duplicate-rows), and what they mean
FLAGGED = "flagged: duplicate rows"
FLAG_NOTE = (f"hollow markers: flagged duplicate-rows (more than {DUPLICATE_SHARE:.0%} of rows coincide with their "
             "first neighbour, e.g. layer 0 of a token probe: TwoNN leaves those rows out and kNN ties are broken "
             "arbitrarily), artefacts, not findings")
CURVE_NOTE = ("bands: envelope of the per-seed 95% BCa intervals of a block bootstrap over probe texts; noise floor: "
              "mean of X-E~X-E over seed pairs; null: permutation chance level")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, data: pd.DataFrame, out: Path, name: str) -> Path:
    """PNG and PDF of a figure, and the plotted values beside it as TSV (same stem)."""
    plt = _pyplot()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.2, top=0.84, wspace=0.45)  # fixed: tight_layout costs ~0.3 s
    fig.savefig(out / f"{name}.png", dpi=110)
    fig.savefig(out / f"{name}.pdf")
    plt.close(fig)
    data.to_csv(out / f"{name}.tsv", sep="\t", index=False)
    return out / f"{name}.png"


def _ordered(sub: pd.DataFrame) -> pd.DataFrame:
    return sub.sort_values("layer", key=lambda c: c.map(layer_key))


def _curve_series(tab: pd.DataFrame, sib: str, metric: str) -> list[tuple[str, pd.DataFrame]]:
    """(series name, rows with layer, y, low, high) of one panel: backbones, embedders, noise floor, null."""
    m = tab[tab.metric == metric]
    series = []
    for label, kind in (("backbones", f"base~{sib}"), ("embedders", f"base-E~{sib}-E")):
        s = _ordered(m[m.kind == kind])
        if not s.empty:
            series.append((f"{label} {kind}", s.assign(y=s["mean"], low=s["ci_low"], high=s["ci_high"])))
    floor = m[m.kind.isin(["base-E~base-E", f"{sib}-E~{sib}-E"])]
    if not floor.empty:
        f = floor.groupby("layer", as_index=False)["mean"].mean()
        series.append(("noise floor", _ordered(f).assign(y=lambda d: d["mean"], low=np.nan, high=np.nan)))
    emb = m[m.kind == f"base-E~{sib}-E"]
    if not emb.empty and emb["null_mean"].notna().any():
        n = _ordered(emb.dropna(subset=["null_mean"]))
        series.append(("permutation null", n.assign(y=n["null_mean"], low=np.nan, high=np.nan)))
    return series


def _flags(s: pd.DataFrame) -> pd.Series:
    return s["flag"].fillna("").astype(str) if "flag" in s else pd.Series([""] * len(s), index=s.index)


def _mark_flagged(ax: Any, x: Sequence[int], y: Any, flags: pd.Series, colour: Any, marker: str | None,
                  labelled: bool) -> bool:
    """Hollow markers over the points whose flags mark a degenerate estimate (one legend entry per axes); returns
    whether any was drawn (so the legend entry is not repeated)."""
    bad = degenerate(flags).to_numpy()
    if not bad.any():
        return labelled
    ax.plot(np.asarray(x)[bad], np.asarray(y, dtype=float)[bad], linestyle="none", marker=marker or "o", ms=7,
            markerfacecolor="white", markeredgecolor=colour, zorder=3, label=None if labelled else FLAGGED)
    return True


def _positions(layers: Sequence[str]) -> dict[str, int]:
    return {x: i for i, x in enumerate(sorted(set(layers), key=layer_key))}


def _plot_panel(ax: Any, series: list[tuple[str, pd.DataFrame]], metric: str) -> list[dict[str, Any]]:
    """Draw one panel's series; returns the plotted values as rows."""
    pos = _positions([x for _, s in series for x in s["layer"]])
    rows = []
    labelled = False
    for name, s in series:
        colour, ls, marker = STYLES[name.split(" ")[0]]
        x = [pos[v] for v in s["layer"]]
        ax.plot(x, s["y"], color=colour, linestyle=ls, marker=marker, ms=4, label=name)
        if s["low"].notna().any():
            ax.fill_between(x, s["low"], s["high"], color=colour, alpha=0.18,
                            linewidth=0)
        flags = _flags(s) if name.startswith(("backbones", "embedders")) else pd.Series([""] * len(s), index=s.index)
        labelled = _mark_flagged(ax, x, s["y"], flags, colour, marker, labelled)
        rows += [{"metric": metric, "series": name, "layer": lay, "y": y, "low": lo, "high": hi, "flag": f}
                 for lay, y, lo, hi, f in zip(s["layer"], s["y"], s["low"], s["high"], flags, strict=True)]
    ax.set_xticks(list(pos.values()), list(pos), fontsize=7)
    ax.set_xlabel("layer index")
    ax.set_ylabel(metric)
    ax.set_title(short_name(metric), fontsize=9)
    return rows


def _curve_figure(tab: pd.DataFrame, pair: str, probe: str, sib: str, metrics: Sequence[str], title: str,
                  out: Path, name: str) -> Path | None:
    panels = [(m, _curve_series(tab, sib, m)) for m in metrics]
    panels = [(m, s) for m, s in panels if any(n.startswith(("backbones", "embedders")) for n, _ in s)]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.4), squeeze=False)
    rows: list[dict[str, Any]] = []
    for ax, (metric, series) in zip(axes[0], panels, strict=True):
        rows += _plot_panel(ax, series, metric)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"{title}: pair {pair}, {sib} vs base, probe {probe}", fontsize=9)
    return _save(fig, pd.DataFrame(rows), out, name)


def plot_layer_curves(tab: pd.DataFrame, out: Path, metrics: Sequence[str]) -> list[Path]:
    """Per pair, probe and sibling: headline metrics per layer, and kNN Jaccard at every configured k."""
    paths = []
    for (probe, pair), sub in tab.groupby(["probe", "pair"], sort=True):
        for sib in siblings(sub):
            for title, ms, stem in (("HRSA per layer", metrics, "layers"), ("kNN Jaccard", knn_metrics(sub), "knn")):
                p = _curve_figure(sub, pair, probe, sib, ms, title, out, f"{stem}_{pair}_{probe}_{sib}")
                if p is not None:
                    paths.append(p)
    return paths


def _cka_matrix(grp: pd.DataFrame) -> pd.DataFrame:
    """Seed-averaged L x L linear CKA of one comparison kind (rows: left layers, columns: right layers)."""
    mat = grp.pivot_table(index="layer_x", columns="layer_y", values="value", aggfunc="mean")
    return mat.loc[sorted(mat.index, key=layer_key), sorted(mat.columns, key=layer_key)]


def plot_cka_matrices(hr: pd.DataFrame, out: Path) -> list[Path]:
    """Per pair, probe and sibling: L x L linear CKA before (base~X) and after (base-E~X-E, mean over seeds)
    contrastive training, side by side on one grey scale."""
    plt = _pyplot()
    paths = []
    cka = hr[hr.metric == "cka-linear-biased"]
    for (probe, pair), sub in cka.groupby(["probe", "pair"], sort=True):
        for sib in siblings(sub):
            panels = [(k, _cka_matrix(sub[sub.kind == k])) for k in (f"base~{sib}", f"base-E~{sib}-E")
                      if (sub.kind == k).any()]
            fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
            rows = []
            for ax, (kind, mat) in zip(axes[0], panels, strict=True):
                im = ax.imshow(mat.to_numpy(dtype=float), vmin=0, vmax=1, cmap="Greys", origin="lower")
                ax.set_xticks(range(mat.shape[1]), list(mat.columns), fontsize=7)
                ax.set_yticks(range(mat.shape[0]), list(mat.index), fontsize=7)
                left, right = kind.split("~")
                ax.set_xlabel(f"{right} layer index")
                ax.set_ylabel(f"{left} layer index")
                ax.set_title(f"linear CKA {kind}" + (" (mean over seeds)" if "-E" in kind else ""), fontsize=8)
                fig.colorbar(im, ax=ax, label="cka-linear-biased")
                rows += [{"panel": kind, "layer_x": lx, "layer_y": ly, "value": mat.loc[lx, ly]}
                         for lx in mat.index for ly in mat.columns]
            fig.suptitle(f"before / after contrastive training: pair {pair}, probe {probe}", fontsize=9)
            paths.append(_save(fig, pd.DataFrame(rows), out, f"cka_{pair}_{probe}_{sib}"))
    return paths


def plot_procrustes_maps(maps: Sequence[Path], hr: pd.DataFrame, out: Path) -> list[Path]:
    """Heatmap of |O*| of each map given, titled with the table's procrustes-rie at that layer."""
    plt = _pyplot()
    paths = []
    for path in map(Path, maps):
        comparison, probe = path.name.removesuffix(".procrustes.npz"), path.parent.name
        pm = load_procrustes_map(path)
        if pm["O"].size == 0:  # no layer had a map (e.g. models of different widths)
            continue
        rie = hr[(hr.comparison == comparison) & (hr.probe == probe) & (hr.metric == "procrustes-rie")
                 & (hr.layer_x == pm["layer"]) & (hr.layer_y == pm["layer"])]["value"]
        title = f"Procrustes map O* {comparison}, layer {pm['layer']}"
        title += f", RIE = {rie.iloc[0]:.3f}" if len(rie) else ", RIE not in the table"
        fig, ax = plt.subplots(figsize=(4.2, 3.8))
        im = ax.imshow(np.abs(pm["O"]), cmap="Greys", vmin=0, vmax=1, origin="upper")
        ax.set_xlabel("right model dimension")
        ax.set_ylabel("left model dimension")
        ax.set_title(title, fontsize=7)
        fig.colorbar(im, ax=ax, label="|O*_ab|")
        idx = np.indices(pm["O"].shape).reshape(2, -1)
        data = pd.DataFrame({"row": idx[0], "col": idx[1], "value": pm["O"].ravel(),
                             "rie": float(rie.iloc[0]) if len(rie) else math.nan})
        paths.append(_save(fig, data, out, f"procrustes_{comparison}_{probe}"))
    return paths


def plot_probe_transfer(tab: pd.DataFrame, out: Path) -> list[Path]:
    """Per pair and probe at the headline layer (`pooled`: the study's probe on L2-normalised encode() outputs; else
    the last numbered layer): source vs target probe accuracy for every comparison kind
    (bars: mean over seeds; error bars: the interval envelope). Per-split metrics
    (`probe-transfer-{source,target}-accuracy-{split}`) get one panel per split; else the test split alone."""
    plt = _pyplot()
    paths = []
    acc = tab[tab.metric.str.match(r"probe-transfer-(source|target)-accuracy")]
    for (probe, pair), sub in acc.groupby(["probe", "pair"], sort=True):
        last = "pooled" if "pooled" in set(sub.layer) else last_layer(list(sub.layer))
        sub = sub[sub.layer == last].copy()
        parts = sub.metric.str.extract(r"probe-transfer-(source|target)-accuracy(?:-(\w+))?")
        sub["side"], sub["split"] = parts[0], parts[1].fillna("test")
        splits = sorted(set(sub.split))
        fig, axes = plt.subplots(1, len(splits), figsize=(max(4.0, 1.3 * sub.kind.nunique()) * len(splits), 3.6),
                                 squeeze=False)
        rows = []
        for ax, split in zip(axes[0], splits, strict=True):
            s = sub[sub.split == split]
            kinds = sorted(set(s.kind))
            for j, (side, shade, hatch) in enumerate((("source", "0.25", None), ("target", "0.75", "//"))):
                v = s[s.side == side].set_index("kind").reindex(kinds)
                err = np.vstack([(v["mean"] - v["ci_low"]).clip(lower=0).fillna(0),
                                 (v["ci_high"] - v["mean"]).clip(lower=0).fillna(0)])
                ax.bar(np.arange(len(kinds)) + (j - 0.5) * 0.4, v["mean"], 0.4, yerr=err, color=shade, hatch=hatch,
                       edgecolor="black", label=f"{side} accuracy", capsize=2)
                rows += [{"split": split, "kind": k, "side": side, "layer": last, "y": y}
                         for k, y in zip(kinds, v["mean"], strict=True)]
            ax.set_xticks(range(len(kinds)), kinds, fontsize=6, rotation=30, ha="right")
            ax.set_ylim(0, 1)
            ax.set_xlabel(f"comparison (layer {last}, {split} split)")
            ax.set_ylabel("probe accuracy")
        axes[0][0].legend(fontsize=6)
        fig.suptitle(f"probe transfer: pair {pair}, probe {probe}", fontsize=9)
        paths.append(_save(fig, pd.DataFrame(rows), out, f"probe_{pair}_{probe}"))
    return paths


def plot_intrinsic_dimension(ids: pd.DataFrame, out: Path) -> list[Path]:
    """Per pair and probe: TwoNN intrinsic dimension per layer, one line per model role (embedders: seed mean);
    hollow markers (legend: FLAGGED) where the estimate is degenerate (flag duplicate-rows, e.g. layer 0 of a token
    probe), and the plotted values' `flag` column says why."""
    plt = _pyplot()
    paths = []
    styles = {"base": ("black", "-", "o"), "reason": ("0.4", "-", "^"), "sft": ("0.65", "-", "v"),
              "base-E": ("black", "--", "o"), "reason-E": ("0.4", "--", "^"), "sft-E": ("0.65", "--", "v")}
    for (probe, pair), sub in (ids.groupby(["probe", "pair"], sort=True) if not ids.empty else []):
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        pos = _positions(list(sub.layer))
        rows = []
        labelled = False
        for role in [r for r in styles if r in set(sub.role)]:
            s = _ordered(sub[sub.role == role])
            colour, ls, marker = styles[role]
            x = [pos[v] for v in s.layer]
            ax.plot(x, s["mean"], color=colour, linestyle=ls, marker=marker, ms=4, label=role)
            flags = _flags(s)
            labelled = _mark_flagged(ax, x, s["mean"], flags, colour, marker, labelled)
            rows += [{"role": role, "layer": lay, "y": y, "flag": f}
                     for lay, y, f in zip(s.layer, s["mean"], flags, strict=True)]
        ax.set_xticks(list(pos.values()), list(pos), fontsize=7)
        ax.set_xlabel("layer index")
        ax.set_ylabel("TwoNN intrinsic dimension")
        ax.legend(fontsize=6)
        ax.set_title(f"intrinsic dimension: pair {pair}, probe {probe}", fontsize=9)
        paths.append(_save(fig, pd.DataFrame(rows), out, f"id_{pair}_{probe}"))
    return paths
