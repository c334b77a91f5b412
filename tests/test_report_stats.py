"""Table 1 inference: the seed-level t interval, TOST and Holm against hand-computed values, and the verdicts of an
equivalent, a shifted and an under-seeded synthetic score set."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hrsa.stats import holm, seed_level_delta, seeds_needed, tost


def _t4_cdf(t: float) -> float:
    """Closed-form CDF of Student's t with 4 degrees of freedom (no scipy): 1/2 + 3/4 u (1 - u²/3), u = t/√(t²+4)."""
    u = t / math.sqrt(t * t + 4)
    return 0.5 + 0.75 * u * (1 - u * u / 3)


def test_tost_matches_hand_computed_values():
    # Δ = 0.2, SE = 0.3, df = 4, margin 1: t_lower = (0.2 + 1)/0.3 = 4, t_upper = (0.2 - 1)/0.3 = -8/3
    r = tost(0.2, 0.3, 4, 1.0, 0.05)
    assert _t4_cdf(-8 / 3) == pytest.approx(0.028)  # u = -0.8: 0.5 - 0.6 * (1 - 0.64/3) = 0.028 exactly
    assert r["p_upper"] == pytest.approx(0.028, abs=1e-12)
    assert r["p_lower"] == pytest.approx(1 - _t4_cdf(4.0), abs=1e-12)  # 0.0080650
    assert r["p_tost"] == pytest.approx(0.028, abs=1e-12)  # max of the two one-sided p-values
    assert r["p_diff"] == pytest.approx(2 * (1 - _t4_cdf(0.2 / 0.3)), abs=1e-12)
    # 90% interval: t_{0.95, 4} = 2.1318 (t table): 0.2 ± 0.6395
    assert (r["low"], r["high"]) == (pytest.approx(0.2 - 2.131847 * 0.3, abs=1e-5),
                                     pytest.approx(0.2 + 2.131847 * 0.3, abs=1e-5))
    # equivalent at 5% iff the 90% interval lies inside ±margin: here [-0.44, 0.84] does and p_tost < 0.05
    narrow = tost(0.2, 0.3, 4, 0.8, 0.05)  # interval reaches 0.84 > 0.8: not equivalent
    assert narrow["high"] > 0.8 and narrow["p_tost"] > 0.05


def test_holm_matches_hand_computed_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.3, np.nan, 0.4])  # NaN neither counts nor changes: k = 2
    assert out[0] == pytest.approx(0.6) and math.isnan(out[1]) and out[2] == pytest.approx(0.6)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


D = np.array([[0.5, 1.0, -0.2, 0.3], [0.1, 0.4, -0.6, 0.2], [0.9, 1.2, 0.4, 0.5]])


def test_seed_level_delta_matches_hand_computed_t():
    # equal weights: seed means D_s = 0.4, 0.025, 0.75; Δ = 0.391667; sd(D_s) = √(0.262917 / 2) = 0.362571
    r = seed_level_delta(D, confidence=0.90)
    assert r["estimate"] == pytest.approx(0.391667, abs=1e-6)
    assert r["sd_seed"] == pytest.approx(0.362571, abs=1e-6)
    assert r["se"] == pytest.approx(0.362571 / math.sqrt(3), abs=1e-6)  # 0.209331
    assert r["df"] == 2.0
    assert r["low"] == pytest.approx(0.391667 - 2.919986 * 0.209331, abs=1e-5)  # t_{0.95, 2} = 2.919986
    assert r["high"] == pytest.approx(0.391667 + 2.919986 * 0.209331, abs=1e-5)
    # Mean(Type)-like weights: D_s = d[s] . w = 0.4625, 0.125, 0.7625; Δ = 0.45; deviations 0.0125, -0.325, 0.3125
    # -> sd² = (0.00015625 + 0.105625 + 0.09765625) / 2 = 0.10171875; SE = √(0.10171875 / 3) = 0.184137; df = 2
    # (the crossed seeds x tasks ANOVA this replaced gave SE 0.210 with Satterthwaite df 2.04)
    w = [0.25, 0.25, 0.125, 0.375]
    r = seed_level_delta(D, w)
    assert r["estimate"] == pytest.approx(0.45)
    assert r["sd_seed"] == pytest.approx(math.sqrt(0.10171875), abs=1e-12)
    assert r["se"] == pytest.approx(math.sqrt(0.10171875 / 3), abs=1e-12) and r["df"] == 2.0
    assert r["high"] == pytest.approx(0.45 + 2.919986 * 0.184137, abs=1e-5)
    one = seed_level_delta(D[:1])
    assert math.isnan(one["se"]) and math.isnan(one["df"]) and "one seed" in one["note"]
    assert math.isnan(tost(one["estimate"], one["se"], one["df"], 1.0)["p_tost"])  # no spread: no test


def test_seeds_needed_at_the_observed_spread():
    # Δ = 0, sd of one seed's Δ = 1, margin 1: need t_{0.95, n-1}/√n < 1; t table 6.314, 2.920, 2.353, 2.132
    # -> n = 2: 4.46, 3: 1.69, 4: 1.18, 5: 0.953
    assert seeds_needed(0.0, 1.0, 1.0, 0.05) == (5, "equivalent")
    # a Δ beyond the margin can only be shown different: |Δ| - t_{0.975, n-1}/√n > 0 with Δ = 2: n = 4 (3.18/2 < 2)
    assert seeds_needed(2.0, 1.0, 1.0, 0.05) == (4, "different")
    assert seeds_needed(0.99, 1.0, 1.0, 0.05, max_seeds=50) == (None, "equivalent")


