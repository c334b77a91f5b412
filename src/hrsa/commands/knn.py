"""Exact cosine kNN graphs of one model's activations (FAISS; a GPU index when FAISS sees a GPU), stored once for
every comparison: one layer into a file, or every layer of a (model, probe) into one directory in one job."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--activations", required=True, help="activation directory of one model on one probe set")
    p.add_argument("--k", type=int, default=50, help="neighbours kept per row (the largest k any metric uses)")
    one = p.add_argument_group("one layer")
    one.add_argument("--layer", help="layer name, e.g. 3 or pooled")
    one.add_argument("--out", help="output .npz: indices and similarities, stamped with model, layer, k and "
                                   "activation hash")
    many = p.add_argument_group("several layers in one job")
    many.add_argument("--layers", help="comma-separated layer names")
    many.add_argument("--out-dir", help="output directory of layer=NAME.npz files (appears only complete)")


def build(activations: str, layer: str, k: int, out: str) -> str:
    """Search and store one layer's graph; returns a log line."""
    from hrsa.activations import load_layer
    from hrsa.knn import graph_stamp, knn_graph, write_graph

    stamp = graph_stamp(activations, layer)  # before the search: a bad directory fails cheaply
    X = load_layer(activations, layer)
    k = min(k, len(X) - 1)
    similarities, indices = knn_graph(X, k, metric="cosine")
    write_graph(out, indices, similarities, stamp)
    return f"kNN graph of {stamp['model_id']} layer {layer}: {len(X)} rows, k={k}"


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from hrsa.errors import HrsaError
    from hrsa.io import atomic_path

    if bool(args.layer) == bool(args.layers) or bool(args.layer) != bool(args.out) or bool(args.layers) != bool(
            args.out_dir):
        raise HrsaError("give either --layer with --out, or --layers with --out-dir")
    if args.layer:
        print(build(args.activations, args.layer, args.k, args.out))
        return
    with atomic_path(args.out_dir) as tmp:
        Path(tmp).mkdir()
        for layer in args.layers.split(","):
            print(build(args.activations, layer, args.k, str(Path(tmp) / f"layer={layer}.npz")), flush=True)
