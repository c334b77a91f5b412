"""Benchmark of one whole `hrsa compare` job on synthetic token shards of paper shape, scaled to a small machine.

Writes two models' activations (real Parquet shards: texts of varying length, a text effect shared by the tokens of a
text, a latent shared by both models) and their kNN graphs, then times in separate subprocesses (each with its own
peak RSS): the job with bootstrap 0 / permutations 0, the job with bootstrap B / permutations P and Procrustes
intervals at the last layer (with a breakdown: the pass, block recombination, Procrustes, graph metrics), and the
L x L CKA grid alone; Procrustes intervals at every layer are estimated from the last layer's cost (--measure-every
runs that job too).
It also checks brute-force resampling against the block bootstrap on a small case, and projects the cost to the
paper's shape from flop counts at the measured (CPU) or assumed (GPU) rates.

    .venv/bin/python bench/bench_compare.py                      # 20,000 tokens, 200 texts, d=1024, L=8, 2 threads
    .venv/bin/python bench/bench_compare.py --tokens 4000 --d 256 --layers 4 --bootstrap 50   # quick

The kNN graphs are random neighbour lists of the right shape by default (building exact graphs is the knn rule's cost,
not compare's, and would take minutes here); --real-graphs builds them with FAISS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RANK = 32
#: delete-a-group jackknife replicates compare adds for BCa (hrsa.metrics.blocks.jackknife_weights)
JACKKNIFE_GROUPS = 10
#: assumed sustained rates of a GPU node (H100/H200 class) for the projection: fp32 GEMM, fp64 GEMM, one d x d SVD
GPU_FP32, GPU_FP64, GPU_SVD_S = 40e12, 40e12, 0.05


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------ data
def make_data(args: argparse.Namespace, wd: Path) -> None:
    """Two models' shards and kNN graphs in wd (token rows in text order)."""
    import numpy as np

    from hrsa.activations import LayerWriter, part_path, row_hash

    rng = np.random.default_rng(args.seed)
    lengths = rng.multinomial(args.tokens - args.texts, np.ones(args.texts) / args.texts) + 1
    text = np.repeat(np.arange(args.texts), lengths).astype(np.int32)
    pos = np.concatenate([np.arange(c) for c in lengths]).astype(np.int32)
    n = len(text)
    latent = rng.normal(size=(n, RANK)).astype(np.float32) + np.repeat(
        rng.normal(size=(args.texts, RANK)), lengths, 0).astype(np.float32)
    names = [str(i) for i in range(args.layers)]
    for side, drift in (("a", 0.0), ("b", 0.4)):
        root = wd / "acts" / side
        role = {"a": "base", "b": "reason"}[side]
        meta = {"model_id": f"bench.{role}", "probe_hash": "p", "granularity": "token", "layers": names, "n_rows": n,
                "row_hash": row_hash(text, pos), "tokenizer_hash": "t"}
        root.mkdir(parents=True, exist_ok=True)
        (root / "_meta.json").write_text(json.dumps(meta))
        for layer in names:
            g = np.random.default_rng(1000 * args.seed + int(layer))
            w = g.normal(size=(RANK, args.d)).astype(np.float32)
            w += drift * rng.normal(size=w.shape).astype(np.float32)
            x = latent @ w + 0.5 * rng.normal(size=(n, args.d)).astype(np.float32) + 0.1 * int(layer)
            lw = LayerWriter(part_path(root, layer), layer, args.d, "float16", meta)
            for s in range(0, n, 4096):
                lw.add(text[s:s + 4096], pos[s:s + 4096], pos[s:s + 4096], x[s:s + 4096])
            lw.close()
            _graph(args, root, layer, x, wd / "knn" / side / f"layer={layer}.npz", meta["row_hash"])


