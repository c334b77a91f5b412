"""Which run records the report reads, by grid: the job records (Snakemake `benchmark:` TSVs) and the model
directories with their provenance.json (the rule declares these; the job records are no input of it: the report
reads those that exist and lists the missing ones), and the grid summary of "what was run".
Every path comes from the patterns of hrsa.paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa import paths
from hrsa.grid import ROLES, parse_model_id


def run_inputs(evaluated: Sequence[str], eval_groups: Sequence[str], probes: Sequence[str],
               extract_models: Sequence[str], built_backbones: Sequence[str], hrsa_tables: Sequence[str | Path],
               mine: bool, health: Sequence[str] = ()) -> dict[str, list[str]]:
    """The run records the report reads, by grid (the rule declares `models`; `benchmarks` are read where they exist,
    never declared, so no job record causes a recomputation): `benchmarks`, the benchmark TSV
    of every GPU-capable job (build_backbone, mine, train, extract, knn_graph, compare, evaluate per group, and
    sibling_health of the `health` roles, "pair.role"), and
    `models`, the directories of every workflow-built backbone and embedder (their provenance.json). `evaluated`: the
    scored models (embedders, and raw backbones when evaluation.baseline is on), scored in the task groups named
    `eval_groups`. Paths relative to the working directory."""
    embedders = [m for m in evaluated if parse_model_id(m)[2] is not None]
    backbones = [parse_model_id(b)[:2] for b in built_backbones]
    bench = [paths.BENCH_BACKBONE.format(pair=pair, role=role) for pair, role in backbones]
    bench += [paths.BENCH_MINE] if mine else []
    bench += [paths.BENCH_TRAIN.format(model=m) for m in embedders]
    bench += [pattern.format(probe=p, model=m) for pattern in (paths.BENCH_EXTRACT, paths.BENCH_KNN)
              for p in probes for m in extract_models]
    bench += [paths.BENCH_COMPARE.format(probe=Path(t).parent.name, comparison=Path(t).stem) for t in hrsa_tables]
    bench += [paths.BENCH_EVAL.format(model=m, group=g) for m in evaluated for g in eval_groups]
    bench += [paths.BENCH_HEALTH.format(pair=pair, role=role) for pair, role, _ in map(parse_model_id, health)]
    models = [paths.BACKBONE.format(pair=pair, role=role) for pair, role in backbones]
    models += [paths.MODEL_EMBEDDER.format(model=m) for m in embedders]
    return {"benchmarks": bench, "models": models}


# config blocks that schedule or fetch, and change no result: the report shows (and reruns for) everything else
NOT_SCIENCE = ("resources", "download")


def grid_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the report's "what was run" section shows of the study config: pairs with their roles, each backbone as
    configured (hub id, local path or recipe), seeds, layers, probe set names, the comparisons configured, and the
    whole science config (every block but the scheduling ones, NOT_SCIENCE: changing those reruns no report)."""
    pairs = config.get("pairs", [])
    return {"pairs": {p.get("name"): [r for r in ROLES if p.get(r)] for p in pairs},
            "backbones": {f"{p.get('name')}.{r}": p[r] for p in pairs for r in ROLES if p.get(r)},
            "seeds": list(config.get("seeds", [])), "layers": config.get("layers", ""),
            "probes": [p.get("name") for p in config.get("probes", [])],
            "comparisons": list(config.get("comparisons", [])),
            "config": {k: v for k, v in config.items() if k not in NOT_SCIENCE}}


def grid_records(study: Any, evaluated: Sequence[str], eval_groups: Sequence[str], hrsa_tables: Sequence[str],
                 mine: bool) -> dict[str, Any]:
    """run_inputs of a Study's grid, with the lists the report rule passes: `built` (workflow-built backbones),
    `extracted` (every model a comparison reads) and `grid` (grid_summary of its config), besides `benchmarks` and
    `models`."""
    built = [f"{pair}.{role}" for pair, roles in study.pairs.items() for role, bb in roles.items() if bb.recipe]
    extracted = sorted({c.model(side) for c in study.comparisons for side in ("left", "right")})
    records = run_inputs(evaluated, eval_groups, list(study.probes), extracted, built, hrsa_tables, mine,
                         study.backbone_models())
    grid = {**grid_summary(study.config), "rl_steps": study.rl_steps()}  # the drift figure's last step per pair
    return {"built": built, "extracted": extracted, "mine": mine, "grid": grid, **records}
