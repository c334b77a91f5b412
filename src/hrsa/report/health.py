"""Sibling health beside Table 1: does each sibling reason better than its base (greedy pass@1 per problem set, and
the gain), and how far did its weights move (relative weight change)? Read from results/health/{pair}.{role}.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hrsa.errors import DataError

HEALTH_NOTE = ("greedy pass@1 (one greedy completion per problem, the first `problems` of each set; arithmetic "
               "checked by its first integer, maths sets by math-verify); gain = pass@1(sibling) - pass@1(base) on "
               "the same problems; weight change = ||θ_sibling - θ_base|| / ||θ_base||. Descriptive: no resampling "
               "unit, interval or null (one run per model; a binomial SE is sqrt(p(1-p)/n))")
COLUMNS = ["pair", "role", "set", "n", "pass_at_1", "base_pass_at_1", "gain", "weight_change", "checker"]


def load_health(files: Sequence[Path]) -> pd.DataFrame:
    """One row per (pair, role, set) from exactly these `{pair}.{role}.json` health files."""
    rows = []
    for path in map(Path, files):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"health file {path} is not readable JSON ({exc}): re-run its sibling_health job") from None
        pair, _, role = path.stem.partition(".")
        for name, entry in data.get("sets", {}).items():
            rows.append({"pair": pair, "role": role, "set": name, "n": entry["n"], "pass_at_1": entry["pass_at_1"],
                         "base_pass_at_1": entry.get("base_pass_at_1"), "gain": entry.get("gain"),
                         "weight_change": data.get("weight_change"), "checker": entry.get("checker", "")})
    return pd.DataFrame(rows, columns=COLUMNS)
