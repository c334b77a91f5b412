"""Uncertainty beside every HRSA score: bootstrap CIs, a row-permutation null, and seed-level summaries/tests.

Bootstrap: metrics whose value is a reduction over per-unit values (kNN Jaccard/retention per row, TwoNN ratios per
row, probe predictions per test row) resample those units; resampling rows and recomputing would duplicate rows, and a
duplicate becomes its own nearest neighbour (or leaks from probe-train into probe-test). Every other metric (CKA,
dim-wise correlation, Procrustes) resamples rows with replacement and recomputes. The kNN graph itself is therefore
held fixed: the CI covers which rows were probed, not graph-construction noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from hrsa.errors import HrsaError
from hrsa.metrics.registry import Metric, get_metric
from hrsa.tensors import n_rows, take_rows


def _rows_hp(hp: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    """Hyper-parameters for a row subset: labels follow the rows; precomputed graphs cannot, so they are refused."""
    if hp.get("indices_x") is not None or hp.get("indices_y") is not None:
        raise HrsaError("row resampling cannot reuse precomputed neighbour indices")
    out = dict(hp)
    if hp.get("labels") is not None:
        out["labels"] = np.asarray(hp["labels"])[idx]
    return out


def bootstrap_ci(metric: str | Metric, X: Any, Y: Any, *, n_boot: int = 200, confidence: float = 0.95, seed: int = 0,
                 **hp: Any) -> dict[str, Any]:
    """Percentile bootstrap CI of a registry metric with a fixed seed: resamples the metric's units when it declares
    them (kNN, TwoNN, probe metrics), else rows of X and Y (and labels) jointly. Keys: estimate, low, high, std,
    n_boot, confidence, method ('units' or 'rows')."""
    m = get_metric(metric)
    m.check_hp(hp)
    if n_boot < 1 or not 0 < confidence < 1:
        raise HrsaError(f"bootstrap needs n_boot >= 1 and 0 < confidence < 1, got {n_boot}, {confidence}")
    rng = np.random.default_rng(seed)
    if m.units is not None:
        units = m.units(X, Y, **hp)
        reduce = m.reduce or (lambda u: float(np.mean(u)))
        estimate = reduce(units)
        vals = np.array([reduce(units[rng.integers(0, len(units), len(units))]) for _ in range(n_boot)])
        method = "units"
    else:
        estimate = m(X, Y, **hp)
        n = n_rows(X)
        vals = np.empty(n_boot)
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            vals[b] = m(take_rows(X, idx), take_rows(Y, idx), **_rows_hp(hp, idx))
        method = "rows"
    alpha = 1.0 - confidence
    low, high = (np.nanquantile(vals, [alpha / 2, 1 - alpha / 2]) if np.isfinite(vals).any()
                 else (float("nan"), float("nan")))
    return {"estimate": float(estimate), "low": float(low), "high": float(high),
            "std": float(np.nanstd(vals, ddof=1)) if n_boot > 1 else float("nan"),
            "n_boot": int(n_boot), "confidence": float(confidence), "method": method}


def permutation_null(metric: str | Metric, X: Any, Y: Any, *, n_perm: int = 100, quantile: float = 0.95,
                     seed: int = 0, **hp: Any) -> dict[str, Any]:
    """Scores with the rows of Y shuffled (fixed seed; labels stay with X): the value unrelated rows would get.
    Keys: score, null_mean, null_std, null_quantile (the `quantile` in the metric's "more similar" direction: the
    95th percentile for higher-is-similar metrics, the 5th otherwise), quantile, p_value (one-sided, +1 corrected)."""
    m = get_metric(metric)
    m.check_hp(hp)
    if n_perm < 1:
        raise HrsaError(f"permutation null needs n_perm >= 1, got {n_perm}")
    score = m(X, Y, **hp)
    q = quantile if m.higher_is_more_similar else 1.0 - quantile
    if not m.row_paired:
        nan = float("nan")
        return {"score": float(score), "null_mean": nan, "null_std": nan, "null_quantile": nan, "quantile": float(q),
                "p_value": nan, "n_perm": 0, "note": f"{m.name} does not pair rows: a row-permutation null is void"}
    rng = np.random.default_rng(seed)
    n = n_rows(Y)
    perms = [rng.permutation(n) for _ in range(n_perm)]
    if m.null is not None:
        null = np.asarray(m.null(X, Y, perms, **hp), dtype=np.float64)
    else:
        if hp.get("indices_y") is not None:
            raise HrsaError("a permutation null without a fast path cannot reuse precomputed neighbour indices")
        null = np.array([m(X, take_rows(Y, p), **hp) for p in perms])
    extreme = (null >= score) if m.higher_is_more_similar else (null <= score)
    return {"score": float(score), "null_mean": float(np.mean(null)),
            "null_std": float(np.std(null, ddof=1)) if n_perm > 1 else float("nan"),
            "null_quantile": float(np.quantile(null, q)), "quantile": float(q),
            "p_value": float((1 + extreme.sum()) / (1 + n_perm)), "n_perm": int(n_perm), "note": ""}


def score_with_uncertainty(metric: str | Metric, X: Any, Y: Any, *, n_boot: int = 100, n_perm: int = 20,
                           seed: int = 0, **hp: Any) -> dict[str, Any]:
    """One flat record per (metric, comparison, layer): score, bootstrap CI and permutation null side by side."""
    m = get_metric(metric)
    out: dict[str, Any] = {"metric": m.name, "score": float("nan")}
    if n_boot > 0:
        boot = bootstrap_ci(m, X, Y, n_boot=n_boot, seed=seed, **hp)
        out["score"] = boot["estimate"]
        out.update({f"ci_{k}": boot[k] for k in ("low", "high", "std", "method", "confidence")})
    if n_perm > 0:
        out.update(permutation_null(m, X, Y, n_perm=n_perm, seed=seed, **hp))
    if n_boot <= 0 and n_perm <= 0:
        out["score"] = m(X, Y, **hp)
    return out


# ------------------------------------------------------------------------------------------ across seeds
def _clean(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample std (ddof=1) over seeds, NaN values dropped; with fewer than 2 values std is NaN (noted)."""
    v = _clean(values)
    note = "" if v.size >= 2 else f"std needs at least 2 seeds, got {v.size}"
    return {"n": int(v.size), "mean": float(v.mean()) if v.size else float("nan"),
            "std": float(v.std(ddof=1)) if v.size >= 2 else float("nan"), "note": note}


