"""Reading the report's inputs: evaluation results, HRSA tables, job records (Snakemake `benchmark:` TSVs) and
model provenance, and the hardware and packages of the machine that builds the report.

Only the files passed are read (the rule's declared inputs), so results of seeds, tasks or comparisons no longer in
the config cannot leak into the report.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hrsa import paths
from hrsa.errors import DataError
from hrsa.grid import parse_comparison, parse_model_id
from hrsa.io import package_versions

#: uncertainty columns an HRSA table may lack (older compare), filled as "not computed"
HRSA_EXTRA = {"ci_low": np.nan, "ci_high": np.nan, "null_mean": np.nan, "null_q95": np.nan, "se": np.nan,
              "bias": np.nan, "ci_method": "none", "resample_unit": "", "null_kind": "none", "flag": ""}


def load_evaluations(files: Sequence[Path]) -> pd.DataFrame:
    """One row per (embedder, task) from exactly these `{model}/{task}.json` files: pair, role, seed, task, score.

    Each file must be of the model its directory names (its own `model.name` is `hrsa/{model}`): a file of another
    model copied there is a DataError naming it and the evaluate job to re-run."""
    rows = []
    for path in map(Path, files):
        model, task = path.parent.name, path.stem
        redo = f"delete it and re-run the evaluate job of {model}"
        data = _read_json(path, "evaluation result", redo)
        stamp = data.get("model")
        named = stamp.get("name") if isinstance(stamp, dict) else None
        if named != f"hrsa/{model}":
            raise DataError(f"evaluation result {path} holds scores of model {named!r}, not 'hrsa/{model}' (its "
                            f"directory's model); {redo}")
        entry = data.get("results", data).get(task)
        if entry is None:
            continue
        pair, role, seed = parse_model_id(model)
        rows.append({"pair": pair, "role": role, "seed": seed, "task": task, "score": float(entry["main_score"]),
                     "score_name": entry.get("main_score_name", "")})
    return pd.DataFrame(rows, columns=["pair", "role", "seed", "task", "score", "score_name"])


def load_hrsa(files: Sequence[Path]) -> pd.DataFrame:
    """Exactly these `{probe}/{comparison}.parquet` HRSA tables, with probe, pair, kind (seed stripped), seed and
    the models compared; uncertainty columns a table lacks (older compare) are filled as 'not computed'. A table whose
    own `comparison` column names another comparison than its file (copied over it) is a DataError naming it."""
    frames = []
    for path in map(Path, files):
        redo = f"delete it and re-run its compare job ({path.stem} on probe {path.parent.name})"
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise DataError(f"HRSA table {path} is not a readable Parquet file ({exc}): {redo}") from None
        c = parse_comparison(path.stem)
        stamped = sorted(map(str, df["comparison"].unique())) if "comparison" in df else []
        if stamped != [path.stem]:  # the table's own column names its comparison; the file name must agree
            raise DataError(f"HRSA table {path} holds rows of comparison {', '.join(stamped) or 'none'}, not "
                            f"{path.stem}; {redo}")
        # a noise floor (two seeds of one recipe) is keyed by its left seed; its kind names it (`X-E~X-E`)
        df = _layer_names(df)
        df = df.assign(probe=path.parent.name, comparison=path.stem, pair=c.pair, kind=c.kind,
                       seed=-1 if c.seed is None else c.seed, model_x=c.model("left"), model_y=c.model("right"))
        for col, fill in HRSA_EXTRA.items():
            if col not in df:
                df[col] = fill
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _layer_names(df: pd.DataFrame) -> pd.DataFrame:
    """The table's layers as the report's layer names (`0`..`L`, `pooled`): compare writes int64 `layer_x`/`layer_y`
    (-1 = pooled) beside `layer_x_name`/`layer_y_name`; an older table holds the names in `layer_x`/`layer_y`."""
    for side in ("x", "y"):
        name = f"layer_{side}_name"
        df[f"layer_{side}"] = (df[name] if name in df else df[f"layer_{side}"]).astype(str)
    return df.drop(columns=[c for c in ("layer_x_name", "layer_y_name") if c in df])


def read_benchmarks(files: Sequence[Path]) -> pd.DataFrame:
    """Snakemake `benchmark:` TSVs: one row per job (job = path below results/benchmarks/), wall s, peak RSS (MB)."""
    rows = []
    for path in map(Path, files):
        df = pd.read_csv(path, sep="\t")
        if df.empty:
            continue
        rec = df.iloc[-1]
        job = str(path.with_suffix("")).split(paths.BENCH_ROOT, 1)[-1]
        rows.append({"job": job, "rule": job.split("/", 1)[0], "wall_s": float(rec.get("s", math.nan)),
                     "max_rss_mb": float(rec.get("max_rss", math.nan)),
                     "cpu_time_s": float(rec.get("cpu_time", math.nan)),
                     "mean_load": float(rec.get("mean_load", math.nan))})
    return pd.DataFrame(rows, columns=["job", "rule", "wall_s", "max_rss_mb", "cpu_time_s", "mean_load"])


def read_provenance(files: Sequence[Path]) -> pd.DataFrame:
    """Per model directory's provenance.json: the model, the device it ran on, its hardware record (when provenance
    holds one), whether a health check flagged it as not learned (`not_learned`: the provenance key of that name, true
    or a reason; absent: False) and its package versions."""
    rows = []
    for path in map(Path, files):
        file = path / "provenance.json" if path.is_dir() else path
        if not file.is_file():
            raise DataError(f"{file} is missing: rerun the job that builds {path}")
        prov = _read_json(file, "provenance file", f"rerun the job that builds {path}")
        params = prov.get("params") or {}
        hw = prov.get("hardware") or {}
        rows.append({"model": file.parent.name, "device": str(params.get("device", "")),
                     "hardware": ", ".join(f"{k}={v}" for k, v in sorted(hw.items())) if hw else "not recorded",
                     "not_learned": prov.get("not_learned") or False,
                     **{f"pkg:{k}": v for k, v in (prov.get("packages") or {}).items()}})
    return pd.DataFrame(rows)


def probe_chance(files: Sequence[Path]) -> dict[str, float]:
    """Per labelled probe set (`{probe}.jsonl`, one JSON record per line with `label`): the share of its most frequent
    label, the accuracy of always guessing it (the chance line of probe transfer). Unlabelled sets are left out."""
    out = {}
    for path in map(Path, files):
        try:
            labels = [json.loads(line).get("label") for line in path.read_text(encoding="utf-8").splitlines() if line]
        except (OSError, ValueError, AttributeError) as exc:
            raise DataError(f"probe set {path} is unreadable ({exc}): rerun its prepare_probe job") from None
        labels = [lab for lab in labels if lab is not None]
        if labels:
            out[path.stem] = float(pd.Series(labels).value_counts().iloc[0] / len(labels))
    return out


def _read_json(path: Path, what: str, fix: str) -> dict:
    """A JSON object file; a truncated, non-UTF-8 or non-object file is a DataError naming it and the fix."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{what} {path} is truncated or unreadable ({exc}): {fix}") from None
    if not isinstance(data, dict):
        raise DataError(f"{what} {path} is not a JSON object: {fix}")
    return data


def report_host() -> dict[str, str]:
    """Hardware and packages of the machine that built this report."""
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": str(os.cpu_count()), **{f"pkg:{k}": v for k, v in package_versions().items()}}
