"""HRSA tables per layer: the seed summary of every diagonal entry, TwoNN intrinsic dimension per model role, and the
layer order, metric names and siblings that tables, realignment and figures share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hrsa.grid import parse_model_id


def layer_key(layer: str) -> tuple[int, int]:
    """Sort key of a layer name: numbered layers in order, then `pooled`."""
    return (1, 0) if layer == "pooled" else (0, int(layer))


def last_layer(layers: Sequence[str]) -> str | None:
    """The deepest numbered layer (None when there is none)."""
    numbered = [x for x in layers if x.isdigit()]
    return max(numbered, key=int) if numbered else None


def knn_metrics(tab: pd.DataFrame) -> list[str]:
    """The kNN Jaccard metrics of a table, by k."""
    names = {m for m in tab.metric if m.startswith("knn-jaccard-k")}
    return sorted(names, key=lambda m: int(m.split("-k")[1].split("-")[0]))


def siblings(tab: pd.DataFrame) -> list[str]:
    """The siblings (reason, sft) a table compares with base, as backbones or as embedders."""
    kinds = set(tab.kind)
    return [s for s in ("reason", "sft") if f"base~{s}" in kinds or f"base-E~{s}-E" in kinds]


def _join(values: pd.Series) -> str:
    return ";".join(sorted({str(v) for v in values if isinstance(v, str) and v}))


def hrsa_table(hr: pd.DataFrame) -> pd.DataFrame:
    """Per probe, pair, comparison kind, layer and metric (diagonal entries): mean ± std over seeds; ci_low/ci_high
    the envelope of the per-seed bootstrap intervals; null_mean/null_q95 and se averaged over seeds; the interval
    method, resampling unit, null kind and flags of the rows."""
    if hr.empty:
        return pd.DataFrame()
    diag = hr[hr.layer_x == hr.layer_y]
    g = diag.groupby(["probe", "pair", "kind", "layer_x", "metric"], sort=False)
    out = g["value"].agg(["mean", "std", "count"]).reset_index().rename(columns={"layer_x": "layer"})
    out["ci_low"], out["ci_high"] = g["ci_low"].min().to_numpy(), g["ci_high"].max().to_numpy()
    for col in ("null_mean", "null_q95", "se"):
        out[col] = g[col].mean().to_numpy()
    for col in ("ci_method", "resample_unit", "null_kind", "flag"):
        out[col] = g[col].agg(_join).to_numpy()
    return out


def intrinsic_dimension(hr: pd.DataFrame) -> pd.DataFrame:
    """TwoNN intrinsic dimension per probe, model role and layer: each model's value once (it appears in several
    comparisons), then mean ± std over seeds for embedders; `flag` joins the flags of the rows (e.g. duplicate-rows:
    a degenerate estimate, not a finding)."""
    if hr.empty:
        return pd.DataFrame()
    diag = hr[(hr.layer_x == hr.layer_y) & hr.metric.isin(["twonn-id-left", "twonn-id-right"])]
    if diag.empty:
        return pd.DataFrame()
    model = np.where(diag.metric == "twonn-id-left", diag.model_x, diag.model_y)
    one = diag.assign(model=model).drop_duplicates(["probe", "model", "layer_x"])
    ids = [parse_model_id(m) for m in one.model]
    one = one.assign(role=[f"{r}-E" if s is not None else r for _, r, s in ids])
    g = one.groupby(["probe", "pair", "role", "layer_x"], sort=False)
    out = g["value"].agg(["mean", "std", "count"]).reset_index().rename(columns={"layer_x": "layer"})
    out["flag"] = g["flag"].agg(_join).to_numpy() if "flag" in one else ""
    return out


def degenerate(flags: pd.Series) -> pd.Series:
    """Whether each joined flag string marks an estimate that is an artefact, not a finding (duplicate rows)."""
    from hrsa.metrics.manifold import DUPLICATE_FLAG

    return flags.fillna("").astype(str).str.split(";").map(lambda fs: DUPLICATE_FLAG in fs)
