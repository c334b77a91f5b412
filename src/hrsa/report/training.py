"""Training health in the report: which embedders learned (their training summaries, `hrsa.train.health`), a flag
beside Table 1, and the verdict inputs (equivalence, realignment) without the embedders that did not learn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hrsa.errors import DataError
from hrsa.grid.ids import parse_model_id

HEALTH_COLUMNS = ["model", "pair", "role", "seed", "steps", "first_loss", "last_loss", "chance_loss",
                  "accuracy_before", "accuracy_after", "heldout_rows", "learned"]
RULE_NOTE = ("learned: last loss <= 0.8 x first loss (means of the first and last k logged steps), last loss below "
             "chance ln(batch x (1 + hard negatives)), and held-out in-batch top-1 accuracy rose (records held out "
             "of training, the same for every embedder)")


def load_training(files: Sequence[Path]) -> pd.DataFrame:
    """One row per embedder's training summary (`results/embedders/{model}.training.json`)."""
    import json

    rows = []
    for path in map(Path, files):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pair, role, seed = parse_model_id(str(data["model"]))
            rows.append({**{k: data.get(k) for k in HEALTH_COLUMNS}, "pair": pair, "role": f"{role}-E",
                         "seed": seed, "learned": bool(data["learned"])})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"training summary {path} is unreadable ({exc}): rerun its train job") from None
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


def unlearned(health: pd.DataFrame) -> set[str]:
    """Model ids of the embedders whose summary says they did not learn."""
    return set() if health.empty else set(health.loc[~health.learned.astype(bool), "model"])


def _numbers(row: Any) -> str:
    def num(v: Any) -> str:
        return "n/a" if v is None or pd.isna(v) else f"{float(v):.2f}"
    return (f"s{row.seed}: loss {num(row.first_loss)}→{num(row.last_loss)} (chance {num(row.chance_loss)}), "
            f"top-1 {num(row.accuracy_before)}→{num(row.accuracy_after)}")


def drop_unlearned_scores(long_df: pd.DataFrame, bad: set[str]) -> pd.DataFrame:
    """Table 1's long scores without the embedders that did not learn (the equivalence test's input)."""
    if long_df.empty or not bad:
        return long_df
    ids = [f"{p}.{r}-E.s{int(s)}" for p, r, s in zip(long_df.pair, long_df.role, long_df.seed, strict=True)]
    return long_df[[m not in bad for m in ids]]


def drop_unlearned_comparisons(hr: pd.DataFrame, bad: set[str]) -> pd.DataFrame:
    """HRSA rows without any comparison one of whose sides did not learn (the realignment's input)."""
    if hr.empty or not bad:
        return hr
    return hr[~(hr.model_x.isin(bad) | hr.model_y.isin(bad))]


def training_column(display: pd.DataFrame, health: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed with a `training` column: `learned` or `NOT LEARNED` with each such seed's numbers."""
    if health.empty or display.empty or "model" not in display:
        return display
    marks = []
    for pair, role in zip(display.pair, display.model, strict=True):
        rows = health[(health.pair == pair) & (health.role == role)]
        bad = rows[~rows.learned.astype(bool)]
        if rows.empty:
            marks.append("")
        elif bad.empty:
            marks.append("learned")
        else:
            marks.append("NOT LEARNED (no verdict): " + "; ".join(_numbers(r) for r in bad.itertuples()))
    return display.assign(training=marks)


def verdict_notes(health: pd.DataFrame) -> list[str]:
    """Lines for the answer: which embedders the verdicts leave out, with their numbers."""
    bad = health[~health.learned.astype(bool)] if not health.empty else health
    lines = []
    for (pair, role), rows in bad.groupby(["pair", "role"], sort=True):
        lines.append(f"{pair} {role}: left out of every verdict (equivalence, realignment), did not learn — "
                     + "; ".join(_numbers(r) for r in rows.itertuples()))
    return lines


def add_training_health(rep: Any, health: pd.DataFrame) -> None:
    """Into an assembled report: Table 1's `training` column, the verdicts' note of what they leave out, and a
    training-health section with every embedder's numbers and the rule."""
    if health.empty:
        return
    sections = dict(rep.sections)
    for title, items in rep.sections:
        if title.startswith("Table 1"):
            items[:] = [(kind, training_column(v, health) if kind == "table" and "model" in getattr(v, "columns", [])
                         else v) for kind, v in items]
    notes = verdict_notes(health)
    if notes and "Answer" in sections:
        sections["Answer"].append(("list", notes))
    s = rep.section("Training health: did every embedder learn?")
    s.append(("text", f"Rule: {RULE_NOTE}. An embedder that did not learn is flagged in Table 1 and left out of the "
                      "equivalence tests and the realignment table."))
    shown = health.assign(**{c: health[c].map(lambda v: "" if v is None or pd.isna(v) else f"{float(v):.3f}")
                             for c in ("first_loss", "last_loss", "chance_loss", "accuracy_before",
                                       "accuracy_after")})
    s.append(("table", shown))
