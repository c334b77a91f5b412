"""How wide are compare's block-bootstrap intervals of linear CKA, against a plain bootstrap over texts?

Synthetic token-level probes (default 600 texts of 5-40 tokens, a text effect shared by the tokens of a text, so
tokens are not independent), several designs and seeds. The reference is the plain percentile bootstrap that
resamples texts (R = --ref-boot replicates, one weight per text). Each candidate is one way of turning the block
bootstrap into an interval; the table prints its width / the reference's (mean, min, max over seeds), and with
--coverage N the share of N simulated probes whose interval covers the population CKA (from one probe of
--truth-texts texts), beside the reference's.

Candidates isolate what the interval depends on: the interval method (BCa, BCa without acceleration, BCa with the
acceleration from every block, percentile, bias-corrected normal), the replicate count R, the jackknife groups G and
how texts are dealt into blocks (B = 100 blocks of ~6 texts, or one text per block). "compare now" is what compare does
with the schema's defaults (hrsa.blocks, hrsa.bootstrap).

    .venv/bin/python bench/bench_interval_width.py                         # 3 designs x 4 seeds, ~1 min
    .venv/bin/python bench/bench_interval_width.py --coverage 200          # adds coverage (a few minutes)

Every replicate recombines per-text moments (the block bootstrap gives the texts of a block one weight), which
equals hrsa.metrics.blocks.PairStats.cka on the same weights (checked on the first probe).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hrsa import stats
from hrsa.metrics.blocks import assign_blocks, bootstrap_weights, jackknife_weights
from hrsa.schema import default

DESIGNS = ("shared", "aniso", "heavy")


def probe(design: str, texts: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token rows (x, y, text id) of one synthetic probe. shared: x = u_t + e, y = u_t + f (the planted design of
    tests/test_compare_scale.py); aniso: a decaying spectrum (1/k) and y = tanh(x) Q + noise; heavy: as aniso with
    Student-t(3) text effects (a few texts dominate)."""
    lengths = rng.integers(5, 41, size=texts)
    text = np.repeat(np.arange(texts), lengths)
    if design == "shared":
        u = np.repeat(rng.normal(size=(texts, d)), lengths, 0)
        return u + np.sqrt(0.5) * rng.normal(size=u.shape), u + np.sqrt(0.5) * rng.normal(size=u.shape), text
    scale = 1.0 / np.arange(1, d + 1)
    u = rng.standard_t(3, size=(texts, d)) if design == "heavy" else rng.normal(size=(texts, d))
    x = np.repeat(u * scale, lengths, 0) + 0.7 * rng.normal(size=(len(text), d)) * scale
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))[0]  # one map per design: a fixed population
    y = np.tanh(x) @ q + 0.5 * rng.normal(size=x.shape) * scale
    return x, y, text


class TextMoments:
    """Per-text sums (rows, x, y, x'y, x'x, y'y): linear CKA of any weighting of the texts."""

    def __init__(self, x: np.ndarray, y: np.ndarray, text: np.ndarray) -> None:
        x, y = x - x.mean(0), y - y.mean(0)
        t = text.max() + 1
        self.n = np.bincount(text, minlength=t).astype(np.float64)
        self.sx, self.sy = (np.zeros((t, a.shape[1])) for a in (x, y))
        np.add.at(self.sx, text, x)
        np.add.at(self.sy, text, y)
        cut = np.flatnonzero(np.diff(text)) + 1
        self.sxy, self.sxx, self.syy = (np.zeros((t, x.shape[1] * y.shape[1])) for _ in range(3))
        for s, e in zip(np.r_[0, cut], np.r_[cut, len(text)], strict=True):
            k = text[s]
            self.sxy[k], self.sxx[k], self.syy[k] = ((a[s:e].T @ b[s:e]).ravel() for a, b in ((x, y), (x, x), (y, y)))

    def cka(self, w: np.ndarray) -> np.ndarray:
        out = []
        for c in range(0, len(w), 250):
            wc = w[c:c + 250]
            n, sx, sy = wc @ self.n, wc @ self.sx, wc @ self.sy

            def centred(s: np.ndarray, a: np.ndarray, b: np.ndarray, wc: np.ndarray = wc, n: np.ndarray = n) -> Any:
                return wc @ s - np.einsum("rp,rq->rpq", a, b).reshape(len(wc), -1) / n[:, None]

            xy, xx, yy = centred(self.sxy, sx, sy), centred(self.sxx, sx, sx), centred(self.syy, sy, sy)
            out.append((xy**2).sum(1) / np.sqrt((xx**2).sum(1) * (yy**2).sum(1)))
        return np.concatenate(out)


def _width(ci: dict[str, Any]) -> float:
    return float(ci["high"] - ci["low"])


def _pct(est: float, reps: np.ndarray, jack: Any = None, conf: float = 0.95) -> dict[str, Any]:
    lo, hi = np.quantile(reps, [(1 - conf) / 2, (1 + conf) / 2])
    return {"low": float(lo), "high": float(hi)}


def _bcn(est: float, reps: np.ndarray, jack: Any = None, conf: float = 0.95) -> dict[str, Any]:
    z, bias, se = stats._norm_ppf((1 + conf) / 2), reps.mean() - est, reps.std(ddof=1)
    return {"low": est - bias - z * se, "high": est - bias + z * se}


