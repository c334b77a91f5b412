"""The paper's tables and figures from HRSA tables and mteb results: mean ± std over seeds, deltas, paired tests."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrsa.grid import parse_comparison, parse_model_id
from hrsa.stats import paired_comparison

HEADLINE_METRICS = ("cka-linear-biased", "dimwise-corr", "knn-jaccard-k10-cosine", "procrustes-rvr")


def load_evaluations(paths: Sequence[Path]) -> pd.DataFrame:
    """One row per (embedder, task) from exactly these `{model}/{task}.json` files: pair, role, seed, task, score."""
    rows = []
    for path in map(Path, paths):
        model, task = path.parent.name, path.stem
        data = json.loads(path.read_text())
        entry = data.get("results", data).get(task)
        if entry is None:
            continue
        pair, role, seed = parse_model_id(model)
        rows.append({"pair": pair, "role": role, "seed": seed, "task": task, "score": float(entry["main_score"]),
                     "score_name": entry.get("main_score_name", "")})
    return pd.DataFrame(rows, columns=["pair", "role", "seed", "task", "score", "score_name"])


def load_hrsa(paths: Sequence[Path]) -> pd.DataFrame:
    """Exactly these `{probe}/{comparison}.parquet` HRSA tables, with probe, pair, kind (seed stripped), seed."""
    frames = []
    for path in map(Path, paths):
        df = pd.read_parquet(path)
        c = parse_comparison(path.stem)
        # a noise floor (two seeds of one recipe) is keyed by its left seed; its kind names it (`X-E~X-E`)
        df = df.assign(probe=path.parent.name, comparison=path.stem, pair=c.pair, kind=c.kind,
                       seed=-1 if c.seed is None else c.seed)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def embedding_table(ev: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per pair, role and task: mean ± std over seeds, and the paired delta of each sibling to base."""
    if ev.empty:
        return pd.DataFrame()
    avg = ev.groupby(["pair", "role", "seed"], as_index=False)["score"].mean().assign(task="Average")
    ev = pd.concat([ev, avg], ignore_index=True)
    rows = []
    for (pair, task), grp in ev.groupby(["pair", "task"], sort=False):
        base = grp[grp.role == "base"].set_index("seed")["score"]
        for role, sub in grp.groupby("role", sort=False):
            s = sub.set_index("seed")["score"]
            row = {"pair": pair, "task": task, "role": f"{role}-E", "mean": s.mean(),
                   "std": s.std(ddof=1) if len(s) > 1 else float("nan"), "seeds": len(s)}
            if role != "base" and not base.empty:
                common = sorted(set(base.index) & set(s.index))
                test = paired_comparison(base.loc[common].to_numpy(), s.loc[common].to_numpy())
                row.update(delta=test["mean_diff"], delta_std=test["std_diff"], p=test["t_pvalue"],
                           p_wilcoxon=test["wilcoxon_pvalue"], note=test["note"])
            rows.append(row)
    return pd.DataFrame(rows)


def hrsa_table(hr: pd.DataFrame) -> pd.DataFrame:
    """Per probe, pair, comparison kind, layer and metric: mean ± std over seeds (diagonal entries only)."""
    if hr.empty:
        return pd.DataFrame()
    diag = hr[hr.layer_x == hr.layer_y]
    g = diag.groupby(["probe", "pair", "kind", "layer_x", "metric"], sort=False)
    out = g["value"].agg(["mean", "std", "count"]).reset_index().rename(columns={"layer_x": "layer"})
    for col in ("null_mean", "ci_low", "ci_high"):
        if col in diag:
            out[col] = g[col].mean().to_numpy()
    return out


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _layer_key(layer: str) -> tuple[int, int]:
    return (1, 0) if layer == "pooled" else (0, int(layer))


