"""The answer in plain words, one short paragraph per pair (at most about 60 words): the benchmark verdicts first
(Δ with its 90% interval), then realignment in one sentence against the same-recipe noise floor, then where the
backbones differ; and the banner that marks a run as plumbing, not a finding."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from hrsa.aggregate import NO_BENCHMARK
from hrsa.metrics.registry import display_name
from hrsa.report.realignment import _lower_is_similar
from hrsa.report.render import benchmark_name, sig

PLUMBING = "Plumbing, not a finding"


def _verdicts(eq: pd.DataFrame, pair: str, primary: str, tasks: dict[str, list[str]]) -> str:
    v = eq[(eq.pair == pair) & (eq.measure == primary)] if not eq.empty else eq
    out = []
    for bench, g in (v.groupby("benchmark", sort=True) if not v.empty else []):
        parts = []
        for i, r in enumerate(g.sort_values("sibling").itertuples()):
            ci = f"{r.low90:+.2f} to {r.high90:+.2f}"
            said = {"equivalent": "is equivalent to", "different": "differs from"}.get(r.verdict, "is inconclusive vs")
            parts.append(f"{r.sibling} {said if i == 0 else said.rsplit(' ', 1)[0]}{' base-E' if i == 0 else ''} "
                         f"(Δ {r.delta:+.2f}{' points' if i == 0 else ''}, 90% CI {ci})")
        name = "the task list" if bench == NO_BENCHMARK else benchmark_name(str(bench), tasks.get(str(bench), []))
        out.append(f"On {name}, " + "; ".join(parts) + ".")
    return " ".join(out) or "No benchmark verdict: no evaluation results."


def _realigned(real: pd.DataFrame, pair: str) -> str:
    last = real[(real.pair == pair) & (real.scope == "last layer")].dropna(subset=["floor"]) if not real.empty \
        else real
    if last.empty:
        return "No noise floor to judge realignment against."
    counts = [(sib, int(g["within_floor"].astype(bool).sum()), len(g))
              for sib, g in last.groupby("sibling", sort=True)]
    first, *rest = counts
    more = "".join(f"; {s}-E: {k}/{n}" for s, k, n in rest)
    return (f"After training, {first[0]}-E is within seed noise of base-E on {first[1]}/{first[2]} last-layer "
            f"metrics{' (' + more[2:] + ')' if more else ''}.")


def _backbones(real: pd.DataFrame, pair: str) -> str:
    last = real[(real.pair == pair) & (real.scope == "last layer")].dropna(subset=["floor"]) if not real.empty \
        else real
    out = []
    for sib, g in (last.groupby("sibling", sort=True) if not last.empty else []):
        g = g.assign(ratio=[(f / b if _lower_is_similar(m) else b / f) if b and f else float("nan")
                            for m, b, f in zip(g.metric, g.before, g.floor, strict=True)]).dropna(subset=["ratio"])
        if g.empty:
            continue
        r = g.loc[g.ratio.idxmin()]
        out.append(f"{sib} in {display_name(r.metric)} ({sig(r.before)}, seed floor {sig(r.floor)})")
    return ("Backbones differ most: " + "; ".join(out) + ".") if out else ""


def pair_answers(ctx: Any) -> dict[str, str]:
    """{pair: its answer paragraph} from the equivalence tests and the realignment table of a Context."""
    primary = str(ctx.settings["primary_measure"])
    tasks: dict[str, list[str]] = {}
    for task, bench in ctx.task_benchmarks.items():
        tasks.setdefault(bench or NO_BENCHMARK, []).append(task)
    pairs = sorted(set(ctx.eq.get("pair", [])) | set(ctx.real.get("pair", [])))
    return {p: " ".join(s for s in (_verdicts(ctx.eq, p, primary, tasks), _realigned(ctx.real, p),
                                    _backbones(ctx.real, p)) if s) for p in pairs}


def banner(grid: Mapping[str, Any], prov: pd.DataFrame, not_learned: Iterable[str] = ()) -> str | None:
    """The warning above the answer when the numbers cannot answer the study's question: the run is the embedded
    default (backbones pretrained here from scratch on bundled text, or bundled probe sets), or a health check flagged
    a model as not learned (provenance key `not_learned`, or an embedder's training summary: `not_learned`, the
    embedders that did not learn). None when neither holds."""
    why = []
    scratch = sorted(m for m, spec in (grid.get("backbones") or {}).items()
                     if isinstance(spec, Mapping) and spec.get("recipe") == "pretrain")
    if scratch:
        why.append(f"the backbones are tiny models pretrained here on bundled text ({', '.join(scratch)})")
    builtin = [p.get("name") for p in (grid.get("config") or {}).get("probes", []) if isinstance(p, Mapping)
               and p.get("builtin")]
    if builtin:
        why.append(f"the probe sets are the bundled ones ({', '.join(map(str, builtin))})")
    if not prov.empty and "not_learned" in prov:
        flagged = prov[prov.not_learned.map(lambda v: bool(v) and str(v).lower() != "false")]
        if not flagged.empty:
            why.append("flagged as not learned: " + ", ".join(
                f"{m}" + (f" ({v})" if isinstance(v, str) else "") for m, v in zip(flagged.model, flagged.not_learned,
                                                                                  strict=True)))
    if not_learned:
        why.append("embedders that did not learn (left out of every verdict): " + ", ".join(sorted(not_learned)))
    if not why:
        return None
    return (f"{PLUMBING}: " + "; ".join(why) + ". These numbers show that the workflow runs end to end; they say "
            "nothing about whether reasoning backbones make better embedding models.")
