"""The study's answer from HRSA tables and mteb results: the answer in plain words, Table 1 with equivalence tests and
verdicts, the manifold-realignment summary, the HRSA and training figures, and what was run.

Modules: load (inputs), layers (HRSA tables per layer), inference (Table 1, TOST, verdicts), realignment
(before/after), answer (the answer per pair and the plumbing banner), context (Context, Figure), figures,
figures_maps and figures_more (all plotting; the only ones importing matplotlib), records (which job records and
provenance files are read), render (Markdown/HTML, table formatting), sections (SECTIONS: the report in reading order),
build (FIGURES, build_report).
"""

from hrsa.report.build import FIGURES, build_context, build_report, settings_of
from hrsa.report.inference import equivalence, verdict_lines
from hrsa.report.realignment import realignment
from hrsa.report.records import grid_records, grid_summary, run_inputs
from hrsa.report.sections import SECTIONS

__all__ = ["FIGURES", "SECTIONS", "build_context", "build_report", "equivalence", "grid_records", "grid_summary",
           "realignment", "run_inputs", "settings_of", "verdict_lines"]