def paired_comparison(base: Sequence[float], reason: Sequence[float]) -> dict[str, Any]:
    """Paired comparison over seeds of base-E vs reason-E scores (difference = reason - base): paired t-test and
    Wilcoxon signed-rank (scipy). Pairs with a NaN are dropped; with fewer than 2 pairs the tests are NaN (noted)."""
    from scipy import stats

    a, b = np.asarray(base, dtype=np.float64).ravel(), np.asarray(reason, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise HrsaError(f"paired comparison needs one reason score per base score, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = b - a
    out: dict[str, Any] = {"n": int(d.size), "mean_base": float(a.mean()) if d.size else float("nan"),
                           "mean_reason": float(b.mean()) if d.size else float("nan"),
                           "mean_diff": float(d.mean()) if d.size else float("nan"),
                           "std_diff": float(d.std(ddof=1)) if d.size >= 2 else float("nan"),
                           "t_stat": float("nan"), "t_pvalue": float("nan"),
                           "wilcoxon_stat": float("nan"), "wilcoxon_pvalue": float("nan"), "note": ""}
    if d.size < 2:
        out["note"] = f"paired tests need at least 2 seeds, got {d.size}"
        return out
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.all(d == d[0]):
            notes.append("differences are constant: t-test undefined")
        else:
            t = stats.ttest_rel(b, a)
            out["t_stat"], out["t_pvalue"] = float(t.statistic), float(t.pvalue)
        if np.all(d == 0):
            notes.append("all differences are zero: Wilcoxon undefined")
        else:
            try:
                w = stats.wilcoxon(b, a)
                out["wilcoxon_stat"], out["wilcoxon_pvalue"] = float(w.statistic), float(w.pvalue)
            except ValueError as exc:
                notes.append(f"Wilcoxon: {exc}")
    out["note"] = "; ".join(notes)
    return out


# ------------------------------------------------------------------------------------------ block bootstrap intervals
#: flags a row gets when its interval cannot be taken at face value
FLAG_BIAS = "bias>half-width"
FLAG_EXCLUDES = "interval-excludes-estimate"
FLAG_FEW = "few-finite-replicates"
#: BCa reads quantiles far in the tails (levels near 0.001 when the bias is large): below this many replicates the
#: bias-corrected normal interval is used instead
BCA_MIN_REPLICATES = 100


def _norm_ppf(p: float) -> float:
    from statistics import NormalDist  # not scipy.stats: its import alone costs a compare job 1.5 s

    return NormalDist().inv_cdf(p)


def _norm_cdf(z: float) -> float:
    from statistics import NormalDist

    return NormalDist().cdf(z)


def bca_interval(estimate: float, replicates: Any, jackknife: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Bias-corrected and accelerated (BCa; Efron 1987) interval from bootstrap replicates and delete-a-group
    jackknife values, with the bootstrap bias (mean of replicates - estimate) and standard error beside it; where the
    estimate sits in the outer alpha/2 tail of its replicates (BCa undefined), or with fewer than BCA_MIN_REPLICATES
    replicates, the bias-corrected normal interval.
    `flag` names what makes the row doubtful: a bias larger than the interval's half-width, an interval that excludes
    its own estimate, or replicates that were mostly undefined."""
    reps = np.asarray(replicates, dtype=np.float64)
    fin = reps[np.isfinite(reps)]
    nan = float("nan")
    out: dict[str, Any] = {"low": nan, "high": nan, "bias": nan, "se": nan, "flag": "", "method": "none"}
    if not np.isfinite(estimate) or fin.size < 2:
        out["flag"] = FLAG_FEW if reps.size else ""
        return out
    r = fin.size
    alpha = (1.0 - confidence) / 2
    share = (np.sum(fin < estimate) + 0.5 * np.sum(fin == estimate)) / r
    bias, se = float(fin.mean() - estimate), float(fin.std(ddof=1))
    if (r < BCA_MIN_REPLICATES or min(share, 1 - share) < alpha) and not np.all(fin == estimate):
        # too few replicates for BCa's tail quantiles, or the estimate lies in the tail of its own bootstrap
        # distribution (BCa's z0 not estimable): the bias-corrected normal interval (estimate - bias) +- z se
        z = _norm_ppf(1 - alpha)
        low, high = estimate - bias - z * se, estimate - bias + z * se
        return _finish(out, estimate, low, high, bias, se, reps.size, r, "bias-corrected-normal")
    z0 = _norm_ppf(min(max(share, 0.5 / r), 1 - 0.5 / r))
    jack = np.asarray(jackknife, dtype=np.float64)
    jack = jack[np.isfinite(jack)]
    accel = 0.0
    if jack.size >= 2:
        dev = jack.mean() - jack
        den = 6.0 * float(np.sum(dev**2)) ** 1.5
        accel = float(np.sum(dev**3)) / den if den > 0 else 0.0
    levels = []
    for z in (_norm_ppf(alpha), _norm_ppf(1 - alpha)):
        shifted = z0 + (z0 + z) / (1 - accel * (z0 + z))
        levels.append(_norm_cdf(shifted) if np.isfinite(shifted) else (0.0 if shifted < 0 else 1.0))
    low, high = np.quantile(fin, levels)
    return _finish(out, estimate, float(low), float(high), bias, se, reps.size, r, "bca")


def _finish(out: dict[str, Any], estimate: float, low: float, high: float, bias: float, se: float, total: int,
            finite: int, method: str) -> dict[str, Any]:
    """Interval record with the flags that say when it cannot be taken at face value."""
    flags = []
    if abs(bias) > (high - low) / 2:
        flags.append(FLAG_BIAS)
    if not low <= estimate <= high:
        flags.append(FLAG_EXCLUDES)
    if finite < 0.9 * total:
        flags.append(FLAG_FEW)
    out.update(low=low, high=high, bias=bias, se=se, flag=";".join(flags), method=method)
    return out


def normal_null_q95(mean: float, var: float, higher_is_more_similar: bool = True) -> float:
    """The 95% point (in the "more similar" direction) of a null given by its exact mean and variance, under a normal
    approximation."""
    if not (np.isfinite(mean) and np.isfinite(var)) or var < 0:
        return float("nan")
    z = _norm_ppf(0.95)
    return float(mean + z * np.sqrt(var)) if higher_is_more_similar else float(mean - z * np.sqrt(var))


# ------------------------------------------------------------------------------------------ Table 1 inference
def seed_level_delta(
    d: Any, weights: Sequence[float] | np.ndarray | None = None, confidence: float = 0.90
) -> dict[str, Any]:
    """Benchmark-level Δ from an S x T matrix of per-seed, per-task differences (sibling - base, paired by seed), by
    the one-sample t on the per-seed weighted means.

    Per seed s, D_s = Σ_t w_t d[s, t] (w = 1/T for Mean(Task), 1/(types x tasks of the type) for Mean(Type)): the
    benchmark-level difference one seed gives. Δ = mean_s D_s, SE = sd(D_s) / √S, df = S - 1, t interval at
    `confidence`. The seeds are the resampling unit and the tasks are fixed (the benchmark is its task list); no
    assumption on how the tasks' seed-to-seed variances compare, so the interval keeps its coverage when some tasks are
    noisier than others (a crossed seeds x tasks ANOVA that pools them does not).
    `d` may carry leading axes (..., S, T) (a stack of matrices, e.g. Monte Carlo replicates): every value then has
    those leading axes; for one matrix they are floats.
    Keys: estimate, se, df, low, high, sd_seed (sd(D_s): the spread of one seed's Δ), n_seeds, n_tasks, note. With
    fewer than 2 seeds there is no spread: se, df, low, high and sd_seed are NaN (noted)."""
    from scipy import stats

    m = np.asarray(d, dtype=np.float64)
    if m.ndim < 2 or not m.size or not np.isfinite(m).all():
        raise HrsaError(f"seed_level_delta needs a finite seeds x tasks matrix, got shape {m.shape}")
    s, t = m.shape[-2:]
    w = np.full(t, 1.0 / t) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (t,) or not np.isclose(w.sum(), 1.0) or (w < 0).any():
        raise HrsaError(f"seed_level_delta needs {t} non-negative task weights summing to 1, got {w}")
    per_seed = m @ w  # (..., S): D_s
    estimate = per_seed.mean(axis=-1)
    nan = np.full(estimate.shape, np.nan)
    out: dict[str, Any] = {"estimate": estimate, "se": nan, "df": nan, "low": nan, "high": nan, "sd_seed": nan,
                           "n_seeds": s, "n_tasks": t, "note": ""}
    if s < 2:
        out["note"] = f"one seed: the seed-to-seed spread is unknown (need at least 2 seeds, got {s})"
    else:
        sd = per_seed.std(axis=-1, ddof=1)
        se = sd / np.sqrt(s)
        q = float(stats.t.ppf(0.5 + confidence / 2, s - 1))
        out.update(se=se, df=np.full(estimate.shape, float(s - 1)), low=estimate - q * se, high=estimate + q * se,
                   sd_seed=sd)
    return _unstack(out)


def _unstack(out: dict[str, Any]) -> dict[str, Any]:
    """0-d arrays of a result become floats (one matrix, one test); arrays with leading axes stay arrays."""
    return {k: float(v) if isinstance(v, np.ndarray) and v.ndim == 0 else v for k, v in out.items()}


def tost(estimate: Any, se: Any, df: Any, margin: float, alpha: float = 0.05) -> dict[str, Any]:
    """Two one-sided t tests (Schuirmann 1987) of H0: |Δ| >= margin against H1: |Δ| < margin, and the two-sided t test
    of Δ = 0. Keys: p_lower (H0 Δ <= -margin), p_upper (H0 Δ >= margin), p_tost (their max), p_diff (two-sided, Δ = 0),
    low, high (the 1 - 2 alpha interval: equivalence at alpha iff it lies inside ±margin). NaN where se or df is
    undefined. estimate, se and df broadcast (arrays give arrays, scalars floats)."""
    from scipy import stats

    if margin <= 0 or not 0 < alpha < 0.5:
        raise HrsaError(f"TOST needs margin > 0 and 0 < alpha < 0.5, got {margin}, {alpha}")
    e, s, k = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (estimate, se, df)))
    ok = np.isfinite(s) & np.isfinite(k) & (k > 0)
    zero = ok & (s == 0)  # no spread: the tests are decided by the estimate alone
    k = np.where(ok, k, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_lower = np.where(zero, np.where(e > -margin, 0.0, 1.0), stats.t.sf((e + margin) / s, k))
        p_upper = np.where(zero, np.where(e < margin, 0.0, 1.0), stats.t.cdf((e - margin) / s, k))
        p_diff = np.where(zero, np.where(e == 0, 1.0, 0.0), 2 * stats.t.sf(np.abs(e) / s, k))
    half = np.where(zero, 0.0, stats.t.ppf(1 - alpha, k) * np.where(ok, s, 0.0))
    out = {"p_lower": p_lower, "p_upper": p_upper, "p_tost": np.maximum(p_lower, p_upper), "p_diff": p_diff,
           "low": e - half, "high": e + half}
    return _unstack({key: np.where(ok, v, np.nan) for key, v in out.items()})


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979) over the finite entries; NaN entries stay NaN and do not count."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    k = ok.size
    if not k:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((k - np.arange(k)) * p[order]))
    out[order] = adjusted
    return out


def seeds_needed(estimate: float, sd_seed: float, margin: float, alpha: float, n_tests: int = 1,
                 max_seeds: int = 1000) -> tuple[int | None, str]:
    """(seeds, goal): the fewest seeds whose t interval under seed_level_delta's model (SE = sd_seed / √seeds,
    df = seeds - 1; `sd_seed` the observed sd of the per-seed weighted means D_s, the estimate unchanged) would
    conclude at the Bonferroni level alpha / n_tests (Holm's strictest step). Goal 'equivalent' while
    |estimate| < margin (TOST), else 'different' (two-sided); (None, goal) beyond max_seeds."""
    from scipy import stats

    level = alpha / max(n_tests, 1)
    goal = "equivalent" if abs(estimate) < margin else "different"
    if not np.isfinite(sd_seed):
        return None, goal
    for n in range(2, max_seeds + 1):
        half = sd_seed / float(np.sqrt(n))
        if goal == "equivalent" and abs(estimate) + stats.t.ppf(1 - level, n - 1) * half < margin:
            return n, goal
        if goal == "different" and abs(estimate) - stats.t.ppf(1 - level / 2, n - 1) * half > 0:
            return n, goal
    return None, goal
