"""The study's answer from HRSA tables and mteb results: Table 1 with equivalence tests and verdicts, the HRSA figures,
the manifold-realignment summary with one generated sentence per pair, and what was run.

Every number carries its resampling unit, interval method and null (columns `unit`, `method`, `null` of the tables, and
the captions of the figures). Only the files passed are read (the rule's declared inputs), so results of seeds, tasks
or comparisons no longer in the config cannot leak into the report.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hrsa.errors import DataError
from hrsa.compare import load_procrustes_map
from hrsa.grid import parse_comparison, parse_model_id

#: fallbacks for direct calls; the workflow passes the schema-validated config with every `report:` key set
FALLBACK: dict[str, Any] = {
    "equivalence_margin": 1.0,
    "alpha": 0.05,
    "primary_measure": "mean_task",
    "headline_metrics": ["cka-linear-biased", "dimwise-corr", "knn-jaccard-k10-cosine", "procrustes-rvr"],
}
HEADLINE_METRICS = tuple(FALLBACK["headline_metrics"])
MEASURES = {"mean_task": "Mean(Task)", "mean_type": "Mean(Type)"}
#: metrics whose smaller value means "more similar" (the rest: larger is more similar)
LOWER_IS_SIMILAR = ("procrustes-rvr", "twonn-id-absdiff")
HRSA_EXTRA = {"ci_low": np.nan, "ci_high": np.nan, "null_mean": np.nan, "null_q95": np.nan, "se": np.nan,
              "bias": np.nan, "ci_method": "none", "resample_unit": "", "null_kind": "none", "flag": ""}
T1_UNIT = "seeds (seed-level Δ paired by seed); tasks fixed (the benchmark's task list)"
T1_METHOD = "t interval, crossed seed x task ANOVA (SE² = MS_seed/(S·T) + MS_res(Σw²-1/T)/S), Satterthwaite df"
T1_NULL = "TOST H0: |Δ| >= margin; difference H0: Δ = 0; Holm over pairs x benchmarks x siblings"


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `report:` slice of the config over FALLBACK."""
    return {**FALLBACK, **(config.get("report") or {})}


# ------------------------------------------------------------------------------------------------ inputs
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
    """Exactly these `{probe}/{comparison}.parquet` HRSA tables, with probe, pair, kind (seed stripped), seed and
    the models compared; uncertainty columns a table lacks (older compare) are filled as 'not computed'."""
    frames = []
    for path in map(Path, paths):
        df = pd.read_parquet(path)
        c = parse_comparison(path.stem)
        # a noise floor (two seeds of one recipe) is keyed by its left seed; its kind names it (`X-E~X-E`)
        df = df.assign(probe=path.parent.name, comparison=path.stem, pair=c.pair, kind=c.kind,
                       seed=-1 if c.seed is None else c.seed, model_x=c.model("left"), model_y=c.model("right"))
        for col, fill in HRSA_EXTRA.items():
            if col not in df:
                df[col] = fill
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def embedding_table(ev: pd.DataFrame) -> pd.DataFrame:
    """Per-task scores (supplement to Table 1): per pair, role and task, mean ± std over seeds of mteb's main score,
    and the paired Δ of each sibling to base (paired t-test over seeds: unit seeds, no correction)."""
    from hrsa.stats import paired_comparison

    ev = ev[ev.seed.notna()]  # embedders only: raw-backbone baselines have no seed (Table 1 lists them apart)
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


# ------------------------------------------------------------------------------------------------ Table 1
def _mean_std(v: pd.Series) -> tuple[float, float, int]:
    v = v.dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


def table1(means: pd.DataFrame) -> pd.DataFrame:
    """Table 1 per pair and benchmark: each role's Mean(Task) and Mean(Type) as mean ± std over seeds (×100), and the
    Δ of each sibling to base-E as mean ± std over seeds of the paired (same-seed) differences."""
    cols = ["pair", "benchmark", "role", "n_seeds", "mean_task", "std_task", "mean_type", "std_type", "delta_task",
            "delta_task_std", "delta_type", "delta_type_std", "n_tasks", "complete", "missing"]
    rows = []
    for (pair, bench), grp in means.groupby(["pair", "benchmark"], sort=True):
        base = grp[grp.role == "base"].set_index("seed")
        for role in [r for r in ("base", "reason", "sft") if r in set(grp.role)]:
            sub = grp[grp.role == role].set_index("seed")
            mt, st, n = _mean_std(sub["mean_task"])
            my, sy, _ = _mean_std(sub["mean_type"])
            row = {"pair": pair, "benchmark": bench, "role": f"{role}-E", "n_seeds": n, "mean_task": mt,
                   "std_task": st, "mean_type": my, "std_type": sy, "n_tasks": int(sub["n_tasks"].max()),
                   "complete": bool(sub["complete"].all()),
                   "missing": ",".join(sorted({t for m in sub["missing"] for t in str(m).split(",") if t}))}
            if role != "base" and not base.empty:
                common = sorted(set(base.index) & set(sub.index))
                for measure in ("task", "type"):
                    d = sub.loc[common, f"mean_{measure}"] - base.loc[common, f"mean_{measure}"]
                    row[f"delta_{measure}"], row[f"delta_{measure}_std"], _ = _mean_std(d)
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def baseline_rows(means: pd.DataFrame) -> pd.DataFrame:
    """Table 1 rows of the raw backbones (evaluation.baseline: no contrastive training, no seed), beside the
    embedders: Mean(Task) and Mean(Type), no std and no Δ."""
    rows = [{"pair": r.pair, "benchmark": r.benchmark, "role": f"{r.role} (untrained)", "n_seeds": 0,
             "mean_task": r.mean_task, "std_task": math.nan, "mean_type": r.mean_type, "std_type": math.nan,
             "n_tasks": r.n_tasks, "complete": r.complete, "missing": r.missing} for r in means.itertuples()]
    return pd.DataFrame(rows)


