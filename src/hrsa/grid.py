"""The study grid from a validated config: pairs, roles, models, comparisons, layers (stdlib only).

Snakemake's common.smk builds every expand() list from a `Study`; the same object is unit-tested without Snakemake.
Model ids: `{pair}.{role}` for backbones, `{pair}.{role}-E.s{seed}` for embedders (see DESIGN.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError

ROLES = ("base", "reason", "sft")
RECIPES = ("pretrain", "rlvr", "sft")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
POOLED = "pooled"


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


@dataclass(frozen=True)
class Comparison:
    """Two models compared layer by layer, e.g. `tiny.base-E~reason-E.s0`."""

    pair: str
    left: str  # role, with -E suffix for embedders
    right: str
    seed: int | None

    @property
    def name(self) -> str:
        suffix = f".s{self.seed}" if self.seed is not None else ""
        return f"{self.pair}.{self.left}~{self.right}{suffix}"

    def model(self, side: str) -> str:
        role = self.left if side == "left" else self.right
        return model_id(self.pair, role, self.seed)


def model_id(pair: str, role: str, seed: int | None = None) -> str:
    """`{pair}.{role}` for a backbone; `{pair}.{role}-E.s{seed}` for an embedder (role given with its -E)."""
    if role.endswith("-E"):
        if seed is None:
            raise ValueError(f"embedder role {role!r} needs a seed")
        return f"{pair}.{role}.s{seed}"
    return f"{pair}.{role}"


def parse_model_id(mid: str) -> tuple[str, str, int | None]:
    """Inverse of model_id: (pair, role without -E, seed or None)."""
    m = re.fullmatch(r"(?P<pair>[^.]+)\.(?P<role>base|reason|sft)(?:-E\.s(?P<seed>\d+))?", mid)
    if not m:
        raise ConfigError(f"not a model id: {mid!r} (expected PAIR.ROLE or PAIR.ROLE-E.sSEED)")
    seed = m.group("seed")
    return m.group("pair"), m.group("role"), int(seed) if seed is not None else None


class Study:
    """Everything the workflow expands over, derived from one config dict (already schema-validated)."""

    def __init__(self, config: dict[str, Any], root: str | Path = ".") -> None:
        self.config = config
        self.root = Path(root)
        self.seeds: list[int] = self._seeds()
        self.pairs: dict[str, dict[str, Backbone]] = self._pairs()
        self.num_layers: dict[str, int] = {p: self._num_layers(i, p) for i, p in enumerate(self.pairs)}
        self.trust_remote_code: dict[str, bool] = {
            e["name"]: bool(e.get("trust_remote_code", False)) for e in config.get("pairs", [])
        }
        self.layer_spec = config.get("layers", "all")
        self._check_layers()
        self.comparisons: list[Comparison] = self._comparisons()
        self.probes: dict[str, dict[str, Any]] = self._probes()

    # ---- pairs and backbones -------------------------------------------------------------------------------
    def _seeds(self) -> list[int]:
        seeds = list(self.config.get("seeds", [0]))
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: duplicate values in {seeds}")
        return seeds

    def _pairs(self) -> dict[str, dict[str, Backbone]]:
        out: dict[str, dict[str, Backbone]] = {}
        for i, entry in enumerate(self.config.get("pairs", [])):
            key = f"pairs[{i}]"
            name = entry.get("name")
            if not isinstance(name, str) or not SAFE_NAME.match(name):
                raise ConfigError(f"{key}.name: {name!r} is not safe in paths (use letters, digits, '_' and '-')")
            if name in out:
                raise ConfigError(f"{key}.name: duplicate pair name {name!r}")
            roles = {}
            for role in ROLES:
                if role in entry and entry[role] is not None:
                    roles[role] = self._backbone(name, role, entry[role], f"{key}.{role}")
            for role, bb in roles.items():
                if bb.parent is not None and bb.parent not in roles:
                    raise ConfigError(f"{key}.{role}.from: role {bb.parent!r} is not defined in pair {name!r}")
                if bb.parent == role:
                    raise ConfigError(f"{key}.{role}.from: a role cannot be built from itself")
            out[name] = roles
        if not out:
            raise ConfigError("pairs: at least one pair is required")
        return out

    def _backbone(self, pair: str, role: str, spec: Any, key: str) -> Backbone:
        if isinstance(spec, str):
            if not spec.strip():
                raise ConfigError(f"{key}: empty model id")
            return Backbone(pair, role, source=spec)
        recipe = spec.get("recipe")
        if recipe not in RECIPES:
            raise ConfigError(f"{key}.recipe: {recipe!r} is not one of {list(RECIPES)}")
        parent = spec.get("from")
        if recipe == "pretrain" and parent is not None:
            raise ConfigError(f"{key}.from: the pretrain recipe starts from scratch and takes no `from`")
        if recipe != "pretrain" and parent is None:
            raise ConfigError(f"{key}.from: recipe {recipe!r} needs `from: <role>`")
        options = {k: v for k, v in spec.items() if k not in ("recipe", "from") and v is not None}
        return Backbone(pair, role, recipe=recipe, parent=parent, options=options)

    def backbone(self, pair: str, role: str) -> Backbone:
        return self.pairs[pair][role]

    def built_backbones(self) -> list[Backbone]:
        """Backbones the workflow builds by recipe (the others are loaded as published)."""
        return [bb for roles in self.pairs.values() for bb in roles.values() if bb.recipe]

    def recipe_options(self, bb: Backbone) -> dict[str, Any]:
        """Recipe defaults from `recipes:` overridden by the role's own keys."""
        assert bb.recipe is not None
        return {**self.config.get("recipes", {}).get(bb.recipe, {}), **bb.options}

    def training(self, pair: str) -> dict[str, Any]:
        """The contrastive recipe of a pair: `training:` overridden by the pair's own `training:` (lora key by key)."""
        entry = next(e for e in self.config["pairs"] if e["name"] == pair)
        base, override = dict(self.config.get("training", {})), dict(entry.get("training") or {})
        lora = {**(base.get("lora") or {}), **(override.pop("lora", None) or {})}
        merged = {**base, **override}
        if lora:
            merged["lora"] = lora
        return merged

    def backbone_path(self, bb: Backbone) -> str:
        """Where a model is loaded from: the built directory, a local path, or the hub id.

        A relative local path (relative to the root) comes back relative to the working directory, never absolute, so
        job params do not change when the checkout is moved or cloned; an absolute one stays as given.
        """
        if bb.recipe:
            return f"results/backbones/{bb.model_id}"
        assert bb.source is not None
        if os.path.isabs(bb.source):
            return os.path.normpath(bb.source)
        local = self.root / bb.source
        if bb.source.startswith(".") or local.exists():
            return os.path.relpath(local)
        return bb.source

    # ---- layers --------------------------------------------------------------------------------------------
    def _num_layers(self, index: int, pair: str) -> int:
        explicit = self.config["pairs"][index].get("num_layers")
        if explicit is not None:
            return int(explicit)
        roles = self.pairs[pair]
        root = self._root_backbone(roles["base"] if "base" in roles else next(iter(roles.values())))
        if root.recipe == "pretrain":
            return int(self.recipe_options(root)["num_layers"])
        path = Path(self.backbone_path(root))
        cfg = path / "config.json"
        if cfg.is_file():
            data = json.loads(cfg.read_text())
            data = data.get("text_config", data)
            return int(data["num_hidden_layers"])
        raise ConfigError(
            f"pairs[{index}].num_layers: required for {root.source!r} (its config.json is not available offline)"
        )

    def _root_backbone(self, bb: Backbone) -> Backbone:
        seen = set()
        while bb.parent is not None:
            if bb.role in seen:
                raise ConfigError(f"pairs: recipe roles of pair {bb.pair!r} form a cycle")
            seen.add(bb.role)
            bb = self.pairs[bb.pair][bb.parent]
        return bb

    def _check_layers(self) -> None:
        spec = self.layer_spec
        if spec == "all":
            return
        if not isinstance(spec, list) or not spec:
            raise ConfigError(f"layers: expected 'all' or a non-empty list, got {spec!r}")
        for pair, n in self.num_layers.items():
            for layer in spec:
                if layer == POOLED:
                    continue
                if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer <= n:
                    raise ConfigError(
                        f"layers: {layer!r} is out of range for pair {pair!r} (hidden states 0..{n}, or 'pooled')"
                    )
        if len(set(map(str, spec))) != len(spec):
            raise ConfigError(f"layers: duplicate values in {spec}")

    def layers(self, pair: str, probe: str | None = None) -> list[str]:
        """Layer names (strings, as in paths) extracted and compared for a pair; token-level probes have no `pooled`."""
        if self.layer_spec == "all":
            names = [str(i) for i in range(self.num_layers[pair] + 1)] + [POOLED]
        else:
            names = [str(x) for x in self.layer_spec]
        if probe is not None and self.probes[probe].get("granularity", "token") == "token":
            names = [n for n in names if n != POOLED]
        return names

    # ---- models and comparisons ----------------------------------------------------------------------------
    def backbone_models(self) -> list[str]:
        return [bb.model_id for roles in self.pairs.values() for bb in roles.values()]

    def embedder_models(self) -> list[str]:
        return [model_id(p, f"{r}-E", s) for p, roles in self.pairs.items() for r in roles for s in self.seeds]

    def models(self) -> list[str]:
        return self.backbone_models() + self.embedder_models()

    def _comparisons(self) -> list[Comparison]:
        out: list[Comparison] = []
        for i, spec in enumerate(self.config.get("comparisons", [])):
            parts = spec.split("~")
            if len(parts) != 2 or not all(re.fullmatch(r"(base|reason|sft)(-E)?", p) for p in parts):
                raise ConfigError(f"comparisons[{i}]: {spec!r} is not ROLE~ROLE (roles base/reason/sft, -E suffix)")
            if parts[0] == parts[1]:
                raise ConfigError(f"comparisons[{i}]: {spec!r} compares a model with itself")
            per_seed = any(p.endswith("-E") for p in parts)
            for pair, roles in self.pairs.items():
                if not all(p.removesuffix("-E") in roles for p in parts):
                    continue  # e.g. base~sft for a pair without sft
                for seed in self.seeds if per_seed else [None]:
                    out.append(Comparison(pair, parts[0], parts[1], seed))
        names = [c.name for c in out]
        if len(set(names)) != len(names):
            raise ConfigError("comparisons: duplicate entries")
        return out

    def comparison(self, name: str) -> Comparison:
        for c in self.comparisons:
            if c.name == name:
                return c
        raise KeyError(name)

    # ---- probes --------------------------------------------------------------------------------------------
    def _probes(self) -> dict[str, dict[str, Any]]:
        out = {}
        for i, probe in enumerate(self.config.get("probes", [])):
            name = probe.get("name")
            if not isinstance(name, str) or not SAFE_NAME.match(name):
                raise ConfigError(f"probes[{i}].name: {name!r} is not safe in paths")
            if name in out:
                raise ConfigError(f"probes[{i}].name: duplicate probe name {name!r}")
            given = {"builtin": probe.get("builtin"), "path": probe.get("path"), "hf": (probe.get("hf") or {}).get("dataset")}
            sources = [k for k, v in given.items() if v]
            if len(sources) != 1:
                raise ConfigError(f"probes[{i}]: give exactly one of builtin, path, hf (got {sources or 'none'})")
            out[name] = probe
        return out
