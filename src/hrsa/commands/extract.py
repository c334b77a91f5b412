"""Extract every requested layer of one model on one probe set into Parquet shards (one forward pass per batch)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub id")
    p.add_argument("--model-id", required=True, help="model id, e.g. tiny.base or tiny.base-E.s0")
    p.add_argument("--probe", required=True, help="probe set JSONL (id, text, label)")
    p.add_argument("--probe-spec", default="{}", help="the probe's config entry as JSON (granularity, max_tokens, ...)")
    p.add_argument("--layers", required=True, help="comma-separated layers, e.g. 0,1,2,pooled")
    p.add_argument("--dtype", default="float32", choices=["float16", "float32"], help="stored vector type")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--attention", default="bidirectional", choices=["bidirectional", "causal", "model"],
                   help="attention mask during extraction: bidirectional (the study's), causal, or each model's own")
    p.add_argument("--work-dir", default=None,
                   help="where finished shards wait (kept when the job dies, so a re-run resumes); default OUT.partial")
    p.add_argument("--shard-rows", type=int, default=None, help="rows per shard (the unit of resume)")
    p.add_argument("--compression", default="zstd", choices=["zstd", "lz4", "none"], help="Parquet codec of the shards")
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> None:
    from hrsa.errors import HrsaError
    from hrsa.extract import DEFAULT_SHARD_ROWS, extract
    from hrsa.runtime import torch_device

    shard_rows = DEFAULT_SHARD_ROWS if args.shard_rows is None else args.shard_rows
    if shard_rows < 1 or args.batch_size < 1:
        raise HrsaError("--shard-rows and --batch-size must be positive")
    meta = extract(
        args.model, args.model_id, args.probe, json.loads(args.probe_spec), args.layers.split(","), args.out,
        torch_device(args.device), args.dtype, args.batch_size, args.trust_remote_code, args.work_dir, shard_rows,
        write_threads=args.threads, compression=args.compression, attention=args.attention,
    )
    print(f"wrote {meta['n_rows']} rows x {len(meta['layers'])} layers to {args.out} in {meta['seconds']}s "
          f"({meta['shards']} shards, {meta['shards_resumed']} resumed)")
