"""HRSA at scale: block moments recombine exactly, the text bootstrap covers what the token bootstrap misses, the RV
null's closed form equals brute force, and `compare` plans its metrics (kNN sizes included) from the registry."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from hrsa import stats
from hrsa.cli import main
from hrsa.errors import HrsaError
from hrsa.metrics import dimwise_correlation, linear_cka, procrustes, registry_for
from hrsa.metrics.blocks import PairBlocks, assign_blocks, bootstrap_weights, jackknife_weights
from hrsa.runtime import limit_threads
from synthetic import write_activations

limit_threads(1)
threadpool_limits(1)


def _block_stats(x: np.ndarray, y: np.ndarray, blocks: np.ndarray, n_blocks: int, step: int = 25,
                 procrustes_blocks: bool = True):
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    pb = PairBlocks(x.shape[1], y.shape[1], n_blocks, dtype=tx.dtype, device="cpu", shift_x=tx[:step].mean(0),
                    shift_y=ty[:step].mean(0), procrustes_blocks=procrustes_blocks)
    for s in range(0, len(x), step):
        pb.update(tx[s:s + step], ty[s:s + step], blocks[s:s + step])
    return pb.finish()


def _resampled(blocks: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.concatenate([np.flatnonzero(blocks == b) for b in range(len(w)) for _ in range(int(w[b]))])


# ------------------------------------------------------------------ exactness
def test_block_bootstrap_equals_brute_force_resampling() -> None:
    rng = np.random.default_rng(0)
    text = np.repeat(np.arange(24), rng.integers(1, 7, size=24))
    n, d = len(text), 5
    x = rng.normal(size=(n, d)) + 4.0
    y = x @ rng.normal(size=(d, d)) + rng.normal(size=(n, d)) - 1.0
    blocks, b = assign_blocks(text, 9)
    assert b == 9 and np.all(np.diff(blocks) >= 0)  # whole texts, contiguous, deterministic
    assert all(len(set(blocks[text == t])) == 1 for t in np.unique(text))
    st = _block_stats(x, y, blocks, b)
    w = np.vstack([np.ones(b), bootstrap_weights(b, 6, seed=3), jackknife_weights(b, 4)])
    cka, dim, pro = st.cka(w), st.dimwise(w), st.procrustes(w)
    for r, wr in enumerate(w):
        idx = _resampled(blocks, wr)
        xr, yr = x[idx], y[idx]
        assert cka["biased"][r] == pytest.approx(linear_cka(xr, yr), abs=1e-9)
        assert cka["debiased"][r] == pytest.approx(linear_cka(xr, yr, debiased=True), abs=1e-9)
        assert dim[r] == pytest.approx(dimwise_correlation(xr, yr), abs=1e-9)
        ref = procrustes(xr, yr)
        for key in ("rvr", "cosine", "rie", "sparsity"):
            assert pro[key][r] == pytest.approx(ref[key], abs=1e-9), key


def test_float32_replicate_svds_agree_with_float64() -> None:
    """Replicates of float32 activations take their SVD in float32: far below sampling noise."""
    rng = np.random.default_rng(4)
    text = np.repeat(np.arange(20), 6)
    x = (rng.normal(size=(120, 32)) + 3).astype(np.float32)
    y = (x @ rng.normal(size=(32, 32)) + rng.normal(size=(120, 32))).astype(np.float32)
    blocks, b = assign_blocks(text, 10)
    st = _block_stats(x, y, blocks, b)
    w = bootstrap_weights(b, 8, seed=0)
    lo, hi = st.procrustes(w, svd_dtype=torch.float32), st.procrustes(w)
    for key in ("rvr", "cosine", "rie"):
        np.testing.assert_allclose(lo[key], hi[key], rtol=1e-4, atol=1e-6)


def test_point_estimates_need_no_block_copies() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    st = _block_stats(x, y, np.zeros(60, np.int64), 1, procrustes_blocks=False)
    assert st.procrustes(np.ones((1, 1)))["rvr"] == pytest.approx(procrustes(x, y)["rvr"], rel=1e-9)
    st3 = _block_stats(x, y, np.repeat(np.arange(3), 20), 3, procrustes_blocks=False)
    with pytest.raises(ValueError, match="not kept"):
        st3.procrustes(bootstrap_weights(3, 2, 0))


def test_rv_permutation_moments_equal_all_permutations() -> None:
    rng = np.random.default_rng(2)
    n = 7
    x = rng.normal(size=(n, 3)) * [1.0, 4.0, 0.5] + 2.0
    y = rng.normal(size=(n, 4)) ** 2
    st = _block_stats(x, y, np.zeros(n, np.int64), 1, step=3)
    K, L = (x - x.mean(0)) @ (x - x.mean(0)).T, (y - y.mean(0)) @ (y - y.mean(0)).T
    perms = np.array(list(itertools.permutations(range(n))))
    brute = np.einsum("ij,pij->p", K, L[perms[:, :, None], perms[:, None, :]]) / np.sqrt((K * K).sum() * (L * L).sum())
    assert brute[0] == pytest.approx(linear_cka(x, y), rel=1e-12)  # the identity permutation: the observed CKA
    mean, var = st.rv_null()
    assert mean == pytest.approx(brute.mean(), rel=1e-10)
    assert var == pytest.approx(brute.var(), rel=1e-9)


# ------------------------------------------------------------------ coverage
def _clustered(rng: np.random.Generator, texts: int, tokens: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens of one text share a text effect u_t: x = u_t + e, y = u_t + f, so corr(x_k, y_k) = 1 / 1.5."""
    u = np.repeat(rng.normal(size=(texts, d)), tokens, axis=0)
    x = u + np.sqrt(0.5) * rng.normal(size=u.shape)
    y = u + np.sqrt(0.5) * rng.normal(size=u.shape)
    return x, y, np.repeat(np.arange(texts), tokens)


