"""Job sizing: a pair's parameter count, which scales the memory and runtime requests of its jobs (`resources:`)."""

from __future__ import annotations

from typing import Any

from hrsa.grid.shapes import Shape

#: fixed `resources:` of the local rules (they run in the submitting process, whatever the pair's size): mem_mb and
#: runtime in minutes; bench/rehearsal.py prints them beside what those jobs took
LOCAL_RESOURCES: dict[str, dict[str, int]] = {
    "prepare_training_data": {"mem_mb": 2000, "runtime": 30},
    "prepare_probe": {"mem_mb": 2000, "runtime": 30},
    "download": {"mem_mb": 4000, "runtime": 600},  # the login node fetches every model and dataset once
    "report": {"mem_mb": 4000, "runtime": 30},
    "hrsa_figures": {"mem_mb": 2000, "runtime": 10},
}


def params_b(given: Any, base: Shape) -> float:
    """Parameters of a pair's models in billions, for sizing jobs: `params_b` if given, else estimated from the
    base's depth L, width d, MLP width f and vocabulary V as read at DAG time (L (4d^2 + 3df) + Vd), else 1."""
    if given:
        return float(given)
    if not base.depth or not base.width:
        return 1.0
    mlp, vocab = base.mlp or 4 * base.width, base.vocab or 0
    return (base.depth * (4 * base.width**2 + 3 * base.width * mlp) + vocab * base.width) / 1e9
