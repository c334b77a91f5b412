"""The study's answer from HRSA tables and mteb results: Table 1 with equivalence tests and verdicts, the HRSA figures,
the manifold-realignment summary with one generated sentence per pair, and what was run.

Modules: load (inputs), layers (HRSA tables per layer), inference (Table 1, TOST, verdicts), realignment (before/after
and the per-pair sentences), figures (all plotting; the only one importing matplotlib), records (which job records and
provenance files are read), render (Markdown/HTML), build (build_report).
"""

from hrsa.report.build import build_report, settings_of
from hrsa.report.inference import equivalence, verdict_lines
from hrsa.report.realignment import realignment
from hrsa.report.records import grid_records, grid_summary, run_inputs

__all__ = ["build_report", "equivalence", "grid_records", "grid_summary", "realignment", "run_inputs", "settings_of",
           "verdict_lines"]
