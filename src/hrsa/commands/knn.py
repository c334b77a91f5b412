"""Exact cosine kNN graphs of one model's activations (FAISS; a GPU index when FAISS sees a GPU), stored once for
every comparison: one layer into a file, or every layer of a (model, probe) into one directory in one job."""

from __future__ import annotations

import argparse

from hrsa.commands.options import add_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--activations", required=True, help="activation directory of one model on one probe set")
    add_config(p, "hrsa", "the `hrsa:` slice (knn_k: the graphs keep the most neighbours the metric registry reads "
               "for these k; knn_max_rows: a seeded sample of rows, 0 = all; seed: that sample's, the same for every "
               "model)")
    one = p.add_argument_group("one layer")
    one.add_argument("--layer", help="layer name, e.g. 3 or pooled")
    one.add_argument("--out", help="output .npz: indices and similarities, stamped with model, layer, k and "
                                   "activation hash")
    many = p.add_argument_group("several layers in one job")
    many.add_argument("--layers", help="comma-separated layer names")
    many.add_argument("--out-dir", help="output directory of layer=NAME.npz files (appears only complete)")


def build(activations: str, layer: str, k: int, out: str, max_rows: int = 0, row_seed: int = 0) -> str:
    """Search and store one layer's graph (over a seeded row sample when max_rows caps it); returns a log line."""
    from hrsa.activations import load_layer
    from hrsa.knn import graph_stamp, knn_graph, subsample_rows, write_graph

    stamp = graph_stamp(activations, layer)  # before the search: a bad directory fails cheaply
    X = load_layer(activations, layer)
    rows = subsample_rows(len(X), max_rows, row_seed)
    if rows is not None:
        X = X[rows]
    k = min(k, len(X) - 1)
    similarities, indices = knn_graph(X, k, metric="cosine")
    write_graph(out, indices, similarities, stamp, rows)
    capped = "" if rows is None else " (a seeded sample: hrsa.knn_max_rows)"
    return f"kNN graph of {stamp['model_id']} layer {layer}: {len(X)} rows{capped}, k={k}"


def run(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from hrsa.errors import HrsaError
    from hrsa.io import atomic_path
    from hrsa.metrics import graph_k
    from hrsa.schema import with_defaults

    one, many = (args.layer, args.out), (args.layers, args.out_dir)
    if not (all(one) and not any(many)) and not (all(many) and not any(one)):
        raise HrsaError("give either --layer with --out, or --layers with --out-dir")
    config = with_defaults("hrsa", json.loads(args.config))
    k, max_rows, row_seed = graph_k(config["knn_k"]), int(config["knn_max_rows"]), int(config["seed"])
    if args.layer:
        print(build(args.activations, args.layer, k, args.out, max_rows, row_seed))
        return
    with atomic_path(args.out_dir) as tmp:
        Path(tmp).mkdir()
        for layer in args.layers.split(","):
            out = str(Path(tmp) / f"layer={layer}.npz")
            print(build(args.activations, layer, k, out, max_rows, row_seed), flush=True)
