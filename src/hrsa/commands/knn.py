"""Exact cosine kNN graph of one layer of one model's activations (FAISS), stored once for every comparison."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--activations", required=True, help="activation directory of one model on one probe set")
    p.add_argument("--layer", required=True, help="layer name, e.g. 3 or pooled")
    p.add_argument("--k", type=int, default=50, help="neighbours kept per row (the largest k any metric uses)")
    p.add_argument("--out", required=True,
                   help="output .npz: indices and similarities, stamped with model, layer, k and activation hash")


def run(args: argparse.Namespace) -> None:
    from hrsa.activations import load_layer
    from hrsa.knn import graph_stamp, knn_graph, write_graph

    stamp = graph_stamp(args.activations, args.layer)  # before the search: a bad directory fails cheaply
    X = load_layer(args.activations, args.layer)
    k = min(args.k, len(X) - 1)
    similarities, indices = knn_graph(X, k, metric="cosine")
    write_graph(args.out, indices, similarities, stamp)
    print(f"kNN graph of {stamp['model_id']} layer {args.layer}: {len(X)} rows, k={k}")
