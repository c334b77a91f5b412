"""What every section and figure of the report reads: the computed tables (Context) and a drawn figure with its
caption (Figure). Sections (hrsa.report.sections.SECTIONS) and figures (hrsa.report.build.FIGURES) are lists of
functions of a Context, so a new table or figure is one function appended to a list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Figure:
    """A saved figure (its PNG; the PDF and the plotted values' TSV share the stem) and its caption, which names
    what is plotted, the probe set, the layer, the interval method and the null."""

    path: Path
    caption: str


@dataclass
class Context:
    """Everything the report shows, computed once from exactly the given files."""

    settings: Mapping[str, Any]  # the config's report: block, schema defaults filled in
    grid: Mapping[str, Any]  # grid_summary of the study config
    ev: pd.DataFrame  # one row per (embedder, task) score
    hr: pd.DataFrame  # every HRSA row
    tab: pd.DataFrame  # HRSA diagonal per layer, summarised over seeds
    emb: pd.DataFrame  # per-task scores, mean ± std over seeds
    long_df: pd.DataFrame  # Table 1's long scores (×100)
    t1: pd.DataFrame
    t1_note: str
    eq: pd.DataFrame
    real: pd.DataFrame
    ids: pd.DataFrame
    jobs: pd.DataFrame
    prov: pd.DataFrame  # one row per built model: model, device, hardware, not_learned, packages
    task_benchmarks: Mapping[str, str | None]
    task_members: Mapping[str, list[str | None]] = field(default_factory=dict)  # task -> every benchmark counting it
    health: pd.DataFrame = field(default_factory=pd.DataFrame)  # sibling health (pass@1, weight change) per role
    training: pd.DataFrame = field(default_factory=pd.DataFrame)  # embedders' training summaries (learned or not)
    drift: pd.DataFrame = field(default_factory=pd.DataFrame)  # headline metrics against the RL step
    model_dirs: list[Path] = field(default_factory=list)  # directories of built models (train_log.jsonl, curves)
    procrustes_maps: list[Path] = field(default_factory=list)
    chance: dict[str, float] = field(default_factory=dict)  # per probe set: majority-class share of its labels
    missing_records: list[Path] = field(default_factory=list)
    figures: dict[str, list[Figure]] = field(default_factory=dict)  # by heading, FIGURES order (build_report)

    @classmethod
    def of(cls, **given: Any) -> Context:
        """A Context holding the given tables and empty ones elsewhere (to draw one figure from its table)."""
        empty = {f: pd.DataFrame() for f in ("ev", "hr", "tab", "emb", "long_df", "t1", "eq", "real", "ids", "jobs",
                                             "prov")}
        return cls(**{"settings": {}, "grid": {}, "t1_note": "", "task_benchmarks": {}, **empty, **given})
