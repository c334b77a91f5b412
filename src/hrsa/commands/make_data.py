"""Build the contrastive training data (`train`) or one probe set (`probe`) from a config slice.

With `mine.enabled` the records may lack negatives: the `mine` verb (its own rule) fills them in afterwards.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["train", "probe"], help="training records or a probe set")
    p.add_argument("--config", default="{}", metavar="JSON",
                   help="the config slice as a JSON object: `training_data:`, or one entry of `probes:`; keys left out "
                        "take the schema's defaults")
    p.add_argument("--root", default=".", help="repository root that relative paths in the spec refer to")
    p.add_argument("--out", required=True, help="output JSONL")


def run(args: argparse.Namespace) -> None:
    from hrsa import data
    from hrsa.commands.options import config_of
    from hrsa.errors import DataError
    from hrsa.schema import with_defaults

    root = Path(args.root)
    if args.what == "probe":
        rows = data.probe_rows(with_defaults("probes/*", config_of(args)), root)
        data.write_jsonl(args.out, rows)
        print(f"wrote {len(rows)} rows to {args.out}")
        return
    spec = with_defaults("training_data", config_of(args))
    mine, num_negatives = spec["mine"], int(spec["num_negatives"])
    if spec["builtin"]:
        rows = data.demo_training_records(root / "data/corpus/milton", int(spec["n_records"]), num_negatives)
    else:
        # negatives are counted after mining when a miner fills them in
        wanted = 0 if mine.get("enabled") else num_negatives
        rows = []
        for path in spec.get("paths", []):
            rows += data.validate_training_records(root / path, wanted)
        for entry in spec.get("hf", []):
            rows += data.hub_training_records(entry, wanted)
        if not rows:
            raise DataError("training_data: no records (set builtin: demo, or give paths or hf entries)")
    data.write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} rows to {args.out}")
