"""Manifold realignment: how contrastive training changed the similarity of base and each sibling (before: the
backbones, after: the embedders), set against the same-recipe noise floor, and one generated sentence per pair."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hrsa.report.layers import last_layer

#: metrics whose smaller value means "more similar" (the rest: larger is more similar)
LOWER_IS_SIMILAR = ("procrustes-rvr", "twonn-id-absdiff")


def _lower_is_similar(metric: str) -> bool:
    return metric.startswith(LOWER_IS_SIMILAR)


def _side(rows: pd.DataFrame | None, layers: Sequence[str]) -> dict[str, Any] | None:
    """Per-seed values and bootstrap SEs of one comparison kind's rows of one metric, averaged over `layers`."""
    if rows is None:
        return None
    sub = rows[rows.layer_x.isin(layers)]
    if sub.empty or sub.groupby("seed").size().min() != len(layers):
        return None
    per_seed = sub.groupby("seed").agg(value=("value", "mean"), se=("se", "mean"))  # se: mean over layers
    return {"values": per_seed["value"].to_numpy(), "se": per_seed["se"].to_numpy()}


def _combined_se(*sides: dict[str, Any]) -> float:
    """SE of a difference of seed means: seed-to-seed spread / √S of each side plus its mean block-bootstrap SE,
    sides treated as independent."""
    var, known = 0.0, False
    for s in sides:
        v, se = s["values"], s["se"]
        if len(v) > 1:
            var += float(np.var(v, ddof=1)) / len(v)
            known = True
        if np.isfinite(se).any():
            var += float(np.nanmean(se**2))
            known = True
    return math.sqrt(var) if known else math.nan


REALIGN_UNIT = "seeds (embedder side) and probe texts (block bootstrap SE of every side)"
REALIGN_METHOD = ("normal 95% interval; SE² = Σ_sides (seed variance / S + mean bootstrap SE²), sides independent; "
                  "layer average: per-layer SEs averaged (full correlation across layers, conservative)")
REALIGN_NULL = "no change (after - before = 0); floor: after - noise floor = 0"


def realignment(hr: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per probe, pair, sibling and metric: similarity(base-E, X-E) - similarity(base, X) at the last layer and
    averaged over the shared numbered layers, and the embedders set against the same-recipe noise floor
    (X-E~X-E over seed pairs of base-E and X-E); `closer` is the change in the metric's "more similar" direction."""
    rows = []
    if hr.empty:
        return pd.DataFrame()
    diag = hr[(hr.layer_x == hr.layer_y) & hr.metric.isin(metrics)]
    by = {k: g for k, g in diag.groupby(["probe", "pair", "kind", "metric"], sort=False)}
    for probe, pair in sorted({(k[0], k[1]) for k in by}):
        for sib in ("reason", "sft"):
            floors = ("base-E~base-E", f"{sib}-E~{sib}-E")
            for metric in metrics:
                before = by.get((probe, pair, f"base~{sib}", metric))
                after = by.get((probe, pair, f"base-E~{sib}-E", metric))
                if before is None or after is None:
                    continue
                shared = sorted((x for x in set(before.layer_x) & set(after.layer_x) if x.isdigit()), key=int)
                last = last_layer(shared)
                if last is None:
                    continue
                sides = (before, after, [by.get((probe, pair, k, metric)) for k in floors])
                for scope, layers in (("last layer", [last]), ("layer average", shared)):
                    rows.append(_realign_row(sides, probe, pair, sib, metric, scope, layers))
    return pd.DataFrame([r for r in rows if r is not None])


def _realign_row(sides: tuple[pd.DataFrame, pd.DataFrame, list[pd.DataFrame | None]], probe: str, pair: str,
                 sib: str, metric: str, scope: str, layers: list[str]) -> dict[str, Any] | None:
    before, after = _side(sides[0], layers), _side(sides[1], layers)
    if before is None or after is None:
        return None
    sign = -1.0 if _lower_is_similar(metric) else 1.0
    b, a = float(before["values"].mean()), float(after["values"].mean())
    se = _combined_se(before, after)
    row = {"probe": probe, "pair": pair, "sibling": sib, "metric": metric, "scope": scope,
           "layers": ",".join(layers), "before": b, "after": a, "n_seeds": len(after["values"]),
           "delta": a - b, "delta_low": a - b - 1.96 * se, "delta_high": a - b + 1.96 * se, "closer": sign * (a - b),
           "floor": math.nan, "gap": math.nan, "gap_low": math.nan, "gap_high": math.nan, "within_floor": None}
    fl = [s for s in (_side(f, layers) for f in sides[2]) if s is not None]
    if fl:
        floor = {"values": np.concatenate([s["values"] for s in fl]), "se": np.concatenate([s["se"] for s in fl])}
        f = float(floor["values"].mean())
        gse = _combined_se(after, floor)
        # within the floor: the embedders are not detectably less similar than two seeds of one recipe
        within = bool(sign * (a - f) + 1.96 * gse >= 0) if np.isfinite(gse) else bool(sign * (a - f) >= 0)
        row.update(floor=f, gap=a - f, gap_low=a - f - 1.96 * gse, gap_high=a - f + 1.96 * gse, within_floor=within)
    row.update(unit=REALIGN_UNIT, method=REALIGN_METHOD, null=REALIGN_NULL)
    return row

