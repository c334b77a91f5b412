"""Block-bootstrap intervals of linear CKA are as wide as a plain bootstrap over texts (0.8-1.25x) on 600-text
token-level probes whose tokens share a text effect: with compare's defaults (hrsa.blocks blocks of whole texts,
hrsa.bootstrap replicates, BCa with the 10-group jackknife). bench/bench_interval_width.py measures what drives the
width (the replicate count; not the acceleration, bias correction or block assignment)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
from bench_interval_width import probe  # noqa: E402

from hrsa import stats
from hrsa.metrics.blocks import PairBlocks, assign_blocks, bootstrap_weights, jackknife_weights
from hrsa.runtime import limit_threads
from hrsa.schema import default

limit_threads(1)
threadpool_limits(1)


def _probe(design: str, seed: int, texts: int = 600, d: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The benchmark's synthetic token probes (bench/bench_interval_width.py): tokens of a text share its effect."""
    return probe(design, texts, d, np.random.default_rng(seed))


def _text_bootstrap_cka(x: np.ndarray, y: np.ndarray, text: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Biased linear CKA of n_boot plain bootstrap resamples of the texts (each text drawn whole, with replacement),
    from per-text sums: a resample is a count per text."""
    x, y = x - x.mean(0), y - y.mean(0)
    t = text.max() + 1
    n = np.bincount(text, minlength=t).astype(np.float64)
    sx, sy = np.zeros((t, x.shape[1])), np.zeros((t, y.shape[1]))
    np.add.at(sx, text, x)
    np.add.at(sy, text, y)
    outer = [np.zeros((t, a.shape[1] * b.shape[1])) for a, b in ((x, y), (x, x), (y, y))]
    for k, (a, b) in enumerate(((x, y), (x, x), (y, y))):
        np.add.at(outer[k], text, np.einsum("ip,iq->ipq", a, b).reshape(len(text), -1))
    w = bootstrap_weights(t, n_boot, seed)
    m, ax, ay = w @ n, w @ sx, w @ sy
    c = [w @ s - np.einsum("rp,rq->rpq", u, v).reshape(n_boot, -1) / m[:, None]
         for s, (u, v) in zip(outer, ((ax, ay), (ax, ax), (ay, ay)), strict=True)]
    return (c[0] ** 2).sum(1) / np.sqrt((c[1] ** 2).sum(1) * (c[2] ** 2).sum(1))


def _compare_interval(x: np.ndarray, y: np.ndarray, text: np.ndarray, n_boot: int, seed: int) -> dict:
    """Estimate and interval of biased linear CKA as compare makes them (block sums, block weights, BCa)."""
    blocks, b = assign_blocks(text, int(default("hrsa/blocks")))
    pb = PairBlocks(x.shape[1], y.shape[1], b, dtype=torch.float64, device="cpu", shift_x=torch.zeros(x.shape[1]),
                    shift_y=torch.zeros(y.shape[1]), procrustes_blocks=False)
    pb.update(torch.from_numpy(x), torch.from_numpy(y), blocks)
    st = pb.finish()
    est = float(st.cka(np.ones((1, b)))["biased"][0])
    reps = st.cka(bootstrap_weights(b, n_boot, seed))["biased"]
    return {"estimate": est, **stats.bca_interval(est, reps, st.cka(jackknife_weights(b))["biased"])}


@pytest.mark.parametrize(("design", "seed"), [("shared", 4), ("aniso", 0), ("aniso", 2)])
def test_block_interval_is_as_wide_as_a_text_bootstrap(design: str, seed: int) -> None:
    x, y, text = _probe(design, seed)
    ci = _compare_interval(x, y, text, int(default("hrsa/bootstrap")), seed)
    ref = _text_bootstrap_cka(x, y, text, 2000, seed + 10_000)
    lo, hi = np.quantile(ref, [0.025, 0.975])
    ratio = (ci["high"] - ci["low"]) / (hi - lo)
    assert 0.8 <= ratio <= 1.25, f"{design} seed {seed}: width ratio {ratio:.2f} ({ci['method']})"
    assert ci["low"] <= ci["estimate"] <= ci["high"] or ci["flag"]


def test_procrustes_intervals_use_the_first_procrustes_bootstrap_replicates() -> None:
    """CKA intervals use every replicate, Procrustes intervals the first hrsa.procrustes_bootstrap of them."""
    from hrsa.compare.plan import Replicates, plan_metrics
    from hrsa.compare.rows import Rows, representation_rows

    x, y, text = _probe("shared", 0, texts=40, d=6)
    blocks, b = assign_blocks(text, 20)
    pb = PairBlocks(6, 6, b, dtype=torch.float64, device="cpu", shift_x=torch.zeros(6), shift_y=torch.zeros(6),
                    procrustes_blocks=True)
    pb.update(torch.from_numpy(x), torch.from_numpy(y), blocks)
    reps = Replicates(b, bootstrap_weights(b, 40, 0), jackknife_weights(b))
    planned, _ = plan_metrics([5], {"moments", "same-width"})
    out = Rows("p.base~reason", "text-blocks", b, 0.95)
    representation_rows(out, "1", len(x), pb.finish(), planned, reps, True, procrustes_boot=7)
    methods = {r["metric"]: r["ci_method"] for r in out.rows}
    assert methods["cka-linear-biased"].endswith("(R=40)")
    assert methods["procrustes-rvr"] == "bias-corrected-normal(R=7)"  # below BCA_MIN_REPLICATES