def scores(shift: float, n_seeds: int, noise: float, seed: int = 0) -> pd.DataFrame:
    """A long Table 1 frame: 8 tasks of 2 types, base-E and reason-E (= base + shift + noise) per seed, ×100."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_seeds):
        seed_effect = rng.normal(0, noise)
        for t in range(8):
            base = 40 + 3 * t + rng.normal(0, 0.5)
            for role, v in (("base", base), ("reason", base + shift + seed_effect + rng.normal(0, noise))):
                rows.append({"benchmark": "B", "pair": "p", "role": role, "seed": s, "model": f"p.{role}-E.s{s}",
                             "task": f"T{t}", "task_type": "A" if t < 4 else "B", "split": "test", "score": v})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("shift", "n_seeds", "noise", "verdict"), [
    (0.0, 5, 0.1, "equivalent"),
    (3.0, 5, 0.1, "different"),
    (0.0, 2, 1.5, "inconclusive"),
])
def test_verdicts_of_synthetic_score_sets(shift, n_seeds, noise, verdict):
    from hrsa.report import equivalence, verdict_lines
    from hrsa.schema import with_defaults

    eq = equivalence(scores(shift, n_seeds, noise), with_defaults("report"))
    row = eq[eq.measure == "mean_task"].iloc[0]
    assert row.verdict == verdict
    assert row.delta == pytest.approx(shift, abs=4 * noise + 0.1)
    line = verdict_lines(eq, "mean_task")[0]
    if verdict == "inconclusive":
        n = int(row.seeds_needed)
        assert n > n_seeds and f"about {n} seeds would show" in line
        # at n seeds and the same spread the TOST would conclude (one test in the family: level alpha), at n - 1 not
        from scipy import stats

        assert abs(row.delta) + stats.t.ppf(0.95, n - 1) * row.sd_seed / math.sqrt(n) < 1.0
        assert abs(row.delta) + stats.t.ppf(0.95, n - 2) * row.sd_seed / math.sqrt(n - 1) >= 1.0
    else:
        assert pd.isna(row.seeds_needed) and (("equivalent within ±1" in line) == (verdict == "equivalent"))


def test_holm_runs_across_pairs_and_benchmarks():
    from hrsa.report import equivalence
    from hrsa.schema import with_defaults

    a = scores(0.0, 4, 0.2, seed=1)
    b = scores(0.0, 4, 0.2, seed=2).assign(pair="q")
    c = scores(0.0, 4, 0.2, seed=3).assign(benchmark="C")
    eq = equivalence(pd.concat([a, b, c]), with_defaults("report"))
    task = eq[eq.measure == "mean_task"]
    assert len(task) == 3
    assert task.p_tost_holm.to_numpy() == pytest.approx(holm(task.p_tost.to_numpy()))
    assert (task.p_tost_holm >= task.p_tost).all() and task.p_tost_holm.max() > task.p_tost.max() - 1e-12


def test_equivalence_is_the_seed_level_t_on_weighted_per_seed_means():
    """Mean(Type) with unequal weights (T0 alone in its type: weight 1/2; T1..T7 1/14 each): Δ, its interval, both
    tests and the seeds-needed projection all come from the one-sample t on D_s = Σ_t w_t (reason - base)[s, t]."""
    from scipy import stats

    from hrsa.report import equivalence
    from hrsa.schema import with_defaults

    df = scores(0.3, 3, 1.0, seed=1).assign(task_type=lambda f: np.where(f.task == "T0", "A", "B"))
    eq = equivalence(df, with_defaults("report"))
    row = eq[eq.measure == "mean_type"].iloc[0]
    wide = df.pivot_table(index="seed", columns=["role", "task"], values="score")
    w = np.array([0.5] + [1 / 14] * 7)
    d_s = (wide["reason"] - wide["base"])[[f"T{t}" for t in range(8)]].to_numpy() @ w
    t = stats.ttest_1samp(d_s, 0.0)
    low, high = t.confidence_interval(0.90)
    assert (row.delta, row.sd_seed, row.df) == (pytest.approx(d_s.mean()), pytest.approx(d_s.std(ddof=1)), 2.0)
    assert (row.low90, row.high90) == (pytest.approx(low), pytest.approx(high))
    assert row.p_diff == pytest.approx(t.pvalue)
    assert row.p_lower == pytest.approx(stats.ttest_1samp(d_s, -1.0, alternative="greater").pvalue)
    assert row.p_upper == pytest.approx(stats.ttest_1samp(d_s, 1.0, alternative="less").pvalue)
    assert row.verdict == "inconclusive"
    # Holm's strictest step over the 1 test of this measure: alpha; the projection uses the same sd(D_s), df = n - 1
    assert row.seeds_needed == seeds_needed(d_s.mean(), d_s.std(ddof=1), 1.0, 0.05, 1)[0] == 5
