"""The config's pairs, backbones, probes and comparisons read into plain objects and checked, before any job runs.

Every check names the config key it rejects. Recipe options fall back on the schema's defaults (hrsa.schema), and the
config slices handed to verbs (`knn_config`) are chosen here, so rules only wire.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from hrsa import paths
from hrsa.errors import ConfigError
from hrsa.grid.ids import POOLED, ROLES, SAFE_NAME, SIDE, Comparison, split_role
from hrsa.hub import is_hub_id, local_path
from hrsa.schema import node, with_defaults

RECIPES: tuple[str, ...] = tuple(node("recipes")["properties"])
# Options of each backbone recipe, in the schema's order: the keys of `hrsa <recipe> --config` and the only keys a
# role's recipe override may carry besides `recipe` and `from`.
RECIPE_FLAGS: dict[str, tuple[str, ...]] = {r: tuple(node(f"recipes/{r}")["properties"]) for r in RECIPES}
#: keys of `hrsa:` that decide the kNN graphs (the knn verb's config slice)
KNN_KEYS = ("knn_k", "knn_max_rows", "seed")


@dataclass(frozen=True)
class Backbone:
    """One role of a pair: a published model (hub id or local path) or a recipe built by the workflow."""

    pair: str
    role: str
    source: str | None = None  # hub id or local path
    recipe: str | None = None  # pretrain | rlvr | sft
    parent: str | None = None  # role the recipe starts from
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def model_id(self) -> str:
        return f"{self.pair}.{self.role}"


# ---- pairs and backbones -----------------------------------------------------------------------------------------
def read_seeds(config: Mapping[str, Any]) -> list[int]:
    """The embedder seeds (distinct)."""
    seeds = list(config.get("seeds", [0]))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: duplicate values in {seeds}")
    return seeds


def read_pairs(config: Mapping[str, Any], root: Path) -> dict[str, dict[str, Backbone]]:
    """{pair: {role: Backbone}} from `pairs:`; names safe in paths, recipes' parents defined in their pair."""
    out: dict[str, dict[str, Backbone]] = {}
    for i, entry in enumerate(config.get("pairs", [])):
        key = f"pairs[{i}]"
        name = entry.get("name")
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise ConfigError(f"{key}.name: {name!r} is not safe in paths (use letters, digits, '_' and '-')")
        if name in out:
            raise ConfigError(f"{key}.name: duplicate pair name {name!r}")
        roles = {}
        for role in ROLES:
            if role in entry and entry[role] is not None:
                roles[role] = _backbone(name, role, entry[role], f"{key}.{role}", root)
        for role, bb in roles.items():
            if bb.parent is not None and bb.parent not in roles:
                raise ConfigError(f"{key}.{role}.from: role {bb.parent!r} is not defined in pair {name!r}")
            if bb.parent == role:
                raise ConfigError(f"{key}.{role}.from: a role cannot be built from itself")
        out[name] = roles
    if not out:
        raise ConfigError("pairs: at least one pair is required")
    return out


def _backbone(pair: str, role: str, spec: Any, key: str, root: Path) -> Backbone:
    if isinstance(spec, str):
        if not spec.strip():
            raise ConfigError(f"{key}: empty model id")
        if not is_hub_id(spec, root) and not local_path(spec, root).exists():
            raise ConfigError(
                f"{key}: local path {spec!r} does not exist (looked at {local_path(spec, root)}); "
                "give an existing model directory or a hub id"
            )
        return Backbone(pair, role, source=spec)
    recipe = spec.get("recipe")
    if recipe not in RECIPES:
        raise ConfigError(f"{key}.recipe: {recipe!r} is not one of {list(RECIPES)}")
    parent = spec.get("from")
    if recipe == "pretrain" and parent is not None:
        raise ConfigError(f"{key}.from: the pretrain recipe starts from scratch and takes no `from`")
    if recipe != "pretrain" and parent is None:
        raise ConfigError(f"{key}.from: recipe {recipe!r} needs `from: <role>`")
    for k in spec:
        if k not in ("recipe", "from", *RECIPE_FLAGS[recipe]):
            raise ConfigError(
                f"{key}.{k}: not an option of recipe {recipe!r} "
                f"(known: recipe, from, {', '.join(RECIPE_FLAGS[recipe])})"
            )
    options = {k: v for k, v in spec.items() if k not in ("recipe", "from") and v is not None}
    return Backbone(pair, role, recipe=recipe, parent=parent, options=options)