def _dimwise_weighted(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Dim-wise correlation of rows reweighted by w (R x n): the i.i.d. token bootstrap, one replicate per row of w."""
    n, sx, sy = w.sum(1)[:, None], w @ x, w @ y
    cov, vx, vy = w @ (x * y) - sx * sy / n, w @ (x * x) - sx * sx / n, w @ (y * y) - sy * sy / n
    return (cov / np.sqrt(vx * vy)).mean(1)


def test_text_bootstrap_covers_planted_within_text_correlation() -> None:
    """60 texts of 8 tokens sharing a text effect: resampling texts covers the true r about 95% of the time (91% at
    this cluster count), resampling tokens i.i.d. (same BCa machinery) far less often (68%)."""
    truth = 1 / 1.5
    rng = np.random.default_rng(7)
    hits_text = hits_token = 0
    sims = 200
    for s in range(sims):
        x, y, text = _clustered(rng, 60, 8, 3)
        blocks, b = assign_blocks(text, 100)  # 60 texts: one block per text
        st = _block_stats(x, y, blocks, b, step=64, procrustes_blocks=False)
        est = float(st.dimwise(np.ones((1, b)))[0])
        assert est == pytest.approx(dimwise_correlation(x, y), abs=1e-12)
        ci = stats.bca_interval(est, st.dimwise(bootstrap_weights(b, 200, seed=s)), st.dimwise(jackknife_weights(b)))
        hits_text += ci["low"] <= truth <= ci["high"]
        n = len(x)
        iid = stats.bca_interval(est, _dimwise_weighted(x, y, bootstrap_weights(n, 200, seed=s)),
                                 _dimwise_weighted(x, y, jackknife_weights(n)))
        hits_token += iid["low"] <= truth <= iid["high"]
    assert hits_text / sims >= 0.87
    assert hits_token / sims <= 0.8
    assert hits_text - hits_token >= 0.15 * sims


def test_bca_reports_bias_and_flags_biased_rows() -> None:
    reps = np.linspace(0.0, 0.5, 200)  # every replicate below the estimate: a heavily biased statistic
    out = stats.bca_interval(0.8, reps, np.full(10, 0.8))
    assert out["bias"] == pytest.approx(0.25 - 0.8)
    assert stats.FLAG_BIAS in out["flag"] and stats.FLAG_EXCLUDES in out["flag"]
    ok = stats.bca_interval(0.25, reps, np.linspace(0.2, 0.3, 10))
    assert ok["flag"] == "" and ok["low"] < 0.25 < ok["high"]
    assert ok["se"] == pytest.approx(reps.std(ddof=1))


# ------------------------------------------------------------------ compare end to end
MODELS = {"a": "p.base", "b": "p.reason"}  # the two sides of the comparisons below


@pytest.fixture(scope="module")
def token_setup(tmp_path_factory) -> Path:
    """Token-level activations of two related models: 40 texts of 3-9 tokens, 3 layers of width 12."""
    wd = tmp_path_factory.mktemp("scale")
    rng = np.random.default_rng(11)
    text = np.repeat(np.arange(40), rng.integers(3, 10, size=40))
    base = {str(i): rng.normal(size=(len(text), 12)) + np.repeat(rng.normal(size=(40, 12)), np.bincount(text), 0)
            for i in range(3)}
    other = {k: v @ np.linalg.qr(rng.normal(size=(12, 12)))[0] + 0.8 * rng.normal(size=v.shape) + 1.0
             for k, v in base.items()}
    for name, layers in (("a", base), ("b", other)):
        write_activations(wd / "acts" / name, layers, text, MODELS[name])
        for layer in layers:
            assert main(["knn", "--activations", str(wd / "acts" / name), "--layer", layer,
                         "--config", json.dumps({"knn_k": [6]}),
                         "--out", str(wd / "knn" / name / f"layer={layer}.npz")]) == 0
    return wd


def _compare(wd: Path, settings: dict, out: str = "out.parquet") -> pd.DataFrame:
    assert main(["compare", "--left", str(wd / "acts/a"), "--right", str(wd / "acts/b"), "--knn-left",
                 str(wd / "knn/a"), "--knn-right", str(wd / "knn/b"), "--config", json.dumps(settings),
                 "--comparison", "p.base~reason", "--out", str(wd / out)]) == 0
    return pd.read_parquet(wd / out)


def test_configured_knn_k_are_the_knn_metrics(token_setup: Path) -> None:
    """hrsa.knn_k: [3] gives k=3 kNN rows (it used to drop every kNN metric silently)."""
    df = _compare(token_setup, {"knn_k": [3], "bootstrap": 0, "permutations": 0})
    knn = set(df.metric[df.metric.str.startswith("knn-")])
    assert knn == {"knn-jaccard-k3-cosine"}  # retention of 3 within 6 needs a 6-neighbour graph: not declared
    both = _compare(token_setup, {"knn_k": [2, 3], "bootstrap": 0, "permutations": 0})
    assert set(both.metric[both.metric.str.startswith("knn-")]) == {
        "knn-jaccard-k2-cosine", "knn-jaccard-k3-cosine"}
    three = _compare(token_setup, {"knn_k": [1, 3], "bootstrap": 0, "permutations": 0})
    assert "knn-retention-k1-cosine" in set(three.metric)
    assert set(registry_for([3])) >= {"knn-jaccard-k3-cosine"}
    assert not any(name.startswith("knn-") and "k3" not in name for name in registry_for([3]))


def test_knn_k_larger_than_the_graph_is_a_named_error(token_setup: Path, capsys) -> None:
    rc = main(["compare", "--left", str(token_setup / "acts/a"), "--right", str(token_setup / "acts/b"),
               "--knn-left", str(token_setup / "knn/a"), "--knn-right", str(token_setup / "knn/b"),
               "--config", json.dumps({"knn_k": [10], "bootstrap": 0, "permutations": 0}),
               "--comparison", "p.base~reason",
               "--out", str(token_setup / "bad.parquet")])
    assert rc == 2 and "hrsa.knn_k needs 10" in capsys.readouterr().err
    assert not (token_setup / "bad.parquet").exists()


def test_intervals_contain_estimates_or_are_flagged(token_setup: Path) -> None:
    df = _compare(token_setup, {"knn_k": [3], "bootstrap": 60, "permutations": 5, "blocks": 20})
    diag = df[df.layer_x == df.layer_y]
    with_ci = diag[diag.ci_method != "none"]
    inside = (with_ci.ci_low <= with_ci.value) & (with_ci.value <= with_ci.ci_high)
    assert (inside | (with_ci.flag != "")).all()
    assert (with_ci.resample_unit == "text-blocks").all() and (with_ci.n_units == 20).all()
    assert np.isfinite(with_ci.bias).all() and (with_ci.se >= 0).all() and (with_ci.se > 0).mean() > 0.9
    # Procrustes intervals only at the last layer by default; point estimates everywhere
    pro = diag[diag.metric == "procrustes-rie"].set_index("layer_x")
    assert np.isfinite(pro.value).all() and pro.ci_method.tolist() == ["none", "none", pro.ci_method[2]]
    assert np.isfinite(pro.loc[2, "ci_low"]) and np.isnan(pro.loc[0, "ci_low"])
    cka = diag[diag.metric == "cka-linear-biased"].iloc[0]
    assert cka.null_kind == "rv-exact-moments" and cka.null_mean < cka.null_q95 < cka.value
    knn = diag[diag.metric == "knn-jaccard-k3-cosine"].iloc[0]
    assert knn.null_kind == "row-permutation" and knn.null_mean < knn.value
    assert set(diag.metric) >= {"twonn-id-left", "twonn-id-right", "twonn-id-absdiff-cosine", "dimwise-corr"}
    # the same pass with tiny memory budget: several passes over layer groups, identical numbers
    small = _compare(token_setup, {"knn_k": [3], "bootstrap": 60, "permutations": 5, "blocks": 20,
                                   "max_accumulator_gb": 1e-6}, "small.parquet")
    pd.testing.assert_frame_equal(small, df, check_exact=False, rtol=1e-9, atol=1e-12)


def test_point_estimates_match_the_public_metrics(token_setup: Path) -> None:
    from hrsa.activations import load_layer

    df = _compare(token_setup, {"knn_k": [3], "bootstrap": 0, "permutations": 0})
    d = df[df.layer_x == df.layer_y].set_index(["layer_x", "metric"])["value"]
    x, y = load_layer(token_setup / "acts/a", "1"), load_layer(token_setup / "acts/b", "1")
    assert d[(1, "cka-linear-biased")] == pytest.approx(linear_cka(x, y), rel=1e-5)
    assert d[(1, "cka-linear-debiased")] == pytest.approx(linear_cka(x, y, debiased=True), rel=1e-4)
    assert d[(1, "dimwise-corr")] == pytest.approx(dimwise_correlation(x, y), rel=1e-5)
    ref = procrustes(x, y)
    for key in ("rvr", "cosine", "rie", "sparsity"):
        assert d[(1, f"procrustes-{key}")] == pytest.approx(ref[key], rel=1e-4, abs=1e-6)
    assert (df.ci_method == "none").all()


def test_plan_follows_declared_needs() -> None:
    from hrsa.compare import plan_metrics

    run, skipped = plan_metrics([5], {"moments", "graph", "same-width"})
    names = {m.name for m in run}
    assert "procrustes-rvr" in names and "knn-jaccard-k5-cosine" in names
    assert not any(m.family == "probe" for m in run)
    why = dict(skipped)
    assert why["probe-transfer-target-accuracy"] == "needs labels" and why["twonn-id-absdiff-l2"] == "needs l2-graph"
    run2, _ = plan_metrics([5], {"moments", "graph"})
    assert not any(m.family in ("procrustes", "dimwise") for m in run2)


def test_interval_layers_are_checked() -> None:
    from hrsa.compare import interval_layers

    assert interval_layers(["last"], ["0", "1", "12", "pooled"]) == {"12"}
    assert interval_layers(["all"], ["0", "1"]) == {"0", "1"}
    with pytest.raises(HrsaError, match="hrsa.procrustes_intervals"):
        interval_layers(["7"], ["0", "1"])


def test_sentence_probe_resamples_sentences_and_probe_test_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 90
    labels = np.repeat(["a", "b", "c"], n // 3)
    text = np.arange(n)
    x = rng.normal(size=(n, 8)) + 2.0 * (labels[:, None] == "a")
    y = x + 0.5 * rng.normal(size=(n, 8))
    for name, v in (("a", x), ("b", y)):
        write_activations(tmp_path / "acts" / name, {"0": v, "1": v + 1}, text, MODELS[name], "sentence")
        for layer in ("0", "1"):
            assert main(["knn", "--activations", str(tmp_path / "acts" / name), "--layer", layer,
                         "--config", json.dumps({"knn_k": [4]}),
                         "--out", str(tmp_path / "knn" / name / f"layer={layer}.npz")]) == 0
    probe = tmp_path / "probe.jsonl"
    probe.write_text("".join(json.dumps({"id": i, "text": "t", "label": str(lab)}) + "\n"
                             for i, lab in enumerate(labels)))
    out = tmp_path / "o.parquet"
    assert main(["compare", "--left", str(tmp_path / "acts/a"), "--right", str(tmp_path / "acts/b"),
                 "--knn-left", str(tmp_path / "knn/a"), "--knn-right", str(tmp_path / "knn/b"), "--probe", str(probe),
                 "--config", json.dumps({"knn_k": [2], "bootstrap": 40, "permutations": 0, "blocks": 200}),
                 "--comparison", "p.base~reason", "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    acc = df[(df.metric == "probe-transfer-target-accuracy") & (df.layer_x == 0)].iloc[0]
    assert acc.resample_unit == "sentence-blocks" and acc.n_units == n  # one block per sentence
    assert 0 <= acc.ci_low <= acc.ci_high <= 1
    from hrsa.metrics import probe_transfer

    ref = probe_transfer(x.astype(np.float32), y.astype(np.float32), labels)
    f1 = df[(df.metric == "probe-transfer-target-macro-f1") & (df.layer_x == 0)].value.iloc[0]
    assert f1 == pytest.approx(ref["target_macro_f1"]) and acc.value == pytest.approx(ref["target_accuracy"])


def test_layer_groups_fit_the_budget_and_name_a_layer_too_large_for_it(capsys) -> None:
    """Consecutive layers share a pass while their block sums fit hrsa.max_accumulator_gb; a layer that alone needs
    more (width 1,536 with 100 blocks and Procrustes intervals: 7.2 GiB) streams alone and the log names it."""
    from hrsa.compare.plan import layer_groups

    one = PairBlocks.nbytes(1024, 1024, 100, False)  # 2.45 GiB at Qwen3-0.6B's width
    assert layer_groups([(1024, 1024)] * 7, 100, set(), 8 * 2**30) == [[0, 1, 2], [3, 4, 5], [6]]
    assert 3 * one <= 8 * 2**30 < 4 * one and capsys.readouterr().out == ""
    big = PairBlocks.nbytes(1536, 1536, 100, True)
    assert 7 * 2**30 < big < 8 * 2**30  # the paper's max_accumulator_gb (8) holds it
    assert layer_groups([(1536, 1536)] * 2, 100, {1}, 4 * 2**30) == [[0], [1]]
    out = capsys.readouterr().out
    assert "layer index 0: its block sums need 5.43 GiB" in out and "layer index 1: its block sums need 7.17 GiB" in out
    assert "over hrsa.max_accumulator_gb (4 GiB)" in out
