"""Rendering: the Report (its sections rendered as Markdown and as one self-contained HTML page) and the
formatting of its tables."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import numpy as np
import pandas as pd


def fmt(mean: float, std: float, digits: int = 2) -> str:
    """`mean ± std` (a dash for no mean, the mean alone for no std)."""
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f}" if not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats to 4 significant digits, NaN as a dash)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def table1_display(t1: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed: mean ± std over seeds (×100) and Δ to base-E."""
    return pd.DataFrame({
        "pair": t1.pair, "benchmark": t1.benchmark, "model": t1.role, "seeds": t1.n_seeds,
        "Mean(Task)": [fmt(m, s) for m, s in zip(t1.mean_task, t1.std_task, strict=True)],
        "Mean(Type)": [fmt(m, s) for m, s in zip(t1.mean_type, t1.std_type, strict=True)],
        "Δ Mean(Task)": [fmt(m, s) if r != "base-E" else "" for m, s, r in
                         zip(t1.delta_task, t1.delta_task_std, t1.role, strict=True)],
        "Δ Mean(Type)": [fmt(m, s) if r != "base-E" else "" for m, s, r in
                         zip(t1.delta_type, t1.delta_type_std, t1.role, strict=True)],
        "tasks": [f"{n}" + ("" if c else f" (missing: {m})") for n, c, m in
                  zip(t1.n_tasks, t1.complete, t1.missing, strict=True)],
    })


class Report:
    """Everything the report shows, computed once from the inputs; rendered as Markdown and as one HTML page."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, list[tuple[str, Any]]]] = []

    def section(self, title: str) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        self.sections.append((title, items))
        return items

    def markdown(self, title: str) -> str:
        parts = [f"# {title}", ""]
        for head, items in self.sections:
            parts += [f"## {head}", ""]
            for kind, value in items:
                if kind == "text":
                    parts += [value, ""]
                elif kind == "list":
                    parts += [f"- {v}" for v in value] + [""]
                elif kind == "table":
                    parts += [markdown_table(value), ""]
                elif kind == "figure":
                    parts += [f"![{value.name}](figures/{value.name})", ""]
                elif kind == "code":
                    parts += ["```", value, "```", ""]
        return "\n".join(parts)

    def html(self, title: str) -> str:
        esc = html.escape
        body = [f"<h1>{esc(title)}</h1>"]
        for head, items in self.sections:
            body.append(f"<h2>{esc(head)}</h2>")
            for kind, value in items:
                if kind == "text":
                    body.append(f"<p>{esc(value)}</p>")
                elif kind == "list":
                    body.append("<ul>" + "".join(f"<li>{esc(v)}</li>" for v in value) + "</ul>")
                elif kind == "table":
                    body.append(value.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}",
                                              classes="t", border=0))
                elif kind == "figure":
                    data = base64.b64encode(value.read_bytes()).decode()
                    body.append(f'<figure><img alt="{esc(value.name)}" src="data:image/png;base64,{data}">'
                                f"<figcaption>{esc(value.name)}</figcaption></figure>")
                elif kind == "code":
                    body.append(f"<pre>{esc(value)}</pre>")
        style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table.t{border-collapse:collapse;"
                 "font-size:12px}table.t td,table.t th{border:1px solid #999;padding:2px 6px}img{max-width:100%}")
        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
