"""Figures of one HRSA table without evaluations: per-layer curves of the headline metrics (intervals, chance levels),
the layer x layer CKA map and a per-layer table, with a page (index.md) naming probe, layers, interval method and
null. What `hrsa pairwise` draws for two models; the study's report is `hrsa report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from hrsa.commands.options import add_config, config_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hrsa", required=True, type=Path, metavar="PARQUET",
                   help="HRSA table ({probe}/{comparison}.parquet)")
    add_config(p, "report")
    p.add_argument("--names", nargs=2, default=None, metavar=("LEFT", "RIGHT"),
                   help="how the page names the two models (default: their model ids)")
    p.add_argument("--out", required=True, type=Path, help="output directory (curves.png, cka_layers.png, table.tsv)")


def run(args: argparse.Namespace) -> None:
    from hrsa.errors import DataError
    from hrsa.report.pairwise import build_pairwise
    from hrsa.schema import with_defaults

    if not args.hrsa.is_file():
        raise DataError(f"HRSA table {args.hrsa} is missing: run its compare job first")
    settings = with_defaults("report", config_of(args))
    page = build_pairwise(args.hrsa, args.out, list(settings["headline_metrics"]),
                          tuple(args.names) if args.names else None)
    print(f"figures of {args.hrsa} -> {page}")