def _save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_layer_curves(tab: pd.DataFrame, out: Path) -> list[Path]:
    """One figure per probe: a panel per headline metric, a line per comparison kind across layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for (probe, pair), sub in tab.groupby(["probe", "pair"]):
        metrics = [m for m in HEADLINE_METRICS if m in set(sub.metric)]
        if not metrics:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for kind, s in sub[sub.metric == metric].groupby("kind"):
                s = s.sort_values("layer", key=lambda c: c.map(_layer_key))
                x = np.arange(len(s))
                ax.errorbar(x, s["mean"], yerr=s["std"].fillna(0), label=kind, marker="o", ms=3, capsize=2)
                ax.set_xticks(x, s["layer"], fontsize=7)
            ax.set_title(metric, fontsize=9)
            ax.set_xlabel("layer")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"HRSA per layer: pair {pair}, probe {probe}", fontsize=10)
        paths.append(_save_figure(fig, out / f"layers_{pair}_{probe}.png"))
    return paths


def plot_cka_matrices(hr: pd.DataFrame, out: Path) -> list[Path]:
    """Layer × layer linear CKA heatmap per probe and comparison kind (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    sub = hr[hr.metric == "cka-linear-biased"]
    for (probe, pair, kind), grp in sub.groupby(["probe", "pair", "kind"]):
        grp = grp[grp.seed == grp.seed.min()]
        mat = grp.pivot(index="layer_x", columns="layer_y", values="value")
        order_x = sorted(mat.index, key=_layer_key)
        order_y = sorted(mat.columns, key=_layer_key)
        mat = mat.loc[order_x, order_y]
        fig, ax = plt.subplots(figsize=(4, 3.5))
        im = ax.imshow(mat.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(order_y)), order_y, fontsize=7)
        ax.set_yticks(range(len(order_x)), order_x, fontsize=7)
        left, right = kind.split("~")
        ax.set_xlabel(f"{right} layer")
        ax.set_ylabel(f"{left} layer")
        ax.set_title(f"linear CKA {pair} {kind} ({probe})", fontsize=8)
        fig.colorbar(im, ax=ax)
        paths.append(_save_figure(fig, out / f"cka_{pair}_{kind.replace('~', '_vs_')}_{probe}.png"))
    return paths


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def build_report(hrsa_files: Sequence[Path], eval_files: Sequence[Path], config: dict[str, Any], out: Path) -> Path:
    """Write out/index.md, out/tables/*.tsv and out/figures/*.png from exactly the given files; returns the index path.

    Only the files passed are read (the rule's declared inputs), so results of seeds, tasks or comparisons no longer
    in the config cannot leak into the tables.
    """
    from hrsa.io import atomic_path

    ev, hr = load_evaluations(eval_files), load_hrsa(hrsa_files)
    emb, tab = embedding_table(ev), hrsa_table(hr)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "tables") as tdir:
        tdir.mkdir()
        emb.to_csv(tdir / "embedding_scores.tsv", sep="\t", index=False)
        tab.to_csv(tdir / "hrsa_layers.tsv", sep="\t", index=False)
        hr.to_csv(tdir / "hrsa_all.tsv", sep="\t", index=False)
    with atomic_path(out / "figures") as fdir:
        fdir.mkdir()
        figures = plot_layer_curves(tab, fdir) + plot_cka_matrices(hr, fdir)
    text = render_index(emb, tab, [f.name for f in figures], config)
    with atomic_path(out / "index.md") as tmp:
        tmp.write_text(text)
    return out / "index.md"


def render_index(emb: pd.DataFrame, tab: pd.DataFrame, figures: list[str], config: dict[str, Any]) -> str:
    seeds = config.get("seeds", [])
    parts = ["# Do reasoning backbones make better embedding models? (HRSA report)", "",
             f"Pairs: {', '.join(p['name'] for p in config.get('pairs', []))}; seeds: {seeds}.", "",
             "## Table 1: embedding scores (mteb main score), mean ± std over seeds; Δ = sibling − base, paired t-test",
             ""]
    if not emb.empty:
        show = emb.assign(score=[_fmt(m, s) for m, s in zip(emb["mean"], emb["std"], strict=True)])
        if "delta" in show:
            show["Δ vs base"] = [
                "" if math.isnan(d) else f"{_fmt(d, s)} (p={p:.3g})" if not math.isnan(p) else _fmt(d, s)
                for d, s, p in zip(show["delta"].fillna(np.nan), show["delta_std"].fillna(np.nan),
                                   show["p"].fillna(np.nan), strict=True)
            ]
        wide = show.pivot_table(index=["pair", "role"], columns="task", values="score", aggfunc="first", sort=False)
        parts += [markdown_table(wide.reset_index()), ""]
        if "Δ vs base" in show:
            deltas = show[show["Δ vs base"] != ""]
            deltas = deltas.pivot_table(index=["pair", "role"], columns="task", values="Δ vs base", aggfunc="first",
                                        sort=False)
            parts += ["Δ to base (mean ± std over seeds, paired t-test p):", "", markdown_table(deltas.reset_index()), ""]
    parts += ["## HRSA per layer (mean ± std over seeds for embedder comparisons)", ""]
    if not tab.empty:
        for (probe, pair, metric), sub in tab[tab.metric.isin(HEADLINE_METRICS)].groupby(["probe", "pair", "metric"]):
            sub = sub.assign(value=[_fmt(m, s) for m, s in zip(sub["mean"], sub["std"], strict=True)])
            wide = sub.pivot_table(index="kind", columns="layer", values="value", aggfunc="first")
            wide = wide[sorted(wide.columns, key=_layer_key)]
            parts += [f"### {metric} — pair {pair}, probe {probe}", "", markdown_table(wide.reset_index()), ""]
    parts += ["## Figures", ""] + [f"![{f}](figures/{f})" for f in figures] + [""]
    parts += ["Full tables: `tables/embedding_scores.tsv`, `tables/hrsa_layers.tsv`, `tables/hrsa_all.tsv`.", ""]
    return "\n".join(parts)
