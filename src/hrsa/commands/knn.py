"""Exact cosine kNN graph of one layer of one model's activations (FAISS), stored once for every comparison."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--activations", required=True, help="activation directory of one model on one probe set")
    p.add_argument("--layer", required=True, help="layer name, e.g. 3 or pooled")
    p.add_argument("--k", type=int, default=50, help="neighbours kept per row (the largest k any metric uses)")
    p.add_argument("--out", required=True, help="output .npz (indices, similarities)")


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from hrsa.activations import load_layer, read_meta
    from hrsa.io import atomic_path
    from hrsa.knn import knn_graph

    meta = read_meta(args.activations)
    X = load_layer(args.activations, args.layer)
    k = min(args.k, len(X) - 1)
    similarities, indices = knn_graph(X, k, metric="cosine")
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, indices=indices.astype(np.int32), similarities=similarities.astype(np.float32),
                     row_hash=np.array(meta["row_hash"]), k=np.array(k))
    print(f"kNN graph of {meta['model_id']} layer {args.layer}: {len(X)} rows, k={k}")
