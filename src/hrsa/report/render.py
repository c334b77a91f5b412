"""Rendering: the Report (its sections rendered as Markdown and as one self-contained HTML page) and the
formatting of its tables: three significant digits, ✓/✗ for booleans, a dash for a missing value."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import numpy as np
import pandas as pd

from hrsa.aggregate import NO_BENCHMARK

YES, NO = "✓", "✗"


def decimals(x: float, digits: int = 3) -> int:
    """Decimal places that show `digits` significant digits of x (none for large numbers)."""
    if not np.isfinite(x) or x == 0:
        return digits - 1
    return max(0, digits - 1 - math.floor(math.log10(abs(x))))


def sig(x: Any, digits: int = 3, sign: bool = False) -> str:
    """A number to `digits` significant digits without an exponent (a dash for none or NaN)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    x = float(x)
    return f"{x:{'+' if sign else ''}.{decimals(x, digits)}f}"


def fmt(mean: float, std: float, digits: int = 3, sign: bool = False) -> str:
    """`mean ± std`, both to the decimals that give the larger of |mean| and std `digits` significant digits (so a
    small Δ with a larger spread shows the spread's precision); a dash for no mean, the mean alone for no std."""
    if not np.isfinite(mean):
        return "–"
    if not np.isfinite(std):
        return sig(mean, digits, sign)
    d = decimals(max(abs(mean), std), digits)
    return f"{mean:{'+' if sign else ''}.{d}f} ± {std:.{d}f}"


def benchmark_name(bench: str, tasks: list[str]) -> str:
    """A benchmark as tables print it: its mteb name, or for tasks outside any benchmark (aggregate's NO_BENCHMARK)
    the tasks themselves."""
    if bench != NO_BENCHMARK:
        return bench
    shown = ", ".join(tasks[:3]) + (f" +{len(tasks) - 3} more" if len(tasks) > 3 else "")
    return f"own task list ({shown})" if tasks else "own task list"


def cell(v: Any) -> str:
    """One table cell as shown: booleans ✓/✗, floats to three significant digits, NaN/None a dash."""
    if isinstance(v, bool | np.bool_):
        return YES if v else NO
    if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
        return "–"
    if isinstance(v, float | np.floating):
        return sig(float(v))
    return str(v)


def scannable(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell of a table as the reader sees it (cell)."""
    return df.astype(object).map(cell) if not df.empty else df


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (cells as `cell` shows them)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(cell(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def table1_display(t1: pd.DataFrame, task_benchmarks: dict[str, str | None] | None = None) -> pd.DataFrame:
    """Table 1 as printed: mean ± std over seeds (×100, three significant digits) and Δ to base-E."""
    tasks: dict[str, list[str]] = {}
    for task, bench in (task_benchmarks or {}).items():
        tasks.setdefault(bench or NO_BENCHMARK, []).append(task)
    return pd.DataFrame({
        "pair": t1.pair, "benchmark": [benchmark_name(b, tasks.get(b, [])) for b in t1.benchmark],
        "model": t1.role, "seeds": t1.n_seeds,
        "Mean(Task)": [fmt(m, s) for m, s in zip(t1.mean_task, t1.std_task, strict=True)],
        "Mean(Type)": [fmt(m, s) for m, s in zip(t1.mean_type, t1.std_type, strict=True)],
        "Δ Mean(Task)": [fmt(m, s, sign=True) if r != "base-E" else "" for m, s, r in
                         zip(t1.delta_task, t1.delta_task_std, t1.role, strict=True)],
        "Δ Mean(Type)": [fmt(m, s, sign=True) if r != "base-E" else "" for m, s, r in
                         zip(t1.delta_type, t1.delta_type_std, t1.role, strict=True)],
        "tasks": [f"{n}" + ("" if c else f" (missing: {m})") for n, c, m in
                  zip(t1.n_tasks, t1.complete, t1.missing, strict=True)],
    })


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto;line-height:1.4}table.t{border-collapse:collapse;"
         "font-size:13px}table.t td,table.t th{border:1px solid #999;padding:2px 6px;text-align:right}"
         "img{max-width:100%}figure{margin:1em 0 2em 0}figcaption{font-size:14px;color:#333;max-width:900px}"
         "p.answer{font-size:17px}div.banner{background:#fff3cd;border:2px solid #e69f00;padding:8px 12px;"
         "font-weight:bold}")


class Report:
    """Everything the report shows, computed once from the inputs; rendered as Markdown and as one HTML page.
    Item kinds: text, answer (a paragraph of the answer), banner, list, table, subhead, figure (a Figure), code."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, list[tuple[str, Any]]]] = []

    def section(self, title: str) -> list[tuple[str, Any]]:
        """The items of the section titled `title`: a new one at the end, or the existing one to add to (so that a
        later SECTIONS function can put a table beside Table 1 without a second heading)."""
        for existing, items in self.sections:
            if existing == title:
                return items
        items = []
        self.sections.append((title, items))
        return items

    def markdown(self, title: str) -> str:
        parts = [f"# {title}", ""]
        for head, items in self.sections:
            parts += [f"## {head}", ""]
            for kind, value in items:
                if kind in ("text", "answer"):
                    parts += [value, ""]
                elif kind == "banner":
                    parts += [f"> **{value}**", ""]
                elif kind == "subhead":
                    parts += [f"### {value}", ""]
                elif kind == "list":
                    parts += [f"- {v}" for v in value] + [""]
                elif kind == "table":
                    parts += [markdown_table(value), ""]
                elif kind == "figure":
                    parts += [f"![{value.path.name}](figures/{value.path.name})", "", f"*{value.caption}*", ""]
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
                elif kind == "answer":
                    body.append(f'<p class="answer">{esc(value)}</p>')
                elif kind == "banner":
                    body.append(f'<div class="banner" role="note">{esc(value)}</div>')
                elif kind == "subhead":
                    body.append(f"<h3>{esc(value)}</h3>")
                elif kind == "list":
                    body.append("<ul>" + "".join(f"<li>{esc(v)}</li>" for v in value) + "</ul>")
                elif kind == "table":
                    body.append(scannable(value).to_html(index=False, na_rep="–", classes="t", border=0))
                elif kind == "figure":
                    data = base64.b64encode(value.path.read_bytes()).decode()
                    body.append(f'<figure><img alt="{esc(value.caption)}" src="data:image/png;base64,{data}">'
                                f"<figcaption>{esc(value.caption)}</figcaption></figure>")
                elif kind == "code":
                    body.append(f"<pre>{esc(value)}</pre>")
        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
                f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