def recipe_options(config: Mapping[str, Any], bb: Backbone) -> dict[str, Any]:
    """Recipe defaults from `recipes:` (keys it leaves out from the schema) overridden by the role's own keys."""
    assert bb.recipe is not None
    return {**with_defaults(f"recipes/{bb.recipe}", (config.get("recipes") or {}).get(bb.recipe)), **bb.options}


def pair_entry(config: Mapping[str, Any], pair: str) -> dict[str, Any]:
    """The pair's own entry of `pairs:`."""
    return next(e for e in config["pairs"] if e["name"] == pair)


def pair_training(config: Mapping[str, Any], pair: str) -> dict[str, Any]:
    """The contrastive recipe of a pair: `training:` overridden by the pair's own `training:` (lora key by key)."""
    entry = pair_entry(config, pair)
    base, override = dict(config.get("training", {})), dict(entry.get("training") or {})
    lora = {**(base.get("lora") or {}), **(override.pop("lora", None) or {})}
    merged = {**base, **override}
    if lora:
        merged["lora"] = lora
    return merged


def backbone_path(bb: Backbone, root: Path) -> str:
    """Where a model is loaded from: the built directory, a local path, or the hub id.

    A relative local path (relative to the root) comes back relative to the working directory, never absolute, so
    job params do not change when the checkout is moved or cloned; an absolute one stays as given.
    """
    if bb.recipe:
        return paths.BACKBONE.format(pair=bb.pair, role=bb.role)
    assert bb.source is not None
    if is_hub_id(bb.source, root):
        return bb.source
    if os.path.isabs(bb.source):
        return os.path.normpath(bb.source)
    return os.path.relpath(local_path(bb.source, root))


# ---- layers, comparisons and probes --------------------------------------------------------------------------------
def check_layers(spec: Any, num_layers: Mapping[str, int]) -> None:
    """`layers:` is `all` or distinct hidden-state indices within every pair's depth (or `pooled`)."""
    if spec == "all":
        return
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"layers: expected 'all' or a non-empty list, got {spec!r}")
    for pair, n in num_layers.items():
        for layer in spec:
            if layer == POOLED:
                continue
            if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer <= n:
                raise ConfigError(
                    f"layers: {layer!r} is out of range for pair {pair!r} (hidden states 0..{n}, or 'pooled')"
                )
    if len(set(map(str, spec))) != len(spec):
        raise ConfigError(f"layers: duplicate values in {spec}")


