"""HRSA metrics over row-aligned activations (numpy or torch; CPU or GPU): representation level (CKA, dim-wise
correlation, Procrustes), geometry level (kNN overlap, intrinsic dimension) and function level (probe transfer).
`REGISTRY` maps canonical names to `metric(X, Y, **hp) -> float`."""

from hrsa.metrics.cka import cka_flops, cka_matrix_from_batches, linear_cka
from hrsa.metrics.dimwise import dimwise_correlation
from hrsa.metrics.manifold import (
    twonn_dimension,
    twonn_dimension_of,
    twonn_from_ratios,
    twonn_ratios,
    twonn_ratios_of,
)
from hrsa.metrics.neighbours import (
    jaccard_from_indices,
    jaccard_per_row,
    knn_jaccard,
    knn_jaccard_per_row,
    retention_from_indices,
    retention_per_row,
)
from hrsa.metrics.probe import probe_predictions, probe_transfer
from hrsa.metrics.procrustes import procrustes
from hrsa.metrics.registry import (
    INVARIANCES,
    NEEDS,
    REGISTRY,
    Metric,
    get_metric,
    graph_k,
    knn_metrics,
    registry_for,
)
from hrsa.metrics.streaming import StreamingPairStats

__all__ = [
    "INVARIANCES", "NEEDS", "REGISTRY", "Metric", "StreamingPairStats", "cka_flops", "cka_matrix_from_batches",
    "dimwise_correlation", "get_metric", "graph_k", "jaccard_from_indices", "jaccard_per_row", "knn_jaccard",
    "knn_jaccard_per_row", "knn_metrics", "linear_cka", "probe_predictions", "probe_transfer", "procrustes",
    "registry_for", "retention_from_indices", "retention_per_row", "twonn_dimension", "twonn_dimension_of",
    "twonn_from_ratios", "twonn_ratios", "twonn_ratios_of",
]
