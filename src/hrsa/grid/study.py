"""The study grid from a validated config: pairs, roles, models, comparisons, layers (stdlib only).

Snakemake's common.smk builds every expand() list from a `Study`; the same object is unit-tested without Snakemake.
It composes the readers of hrsa.grid.config (pairs, comparisons, probes), hrsa.grid.shapes (depth, width, tokenizer,
checked at DAG time) and hrsa.grid.sizing (job sizes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hrsa.grid.attention as attention
import hrsa.grid.checks as checks
import hrsa.grid.config as cfg
from hrsa import paths
from hrsa.grid.config import Backbone
from hrsa.grid.ids import POOLED, Comparison, model_id, parse_model_id, split_role
from hrsa.grid.shapes import Shape, pair_shape
from hrsa.grid.sizing import params_b


class Study:
    """Everything the workflow expands over, derived from one config dict (already schema-validated)."""

    def __init__(self, config: dict[str, Any], root: str | Path = ".") -> None:
        self.config = config
        self.root = Path(root)
        checks.check_numbers(config)  # before anything reads a number: NaN, inf, 1.0 as an integer
        checks.check_ids(config)
        checks.check_files(config, self.root)
        self.seeds: list[int] = cfg.read_seeds(config)
        self.pairs: dict[str, dict[str, Backbone]] = cfg.read_pairs(config, self.root)
        # what could not be checked offline (one line per pair), and comparisons that do not apply to some pair
        self.unchecked: list[str] = []
        self.shapes: dict[str, dict[str, Shape]] = {}  # per pair and role
        self.num_layers: dict[str, int] = {}
        for i, (pair, roles) in enumerate(self.pairs.items()):
            shape = pair_shape(f"pairs[{i}]", roles, config["pairs"][i].get("num_layers"), self.recipe_options,
                               self.root)
            self.shapes[pair], self.num_layers[pair] = shape.shapes, shape.depth
            self.unchecked += [shape.unchecked] if shape.unchecked else []
        self.trust_remote_code: dict[str, bool] = {
            e["name"]: bool(e.get("trust_remote_code", False)) for e in config.get("pairs", [])
        }
        self.layer_spec = config.get("layers", "all")
        cfg.check_layers(self.layer_spec, self.num_layers)
        self.comparisons: list[Comparison]
        self.skipped_comparisons: list[str]
        self.comparisons, self.skipped_comparisons = cfg.read_comparisons(config, self.seeds, self.pairs)
        self.probes: dict[str, dict[str, Any]] = cfg.read_probes(config)
        checks.check_study(self)  # probes, layers per probe, Procrustes layers, probe rows, name lengths
        attention.check_pairs(self)  # bidirectional attention only on decoder families where it takes effect

    def notes(self) -> list[str]:
        """Lines worth one look at DAG time: comparisons skipped for some pair, checks left to later jobs."""
        return self.skipped_comparisons + self.unchecked

    # ---- backbones -----------------------------------------------------------------------------------------
    def backbone(self, pair: str, role: str) -> Backbone:
        return self.pairs[pair][role]

    def built_backbones(self) -> list[Backbone]:
        """Backbones the workflow builds by recipe (the others are loaded as published)."""
        return [bb for roles in self.pairs.values() for bb in roles.values() if bb.recipe]

    def recipe_options(self, bb: Backbone) -> dict[str, Any]:
        """Recipe defaults from `recipes:` (else the schema) overridden by the role's own keys."""
        return cfg.recipe_options(self.config, bb)

    def training(self, pair: str) -> dict[str, Any]:
        """The contrastive recipe of a pair: `training:` overridden by the pair's own `training:` (lora key by key)."""
        return cfg.pair_training(self.config, pair)

    def backbone_path(self, bb: Backbone) -> str:
        """Where a model is loaded from: the built directory, a local path (relative to the working directory), or
        the hub id."""
        return cfg.backbone_path(bb, self.root)

    def params_b(self, pair: str) -> float:
        """Parameters of a pair's models in billions, for sizing jobs (hrsa.grid.sizing.params_b)."""
        return params_b(cfg.pair_entry(self.config, pair).get("params_b"), self.shapes[pair]["base"])

    # ---- layers, models and comparisons --------------------------------------------------------------------
    def layers(self, pair: str, probe: str | None = None) -> list[str]:
        """Layer names (strings, as in paths) extracted and compared for a pair; token-level probes have no `pooled`."""
        if self.layer_spec == "all":
            names = [str(i) for i in range(self.num_layers[pair] + 1)] + [POOLED]
        else:
            names = [str(x) for x in self.layer_spec]
        if probe is not None and self.probes[probe].get("granularity", "token") == "token":
            names = [n for n in names if n != POOLED]
        return names

    def backbone_models(self) -> list[str]:
        return [bb.model_id for roles in self.pairs.values() for bb in roles.values()]

    def embedder_models(self) -> list[str]:
        return [model_id(p, f"{r}-E", s) for p, roles in self.pairs.items() for r in roles for s in self.seeds]

    def checkpoint_models(self) -> list[str]:
        """Models of kept recipe checkpoints that comparisons name (`tiny.reason@20`, `tiny.reason@20-E.s0`): a
        checkpoint is extracted, and trained into an embedder, only where a comparison asks for it."""
        named = [c.model(side) for c in self.comparisons for side in ("left", "right")]
        return list(dict.fromkeys(m for m in named if split_role(parse_model_id(m)[1])[1] is not None))

    def models(self) -> list[str]:
        return self.backbone_models() + self.embedder_models() + self.checkpoint_models()

    def source_path(self, model: str) -> str:
        """Where a backbone id (a role, or a kept checkpoint `reason@N`) is loaded from; an embedder's directory."""
        pair, role, seed = parse_model_id(model)
        if seed is not None:
            return paths.MODEL_EMBEDDER.format(model=model)
        name, step = split_role(role)
        if step is not None:
            return paths.BACKBONE_CHECKPOINT.format(pair=pair, role=name, step=step)
        return self.backbone_path(self.backbone(pair, name))

    def built_input(self, model: str) -> str | None:
        """The workflow-built directory a model needs (a checkpoint: its recipe run's), or None for a published one."""
        pair, role, seed = parse_model_id(model)
        name, step = split_role(role)
        if seed is not None:
            return paths.MODEL_EMBEDDER.format(model=model)
        if step is not None or self.backbone(pair, name).recipe:
            return self.backbone_path(self.backbone(pair, name))
        return None

    def rl_steps(self) -> dict[str, int]:
        """{pair: steps of its RLVR run} for pairs whose reason is built by the rlvr recipe (the drift figure's last
        point: base~reason is the run's final model)."""
        return {pair: int(self.recipe_options(roles["reason"])["steps"]) for pair, roles in self.pairs.items()
                if "reason" in roles and roles["reason"].recipe == "rlvr"}

    def comparison(self, name: str) -> Comparison:
        for c in self.comparisons:
            if c.name == name:
                return c
        raise KeyError(name)
