"""The equivalence test's size and coverage under a seeded Monte Carlo of 3 seeds x 20 tasks (issue 22, item 1).

Each replicate is one benchmark's seeds x tasks matrix of differences d[s, t] = Δ_t + a_s + e[s, t] (task effects Δ_t
fixed, their weighted mean Δ at ±margin; a_s the seed effect shared by all tasks; e[s, t] ~ N(0, σ_t²)). With
σ_t unequal and the heaviest tasks of Mean(Type) the noisiest, a crossed seeds x tasks ANOVA that pools σ_t covered
0.75 of the time and TOST's size was 0.12 (nominal 0.05); the seed-level t on the per-seed weighted means must hold
its 90% coverage and its size in every scenario, for both measures' weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hrsa.report.inference import type_weights
from hrsa.stats import seed_level_delta, tost

S, T, REPLICATES = 3, 20, 10000  # per sign of Δ; MC standard error (both signs): 0.0021 on 0.9, 0.0015 on 0.05
MARGIN, ALPHA = 1.0, 0.05
TYPES = ["A"] * 2 + ["B"] * 3 + ["C"] * 5 + ["D"] * 10  # Mean(Type): A's tasks weigh 1/8 each, D's 1/40
WEIGHTS = {"mean_task": np.full(T, 1.0 / T), "mean_type": type_weights(TYPES)}
HEAVIEST = WEIGHTS["mean_type"] == WEIGHTS["mean_type"].max()
SCENARIOS = {  # (σ_t per task, sd of the seed effect a_s)
    "equal noise": (np.full(T, 0.5), 0.0),
    "equal noise, seed effect": (np.full(T, 0.5), 0.5),
    "unequal noise, heaviest Mean(Type) tasks noisiest": (np.where(HEAVIEST, 2.0, 0.2), 0.0),
}
Estimator = Callable[[np.ndarray, np.ndarray, float], dict[str, Any]]


def draws(scenario: str, w: np.ndarray, delta: float, rng: np.random.Generator) -> np.ndarray:
    """REPLICATES x S x T differences whose true weighted Δ (Σ_t w_t Δ_t) is exactly `delta`."""
    sd_task, sd_seed = SCENARIOS[scenario]
    effects = rng.normal(0.0, 2.0, T)
    effects += delta - effects @ w
    seed = rng.normal(0.0, 1.0, (REPLICATES, S, 1)) * sd_seed
    return effects + seed + rng.normal(0.0, 1.0, (REPLICATES, S, T)) * sd_task


def monte_carlo(scenario: str, measure: str, estimator: Estimator = seed_level_delta) -> tuple[float, float]:
    """(coverage of the 90% interval, TOST's size: its rejection rate at alpha 0.05 with |Δ| at the margin), over
    REPLICATES draws with the true Δ at +margin and as many at -margin (MC standard error of the size: 0.0015)."""
    w = WEIGHTS[measure]
    rng = np.random.default_rng([22, list(SCENARIOS).index(scenario), list(WEIGHTS).index(measure)])
    covered, rejected = [], []
    for delta in (MARGIN, -MARGIN):
        est = estimator(draws(scenario, w, delta, rng), w, 1 - 2 * ALPHA)
        test = tost(est["estimate"], est["se"], est["df"], MARGIN, ALPHA)
        covered.append((np.asarray(est["low"]) <= delta) & (delta <= np.asarray(est["high"])))
        rejected.append(np.asarray(test["p_tost"]) < ALPHA)
    return float(np.mean(np.concatenate(covered))), float(np.mean(np.concatenate(rejected)))


@pytest.mark.parametrize("measure", list(WEIGHTS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_coverage_and_tost_size_hold(scenario, measure):
    coverage, size = monte_carlo(scenario, measure)
    assert 0.87 <= coverage <= 0.93, (scenario, measure, coverage)
    assert size <= 0.06, (scenario, measure, size)


def test_stacked_replicates_match_one_matrix_at_a_time():
    """The vectorised path the simulation uses gives the report's per-matrix numbers."""
    rng = np.random.default_rng(0)
    w = WEIGHTS["mean_type"]
    d = draws("unequal noise, heaviest Mean(Type) tasks noisiest", w, MARGIN, rng)[:5]
    stacked = seed_level_delta(d, w)
    stacked_test = tost(stacked["estimate"], stacked["se"], stacked["df"], MARGIN, ALPHA)
    for i in range(len(d)):
        one = seed_level_delta(d[i], w)
        one_test = tost(one["estimate"], one["se"], one["df"], MARGIN, ALPHA)
        assert isinstance(one["se"], float) and isinstance(one_test["p_tost"], float)
        for key in ("estimate", "se", "df", "low", "high", "sd_seed"):
            assert one[key] == pytest.approx(stacked[key][i], rel=1e-12)
        for key in ("p_lower", "p_upper", "p_tost", "p_diff", "low", "high"):
            assert one_test[key] == pytest.approx(stacked_test[key][i], rel=1e-12)
