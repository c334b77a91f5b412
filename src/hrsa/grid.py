"""The study grid from a validated config: pairs, roles, models, comparisons, layers (stdlib only).

Snakemake's common.smk builds every expand() list from a `Study`; the same object is unit-tested without Snakemake.
Model ids: `{pair}.{role}` for backbones, `{pair}.{role}-E.s{seed}` for embedders (see DESIGN.md).
What can be known offline about each role's architecture (depth, width, tokenizer) is checked here, at DAG time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError
from hrsa.hub import is_hub_id, local_path

ROLES = ("base", "reason", "sft")
RECIPES = ("pretrain", "rlvr", "sft")
# \A...\Z, not ^...$: `$` also matches before a final newline, so "x\n" passed and split a shell command.
SAFE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]*\Z")
POOLED = "pooled"

# Options of each backbone recipe: the CLI flags of `hrsa <recipe>` (common.smk passes them in this order) and the
# only keys a role's recipe override may carry besides `recipe` and `from`. The schema's `recipes.<recipe>` lists
# the same keys (a test keeps the two equal).
RECIPE_FLAGS: dict[str, tuple[str, ...]] = {
    "pretrain": (
        "corpus",
        "steps",
        "hidden_size",
        "num_layers",
        "num_heads",
        "num_kv_heads",
        "intermediate_size",
        "vocab_size",
        "batch_size",
        "max_length",
        "lr",
        "seed",
    ),
    "rlvr": (
        "steps",
        "lr",
        "batch_size",
        "num_generations",
        "data",
        "seed",
        "reward",
        "temperature",
        "max_completion_length",
        "save_steps",
        "problems",
    ),
    "sft": ("steps", "lr", "batch_size", "data", "seed", "max_length", "problems"),
}


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
class Shape:
    """What is known offline about a backbone's architecture; None = not knowable without the model's files.

    `tokenizer` is `recipe:<model id>` for a tokenizer the workflow trains (shared by every sibling built from that
    model) or `vocab:<sha256>` of a published tokenizer's vocabulary. `origin` says where the numbers come from.
    `mlp` (intermediate_size) and `vocab` (vocab_size) only size jobs (`Study.params_b`).
    """

    depth: int | None = None
    width: int | None = None
    tokenizer: str | None = None
    origin: str = ""
    mlp: int | None = None
    vocab: int | None = None


@dataclass(frozen=True)
class Comparison:
    """Two models compared layer by layer, e.g. `tiny.base-E~reason-E.s0`, or a noise floor `tiny.base-E~base-E.s0-s1`
    (one embedder role trained with two seeds: `seed` is the left model's, `right_seed` the right one's)."""

    pair: str
    left: str  # role, with -E suffix for embedders
    right: str
    seed: int | None
    right_seed: int | None = None  # only for seed-replicate (noise-floor) comparisons

    @property
    def kind(self) -> str:
        """The comparison as written in `comparisons:` (no pair, no seed), e.g. `base-E~reason-E`."""
        return f"{self.left}~{self.right}"

    @property
    def name(self) -> str:
        if self.right_seed is not None:
            suffix = f".s{self.seed}-s{self.right_seed}"
        else:
            suffix = f".s{self.seed}" if self.seed is not None else ""
        return f"{self.pair}.{self.kind}{suffix}"

    def model(self, side: str) -> str:
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        if side == "left":
            return model_id(self.pair, self.left, self.seed)
        return model_id(self.pair, self.right, self.seed if self.right_seed is None else self.right_seed)


_SIDE = r"(?:base|reason|sft)(?:-E)?"
_COMPARISON_NAME = re.compile(
    rf"(?P<pair>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<left>{_SIDE})~(?P<right>{_SIDE})"
    r"(?:\.s(?P<seed>\d+)(?:-s(?P<right_seed>\d+))?)?"
)


def parse_comparison(name: str) -> Comparison:
    """Inverse of Comparison.name: `PAIR.L~R`, `PAIR.L~R.sSEED`, or `PAIR.X-E~X-E.sA-sB` (a noise floor)."""
    m = _COMPARISON_NAME.fullmatch(name)
    if not m:
        raise ConfigError(f"not a comparison name: {name!r} (expected PAIR.ROLE~ROLE[.sSEED] or PAIR.X-E~X-E.sA-sB)")
    seed, right_seed = m.group("seed"), m.group("right_seed")
    return Comparison(m.group("pair"), m.group("left"), m.group("right"),
                      None if seed is None else int(seed), None if right_seed is None else int(right_seed))


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
        # what could not be checked offline (one line per pair), and comparisons that do not apply to some pair
        self.unchecked: list[str] = []
        self.skipped_comparisons: list[str] = []
        self.shapes: dict[str, dict[str, Shape]] = {}  # per pair and role, filled by _num_layers
        self.num_layers: dict[str, int] = {p: self._num_layers(i, p) for i, p in enumerate(self.pairs)}
        self.trust_remote_code: dict[str, bool] = {
            e["name"]: bool(e.get("trust_remote_code", False)) for e in config.get("pairs", [])
        }
        self.layer_spec = config.get("layers", "all")
        self._check_layers()
        self.comparisons: list[Comparison] = self._comparisons()
        self.probes: dict[str, dict[str, Any]] = self._probes()
        self._check_knn_k()

    def notes(self) -> list[str]:
        """Lines worth one look at DAG time: comparisons skipped for some pair, checks left to later jobs."""
        return self.skipped_comparisons + self.unchecked

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
            if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
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
            if not is_hub_id(spec, self.root) and not local_path(spec, self.root).exists():
                raise ConfigError(
                    f"{key}: local path {spec!r} does not exist (looked at {local_path(spec, self.root)}); "
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

    def backbone(self, pair: str, role: str) -> Backbone:
        return self.pairs[pair][role]

    def built_backbones(self) -> list[Backbone]:
        """Backbones the workflow builds by recipe (the others are loaded as published)."""
        return [bb for roles in self.pairs.values() for bb in roles.values() if bb.recipe]

    def recipe_options(self, bb: Backbone) -> dict[str, Any]:
        """Recipe defaults from `recipes:` overridden by the role's own keys."""
        assert bb.recipe is not None
        return {**self.config.get("recipes", {}).get(bb.recipe, {}), **bb.options}

    def _entry(self, pair: str) -> dict[str, Any]:
        """The pair's own entry of `pairs:`."""
        return next(e for e in self.config["pairs"] if e["name"] == pair)

    def training(self, pair: str) -> dict[str, Any]:
        """The contrastive recipe of a pair: `training:` overridden by the pair's own `training:` (lora key by key)."""
        entry = self._entry(pair)
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
        if is_hub_id(bb.source, self.root):
            return bb.source
        if os.path.isabs(bb.source):
            return os.path.normpath(bb.source)
        return os.path.relpath(local_path(bb.source, self.root))

    # ---- layers --------------------------------------------------------------------------------------------
    def _num_layers(self, index: int, pair: str) -> int:
        """Depth L of a pair, from its models where known offline (recipe options, config.json), else `num_layers`.

        Roles that disagree in depth, width or tokenizer, or a `num_layers` that contradicts a role, are errors here,
        before any job runs; what cannot be read offline is noted in `unchecked` (`hrsa compare` checks it).
        """
        key, roles = f"pairs[{index}]", self.pairs[pair]
        shapes = self.shapes[pair] = {role: self._shape(bb) for role, bb in roles.items()}
        for attr, what in (("depth", "depth (num_hidden_layers)"), ("width", "width (hidden_size)"),
                           ("tokenizer", "tokenizer vocabulary")):
            known = {r: getattr(s, attr) for r, s in shapes.items() if getattr(s, attr) is not None}
            if attr == "tokenizer":  # a tokenizer the workflow trains is comparable only with its own siblings
                known = {r: v for r, v in known.items() if v.startswith("vocab:")}
            if len(set(known.values())) > 1:
                detail = ", ".join(f"{r} {self._shown(v)} ({shapes[r].origin})" for r, v in known.items())
                raise ConfigError(f"{key}: the roles of pair {pair!r} differ in {what}: {detail}; "
                                  "HRSA compares models of one architecture and tokenizer")
        explicit = self.config["pairs"][index].get("num_layers")
        for role, shape in shapes.items():
            if explicit is not None and shape.depth is not None and int(explicit) != shape.depth:
                raise ConfigError(
                    f"{key}.num_layers: {explicit} contradicts the {role} model, which has {shape.depth} blocks "
                    f"({shape.origin}); remove num_layers (it is read from the model) or correct it"
                )
        self._note_unchecked(pair, shapes)
        if explicit is not None:
            return int(explicit)
        depths = [s.depth for s in shapes.values() if s.depth is not None]
        if depths:
            return depths[0]
        root = self._root_backbone(roles["base"] if "base" in roles else next(iter(roles.values())))
        raise ConfigError(
            f"{key}.num_layers: required for {root.source!r} (its config.json is not available offline)"
        )

    @staticmethod
    def _shown(value: int | str) -> str:
        return value[:18] if isinstance(value, str) else str(value)

    def _note_unchecked(self, pair: str, shapes: dict[str, Shape]) -> None:
        """Record which properties of a pair's roles could not be compared offline."""
        if len({self._root_backbone(self.pairs[pair][role]).role for role in shapes}) < 2:
            return  # every role is built from one model: same depth, width and tokenizer by construction
        missing = []
        for attr, what in (("depth", "depths"), ("width", "widths"), ("tokenizer", "tokenizers")):
            values = {getattr(s, attr) for s in shapes.values()}
            if None in values or (attr == "tokenizer" and len(values) > 1):
                missing.append(what)
        if missing:
            self.unchecked.append(
                f"pair {pair!r}: {', '.join(missing)} of {', '.join(shapes)} cannot be compared offline (config.json / "
                "tokenizer.json not found locally or in the hub cache); `hrsa compare` checks that their rows align"
            )

    def _shape(self, bb: Backbone) -> Shape:
        """Depth, width and tokenizer of a role: a recipe's options, the parent's for siblings, else its files."""
        root = self._root_backbone(bb)
        if root.recipe == "pretrain":
            opts = self.recipe_options(root)
            return Shape(_int_or_none(opts.get("num_layers")), _int_or_none(opts.get("hidden_size")),
                         f"recipe:{root.model_id}", f"pretrain recipe of {root.model_id}",
                         _int_or_none(opts.get("intermediate_size")), _int_or_none(opts.get("vocab_size")))
        config = self._published_file(root, "config.json")
        tokenizer = self._published_file(root, "tokenizer.json")
        data: dict[str, Any] = {}
        origin = f"{root.source}: no config.json offline"
        if config is not None:
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"pairs: {bb.model_id} ({root.source}): cannot read {config} ({exc})") from None
            data = data.get("text_config", data)
            origin = str(config)
        return Shape(data.get("num_hidden_layers"), data.get("hidden_size"),
                     _vocab_digest(tokenizer) if tokenizer else None, origin, data.get("intermediate_size"),
                     data.get("vocab_size"))

    def _published_file(self, bb: Backbone, filename: str) -> Path | None:
        """A file of a published backbone: from its local directory, or from the hub cache (never the network)."""
        assert bb.source is not None
        local = self.root / bb.source
        if bb.source.startswith((".", "/")) or local.exists():
            return local / filename if (local / filename).is_file() else None
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # grid.py stays importable without the hub client
            return None
        try:
            cached = try_to_load_from_cache(bb.source, filename)
        except ValueError:  # not a valid repo id: nothing cached under it
            return None
        return Path(cached) if isinstance(cached, str) else None

    def params_b(self, pair: str) -> float:
        """Parameters of a pair's models in billions, for sizing jobs: `params_b` if given, else estimated from the
        base's depth L, width d, MLP width f and vocabulary V as read at DAG time (L (4d^2 + 3df) + Vd), else 1."""
        given = self._entry(pair).get("params_b")
        if given:
            return float(given)
        shape = self.shapes[pair]["base"]
        if not shape.depth or not shape.width:
            return 1.0
        mlp, vocab = shape.mlp or 4 * shape.width, shape.vocab or 0
        return (shape.depth * (4 * shape.width**2 + 3 * shape.width * mlp) + vocab * shape.width) / 1e9

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
        """Every comparison of every pair; `X-E~X-E` is the noise floor (one per unordered pair of seeds).

        A comparison that applies to no pair is an error; one skipped for a pair lacking a role is noted.
        """
        out: list[Comparison] = []
        for i, spec in enumerate(self.config.get("comparisons", [])):
            key = f"comparisons[{i}]"
            parts = spec.split("~")
            if len(parts) != 2 or not all(re.fullmatch(r"(base|reason|sft)(-E)?", p) for p in parts):
                raise ConfigError(f"{key}: {spec!r} is not ROLE~ROLE (roles base/reason/sft, -E suffix)")
            left, right = parts
            seeds: list[tuple[int | None, int | None]]
            if left == right:
                if not left.endswith("-E"):
                    raise ConfigError(f"{key}: {spec!r} compares a model with itself "
                                      f"(the noise floor of two seeds is {left}-E~{left}-E)")
                if len(self.seeds) < 2:  # e.g. a quick run with seeds: [0]: said once, not an error
                    self.skipped_comparisons.append(
                        f"{key} {spec} (noise floor) is skipped: it compares two seeds of one embedder, "
                        f"and seeds is {self.seeds}")
                    continue
                seeds = list(combinations(sorted(self.seeds), 2))
            elif left.endswith("-E") or right.endswith("-E"):
                seeds = [(s, None) for s in self.seeds]
            else:
                seeds = [(None, None)]
            roles_needed = [p.removesuffix("-E") for p in parts]
            applied = False
            for pair, roles in self.pairs.items():
                lacking = [r for r in roles_needed if r not in roles]
                if lacking:  # e.g. base~sft for a pair without sft
                    note = f"{key} {spec} is skipped for pair {pair!r}: it has no {lacking[0]} role"
                    self.skipped_comparisons.append(note)
                    continue
                applied = True
                out += [Comparison(pair, left, right, a, b) for a, b in seeds]
            if not applied:
                raise ConfigError(f"{key}: {spec!r} applies to no pair (none has every role it names: "
                                  f"{', '.join(roles_needed)}); remove it or add the role to a pair")
        if self.config.get("comparisons") and not out:
            raise ConfigError(f"comparisons: none applies, so no HRSA would run ({'; '.join(self.skipped_comparisons)})")
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
            if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
                raise ConfigError(f"probes[{i}].name: {name!r} is not safe in paths")
            if name in out:
                raise ConfigError(f"probes[{i}].name: duplicate probe name {name!r}")
            given = {"builtin": probe.get("builtin"), "path": probe.get("path"), "hf": (probe.get("hf") or {}).get("dataset")}
            sources = [k for k, v in given.items() if v]
            if len(sources) != 1:
                raise ConfigError(f"probes[{i}]: give exactly one of builtin, path, hf (got {sources or 'none'})")
            out[name] = probe
        return out

    def _check_knn_k(self) -> None:
        """Every kNN size must leave neighbours to find: k below the most rows a probe can have, as configured."""
        ks = list((self.config.get("hrsa") or {}).get("knn_k") or [])
        for i, probe in enumerate(self.config.get("probes", [])):
            bound, why = probe_max_rows(probe)
            too_big = [k for k in ks if bound is not None and k >= bound]
            if too_big:
                raise ConfigError(
                    f"hrsa.knn_k: {too_big} too large for probe {probe['name']!r} (probes[{i}]), which has at most "
                    f"{bound} rows ({why}); every k must be below the rows: lower hrsa.knn_k or enlarge the probe"
                )


