"""What one comparison computes and how it is cut up: its settings (the `hrsa:` slice, keys it leaves out from the
schema), the metrics planned from the registry's declarations (family, needs), the bootstrap's block weightings, the
layers that get Procrustes intervals, and the layer groups whose block sums fit in memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.data import read_jsonl
from hrsa.errors import HrsaError
from hrsa.schema import with_defaults

#: bytes of one streamed batch over all layer files of both models
BATCH_BYTES = 256 << 20


def settings_of(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `hrsa:` slice with every key it leaves out taken from the schema (the one source of defaults)."""
    return with_defaults("hrsa", settings)


@dataclass
class Replicates:
    """Block weightings of one job: the point estimate (all ones), bootstrap replicates and jackknife groups."""

    n_blocks: int
    boot: np.ndarray  # R x B counts
    jack: np.ndarray  # G x B

    def stacked(self, with_intervals: bool) -> np.ndarray:
        one = np.ones((1, self.n_blocks))
        return np.vstack([one, self.boot, self.jack]) if with_intervals and len(self.boot) else one

    def split(self, values: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        v = np.asarray(values, dtype=np.float64).ravel()
        r = len(self.boot)
        return float(v[0]), v[1:1 + r], v[1 + r:]


def plan_metrics(ks: list[int], have: set[str]) -> tuple[list[Any], list[tuple[str, str]]]:
    """(metrics to run, [(metric, reason) not run]) from the registry's declared needs."""
    from hrsa.metrics import registry_for

    run, skipped = [], []
    for m in registry_for(ks).values():
        missing = sorted(m.needs - have)
        if missing:
            skipped.append((m.name, f"needs {', '.join(missing)}"))
        else:
            run.append(m)
    return run, skipped


def interval_layers(requested: list[str], layers: list[str]) -> set[str]:
    """Layers whose Procrustes intervals are computed: names, `last` (the deepest numbered layer) or `all`."""
    numbered = [layer for layer in layers if layer.isdigit()]
    out: set[str] = set()
    for name in requested:
        if name == "all":
            out.update(layers)
        elif name == "last":
            out.add(max(numbered, key=int) if numbered else layers[-1])
        elif name in layers:
            out.add(name)
        else:
            raise HrsaError(f"hrsa.procrustes_intervals names layer {name!r}, which these activations lack "
                            f"(layers: {', '.join(layers)}); use layer names, 'last' or 'all'")
    return out


def layer_groups(widths: list[tuple[int, int]], n_blocks: int, procrustes: set[int], budget: float) -> list[list[int]]:
    """Consecutive layer groups whose block sums fit in `budget` bytes (at least one layer per group). A layer that
    alone exceeds the budget still streams alone, and the log says so (the job's memory request may not hold it)."""
    from hrsa.metrics.blocks import PairBlocks

    groups: list[list[int]] = [[]]
    used = 0
    for li, (dx, dy) in enumerate(widths):
        size = PairBlocks.nbytes(dx, dy, n_blocks, li in procrustes)
        if size > budget:
            print(f"layer index {li}: its block sums need {size / 2**30:.2f} GiB (widths {dx} x {dy}, {n_blocks} "
                  f"blocks), over hrsa.max_accumulator_gb ({budget / 2**30:g} GiB): it streams alone; raise "
                  "hrsa.max_accumulator_gb (the job's memory follows) or lower hrsa.blocks", flush=True)
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(li)
        used += size
    return groups


def probe_labels(probe_path: Path, text_ids: np.ndarray) -> np.ndarray | None:
    """Labels of the rows (by text id), or None when the probe set has none."""
    rows = list(read_jsonl(probe_path))
    by_id = {int(r.get("id", i)): r.get("label") for i, r in enumerate(rows)}
    labels = [by_id.get(int(t)) for t in text_ids]
    if any(lab is None for lab in labels):
        return None
    return np.asarray(labels)
