"""Benchmark of the HRSA metrics engine on synthetic token activations (not part of the test suite).

Stages (each in its own subprocess, so its peak RSS is its own): float32 GEMM rate, the L x L streamed CKA grid, the
diagonal dim-wise correlation and Procrustes, and kNN graphs + Jaccard for k in {5, 10, 50} next to a chunked torch
matmul + topk baseline on the same data.

    .venv/bin/python bench/bench_metrics.py                 # n=20000, d=1024, L=8, 2 threads
    .venv/bin/python bench/bench_metrics.py --n 4000 --d 256 --layers 4   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

RANK = 32  # latent rank of the synthetic activations (so kNN neighbourhoods mean something)


# ------------------------------------------------------------------------------------------ synthetic data
def _weights(args: argparse.Namespace, side: str, layer: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(args.seed * 7919 + (0 if side == "x" else 1) * 1009 + layer)
    shared = torch.Generator().manual_seed(args.seed * 7919 + 555 + layer)
    w = torch.randn(RANK, args.d, generator=shared)
    return w + (0.0 if side == "x" else 0.4) * torch.randn(RANK, args.d, generator=g)


def _layer_rows(args: argparse.Namespace, side: str, layer: int, start: int, stop: int, w: Any) -> Any:
    """Rows [start, stop) of one layer: latent (shared by all layers and both models) @ W_layer + noise + offset."""
    import torch

    b = start // args.batch_rows
    latent = torch.randn(stop - start, RANK, generator=torch.Generator().manual_seed(args.seed * 104729 + b))
    noise = torch.randn(stop - start, args.d, generator=torch.Generator().manual_seed(
        args.seed * 15485863 + b * 1000 + layer * 2 + (side == "y")))
    return latent @ w + 0.5 * noise + 0.1 * layer


def batches(args: argparse.Namespace) -> Iterator[tuple[list[Any], list[Any]]]:
    """(xs, ys) row batches of all layers, generated on the fly (never all rows in memory); with --repeat-batch one
    generated batch is served again and again (same cost per batch, no generation time inside the timing)."""
    wx = [_weights(args, "x", layer) for layer in range(args.layers)]
    wy = [_weights(args, "y", layer) for layer in range(args.layers)]
    held = None
    for s in range(0, args.n, args.batch_rows):
        e = min(args.n, s + args.batch_rows)
        if held is None or not args.repeat_batch:
            held = ([_layer_rows(args, "x", i, s, e, wx[i]) for i in range(args.layers)],
                    [_layer_rows(args, "y", j, s, e, wy[j]) for j in range(args.layers)])
        yield [x[: e - s] for x in held[0]], [y[: e - s] for y in held[1]]


def layer_pair(args: argparse.Namespace, layer: int) -> tuple[Any, Any]:
    """One layer of both models, all rows in memory (n x d float32 each)."""
    import torch

    wx, wy = _weights(args, "x", layer), _weights(args, "y", layer)
    xs, ys = [], []
    for s in range(0, args.n, args.batch_rows):
        e = min(args.n, s + args.batch_rows)
        xs.append(_layer_rows(args, "x", layer, s, e, wx))
        ys.append(_layer_rows(args, "y", layer, s, e, wy))
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


# ------------------------------------------------------------------------------------------ stages
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def stage_gemm(args: argparse.Namespace) -> dict[str, Any]:
    """Sustained float32 GEMM rate: a square 4096 GEMM and the CKA kernel's shape (x_i' [y_1..y_L])."""
    import torch

    out = {}
    for name, (m, k, n, trans) in {"square": (4096, 4096, 4096, False),
                                   "cka_kernel": (args.d, args.batch_rows, args.d * args.layers, True)}.items():
        a = torch.randn(k, m) if trans else torch.randn(m, k)
        b = torch.randn(k, n)
        mm = (lambda a=a, b=b: a.T @ b) if trans else (lambda a=a, b=b: a @ b)
        mm()
        t, reps = time.perf_counter(), 0
        while time.perf_counter() - t < 2.0:
            mm()
            reps += 1
        out[f"{name}_gflops"] = 2.0 * m * k * n * reps / (time.perf_counter() - t) / 1e9
    return out


def stage_cka(args: argparse.Namespace) -> dict[str, Any]:
    """The L x L CKA grid streamed over generated batches; generation time is measured apart and subtracted."""
    import numpy as np

    from hrsa.metrics import cka_flops, cka_matrix_from_batches

    gen = 0.0
    if not args.repeat_batch:
        t = time.perf_counter()
        for _ in batches(args):
            pass
        gen = time.perf_counter() - t
    base = _rss_kib("VmRSS")
    t = time.perf_counter()
    grid = cka_matrix_from_batches(batches(args), debiased=args.debiased)
    total = time.perf_counter() - t
    fl = cka_flops(args.n, [args.d] * args.layers, [args.d] * args.layers)
    return {"seconds": total, "generation_s": gen, "compute_s": max(total - gen, 1e-9),
            "flops_cross": fl["cross"], "flops_total": fl["total"], "peak_mib": (_rss_kib("VmHWM") - base) / 1024,
            "diag": np.round(np.diag(grid), 4).tolist(),
            "offdiag_mean": float(grid[~np.eye(args.layers, dtype=bool)].mean())}


def stage_dimwise(args: argparse.Namespace) -> dict[str, Any]:
    """Dim-wise correlation for the L diagonal layer pairs (data generation not timed)."""
    from hrsa.metrics import dimwise_correlation

    base, secs, vals = _rss_kib("VmRSS"), 0.0, []
    for layer in range(args.layers):
        x, y = layer_pair(args, layer)
        t = time.perf_counter()
        vals.append(round(dimwise_correlation(x, y), 4))
        secs += time.perf_counter() - t
        del x, y
    return {"seconds": secs, "values": vals, "peak_mib": (_rss_kib("VmHWM") - base) / 1024}


def stage_procrustes(args: argparse.Namespace) -> dict[str, Any]:
    """One-shot Procrustes (rvr, cosine, rie, sparsity) for the L diagonal layer pairs."""
    from hrsa.metrics import procrustes

    base, secs, rvr = _rss_kib("VmRSS"), 0.0, []
    for layer in range(args.layers):
        x, y = layer_pair(args, layer)
        t = time.perf_counter()
        rvr.append(round(procrustes(x, y)["rvr"], 4))
        secs += time.perf_counter() - t
        del x, y
    return {"seconds": secs, "rvr": rvr, "peak_mib": (_rss_kib("VmHWM") - base) / 1024}


def torch_knn(x: Any, k: int, chunk: int = 2048) -> Any:
    """Baseline: exact cosine kNN by chunked torch matmul + topk (self masked)."""
    import torch

    u = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    out = torch.empty(u.shape[0], k, dtype=torch.int64)
    for s in range(0, u.shape[0], chunk):
        sims = u[s:s + chunk] @ u.T
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + s] = -float("inf")
        out[s:s + chunk] = sims.topk(k, dim=1).indices
    return out.numpy()


def stage_knn(args: argparse.Namespace) -> dict[str, Any]:
    """FAISS kNN graphs (k = max) of both models for `--knn-pairs` layers, Jaccard at every k; the torch baseline
    runs on the same matrices, interleaved with FAISS (faiss x, torch x, faiss y, torch y) so load drift hits both."""
    from hrsa.knn import knn_graph
    from hrsa.metrics import jaccard_from_indices
    from hrsa.schema import default

    knn_ks = default("hrsa/knn_k")
    kmax = max(knn_ks)
    base, t_jac, agree = _rss_kib("VmRSS"), 0.0, []
    t_faiss: list[float] = []
    t_torch: list[float] = []
    jac: dict[int, list[float]] = {k: [] for k in knn_ks}
    for layer in range(args.knn_pairs):
        graphs = []
        for a in layer_pair(args, layer):
            t = time.perf_counter()
            idx = knn_graph(a, kmax)[1]
            t_faiss.append(time.perf_counter() - t)
            t = time.perf_counter()
            ref = torch_knn(a, kmax)
            t_torch.append(time.perf_counter() - t)
            agree.append(jaccard_from_indices(idx, ref, kmax))
            graphs.append(idx)
            del a, ref
        t = time.perf_counter()
        for k in knn_ks:
            jac[k].append(round(jaccard_from_indices(graphs[0], graphs[1], k), 4))
        t_jac += time.perf_counter() - t
    return {"faiss_s": sum(t_faiss), "torch_s": sum(t_torch), "jaccard_s": t_jac, "graphs": len(t_faiss),
            "faiss_per_graph_s": sum(t_faiss) / len(t_faiss), "torch_per_graph_s": sum(t_torch) / len(t_torch),
            "faiss_min_s": min(t_faiss), "torch_min_s": min(t_torch),
            "jaccard": {str(k): v for k, v in jac.items()}, "faiss_vs_torch_overlap": min(agree),
            "peak_mib": (_rss_kib("VmHWM") - base) / 1024}


STAGES = {"gemm": stage_gemm, "cka": stage_cka, "dimwise": stage_dimwise, "procrustes": stage_procrustes,
          "knn": stage_knn}


# ------------------------------------------------------------------------------------------ driver
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="rows (tokens)")
    p.add_argument("--d", type=int, default=1024, help="width per layer")
    p.add_argument("--layers", type=int, default=8, help="layers per model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-rows", type=int, default=2048, help="rows per streamed batch (all layers of both models)")
    p.add_argument("--fresh-batches", dest="repeat_batch", action="store_false",
                   help="generate every batch (generation time measured apart and subtracted) instead of repeating one")
    p.add_argument("--knn-pairs", type=int, default=1, help="layer pairs for the kNN stage (2 graphs each)")
    p.add_argument("--debiased", action="store_true", help="debiased CKA in the grid stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ",".join(STAGES))
    p.add_argument("--stage", help=argparse.SUPPRESS)  # internal: run one stage in this process, print JSON
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "inherit"],
                   help="OpenMP wait policy for the stages: PASSIVE avoids barrier stalls on shared cores")
    return p.parse_args(argv)


def run_child(stage: str, argv: list[str]) -> dict[str, Any]:
    """Run one stage in a fresh interpreter (own peak RSS) and read its JSON line."""
    proc = subprocess.run([sys.executable, __file__, *argv, "--stage", stage], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(args: argparse.Namespace, r: dict[str, dict[str, Any]]) -> str:
    """The benchmark table (stage, time, rate, peak memory, target)."""
    mib = 1 << 20
    pair_mib = 2 * args.n * args.d * 4 / mib
    acc_mib = (args.layers ** 2 + 2 * args.layers) * args.d ** 2 * 8 / mib
    rows = [("stage", "time [s]", "rate / result", "peak RSS [MiB]", "target")]
    if "gemm" in r:
        g = r["gemm"]
        rows.append(("float32 GEMM (square 4096)", "-", f"{g['square_gflops']:.1f} GFLOP/s", "-",
                     f"cka-kernel shape {g['cka_kernel_gflops']:.1f} GFLOP/s"))
    if "cka" in r:
        c = r["cka"]
        rate = c["flops_total"] / c["compute_s"] / 1e9
        cross = c["flops_cross"] / c["compute_s"] / 1e9
        share = f" = {100 * rate / r['gemm']['square_gflops']:.0f}% of GEMM" if "gemm" in r else ""
        gen_note = f" (+{c['generation_s']:.1f} gen)" if c["generation_s"] else ""
        rows.append((f"CKA {args.layers}x{args.layers} grid", f"{c['compute_s']:.1f}" + gen_note,
                     f"{rate:.1f} GFLOP/s all GEMMs{share}; cross only {cross:.1f}", f"{c['peak_mib']:.0f}",
                     f"<= {2 * pair_mib + acc_mib:.0f} (2 x pair {pair_mib:.0f} + acc {acc_mib:.0f})"))
    if "dimwise" in r:
        rows.append((f"dimwise corr x{args.layers} (diag)", f"{r['dimwise']['seconds']:.2f}", "-",
                     f"{r['dimwise']['peak_mib']:.0f}", "-"))
    if "procrustes" in r:
        rows.append((f"Procrustes x{args.layers} (diag)", f"{r['procrustes']['seconds']:.2f}",
                     f"{r['procrustes']['seconds'] / args.layers:.2f} s/pair", f"{r['procrustes']['peak_mib']:.0f}",
                     "-"))
    if "knn" in r:
        k = r["knn"]
        rows.append((f"kNN FAISS k=50 ({k['graphs']} graphs)", f"{k['faiss_s']:.1f}",
                     f"{k['faiss_per_graph_s']:.2f} s/graph", f"{k['peak_mib']:.0f}",
                     f"<= torch: {k['faiss_per_graph_s'] / k['torch_per_graph_s']:.2f}x mean, "
                     f"{k['faiss_min_s'] / k['torch_min_s']:.2f}x best"))
        rows.append(("kNN torch matmul+topk baseline", f"{k['torch_s']:.1f}", f"{k['torch_per_graph_s']:.2f} s/graph",
                     "-", f"overlap with FAISS {k['faiss_vs_torch_overlap']:.4f}"))
        rows.append(("Jaccard k=5,10,50 from graphs", f"{k['jaccard_s']:.2f}",
                     " / ".join(f"{v[0]:.3f}" for v in k["jaccard"].values()), "-", "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    from hrsa.runtime import limit_threads

    limit_threads(args.threads)
    if args.stage:
        import torch  # noqa: F401  (thread cap applied on import through the environment)

        from hrsa.runtime import set_torch_threads

        set_torch_threads(args.threads)
        print(json.dumps(STAGES[args.stage](args)))
        return
    if args.omp_wait_policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    child_argv = [f"--n={args.n}", f"--d={args.d}", f"--layers={args.layers}", f"--threads={args.threads}",
                  f"--batch-rows={args.batch_rows}", f"--knn-pairs={args.knn_pairs}", f"--seed={args.seed}",
                  *([] if args.repeat_batch else ["--fresh-batches"]),
                  *(["--debiased"] if args.debiased else [])]
    results: dict[str, dict[str, Any]] = {}
    for stage in [s for s in args.stages.split(",") if s]:
        t = time.perf_counter()
        results[stage] = run_child(stage, child_argv)
        print(f"[{stage}] done in {time.perf_counter() - t:.1f}s: {json.dumps(results[stage])}", file=sys.stderr)
    print(f"n={args.n} d={args.d} L={args.layers} threads={args.threads} batch_rows={args.batch_rows} "
          f"{'repeated' if args.repeat_batch else 'fresh'} batches "
          f"cpus={os.cpu_count()} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(table(args, results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