def _graph(args: argparse.Namespace, root: Path, layer: str, x: Any, out: Path, rows: str) -> None:
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    from hrsa.metrics import graph_k

    k = graph_k(args.knn_k)  # the neighbours the registry's kNN metrics read, as `hrsa knn` sizes the graphs
    if args.real_graphs:
        from hrsa.cli import main

        config = json.dumps({"knn_k": args.knn_k})
        assert main(["knn", "--activations", str(root), "--layer", layer, "--config", config, "--out", str(out)]) == 0
        return
    n = x.shape[0]
    rng = np.random.default_rng(int(layer))
    idx = (np.arange(n)[:, None] + 1 + rng.choice(n - 1, size=(n, k), replace=True) % (n - 1)) % n
    for r in range(n):  # distinct neighbours per row (duplicates replaced)
        row = list(dict.fromkeys(idx[r].tolist()))
        while len(row) < k:
            c = int(rng.integers(0, n))
            if c != r and c not in row:
                row.append(c)
        idx[r] = row
    sims = np.sort(rng.uniform(0.2, 0.9, size=(n, k)), axis=1)[:, ::-1].astype(np.float32)
    np.savez(out, indices=idx.astype(np.int32), similarities=sims, row_hash=np.array(rows), k=np.array(k))


# ------------------------------------------------------------------------------------------ stages
def _timed(owner: Any, name: str, spent: dict[str, float]) -> None:
    """Wrap owner.name so that the seconds spent in it add up in spent[name]."""
    fn = getattr(owner, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

    setattr(owner, name, wrapper)


def stage_job(args: argparse.Namespace, wd: Path) -> dict[str, Any]:
    import hrsa.compare.stream as cmp
    from hrsa.compare import compare, write_rows
    from hrsa.metrics.blocks import PairBlocks, PairStats

    spent: dict[str, float] = {}
    for owner, name in ((PairBlocks, "finish"), (PairStats, "procrustes"), (PairStats, "cka"),
                        (cmp, "graph_rows"), (cmp, "_stream")):
        _timed(owner, name, spent)

    settings = {"bootstrap": args.bootstrap, "permutations": args.permutations, "knn_k": args.knn_k, "seed": 0,
                "blocks": args.blocks, "procrustes_intervals": [args.procrustes],
                "max_accumulator_gb": args.accumulator_gb}
    t = time.perf_counter()
    rows = compare(wd / "acts/a", wd / "acts/b", wd / "knn/a", wd / "knn/b", None, settings, "bench.base~reason",
                   device="cpu")
    seconds = time.perf_counter() - t
    write_rows(rows, wd / f"out-{args.bootstrap}-{args.procrustes}.parquet")
    return {"seconds": seconds, "rows": len(rows), "peak_mib": _rss_mib(), "spent": spent}


def stage_grid(args: argparse.Namespace, wd: Path) -> dict[str, Any]:
    from hrsa.compare import cka_grid

    layers = [str(i) for i in range(args.layers)]
    t = time.perf_counter()
    cka_grid(wd / "acts/a", wd / "acts/b", layers, batch_rows=max(256, (256 << 20) // (8 * args.d * args.layers)))
    return {"seconds": time.perf_counter() - t, "peak_mib": _rss_mib()}


def stage_rates(args: argparse.Namespace, wd: Path) -> dict[str, Any]:
    """Measured rates for the projection: float32 GEMM of the grid's shape, float64 GEMM, one d x d SVD."""
    import torch

    from hrsa.metrics.procrustes import orthogonal_from_cross

    out: dict[str, Any] = {}
    for name, dtype in (("fp32", torch.float32), ("fp64", torch.float64)):
        a, b = torch.randn(4096, args.d, dtype=dtype), torch.randn(4096, args.d * args.layers, dtype=dtype)
        a.T @ b
        t, reps = time.perf_counter(), 0
        while time.perf_counter() - t < 2.0:
            a.T @ b
            reps += 1
        out[f"{name}_flops"] = 2.0 * 4096 * args.d * args.d * args.layers * reps / (time.perf_counter() - t)
    m = torch.randn(args.d, args.d, dtype=torch.float64)
    orthogonal_from_cross(m)
    t = time.perf_counter()
    for _ in range(3):
        orthogonal_from_cross(m)
    out["svd_s"] = (time.perf_counter() - t) / 3
    return out


def stage_brute(args: argparse.Namespace, wd: Path) -> dict[str, Any]:
    """Small case: block-bootstrap replicates vs recomputation on the resampled rows (same replicates)."""
    import numpy as np
    import torch

    from hrsa.metrics import dimwise_correlation, linear_cka, procrustes
    from hrsa.metrics.blocks import PairBlocks, assign_blocks, bootstrap_weights

    rng = np.random.default_rng(3)
    text = np.repeat(np.arange(30), rng.integers(2, 12, size=30))
    n, d = len(text), 24
    x = rng.normal(size=(n, d)) + 2
    y = x @ rng.normal(size=(d, d)) + rng.normal(size=(n, d))
    blocks, b = assign_blocks(text, 15)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    pb = PairBlocks(d, d, b, dtype=tx.dtype, device="cpu", shift_x=tx.mean(0), shift_y=ty.mean(0),
                    procrustes_blocks=True)
    pb.update(tx, ty, blocks)
    st = pb.finish()
    w = bootstrap_weights(b, 20, seed=1)
    t = time.perf_counter()
    fast = {**st.cka(w), "dimwise": st.dimwise(w), **st.procrustes(w)}
    t_block = time.perf_counter() - t
    worst = 0.0
    t = time.perf_counter()
    for r, wr in enumerate(w):
        idx = np.concatenate([np.flatnonzero(blocks == k) for k in range(b) for _ in range(int(wr[k]))])
        xr, yr = x[idx], y[idx]
        ref = {"biased": linear_cka(xr, yr), "debiased": linear_cka(xr, yr, debiased=True),
               "dimwise": dimwise_correlation(xr, yr), **procrustes(xr, yr)}
        worst = max(worst, *(abs(float(fast[k][r]) - ref[k]) for k in ref))
    return {"max_abs_diff": worst, "replicates": len(w), "block_s": t_block, "brute_s": time.perf_counter() - t}


STAGES = {"job": stage_job, "grid": stage_grid, "rates": stage_rates, "brute": stage_brute}


def run_stage(args: argparse.Namespace, stage: str, wd: Path, **over: Any) -> dict[str, Any]:
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in {**vars(args), **over}.items()
            if k not in ("stage", "workdir", "knn_k", "real_graphs", "measure_every")]
    argv += ["--knn-k", *map(str, args.knn_k)] + (["--real-graphs"] if args.real_graphs else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HRSA_THREADS": str(args.threads)}
    proc = subprocess.run([sys.executable, __file__, *argv, "--workdir", str(wd), "--stage", stage],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def projection(args: argparse.Namespace, rates: dict[str, float], n: int, d: int, layers: int, procrustes_layers: int,
               cpu_scale: float) -> dict[str, float]:
    """Seconds of one job at (n, d, L) from flop counts: the grid and block sums (fp32 GEMMs over the rows), the
    block recombination (fp64, B^2 d^2 per kind and layer), Procrustes SVDs and replicate sums."""
    b, r = args.blocks, args.bootstrap + JACKKNIFE_GROUPS  # replicates + jackknife groups
    grid = 2.0 * n * (layers * d) ** 2 + 2.0 * n * 2 * layers * d * d
    sums = 2.0 * n * 3 * layers * d * d + 2.0 * n * procrustes_layers * d * d
    recomb = 3 * layers * 2 * (2.0 * b * b * d * d)
    svds = r * procrustes_layers
    rep_sums = 2 * 2.0 * r * procrustes_layers * b * d * d
    cpu = ((grid + sums) / (rates["fp32_flops"] * cpu_scale) + (recomb + rep_sums) / (rates["fp64_flops"] * cpu_scale)
           + svds * rates["svd_s"] * (d / args.d) ** 3)
    gpu = (grid + sums) / GPU_FP32 + (recomb + rep_sums) / GPU_FP64 + svds * GPU_SVD_S
    return {"cpu_s": cpu, "gpu_s": gpu, "accumulator_gib": 8 * 3 * b * d * d / 2**30}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=20000)
    p.add_argument("--texts", type=int, default=200)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--permutations", type=int, default=50)
    p.add_argument("--blocks", type=int, default=100)
    p.add_argument("--knn-k", type=int, nargs="+", default=[5, 10, 50])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--accumulator-gb", type=float, default=4.0)
    p.add_argument("--procrustes", default="last")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real-graphs", action="store_true")
    p.add_argument("--measure-every", action="store_true", help="also run the job with Procrustes CI at every layer")
    p.add_argument("--workdir", default=None)
    p.add_argument("--stage", choices=sorted(STAGES), default=None)
    args = p.parse_args(argv)
    if args.stage:
        from hrsa.runtime import limit_threads

        limit_threads(args.threads)
        import pyarrow.dataset  # noqa: F401  (imports are not what is timed)
        import torch  # noqa: F401

        import hrsa.metrics  # noqa: F401
        print(json.dumps(STAGES[args.stage](args, Path(args.workdir))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        wd = Path(args.workdir or tmp)
        t = time.perf_counter()
        if not (wd / "acts/b/_meta.json").is_file():
            make_data(args, wd)
        print(f"data: {args.tokens} tokens in {args.texts} texts, d={args.d}, L={args.layers} "
              f"({time.perf_counter() - t:.0f} s to write or reuse)", flush=True)
        report(args, wd)


def _say(name: str, res: dict[str, Any]) -> None:
    print(f"  {name}: {json.dumps(res)}", flush=True)


def report(args: argparse.Namespace, wd: Path) -> None:
    """Run the stages one after another (each result printed when it is there), then the table."""
    rates = run_stage(args, "rates", wd)
    _say("rates", rates)
    brute = run_stage(args, "brute", wd)
    _say("brute vs block", brute)
    grid = run_stage(args, "grid", wd)
    _say("grid", grid)
    bare = run_stage(args, "job", wd, bootstrap=0, permutations=0)
    _say("bare job", bare)
    full = run_stage(args, "job", wd)
    _say("full job", full)
    every = run_stage(args, "job", wd, procrustes="all") if args.measure_every else None
    b, pm = args.bootstrap, args.permutations
    per_layer = full["spent"].get("procrustes", 0.0)  # one layer's replicates (+ point estimates at every layer)
    table = [
        ("L x L CKA grid alone", grid["seconds"], grid["peak_mib"]),
        ("job, bootstrap 0 / permutations 0", bare["seconds"], bare["peak_mib"]),
        (f"job, bootstrap {b} / permutations {pm}, Procrustes CI at last layer", full["seconds"], full["peak_mib"]),
    ]
    if every is not None:
        table.append((f"job, bootstrap {b} / permutations {pm}, Procrustes CI at every layer", every["seconds"],
                      every["peak_mib"]))
    print(f"\n{'stage':<72} {'seconds':>8} {'peak MiB':>9}")
    for name, sec, mib in table:
        print(f"{name:<72} {sec:>8.1f} {mib:>9.0f}")
    print("full job breakdown (s): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(full["spent"].items())))
    ratio = full["seconds"] / bare["seconds"]
    print(f"\nratio full / bare: {ratio:.2f} (target <= 4): {'MET' if ratio <= 4 else 'NOT MET'}")
    print(f"Procrustes intervals cost {per_layer:.1f} s at the last layer ({b + JACKKNIFE_GROUPS} SVDs of "
          f"{args.d}^2); at every layer they would add about {(args.layers - 1) * per_layer:.0f} s"
          + (f" (measured: {every['seconds'] - full['seconds']:.0f} s)" if every is not None else ""))
    print(f"measured: fp32 GEMM {rates['fp32_flops'] / 1e9:.0f} GFLOP/s, fp64 {rates['fp64_flops'] / 1e9:.0f} GFLOP/s, "
          f"one {args.d}^2 SVD {rates['svd_s']:.2f} s ({args.threads} threads)")
    print(f"brute-force vs block bootstrap ({brute['replicates']} replicates, CKA/debiased/dimwise/Procrustes): "
          f"max |diff| = {brute['max_abs_diff']:.1e} (block {brute['block_s']:.3f} s, brute {brute['brute_s']:.3f} s)")
    for name, scale in (("32-core node", 32 / args.threads), (f"this machine ({args.threads} threads)", 1.0)):
        pr = projection(args, rates, 150_000, 1536, 29, 1, scale)
        print(f"projection n=150,000 d=1,536 L=29, B={args.blocks}, R={b}, Procrustes CI at last layer, {name}: "
              f"{pr['cpu_s'] / 60:.0f} min (linear core scaling assumed)")
    pr = projection(args, rates, 150_000, 1536, 29, 1, 1.0)
    print(f"projection same job on a GPU (assumed {GPU_FP32 / 1e12:.0f} TFLOP/s fp32/fp64, {GPU_SVD_S:.2f} s per SVD): "
          f"{pr['gpu_s'] / 60:.1f} min; block sums per layer {pr['accumulator_gib']:.1f} GiB "
          f"(float64, B={args.blocks})")

if __name__ == "__main__":
    main()
