"""Per-job figures of the GPU check (bench/gpu_check.sh): each paper job's kernel at the rehearsal's shapes on one
device, timed, with its peak device memory, tokens per second and MFU.

    .venv/bin/python bench/gpu_check.py kernels --model rehearsal/backbones/qwen3-0b6-random   # CUDA, bf16
    .venv/bin/python bench/gpu_check.py kernels --model DIR --device cpu --precision fp32 --small  # a CPU smoke run
    .venv/bin/python bench/gpu_check.py jobs --workdir rehearsal-gpu --samples gpu_mem.csv        # the workflow run

`kernels` loads the backbone as the jobs do (hrsa.embedder: bidirectional attention through config.is_causal, SDPA)
and checks on the device that token 0's output moves when a later token changes, then times:
- train: one CachedMNRL-shaped step, forward + backward of a mini-batch (32 x 128 tokens; gradient checkpointing);
- extract: a forward pass with every hidden state (16 x 512 tokens);
- evaluate: encoding at the study's 8,192-token length (2 texts);
- knn: an exact FAISS inner-product graph (k = 50) of 50,000 x 1,024 vectors, on the GPU where faiss has one.
MFU = model FLOPs (2 N per token forward, 6 N with backward, N the non-embedding parameters, plus attention's
4 L d s per token forward) / wall time / the device's dense bf16 peak (H100 989, H200 989, A100 312 TFLOP/s; CPU: n/a).

`jobs` lists the workflow run's job records (time, peak RSS) with the peak device memory nvidia-smi sampled while each
job ran (the sampler's CSV: timestamp, memory.used MiB).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def model_flops_per_token(config: object, seq: int, backward: bool) -> float:
    """2 N (+4 N backward) per token over the non-embedding weights, plus attention scores and values (4 L d s)."""
    c = config
    d, layers, inter = c.hidden_size, c.num_hidden_layers, c.intermediate_size  # type: ignore[attr-defined]
    heads, kv = c.num_attention_heads, c.num_key_value_heads  # type: ignore[attr-defined]
    hd = getattr(c, "head_dim", None) or d // heads
    per_layer = d * heads * hd * 2 + d * kv * hd * 2 + 3 * d * inter
    forward = 2 * layers * per_layer + 4 * layers * heads * hd * seq
    return forward * (3 if backward else 1)


class Timer:
    def __init__(self, device: str) -> None:
        self.device = device

    def sync(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def __enter__(self) -> Timer:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        self.sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        self.sync()
        self.s = time.perf_counter() - self.t0
        self.peak_gb = torch.cuda.max_memory_allocated() / 2**30 if self.device.startswith("cuda") else float("nan")


def check_bidirectional(model: object, device: str) -> float:
    import torch

    ids = torch.arange(100, 108, device=device)[None]
    other = ids.clone()
    other[0, -1] = 200
    with torch.no_grad():
        a = model(input_ids=ids).last_hidden_state[0, 0].float()  # type: ignore[operator]
        b = model(input_ids=other).last_hidden_state[0, 0].float()  # type: ignore[operator]
    shift = float((a - b).abs().max())
    if not shift > 0:
        raise SystemExit(f"attention is NOT bidirectional on {device}: token 0 ignores a later token")
    return shift


def kernels(model_dir: str, device: str, precision: str, small: bool) -> list[dict[str, object]]:
    import numpy as np
    import torch

    from hrsa.embedder import load_model, set_attention
    from hrsa.knn import gpu_available, knn_graph
    from hrsa.runtime import compute_dtype

    loaded = load_model(model_dir, device, precision=precision)
    model = loaded.auto_model
    mode = set_attention(model, "bidirectional")
    impl = model.config._attn_implementation
    shift = check_bidirectional(model, device)
    print(f"device {device} ({torch.cuda.get_device_name(0) if device.startswith('cuda') else 'CPU'}), dtype "
          f"{compute_dtype(precision, device)}, attention {mode} under {impl} (token 0 moved {shift:.3g})")
    cfg = model.config
    vocab = cfg.vocab_size
    peak = peak_tflops(device)
    rows: list[dict[str, object]] = []

    def record(job: str, timer: Timer, tokens: int, seq: int, backward: bool) -> None:
        flops = model_flops_per_token(cfg, seq, backward) * tokens
        mfu = flops / timer.s / (peak * 1e12) if peak else float("nan")
        rows.append({"job": job, "s": timer.s, "peak_gb": timer.peak_gb, "tokens_s": tokens / timer.s, "mfu": mfu})

    shapes = {"train": (4, 32) if small else (32, 128), "extract": (4, 32) if small else (16, 512),
              "evaluate": (1, 64) if small else (2, 8192)}
    # train: forward + backward of one CachedMNRL mini-batch, gradient checkpointing, bf16 autocast over fp32 weights
    b, s = shapes["train"]
    model.train()
    model.gradient_checkpointing_enable()
    ids = torch.randint(0, vocab, (b, s), device=device)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                              enabled=compute_dtype(precision, device) == "bfloat16")
    for _ in range(2):  # the first is warm-up
        with Timer(device) as t, autocast:
            model(input_ids=ids).last_hidden_state.float().pow(2).mean().backward()
    record(f"train (mini-batch {b} x {s})", t, b * s, s, True)
    model.zero_grad(set_to_none=True)
    model.gradient_checkpointing_disable()
    model.eval()
    for job in ("extract", "evaluate"):
        b, s = shapes[job]
        ids = torch.randint(0, vocab, (b, s), device=device)
        with torch.inference_mode():
            for _ in range(2):
                with Timer(device) as t:
                    model(input_ids=ids, output_hidden_states=job == "extract")
        record(f"{job} ({b} x {s}{', all hidden states' if job == 'extract' else ''})", t, b * s, s, False)
    n, d = (2000, 64) if small else (50000, cfg.hidden_size)
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    with Timer(device) as t:
        knn_graph(x, 50, metric="cosine")
    rows.append({"job": f"knn ({n} x {d}, k 50, FAISS {'GPU' if gpu_available() else 'CPU'})", "s": t.s,
                 "peak_gb": float("nan"), "tokens_s": n / t.s, "mfu": float("nan")})
    print(f"{'job':48} {'s':>8} {'peak GiB':>9} {'tokens/s':>10} {'MFU':>6}")
    for r in rows:
        print(f"{r['job']:48} {r['s']:8.3f} {r['peak_gb']:9.2f} {r['tokens_s']:10.0f} {r['mfu']:6.1%}")
    return rows


def jobs(workdir: Path, samples: Path | None) -> None:
    """Workflow job records with the device memory sampled while each ran."""
    memory: list[tuple[float, float]] = []
    if samples and samples.is_file():
        with samples.open() as fh:
            for row in csv.reader(fh):
                try:
                    stamp = dt.datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
                    memory.append((stamp, float(row[1].split()[0])))
                except (ValueError, IndexError):
                    continue
    print(f"{'job':58} {'time s':>8} {'peak RSS MB':>12} {'peak GPU MiB':>12}")
    for path in sorted((workdir / "benchmarks").rglob("*.tsv")):
        with path.open() as fh:
            rec = next(csv.DictReader(fh, delimiter="\t"), None)
        if rec is None:
            continue
        end = path.stat().st_mtime
        start = end - float(rec["s"])
        seen = [m for t, m in memory if start <= t <= end]
        gpu = f"{max(seen):12.0f}" if seen else f"{'n/a':>12}"
        name = str(path.relative_to(workdir / "benchmarks").with_suffix(""))
        print(f"{name[:58]:58} {float(rec['s']):8.1f} {rec.get('max_rss', 'NA'):>12} {gpu}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kernels")
    k.add_argument("--model", required=True)
    k.add_argument("--device", default="cuda")
    k.add_argument("--precision", default="bf16", choices=["auto", "fp32", "bf16"])
    k.add_argument("--small", action="store_true", help="small shapes (a CPU smoke run)")
    j = sub.add_parser("jobs")
    j.add_argument("--workdir", type=Path, required=True)
    j.add_argument("--samples", type=Path, default=None)
    args = p.parse_args(argv)
    if args.cmd == "kernels":
        kernels(args.model, args.device, args.precision, args.small)
    else:
        jobs(args.workdir, args.samples)


if __name__ == "__main__":
    main()
