"""Table 1 and its inference: each role's benchmark means over seeds, the Δ of every sibling to base-E, TOST and
difference tests with Holm's adjustment, verdicts and the seeds that would decide an open one; per-task scores.

Every number carries its resampling unit, interval method and null (columns `unit`, `method`, `null`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hrsa.stats import holm, paired_comparison, seed_level_delta, seeds_needed, tost

MEASURES = {"mean_task": "Mean(Task)", "mean_type": "Mean(Type)"}
T1_UNIT = ("seed: per seed s, D_s = the weighted mean over tasks of sibling - base-E (same seed; the weights of "
           "Mean(Task) or Mean(Type)); tasks fixed (the benchmark's task list)")
T1_METHOD = ("seed-level t: Δ = mean of D_s, SE = sd(D_s)/√S, t with S-1 df (no assumption that tasks are equally "
             "noisy)")
T1_NULL = ("TOST H0: |Δ| >= margin; difference H0: Δ = 0 (two-sided); both from the same t; Holm over pairs x "
           "benchmarks x siblings")


def embedding_table(ev: pd.DataFrame) -> pd.DataFrame:
    """Per-task scores (supplement to Table 1): per pair, role and task, mean ± std over seeds of mteb's main score,
    and the paired Δ of each sibling to base (paired t-test over seeds: unit seeds, no correction)."""
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
    margin, alpha = float(settings["equivalence_margin"]), float(settings["alpha"])
    rows = []
    for (pair, bench), grp in long_df.groupby(["pair", "benchmark"], sort=True):
        for sibling in [r for r in ("reason", "sft") if r in set(grp.role)]:
            d, tasks, types, seeds = _delta_matrix(grp, sibling)
            if not tasks:
                continue
            for measure in MEASURES:
                w = None if measure == "mean_task" else type_weights(types)
                est = seed_level_delta(d, w, confidence=1 - 2 * alpha)
                test = tost(est["estimate"], est["se"], est["df"], margin, alpha)
                rows.append({"pair": pair, "benchmark": bench, "sibling": f"{sibling}-E", "measure": measure,
                             "n_seeds": len(seeds), "n_tasks": len(tasks), "delta": est["estimate"], "se": est["se"],
                             "df": est["df"], "sd_seed": est["sd_seed"], "low90": test["low"], "high90": test["high"],
                             "p_lower": test["p_lower"], "p_upper": test["p_upper"], "p_tost": test["p_tost"],
                             "p_diff": test["p_diff"], "margin": margin, "note": est["note"]})
    eq = pd.DataFrame(rows)
    if eq.empty:
        return eq
    for idx in eq.groupby("measure").groups.values():
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
    lines: list[str] = []
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
        elif int(r["n_seeds"]) < 2:  # no seed-to-seed spread: no test and no seed count can be estimated
            what = "one seed: no spread, no verdict"
        else:
            n = r["seeds_needed"]
            goal = "equivalence" if abs(r["delta"]) < m else "a difference"
            more = (f"about {int(n)} seeds would show {goal} at the observed spread" if pd.notna(n)
                    else f"no seed count up to 1000 would show {goal} at the observed spread")
            what = f"inconclusive (more seeds needed: {more})"
        other = [f"{MEASURES[k]}: {v['verdict']}" for k, v in by.iterrows() if k != primary]
        lines.append(
            f"{pair} / {bench}: {sib} vs base-E on {MEASURES[primary]}: Δ = {r['delta']:+.2f} points, 90% seed-level t "
            f"interval [{r['low90']:+.2f}, {r['high90']:+.2f}] ({int(r['n_seeds'])} seeds x {int(r['n_tasks'])} tasks; "
            f"TOST p = {r['p_tost_holm']:.3g}, difference p = {r['p_diff_holm']:.3g}, Holm): {what}"
            + (f" [{'; '.join(other)}]" if other else ""))
    return lines
