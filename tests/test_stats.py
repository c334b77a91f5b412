"""Bootstrap CIs, permutation nulls and seed-level comparisons."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from hrsa import stats
from hrsa.errors import HrsaError
from hrsa.knn import knn_graph
from hrsa.runtime import limit_threads

limit_threads(1)
threadpool_limits(1)


def _pair(seed: int = 0, n: int = 120, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    return x, x + noise * rng.normal(size=(n, 6))


@pytest.mark.parametrize(("metric", "method"), [("cka-linear-biased", "rows"), ("knn-jaccard-k10-cosine", "units"),
                                                ("procrustes-cosine", "rows"), ("twonn-id-absdiff-l2", "units")])
def test_bootstrap_ci_brackets_estimate_and_is_reproducible(metric: str, method: str) -> None:
    x, y = _pair()
    a = stats.bootstrap_ci(metric, x, y, n_boot=40, seed=3)
    b = stats.bootstrap_ci(metric, x, y, n_boot=40, seed=3)
    assert a == b
    assert a["method"] == method
    assert a["low"] <= a["high"] and a["std"] > 0
    if method == "rows" or metric.startswith("knn"):
        assert a["low"] <= a["estimate"] <= a["high"]


def test_bootstrap_units_for_knn_resample_per_row_jaccard() -> None:
    x, y = _pair(1)
    out = stats.bootstrap_ci("knn-jaccard-k5-cosine", x, y, n_boot=300, seed=0)
    from hrsa.metrics import knn_jaccard_per_row

    per_row = knn_jaccard_per_row(x, y, 5)
    assert out["estimate"] == pytest.approx(per_row.mean())
    assert out["std"] == pytest.approx(per_row.std(ddof=1) / np.sqrt(per_row.size), rel=0.2)


def test_bootstrap_probe_and_label_resampling() -> None:
    x, y = _pair(2)
    labels = (x[:, 0] > 0).astype(int)
    out = stats.bootstrap_ci("probe-transfer-target-accuracy", x, y, labels=labels, n_boot=30)
    assert out["method"] == "units" and 0 <= out["low"] <= out["estimate"] <= out["high"] <= 1
    with pytest.raises(HrsaError, match="needs labels"):
        stats.bootstrap_ci("probe-transfer-target-accuracy", x, y, n_boot=5)
    with pytest.raises(HrsaError, match="n_boot"):
        stats.bootstrap_ci("cka-linear-biased", x, y, n_boot=0)


def test_permutation_null_related_and_unrelated() -> None:
    x, y = _pair(3)
    rel = stats.permutation_null("cka-linear-biased", x, y, n_perm=30, seed=1)
    assert rel["score"] > rel["null_quantile"] > rel["null_mean"] and rel["p_value"] == pytest.approx(1 / 31)
    rvr = stats.permutation_null("procrustes-rvr", x, y, n_perm=20)
    assert rvr["quantile"] == pytest.approx(0.05) and rvr["score"] < rvr["null_quantile"]
    z = np.random.default_rng(4).normal(size=x.shape)
    unrel = stats.permutation_null("cka-linear-debiased", x, z, n_perm=30, seed=1)
    assert unrel["p_value"] > 0.05
    assert stats.permutation_null("cka-linear-biased", x, y, n_perm=10, seed=5) == stats.permutation_null(
        "cka-linear-biased", x, y, n_perm=10, seed=5)


def test_knn_fast_null_equals_recomputed_null() -> None:
    x, y = _pair(5, n=80)
    fast = stats.permutation_null("knn-jaccard-k10-cosine", x, y, n_perm=5, seed=2)
    rng = np.random.default_rng(2)
    from hrsa.metrics import knn_jaccard

    slow = [knn_jaccard(x, y[rng.permutation(80)], 10) for _ in range(5)]
    assert fast["null_mean"] == pytest.approx(np.mean(slow), rel=1e-12)
    ix, iy = knn_graph(x, 20)[1], knn_graph(y, 20)[1]
    pre = stats.permutation_null("knn-retention-k10-cosine", x, y, n_perm=5, seed=2, indices_x=ix, indices_y=iy)
    assert pre == stats.permutation_null("knn-retention-k10-cosine", x, y, n_perm=5, seed=2)


def test_permutation_null_void_for_per_model_summaries() -> None:
    x, y = _pair(6)
    out = stats.permutation_null("twonn-id-absdiff-l2", x, y, n_perm=10)
    assert np.isnan(out["p_value"]) and "void" in out["note"]


def test_score_with_uncertainty_record() -> None:
    x, y = _pair(7)
    rec = stats.score_with_uncertainty("dimwise-corr", x, y, n_boot=20, n_perm=10)
    assert rec["metric"] == "dimwise-corr" and rec["ci_low"] <= rec["score"] <= rec["ci_high"]
    assert {"null_mean", "null_quantile", "p_value"} <= set(rec)
    bare = stats.score_with_uncertainty("dimwise-corr", x, y, n_boot=0, n_perm=0)
    assert bare["score"] == pytest.approx(rec["score"])


def test_seed_summary_and_paired_comparison() -> None:
    s = stats.seed_summary([0.5, 0.7, np.nan, 0.6])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    one = stats.seed_summary([0.5])
    assert np.isnan(one["std"]) and "at least 2" in one["note"]
    base, reason = [0.50, 0.61, 0.55, 0.58, 0.52], [0.52, 0.60, 0.59, 0.61, 0.56]
    out = stats.paired_comparison(base, reason)
    t = sps.ttest_rel(reason, base)
    w = sps.wilcoxon(reason, base)
    assert out["n"] == 5 and out["mean_diff"] == pytest.approx(np.mean(np.subtract(reason, base)))
    assert out["t_pvalue"] == pytest.approx(t.pvalue) and out["wilcoxon_pvalue"] == pytest.approx(w.pvalue)
    few = stats.paired_comparison([0.5], [0.6])
    assert np.isnan(few["t_pvalue"]) and np.isnan(few["wilcoxon_pvalue"]) and "at least 2" in few["note"]
    same = stats.paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert np.isnan(same["t_pvalue"]) and "zero" in same["note"]
    with pytest.raises(HrsaError, match="one reason score per base"):
        stats.paired_comparison([1, 2], [1])