def read_comparisons(config: Mapping[str, Any], seeds: list[int],
                     pairs: Mapping[str, Mapping[str, Backbone]]) -> tuple[list[Comparison], list[str]]:
    """Every comparison of every pair, and a note for each one skipped; `X-E~X-E` is the noise floor (one per
    unordered pair of seeds).

    A comparison that applies to no pair is an error; one skipped for a pair lacking a role is noted.
    """
    out: list[Comparison] = []
    skipped: list[str] = []
    for i, spec in enumerate(config.get("comparisons", [])):
        key = f"comparisons[{i}]"
        parts = spec.split("~")
        if len(parts) != 2 or not all(SIDE.fullmatch(p) for p in parts):
            raise ConfigError(f"{key}: {spec!r} is not ROLE~ROLE (roles base/reason/sft, -E suffix)")
        left, right = parts
        pairings: list[tuple[int | None, int | None]]
        if left == right:
            if not left.endswith("-E"):
                raise ConfigError(f"{key}: {spec!r} compares a model with itself "
                                  f"(the noise floor of two seeds is {left}-E~{left}-E)")
            if len(seeds) < 2:  # e.g. a quick run with seeds: [0]: said once, not an error
                skipped.append(f"{key} {spec} (noise floor) is skipped: it compares two seeds of one embedder, "
                               f"and seeds is {seeds}")
                continue
            pairings = list(combinations(sorted(seeds), 2))
        elif left.endswith("-E") or right.endswith("-E"):
            pairings = [(s, None) for s in seeds]
        else:
            pairings = [(None, None)]
        roles_needed = [split_role(p)[0] for p in parts]
        applied = False
        for pair, roles in pairs.items():
            lacking = [r for r in roles_needed if r not in roles]
            if lacking:  # e.g. base~sft for a pair without sft
                skipped.append(f"{key} {spec} is skipped for pair {pair!r}: it has no {lacking[0]} role")
                continue
            unkept = _unkept_checkpoint(config, key, spec, roles)
            if unkept:  # e.g. base~reason@50 for a pair whose reason comes from the hub
                skipped.append(f"{key} {spec} is skipped for pair {pair!r}: {unkept}")
                continue
            applied = True
            out += [Comparison(pair, left, right, a, b) for a, b in pairings]
        if not applied:
            raise ConfigError(f"{key}: {spec!r} applies to no pair (none has every role it names: "
                              f"{', '.join(roles_needed)}); remove it or add the role to a pair")
    if config.get("comparisons") and not out:
        raise ConfigError(f"comparisons: none applies, so no HRSA would run ({'; '.join(skipped)})")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ConfigError("comparisons: duplicate entries")
    return out, skipped


def _unkept_checkpoint(config: Mapping[str, Any], key: str, spec: str, roles: Mapping[str, Backbone]) -> str:
    """Why a pair has no kept checkpoint a comparison names (`reason@N`), or "" where it has every one. A step that
    the recipe run does not keep (not a multiple of `save_steps`, past `steps`) is a ConfigError."""
    for side in spec.split("~"):
        role, step = split_role(side)
        if step is None:
            continue
        bb = roles[role]
        if bb.recipe != "rlvr":
            return f"its {role} is not built by the rlvr recipe, so it has no kept checkpoints"
        opts = recipe_options(config, bb)
        every, steps = int(opts["save_steps"]), int(opts["steps"])
        if not every or step % every or step > steps:
            raise ConfigError(f"{key}: {spec!r} names step {step} of pair {bb.pair!r}'s {role}, which its rlvr run "
                              f"does not keep (recipes.rlvr.save_steps {every}, steps {steps}: it keeps "
                              f"{list(range(every, steps + 1, every)) if every else 'none'})")
    return ""


def read_probes(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{name: entry} of `probes:`; names safe in paths, exactly one source each."""
    out = {}
    for i, probe in enumerate(config.get("probes", [])):
        name = probe.get("name")
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise ConfigError(f"probes[{i}].name: {name!r} is not safe in paths")
        if name in out:
            raise ConfigError(f"probes[{i}].name: duplicate probe name {name!r}")
        given = {"builtin": probe.get("builtin"), "path": probe.get("path"),
                 "hf": (probe.get("hf") or {}).get("dataset")}
        sources = [k for k, v in given.items() if v]
        if len(sources) != 1:
            raise ConfigError(f"probes[{i}]: give exactly one of builtin, path, hf (got {sources or 'none'})")
        out[name] = probe
    return out


# ---- config slices of verbs ----------------------------------------------------------------------------------------
def knn_config(hrsa: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `hrsa:` that decide the kNN graphs (KNN_KEYS), for `hrsa knn --config`: other HRSA settings
    (bootstrap, blocks, ...) must not rebuild the graphs."""
    return {k: hrsa[k] for k in KNN_KEYS if k in hrsa}