def probe_max_rows(probe: dict[str, Any]) -> tuple[int | None, str]:
    """The most rows a probe set can yield, as stated in its config (None if it does not say), and why."""
    n_texts = probe.get("n_texts")
    if n_texts is None:
        return None, ""
    if probe.get("granularity", "token") == "sentence":
        return int(n_texts), f"n_texts={n_texts}, one row per text"
    bounds = []
    if probe.get("max_length"):
        length = int(probe["max_length"])
        bounds.append((int(n_texts) * length, f"n_texts={n_texts} x max_length={length}"))
    if probe.get("max_tokens"):
        bounds.append((int(probe["max_tokens"]), f"max_tokens={probe['max_tokens']}"))
    return min(bounds) if bounds else (None, "")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _vocab_digest(tokenizer_json: Path) -> str | None:
    """sha256 of a tokenizer.json's vocabulary with its added tokens (what extraction's tokenizer hash covers)."""
    try:
        data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    vocab = (data.get("model") or {}).get("vocab")
    if not isinstance(vocab, dict):  # e.g. a unigram vocabulary (list of pieces): not compared offline
        return None
    vocab = dict(vocab)
    vocab.update({t["content"]: t["id"] for t in data.get("added_tokens") or [] if "content" in t and "id" in t})
    return "vocab:" + hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()
