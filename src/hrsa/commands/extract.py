"""Extract every requested layer of one model on one probe set into Parquet shards (one forward pass per batch)."""

from __future__ import annotations

import argparse

from hrsa.schema import default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub id")
    p.add_argument("--model-id", required=True, help="model id, e.g. tiny.base or tiny.base-E.s0")
    p.add_argument("--probe", required=True, help="probe set JSONL (id, text, label)")
    p.add_argument("--config", default="{}", metavar="JSON",
                   help="the probe's entry of `probes:` as a JSON object (granularity, max_length, max_tokens, seed); "
                        "keys left out take the schema's defaults")
    p.add_argument("--layers", required=True, help="comma-separated layers, e.g. 0,1,2,pooled")
    # each flag below is one config key; its default is the schema's
    p.add_argument("--dtype", default=default("activation_dtype"), choices=["float16", "float32"],
                   help="stored vector type (activation_dtype)")
    p.add_argument("--batch-size", type=int, default=default("activations/batch_size"),
                   help="texts per forward pass (activations.batch_size)")
    p.add_argument("--device", default=default("resources/device"), choices=["auto", "cpu", "cuda"])
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--attention", default=default("activations/attention"),
                   choices=["bidirectional", "causal", "model"],
                   help="attention mask during extraction: bidirectional (the study's), causal, or each model's own")
    p.add_argument("--precision", default=default("activations/precision"), choices=["auto", "fp32", "bf16"],
                   help="weights and forward pass: bf16, fp32, or auto = bf16 on a GPU (activations.precision)")
    p.add_argument("--work-dir", default=None,
                   help="where finished shards wait (kept when the job dies, so a re-run resumes); default OUT.partial")
    p.add_argument("--shard-rows", type=int, default=default("activations/shard_rows"),
                   help="rows per shard, the unit of resume (activations.shard_rows)")
    p.add_argument("--compression", default=default("activations/compression"), choices=["zstd", "lz4", "none"],
                   help="Parquet codec of the shards (activations.compression)")
    p.add_argument("--out", required=True, help="output directory")


def run(args: argparse.Namespace) -> None:
    from hrsa.commands.options import config_of
    from hrsa.errors import HrsaError
    from hrsa.extract import extract
    from hrsa.runtime import torch_device
    from hrsa.schema import with_defaults

    if args.shard_rows < 1 or args.batch_size < 1:
        raise HrsaError("--shard-rows and --batch-size must be positive")
    probe = with_defaults("probes/*", config_of(args))
    meta = extract(
        args.model, args.model_id, args.probe, probe, args.layers.split(","), args.out,
        torch_device(args.device), args.dtype, args.batch_size, args.trust_remote_code, args.work_dir, args.shard_rows,
        write_threads=args.threads, compression=args.compression, attention=args.attention,
        precision=args.precision,
    )
    print(f"wrote {meta['n_rows']} rows x {len(meta['layers'])} layers to {args.out} in {meta['seconds']}s "
          f"({meta['shards']} shards, {meta['shards_resumed']} resumed)")
