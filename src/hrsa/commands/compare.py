"""HRSA of one comparison on one probe set: all metrics per layer, L x L CKA, bootstrap CIs, chance levels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hrsa.commands.options import add_config
from hrsa.schema import default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--left", required=True, help="activation directory of the left model")
    p.add_argument("--right", required=True, help="activation directory of the right model")
    p.add_argument("--knn-left", required=True, help="kNN graph directory of the left model (layer=*.npz)")
    p.add_argument("--knn-right", required=True, help="kNN graph directory of the right model")
    p.add_argument("--probe", default=None, help="probe set JSONL (labels enable probe transfer)")
    p.add_argument("--probe-name", default=None,
                   help="probe set name written in the table's `probe` column (default: the --probe file's stem)")
    add_config(p, "hrsa")
    p.add_argument("--device", default=default("resources/device"), choices=["auto", "cpu", "cuda"],
                   help="torch device of the streaming pass and the SVDs")
    p.add_argument("--comparison", required=True, help="comparison name, e.g. tiny.base~reason")
    p.add_argument("--out", required=True, help="output Parquet table")
    p.add_argument("--procrustes-map", default=None,
                   help="also save the last numbered layer's Procrustes map O* here (.npz: O, layer)")


def run(args: argparse.Namespace) -> None:
    from hrsa.compare import compare, write_rows

    rows = compare(
        Path(args.left), Path(args.right), Path(args.knn_left), Path(args.knn_right),
        Path(args.probe) if args.probe else None, json.loads(args.config), args.comparison,
        Path(args.procrustes_map) if args.procrustes_map else None, device=args.device,
    )
    probe = args.probe_name if args.probe_name is not None else (Path(args.probe).stem if args.probe else "")
    write_rows(rows, args.out, probe=probe)
    print(f"{len(rows)} HRSA rows for {args.comparison} -> {args.out}")