def _delta_matrix(long_df: pd.DataFrame, sibling: str) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    """(seeds x tasks matrix of sibling - base, tasks, their types, seeds): balanced, over the seeds both roles have
    and the tasks scored for every one of them."""
    piv = long_df.pivot_table(index=["role", "seed"], columns="task", values="score", aggfunc="first")
    seeds = sorted(set(long_df[long_df.role == "base"].seed) & set(long_df[long_df.role == sibling].seed))
    if not seeds:
        return np.zeros((0, 0)), [], [], []
    base = piv.loc[[("base", s) for s in seeds]].to_numpy()
    sib = piv.loc[[(sibling, s) for s in seeds]].to_numpy()
    d = sib - base
    keep = np.isfinite(d).all(axis=0)
    tasks = [t for t, k in zip(piv.columns, keep, strict=True) if k]
    types = long_df.drop_duplicates("task").set_index("task")["task_type"]
    return d[:, keep], tasks, [str(types[t]) for t in tasks], seeds


def type_weights(types: Sequence[str]) -> np.ndarray:
    """Task weights of Mean(Type): 1 / (number of types x tasks of the task's type)."""
    types = list(types)
    count = pd.Series(types).value_counts()
    return np.array([1.0 / (len(count) * count[t]) for t in types])


def equivalence(long_df: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """TOST and difference tests of every sibling's benchmark-level Δ to base-E, per pair, benchmark and measure,
    Holm-adjusted per measure over pairs x benchmarks x siblings, with a verdict and the seeds that would decide it."""
    from hrsa.stats import crossed_delta, holm, seeds_needed, tost

    margin, alpha = float(settings["equivalence_margin"]), float(settings["alpha"])
    rows = []
    for (pair, bench), grp in long_df.groupby(["pair", "benchmark"], sort=True):
        for sibling in [r for r in ("reason", "sft") if r in set(grp.role)]:
            d, tasks, types, seeds = _delta_matrix(grp, sibling)
            if not tasks:
                continue
            for measure in MEASURES:
                w = None if measure == "mean_task" else type_weights(types)
                est = crossed_delta(d, w, confidence=1 - 2 * alpha)
                test = tost(est["estimate"], est["se"], est["df"], margin, alpha)
                rows.append({"pair": pair, "benchmark": bench, "sibling": f"{sibling}-E", "measure": measure,
                             "n_seeds": len(seeds), "n_tasks": len(tasks), "delta": est["estimate"], "se": est["se"],
                             "df": est["df"], "sd_seed": est["sd_seed"], "low90": test["low"], "high90": test["high"],
                             "p_lower": test["p_lower"], "p_upper": test["p_upper"], "p_tost": test["p_tost"],
                             "p_diff": test["p_diff"], "margin": margin, "note": est["note"]})
    eq = pd.DataFrame(rows)
    if eq.empty:
        return eq
    for measure, idx in eq.groupby("measure").groups.items():
        eq.loc[idx, "p_tost_holm"] = holm(eq.loc[idx, "p_tost"].to_numpy())
        eq.loc[idx, "p_diff_holm"] = holm(eq.loc[idx, "p_diff"].to_numpy())
    k = eq.groupby("measure")["p_tost"].transform(lambda p: int(np.isfinite(p).sum()))
    verdicts, needed = [], []
    for row, family in zip(eq.itertuples(), k, strict=True):
        n, goal = seeds_needed(row.delta, row.sd_seed, margin, alpha, int(family) or 1)
        verdicts.append(_verdict(row.p_tost_holm, row.p_diff_holm, alpha))
        needed.append(n if verdicts[-1] == "inconclusive" and n is not None else math.nan)  # decided: none needed
    eq["verdict"], eq["seeds_needed"] = verdicts, needed
    eq["unit"], eq["method"], eq["null"] = T1_UNIT, T1_METHOD, T1_NULL
    return eq


def _verdict(p_tost: float, p_diff: float, alpha: float) -> str:
    if np.isfinite(p_tost) and p_tost < alpha:
        return "equivalent"
    if np.isfinite(p_diff) and p_diff < alpha:
        return "different"
    return "inconclusive"


def verdict_lines(eq: pd.DataFrame, primary: str) -> list[str]:
    """One line per pair, benchmark and sibling, on the primary measure (the other measure in brackets)."""
    lines = []
    if eq.empty:
        return lines
    for (pair, bench, sib), grp in eq.groupby(["pair", "benchmark", "sibling"], sort=True):
        by = grp.set_index("measure")
        if primary not in by.index:
            continue
        r = by.loc[primary]
        m = r["margin"]
        if r["verdict"] == "equivalent":
            what = f"equivalent within ±{m:g} points"
        elif r["verdict"] == "different":
            what = "different"
        else:
            n = r["seeds_needed"]
            goal = "equivalence" if abs(r["delta"]) < m else "a difference"
            more = (f"about {int(n)} seeds would show {goal} at the observed spread" if pd.notna(n)
                    else f"no seed count up to 1000 would show {goal} at the observed spread")
            what = f"inconclusive (more seeds needed: {more})"
        other = [f"{MEASURES[k]}: {v['verdict']}" for k, v in by.iterrows() if k != primary]
        lines.append(
            f"{pair} / {bench}: {sib} vs base-E on {MEASURES[primary]}: Δ = {r['delta']:+.2f} points, 90% interval "
            f"[{r['low90']:+.2f}, {r['high90']:+.2f}] ({int(r['n_seeds'])} seeds x {int(r['n_tasks'])} tasks; "
            f"TOST p = {r['p_tost_holm']:.3g}, difference p = {r['p_diff_holm']:.3g}, Holm): {what}"
            + (f" [{'; '.join(other)}]" if other else ""))
    return lines


# ------------------------------------------------------------------------------------------------ HRSA tables
def _layer_key(layer: str) -> tuple[int, int]:
    return (1, 0) if layer == "pooled" else (0, int(layer))


def _join(values: pd.Series) -> str:
    return ";".join(sorted({str(v) for v in values if isinstance(v, str) and v}))


def hrsa_table(hr: pd.DataFrame) -> pd.DataFrame:
    """Per probe, pair, comparison kind, layer and metric (diagonal entries): mean ± std over seeds; ci_low/ci_high
    the envelope of the per-seed bootstrap intervals; null_mean/null_q95 and se averaged over seeds; the interval
    method, resampling unit, null kind and flags of the rows."""
    if hr.empty:
        return pd.DataFrame()
    diag = hr[hr.layer_x == hr.layer_y]
    g = diag.groupby(["probe", "pair", "kind", "layer_x", "metric"], sort=False)
    out = g["value"].agg(["mean", "std", "count"]).reset_index().rename(columns={"layer_x": "layer"})
    out["ci_low"], out["ci_high"] = g["ci_low"].min().to_numpy(), g["ci_high"].max().to_numpy()
    for col in ("null_mean", "null_q95", "se"):
        out[col] = g[col].mean().to_numpy()
    for col in ("ci_method", "resample_unit", "null_kind", "flag"):
        out[col] = g[col].agg(_join).to_numpy()
    return out


def _lower_is_similar(metric: str) -> bool:
    return metric.startswith(LOWER_IS_SIMILAR)


def _last_layer(layers: Sequence[str]) -> str | None:
    numbered = [x for x in layers if x.isdigit()]
    return max(numbered, key=int) if numbered else None


def _side(rows: pd.DataFrame | None, layers: Sequence[str]) -> dict[str, Any] | None:
    """Per-seed values and bootstrap SEs of one comparison kind's rows of one metric, averaged over `layers`."""
    if rows is None:
        return None
    sub = rows[rows.layer_x.isin(layers)]
    if sub.empty or sub.groupby("seed").size().min() != len(layers):
        return None
    per_seed = sub.groupby("seed").agg(value=("value", "mean"), se=("se", "mean"))  # se: mean over layers
    return {"values": per_seed["value"].to_numpy(), "se": per_seed["se"].to_numpy()}


def _combined_se(*sides: dict[str, Any]) -> float:
    """SE of a difference of seed means: seed-to-seed spread / √S of each side plus its mean block-bootstrap SE,
    sides treated as independent."""
    var, known = 0.0, False
    for s in sides:
        v, se = s["values"], s["se"]
        if len(v) > 1:
            var += float(np.var(v, ddof=1)) / len(v)
            known = True
        if np.isfinite(se).any():
            var += float(np.nanmean(se**2))
            known = True
    return math.sqrt(var) if known else math.nan


REALIGN_UNIT = "seeds (embedder side) and probe texts (block bootstrap SE of every side)"
REALIGN_METHOD = ("normal 95% interval; SE² = Σ_sides (seed variance / S + mean bootstrap SE²), sides independent; "
                  "layer average: per-layer SEs averaged (full correlation across layers, conservative)")
REALIGN_NULL = "no change (after - before = 0); floor: after - noise floor = 0"


def realignment(hr: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per probe, pair, sibling and metric: similarity(base-E, X-E) - similarity(base, X) at the last layer and
    averaged over the shared numbered layers, and the embedders set against the same-recipe noise floor
    (X-E~X-E over seed pairs of base-E and X-E); `closer` is the change in the metric's "more similar" direction."""
    rows = []
    if hr.empty:
        return pd.DataFrame()
    diag = hr[(hr.layer_x == hr.layer_y) & hr.metric.isin(metrics)]
    by = {k: g for k, g in diag.groupby(["probe", "pair", "kind", "metric"], sort=False)}
    for probe, pair in sorted({(k[0], k[1]) for k in by}):
        for sib in ("reason", "sft"):
            floors = ("base-E~base-E", f"{sib}-E~{sib}-E")
            for metric in metrics:
                before = by.get((probe, pair, f"base~{sib}", metric))
                after = by.get((probe, pair, f"base-E~{sib}-E", metric))
                if before is None or after is None:
                    continue
                shared = sorted((x for x in set(before.layer_x) & set(after.layer_x) if x.isdigit()), key=int)
                last = _last_layer(shared)
                if last is None:
                    continue
                sides = (before, after, [by.get((probe, pair, k, metric)) for k in floors])
                for scope, layers in (("last layer", [last]), ("layer average", shared)):
                    rows.append(_realign_row(sides, probe, pair, sib, metric, scope, layers))
    return pd.DataFrame([r for r in rows if r is not None])


def _realign_row(sides: tuple[pd.DataFrame, pd.DataFrame, list[pd.DataFrame | None]], probe: str, pair: str,
                 sib: str, metric: str, scope: str, layers: list[str]) -> dict[str, Any] | None:
    before, after = _side(sides[0], layers), _side(sides[1], layers)
    if before is None or after is None:
        return None
    sign = -1.0 if _lower_is_similar(metric) else 1.0
    b, a = float(before["values"].mean()), float(after["values"].mean())
    se = _combined_se(before, after)
    row = {"probe": probe, "pair": pair, "sibling": sib, "metric": metric, "scope": scope,
           "layers": ",".join(layers), "before": b, "after": a, "n_seeds": len(after["values"]),
           "delta": a - b, "delta_low": a - b - 1.96 * se, "delta_high": a - b + 1.96 * se, "closer": sign * (a - b),
           "floor": math.nan, "gap": math.nan, "gap_low": math.nan, "gap_high": math.nan, "within_floor": None}
    fl = [s for s in (_side(f, layers) for f in sides[2]) if s is not None]
    if fl:
        floor = {"values": np.concatenate([s["values"] for s in fl]), "se": np.concatenate([s["se"] for s in fl])}
        f = float(floor["values"].mean())
        gse = _combined_se(after, floor)
        # within the floor: the embedders are not detectably less similar than two seeds of one recipe
        within = bool(sign * (a - f) + 1.96 * gse >= 0) if np.isfinite(gse) else bool(sign * (a - f) >= 0)
        row.update(floor=f, gap=a - f, gap_low=a - f - 1.96 * gse, gap_high=a - f + 1.96 * gse, within_floor=within)
    row.update(unit=REALIGN_UNIT, method=REALIGN_METHOD, null=REALIGN_NULL)
    return row


def _short(metric: str) -> str:
    names = {"cka-linear-biased": "CKA", "cka-linear-debiased": "debiased CKA", "dimwise-corr": "dim-wise r",
             "procrustes-rvr": "Procrustes RVR", "procrustes-rie": "Procrustes RIE",
             "procrustes-cosine": "Procrustes cosine"}
    if metric.startswith("knn-jaccard-k"):
        return f"kNN Jaccard@{metric.split('-k')[1].split('-')[0]}"
    return names.get(metric, metric)


def pair_sentences(real: pd.DataFrame, verdicts: pd.DataFrame, primary: str,
                   metrics: Sequence[str] | None = None) -> dict[str, str]:
    """One sentence per pair, generated from the realignment numbers (last layer; `metrics` only, default all) and
    the Table 1 verdicts."""
    out: dict[str, str] = {}
    if real.empty and verdicts.empty:
        return out
    pairs = sorted(set(real.get("pair", pd.Series(dtype=str))) | set(verdicts.get("pair", pd.Series(dtype=str))))
    for pair in pairs:
        clauses = []
        sub = real[(real.pair == pair) & (real.scope == "last layer")] if not real.empty else real
        if metrics is not None and not sub.empty:
            sub = sub[sub.metric.isin(metrics)]
        for (sib, probe), g in (sub.groupby(["sibling", "probe"], sort=True) if not sub.empty else []):
            moved = []
            for r in g.itertuples():
                sig = r.delta_low > 0 or r.delta_high < 0
                way = ("closer" if r.closer > 0 else "apart") if sig else "unchanged"
                moved.append((way, f"{_short(r.metric)} {r.before:.3f} → {r.after:.3f}"))
            groups = {w: [t for ww, t in moved if ww == w] for w in ("closer", "apart", "unchanged")}
            text = "; ".join(f"{w} on {', '.join(ts)}" for w, ts in groups.items() if ts)
            floor = g.dropna(subset=["floor"])
            within = int(floor["within_floor"].astype(bool).sum())
            ftext = (f", and the embedders are within the same-recipe noise floor on {within} of {len(floor)}"
                     if len(floor) else ", with no noise floor to compare against")
            clauses.append(f"contrastive training moved base and {sib} (probe {probe}, last layer) {text}{ftext}")
        if not verdicts.empty:
            v = verdicts[(verdicts.pair == pair) & (verdicts.measure == primary)]
            for r in v.itertuples():
                clauses.append(f"on {r.benchmark} {r.sibling} vs base-E is {r.verdict} (Δ {r.delta:+.2f} points, "
                               f"90% interval [{r.low90:+.2f}, {r.high90:+.2f}], margin ±{r.margin:g})")
        out[pair] = f"Pair {pair}: " + "; ".join(clauses) + "." if clauses else f"Pair {pair}: no numbers to report."
    return out


# ------------------------------------------------------------------------------------------------ figures
#: grayscale-readable series styles: (colour, line style, marker)
STYLES = {"backbones": ("black", "-", "o"), "embedders": ("0.45", "--", "s"), "noise": ("0.25", ":", None),
          "permutation": ("0.6", "-.", None)}
CURVE_NOTE = ("bands: envelope of the per-seed 95% block-bootstrap intervals (unit: probe texts); noise floor: "
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
    return sub.sort_values("layer", key=lambda c: c.map(_layer_key))


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


def _positions(layers: Sequence[str]) -> dict[str, int]:
    return {x: i for i, x in enumerate(sorted(set(layers), key=_layer_key))}


def _plot_panel(ax: Any, series: list[tuple[str, pd.DataFrame]], metric: str) -> list[dict[str, Any]]:
    """Draw one panel's series; returns the plotted values as rows."""
    pos = _positions([x for _, s in series for x in s["layer"]])
    rows = []
    for name, s in series:
        colour, ls, marker = STYLES[name.split(" ")[0]]
        x = [pos[v] for v in s["layer"]]
        ax.plot(x, s["y"], color=colour, linestyle=ls, marker=marker, ms=4, label=name)
        if s["low"].notna().any():
            ax.fill_between(x, s["low"], s["high"], color=colour, alpha=0.18,
                            linewidth=0)
        rows += [{"metric": metric, "series": name, "layer": lay, "y": y, "low": lo, "high": hi}
                 for lay, y, lo, hi in zip(s["layer"], s["y"], s["low"], s["high"], strict=True)]
    ax.set_xticks(list(pos.values()), list(pos), fontsize=7)
    ax.set_xlabel("layer index")
    ax.set_ylabel(metric)
    ax.set_title(_short(metric), fontsize=9)
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


def _knn_metrics(tab: pd.DataFrame) -> list[str]:
    names = {m for m in tab.metric if m.startswith("knn-jaccard-k")}
    return sorted(names, key=lambda m: int(m.split("-k")[1].split("-")[0]))


def _siblings(tab: pd.DataFrame) -> list[str]:
    kinds = set(tab.kind)
    return [s for s in ("reason", "sft") if f"base~{s}" in kinds or f"base-E~{s}-E" in kinds]


def plot_layer_curves(tab: pd.DataFrame, out: Path, metrics: Sequence[str]) -> list[Path]:
    """Per pair, probe and sibling: headline metrics per layer, and kNN Jaccard at every configured k."""
    paths = []
    for (probe, pair), sub in tab.groupby(["probe", "pair"], sort=True):
        for sib in _siblings(sub):
            for title, ms, stem in (("HRSA per layer", metrics, "layers"), ("kNN Jaccard", _knn_metrics(sub), "knn")):
                p = _curve_figure(sub, pair, probe, sib, ms, title, out, f"{stem}_{pair}_{probe}_{sib}")
                if p is not None:
                    paths.append(p)
    return paths


def _cka_matrix(grp: pd.DataFrame) -> pd.DataFrame:
    """Seed-averaged L x L linear CKA of one comparison kind (rows: left layers, columns: right layers)."""
    mat = grp.pivot_table(index="layer_x", columns="layer_y", values="value", aggfunc="mean")
    return mat.loc[sorted(mat.index, key=_layer_key), sorted(mat.columns, key=_layer_key)]


def plot_cka_matrices(hr: pd.DataFrame, out: Path) -> list[Path]:
    """Per pair, probe and sibling: L x L linear CKA before (base~X) and after (base-E~X-E, mean over seeds)
    contrastive training, side by side on one grey scale."""
    plt = _pyplot()
    paths = []
    cka = hr[hr.metric == "cka-linear-biased"]
    for (probe, pair), sub in cka.groupby(["probe", "pair"], sort=True):
        for sib in _siblings(sub):
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
    """Per pair and probe at the last numbered layer: source vs target probe accuracy for every comparison kind
    (bars: mean over seeds; error bars: the interval envelope). Per-split metrics
    (`probe-transfer-{source,target}-accuracy-{split}`) get one panel per split; else the test split alone."""
    plt = _pyplot()
    paths = []
    acc = tab[tab.metric.str.match(r"probe-transfer-(source|target)-accuracy")]
    for (probe, pair), sub in acc.groupby(["probe", "pair"], sort=True):
        last = _last_layer(list(sub.layer))
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


def intrinsic_dimension(hr: pd.DataFrame) -> pd.DataFrame:
    """TwoNN intrinsic dimension per probe, model role and layer: each model's value once (it appears in several
    comparisons), then mean ± std over seeds for embedders."""
    if hr.empty:
        return pd.DataFrame()
    diag = hr[(hr.layer_x == hr.layer_y) & hr.metric.isin(["twonn-id-left", "twonn-id-right"])]
    if diag.empty:
        return pd.DataFrame()
    model = np.where(diag.metric == "twonn-id-left", diag.model_x, diag.model_y)
    one = diag.assign(model=model).drop_duplicates(["probe", "model", "layer_x"])
    ids = [parse_model_id(m) for m in one.model]
    one = one.assign(role=[f"{r}-E" if s is not None else r for _, r, s in ids])
    g = one.groupby(["probe", "pair", "role", "layer_x"], sort=False)["value"]
    return g.agg(["mean", "std", "count"]).reset_index().rename(columns={"layer_x": "layer"})


def plot_intrinsic_dimension(ids: pd.DataFrame, out: Path) -> list[Path]:
    """Per pair and probe: TwoNN intrinsic dimension per layer, one line per model role (embedders: seed mean)."""
    plt = _pyplot()
    paths = []
    styles = {"base": ("black", "-", "o"), "reason": ("0.4", "-", "^"), "sft": ("0.65", "-", "v"),
              "base-E": ("black", "--", "o"), "reason-E": ("0.4", "--", "^"), "sft-E": ("0.65", "--", "v")}
    for (probe, pair), sub in (ids.groupby(["probe", "pair"], sort=True) if not ids.empty else []):
        fig, ax = plt.subplots(figsize=(4.6, 3.4))
        pos = _positions(list(sub.layer))
        rows = []
        for role in [r for r in styles if r in set(sub.role)]:
            s = _ordered(sub[sub.role == role])
            colour, ls, marker = styles[role]
            ax.plot([pos[x] for x in s.layer], s["mean"], color=colour, linestyle=ls, marker=marker, ms=4, label=role)
            rows += [{"role": role, "layer": lay, "y": y} for lay, y in zip(s.layer, s["mean"], strict=True)]
        ax.set_xticks(list(pos.values()), list(pos), fontsize=7)
        ax.set_xlabel("layer index")
        ax.set_ylabel("TwoNN intrinsic dimension")
        ax.legend(fontsize=6)
        ax.set_title(f"intrinsic dimension: pair {pair}, probe {probe}", fontsize=9)
        paths.append(_save(fig, pd.DataFrame(rows), out, f"id_{pair}_{probe}"))
    return paths


# ------------------------------------------------------------------------------------------------ what was run
def run_inputs(evaluated: Sequence[str], eval_groups: Sequence[str], probes: Sequence[str], extract_models: Sequence[str],
               built_backbones: Sequence[str], hrsa_tables: Sequence[str | Path], mine: bool) -> dict[str, list[str]]:
    """The run records the report reads, by grid (the rule declares exactly these): `benchmarks`, the benchmark TSV
    of every GPU-capable job (build_backbone, mine, train, extract, knn_graph, compare, evaluate), and
    `models`, the directories of every workflow-built backbone and embedder (their provenance.json). `evaluated`: the
    scored models (embedders, and raw backbones when evaluation.baseline is on), scored in the task groups named `eval_groups`.
    Paths relative to the working directory."""
    embedders = [m for m in evaluated if parse_model_id(m)[2] is not None]
    bench = [f"benchmarks/backbones/{b}.tsv" for b in built_backbones]
    bench += ["benchmarks/data/mine.tsv"] if mine else []
    bench += [f"benchmarks/train/{m}.tsv" for m in embedders]
    bench += [f"benchmarks/{step}/{p}/{m}.tsv" for step in ("extract", "knn") for p in probes for m in extract_models]
    bench += [f"benchmarks/hrsa/{Path(t).parent.name}/{Path(t).stem}.tsv" for t in hrsa_tables]
    bench += [f"benchmarks/eval/{m}/{g}.tsv" for m in evaluated for g in eval_groups]
    models = [f"results/backbones/{b}" for b in built_backbones] + [f"results/embedders/{m}" for m in embedders]
    return {"benchmarks": bench, "models": models}


def grid_records(study: Any, evaluated: Sequence[str], eval_groups: Sequence[str], hrsa_tables: Sequence[str],
                 mine: bool) -> dict[str, Any]:
    """run_inputs of a Study's grid, with the lists the report rule passes: `built` (workflow-built backbones) and
    `extracted` (every model a comparison reads), besides `benchmarks` and `models`."""
    built = [f"{pair}.{role}" for pair, roles in study.pairs.items() for role, bb in roles.items() if bb.recipe]
    extracted = sorted({c.model(side) for c in study.comparisons for side in ("left", "right")})
    records = run_inputs(evaluated, eval_groups, list(study.probes), extracted, built, hrsa_tables, mine)
    return {"built": built, "extracted": extracted, "mine": mine, **records}


def read_benchmarks(paths: Sequence[Path]) -> pd.DataFrame:
    """Snakemake `benchmark:` TSVs: one row per job (job = path below benchmarks/), wall seconds, peak RSS (MB)."""
    rows = []
    for path in map(Path, paths):
        df = pd.read_csv(path, sep="\t")
        if df.empty:
            continue
        rec = df.iloc[-1]
        job = str(path.with_suffix("")).split("benchmarks/", 1)[-1]
        rows.append({"job": job, "rule": job.split("/", 1)[0], "wall_s": float(rec.get("s", math.nan)),
                     "max_rss_mb": float(rec.get("max_rss", math.nan)),
                     "cpu_time_s": float(rec.get("cpu_time", math.nan)),
                     "mean_load": float(rec.get("mean_load", math.nan))})
    return pd.DataFrame(rows, columns=["job", "rule", "wall_s", "max_rss_mb", "cpu_time_s", "mean_load"])


def read_provenance(paths: Sequence[Path]) -> pd.DataFrame:
    """Per model directory's provenance.json: the model, the device it ran on, its hardware record (when provenance
    holds one) and its package versions."""
    rows = []
    for path in map(Path, paths):
        file = path / "provenance.json" if path.is_dir() else path
        if not file.is_file():
            raise DataError(f"{file} is missing: rerun the job that builds {path}")
        prov = json.loads(file.read_text())
        params = prov.get("params") or {}
        hw = prov.get("hardware") or {}
        rows.append({"model": file.parent.name, "device": str(params.get("device", "")),
                     "hardware": ", ".join(f"{k}={v}" for k, v in sorted(hw.items())) if hw else "not recorded",
                     **{f"pkg:{k}": v for k, v in (prov.get("packages") or {}).items()}})
    return pd.DataFrame(rows)


def report_host() -> dict[str, str]:
    """Hardware and packages of the machine that built this report."""
    import os

    from hrsa.io import package_versions

    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": str(os.cpu_count()), **{f"pkg:{k}": v for k, v in package_versions().items()}}


# ------------------------------------------------------------------------------------------------ rendering
def _fmt(mean: float, std: float, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" if not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def table1_display(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed: mean ± std over seeds (×100) and Δ to base-E."""
    return pd.DataFrame({
        "pair": t1.pair, "benchmark": t1.benchmark, "model": t1.role, "seeds": t1.n_seeds,
        "Mean(Task)": [_fmt(m, s) for m, s in zip(t1.mean_task, t1.std_task, strict=True)],
        "Mean(Type)": [_fmt(m, s) for m, s in zip(t1.mean_type, t1.std_type, strict=True)],
        "Δ Mean(Task)": [_fmt(m, s) if r != "base-E" else "" for m, s, r in
                         zip(t1.delta_task, t1.delta_task_std, t1.role, strict=True)],
        "Δ Mean(Type)": [_fmt(m, s) if r != "base-E" else "" for m, s, r in
                         zip(t1.delta_type, t1.delta_type_std, t1.role, strict=True)],
        "tasks": [f"{n}" + ("" if c else f" (missing: {m})") for n, c, m in
                  zip(t1.n_tasks, t1.complete, t1.missing, strict=True)],
    })


class Report:
    """Everything the report shows, computed once from the inputs; rendered as Markdown and as one HTML page."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, list[tuple[str, Any]]]] = []

    def section(self, title: str) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        self.sections.append((title, items))
        return items

    def markdown(self, title: str) -> str:
        parts = [f"# {title}", ""]
        for head, items in self.sections:
            parts += [f"## {head}", ""]
            for kind, value in items:
                if kind == "text":
                    parts += [value, ""]
                elif kind == "list":
                    parts += [f"- {v}" for v in value] + [""]
                elif kind == "table":
                    parts += [markdown_table(value), ""]
                elif kind == "figure":
                    parts += [f"![{value.name}](figures/{value.name})", ""]
                elif kind == "code":
                    parts += ["```", value, "```", ""]
        return "\n".join(parts)

    def html(self, title: str) -> str:
        esc = html.escape
        body = [f"<h1>{esc(title)}</h1>"]
        for head, items in self.sections:
            body.append(f"<h2>{esc(head)}</h2>")
            for kind, value in items:
                if kind == "text":
                    body.append(f"<p>{esc(value)}</p>")
                elif kind == "list":
                    body.append("<ul>" + "".join(f"<li>{esc(v)}</li>" for v in value) + "</ul>")
                elif kind == "table":
                    body.append(value.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}",
                                              classes="t", border=0))
                elif kind == "figure":
                    data = base64.b64encode(value.read_bytes()).decode()
                    body.append(f'<figure><img alt="{esc(value.name)}" src="data:image/png;base64,{data}">'
                                f"<figcaption>{esc(value.name)}</figcaption></figure>")
                elif kind == "code":
                    body.append(f"<pre>{esc(value)}</pre>")
        style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table.t{border-collapse:collapse;"
                 "font-size:12px}table.t td,table.t th{border:1px solid #999;padding:2px 6px}img{max-width:100%}")
        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _compact_equivalence(eq: pd.DataFrame) -> pd.DataFrame:
    cols = ["pair", "benchmark", "sibling", "measure", "n_seeds", "n_tasks", "delta", "se", "df", "low90", "high90",
            "p_tost", "p_tost_holm", "p_diff", "p_diff_holm", "verdict", "seeds_needed"]
    return eq[cols] if not eq.empty else eq


def _compact_realignment(real: pd.DataFrame) -> pd.DataFrame:
    cols = ["probe", "pair", "sibling", "metric", "scope", "before", "after", "delta", "delta_low", "delta_high",
            "floor", "gap_low", "gap_high", "within_floor"]
    return real[cols] if not real.empty else real


def _grid_lines(config: Mapping[str, Any], hr: pd.DataFrame, ev: pd.DataFrame) -> list[str]:
    pairs = config.get("pairs", [])
    roles = {p.get("name"): [r for r in ("base", "reason", "sft") if p.get(r)] for p in pairs}
    return [f"pairs and roles: {roles}", f"seeds: {config.get('seeds', [])}", f"layers: {config.get('layers', '')}",
            f"probes: {[p.get('name') for p in config.get('probes', [])]}",
            f"comparisons configured: {config.get('comparisons', [])}",
            f"HRSA tables read: {hr.comparison.nunique() * 1 if not hr.empty else 0} comparisons on "
            f"{hr.probe.nunique() if not hr.empty else 0} probe sets",
            f"evaluation results read: {len(ev)} (embedder, task) scores"]


def build_report(hrsa_files: Sequence[Path], eval_files: Sequence[Path], config: dict[str, Any], out: Path, *,
                 task_benchmarks: Mapping[str, str | None] | None = None, benchmark_files: Sequence[Path] = (),
                 provenance_files: Sequence[Path] = (), procrustes_maps: Sequence[Path] = ()) -> Path:
    """Write out/index.md, out/index.html, out/tables/*.tsv and out/figures/* (PNG, PDF and the plotted values as
    TSV) from exactly the given files; returns the index path."""
    from hrsa.aggregate import aggregate
    from hrsa.io import atomic_path

    settings = settings_of(config)
    primary = str(settings["primary_measure"])
    ev, hr = load_evaluations(eval_files), load_hrsa(hrsa_files)
    emb, tab = embedding_table(ev), hrsa_table(hr)
    tb = dict(task_benchmarks) if task_benchmarks is not None else {t: None for t in sorted(set(ev.task))}
    t1_note = ""
    try:
        long_df, means = aggregate(eval_files, tb)
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
    eq = equivalence(long_df, settings) if not long_df.empty else pd.DataFrame()
    metrics = list(dict.fromkeys([*settings["headline_metrics"], *(_knn_metrics(tab) if not tab.empty else [])]))
    real = realignment(hr, metrics)
    ids = intrinsic_dimension(hr)
    jobs, prov = read_benchmarks(benchmark_files), read_provenance(provenance_files)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"embedding_scores": emb, "table1": t1, "table1_long": long_df, "equivalence": eq, "hrsa_layers": tab,
              "hrsa_all": hr, "realignment": real, "intrinsic_dimension": ids, "jobs": jobs, "provenance": prov}
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
                   "id": plot_intrinsic_dimension(ids, fdir)}
    figures = {k: [out / "figures" / p.name for p in v] for k, v in figures.items()}  # after the rename
    rep = _assemble(config, settings, ev, hr, emb, t1, t1_note, eq, real, jobs, prov, figures, out / "figures")
    title = "Do reasoning backbones make better embedding models? (HRSA report)"
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(rep.html(title))
    with atomic_path(out / "index.md") as tmp:
        tmp.write_text(rep.markdown(title))
    return out / "index.md"


def _assemble(config: Mapping[str, Any], settings: Mapping[str, Any], ev: pd.DataFrame, hr: pd.DataFrame,
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
                      "of a probe trained on the left model, tested on left (source) and right (target) features. "
                      "Intrinsic dimension: TwoNN (cosine neighbours). Plotted values: figures/*.tsv."))
    if not figures["procrustes"]:
        s.append(("text", "No Procrustes map: compare saves none ({probe}/{comparison}.procrustes.npz)."))
    for paths in figures.values():
        s += [("figure", p) for p in paths]
    s = rep.section("Per-task scores (mteb main score, mean ± std over seeds; descriptive, no test per task)")
    if not emb.empty:
        show = emb.assign(score=[_fmt(m, sd, 4) for m, sd in zip(emb["mean"], emb["std"], strict=True)])
        wide = show.pivot_table(index=["pair", "role"], columns="task", values="score", aggfunc="first", sort=False)
        s.append(("table", wide.reset_index()))
    s = rep.section("What was run")
    s.append(("list", _grid_lines(config, hr, ev)))
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
    s.append(("code", json.dumps(config, indent=1, sort_keys=True, default=str)))
    return rep