def candidates(blocks: int, boot: int) -> dict[str, tuple[int | None, int, int, Callable[..., dict[str, Any]]]]:
    """name -> (blocks (None: one per text), replicates R, jackknife groups G (0: every block), interval)."""
    bca = stats.bca_interval
    out: dict[str, tuple[int | None, int, int, Callable[..., dict[str, Any]]]] = {}
    for r in (100, 1000):
        out[f"BCa R={r}" + (" (before: B=100, G=10)" if r == 100 else "")] = (blocks, r, 10, bca)
        out[f"BCa R={r}, acceleration 0"] = (blocks, r, 10, lambda e, r_, j: bca(e, r_, []))
        out[f"BCa R={r}, G = every block"] = (blocks, r, 0, bca)
        out[f"BCa R={r}, one text per block"] = (None, r, 10, bca)
        out[f"percentile R={r}"] = (blocks, r, 10, _pct)
        out[f"bias-corrected normal R={r}"] = (blocks, r, 10, _bcn)
    out[f"compare now: BCa B={blocks} R={boot} G=10"] = (blocks, boot, 10, bca)
    return out


def one_probe(tm: TextMoments, text: np.ndarray, args: argparse.Namespace, seed: int,
              cands: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each candidate's interval and the reference's on one probe."""
    t = len(tm.n)
    est = float(tm.cka(np.ones((1, t)))[0])
    ref = tm.cka(bootstrap_weights(t, args.ref_boot, seed + 10_000))
    out = {"reference": _pct(est, ref)}
    first = np.unique(text, return_index=True)[1]
    for name, (nb, r, g, interval) in cands.items():
        blk, b = assign_blocks(text, nb or t)
        of_text = blk[first]  # block of every text
        reps = tm.cka(bootstrap_weights(b, r, seed)[:, of_text])
        jack = tm.cka(jackknife_weights(b, g or b)[:, of_text])
        out[name] = interval(est, reps, jack)
    return est, out


def check_against_blocks(x: np.ndarray, y: np.ndarray, text: np.ndarray, tm: TextMoments, blocks: int) -> None:
    """The per-text recombination equals compare's block statistics on the same weights."""
    import torch

    from hrsa.metrics.blocks import PairBlocks

    blk, b = assign_blocks(text, blocks)
    pb = PairBlocks(x.shape[1], y.shape[1], b, dtype=torch.float64, device="cpu", shift_x=torch.zeros(x.shape[1]),
                    shift_y=torch.zeros(y.shape[1]), procrustes_blocks=False)
    pb.update(torch.from_numpy(x), torch.from_numpy(y), blk)
    w = bootstrap_weights(b, 5, 0)
    mine = tm.cka(w[:, blk[np.unique(text, return_index=True)[1]]])
    np.testing.assert_allclose(pb.finish().cka(w)["biased"], mine, rtol=1e-8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=600)
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--designs", default=",".join(DESIGNS))
    p.add_argument("--ref-boot", type=int, default=2000)
    p.add_argument("--coverage", type=int, default=0, help="simulated probes per design for coverage (0: off)")
    p.add_argument("--truth-texts", type=int, default=40_000)
    args = p.parse_args(argv)
    blocks, boot = int(default("hrsa/blocks")), int(default("hrsa/bootstrap"))
    cands = candidates(blocks, boot)
    t0 = time.perf_counter()
    print(f"linear CKA (biased), {args.texts}-text token probes, d={args.d}; reference: percentile bootstrap over "
          f"texts, R={args.ref_boot}; width ratio = width / reference width over {args.seeds} seeds")
    for design in args.designs.split(","):
        ratios: dict[str, list[float]] = {k: [] for k in cands}
        for seed in range(args.seeds):
            x, y, text = probe(design, args.texts, args.d, np.random.default_rng(seed))
            tm = TextMoments(x, y, text)
            if seed == 0:
                check_against_blocks(x, y, text, tm, blocks)
            _, cis = one_probe(tm, text, args, seed, cands)
            for k in cands:
                ratios[k].append(_width(cis[k]) / _width(cis["reference"]))
        cover: dict[str, float] = {}
        if args.coverage:
            xt, yt, tt = probe(design, args.truth_texts, args.d, np.random.default_rng(10**6))
            truth = float(TextMoments(xt, yt, tt).cka(np.ones((1, args.truth_texts)))[0])
            hits = dict.fromkeys(["reference", *cands], 0)
            for s in range(args.coverage):
                x, y, text = probe(design, args.texts, args.d, np.random.default_rng(10**5 + s))
                _, cis = one_probe(TextMoments(x, y, text), text, argparse.Namespace(ref_boot=500), s, cands)
                for k, ci in cis.items():
                    hits[k] += ci["low"] <= truth <= ci["high"]
            cover = {k: v / args.coverage for k, v in hits.items()}
        print(f"\n[{design}]" + (f"  coverage of the population CKA over {args.coverage} probes; reference (text "
                                 f"percentile, R=500): {cover['reference']:.3f}" if cover else ""))
        print(f"{'candidate':46s} {'mean':>6s} {'min':>6s} {'max':>6s}" + ("  coverage" if cover else ""))
        for k, v in ratios.items():
            cov = f"  {cover[k]:8.3f}" if cover else ""
            print(f"{k:46s} {np.mean(v):6.2f} {np.min(v):6.2f} {np.max(v):6.2f}{cov}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
