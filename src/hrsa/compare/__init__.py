"""HRSA of one comparison on one probe set: plan (settings, metrics from the registry, replicates), stream (the one
pass over activations, compare()), rows (output rows per metric family, the Parquet table, the Procrustes map)."""

from hrsa.compare.plan import BATCH_BYTES, Replicates, interval_layers, plan_metrics, probe_labels, settings_of
from hrsa.compare.rows import COLUMNS, NULL_PERM, NULL_RV, load_procrustes_map, save_procrustes_map, write_rows
from hrsa.compare.stream import aligned_batches, cka_grid, compare

__all__ = [
    "BATCH_BYTES", "COLUMNS", "NULL_PERM", "NULL_RV", "Replicates", "aligned_batches", "cka_grid", "compare",
    "interval_layers", "load_procrustes_map", "plan_metrics", "probe_labels", "save_procrustes_map", "settings_of",
    "write_rows",
]
