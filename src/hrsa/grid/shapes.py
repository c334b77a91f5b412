"""What can be known offline about each role's architecture (depth, width, tokenizer), read at DAG time from a
recipe's options or a published model's config.json and tokenizer.json (local, or in the hub cache; never the network).

Roles of one pair that differ in depth, width or tokenizer are an error before any job runs: HRSA compares models of
one architecture and tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrsa.errors import ConfigError
from hrsa.grid.config import Backbone

#: a role's recipe options (recipes: defaults overridden by the role's keys)
OptionsOf = Callable[[Backbone], dict[str, Any]]


@dataclass(frozen=True)
class Shape:
    """What is known offline about a backbone's architecture; None = not knowable without the model's files.

    `tokenizer` is `recipe:<model id>` for a tokenizer the workflow trains (shared by every sibling built from that
    model) or `vocab:<sha256>` of a published tokenizer's vocabulary. `origin` says where the numbers come from.
    `mlp` (intermediate_size) and `vocab` (vocab_size) only size jobs (hrsa.grid.sizing).
    """

    depth: int | None = None
    width: int | None = None
    tokenizer: str | None = None
    origin: str = ""
    mlp: int | None = None
    vocab: int | None = None


@dataclass(frozen=True)
class PairShape:
    """A pair's depth L and each role's shape, with the line saying what could not be compared offline (or '')."""

    depth: int
    shapes: dict[str, Shape]
    unchecked: str = ""


def root_backbone(roles: Mapping[str, Backbone], bb: Backbone) -> Backbone:
    """The role a recipe chain starts from (a published model or a pretrain recipe)."""
    seen = set()
    while bb.parent is not None:
        if bb.role in seen:
            raise ConfigError(f"pairs: recipe roles of pair {bb.pair!r} form a cycle")
        seen.add(bb.role)
        bb = roles[bb.parent]
    return bb


def pair_shape(key: str, roles: Mapping[str, Backbone], explicit: Any, options_of: OptionsOf,
               root: Path) -> PairShape:
    """Depth L of a pair, from its models where known offline (recipe options, config.json), else `num_layers`
    (`explicit`; `key` names the pair's config entry).

    Roles that disagree in depth, width or tokenizer, or a `num_layers` that contradicts a role, are errors here,
    before any job runs; what cannot be read offline is noted in `unchecked` (`hrsa compare` checks it).
    """
    pair = next(iter(roles.values())).pair
    shapes = {role: shape_of(roles, bb, options_of, root) for role, bb in roles.items()}
    for attr, what in (("depth", "depth (num_hidden_layers)"), ("width", "width (hidden_size)"),
                       ("tokenizer", "tokenizer vocabulary")):
        known = {r: getattr(s, attr) for r, s in shapes.items() if getattr(s, attr) is not None}
        if attr == "tokenizer":  # a tokenizer the workflow trains is comparable only with its own siblings
            known = {r: v for r, v in known.items() if v.startswith("vocab:")}
        if len(set(known.values())) > 1:
            detail = ", ".join(f"{r} {_shown(v)} ({shapes[r].origin})" for r, v in known.items())
            raise ConfigError(f"{key}: the roles of pair {pair!r} differ in {what}: {detail}; "
                              "HRSA compares models of one architecture and tokenizer")
    for role, shape in shapes.items():
        if explicit is not None and shape.depth is not None and int(explicit) != shape.depth:
            raise ConfigError(
                f"{key}.num_layers: {explicit} contradicts the {role} model, which has {shape.depth} blocks "
                f"({shape.origin}); remove num_layers (it is read from the model) or correct it"
            )
    unchecked = _unchecked(roles, shapes)
    if explicit is not None:
        return PairShape(int(explicit), shapes, unchecked)
    depths = [s.depth for s in shapes.values() if s.depth is not None]
    if depths:
        return PairShape(depths[0], shapes, unchecked)
    first = root_backbone(roles, roles["base"] if "base" in roles else next(iter(roles.values())))
    raise ConfigError(f"{key}.num_layers: required for {first.source!r} (its config.json is not available offline)")


def _shown(value: int | str) -> str:
    return value[:18] if isinstance(value, str) else str(value)


def _unchecked(roles: Mapping[str, Backbone], shapes: Mapping[str, Shape]) -> str:
    """Which properties of a pair's roles could not be compared offline ('' when none)."""
    if len({root_backbone(roles, roles[role]).role for role in shapes}) < 2:
        return ""  # every role is built from one model: same depth, width and tokenizer by construction
    missing = []
    for attr, what in (("depth", "depths"), ("width", "widths"), ("tokenizer", "tokenizers")):
        values = {getattr(s, attr) for s in shapes.values()}
        if None in values or (attr == "tokenizer" and len(values) > 1):
            missing.append(what)
    if not missing:
        return ""
    pair = next(iter(roles.values())).pair
    return (f"pair {pair!r}: {', '.join(missing)} of {', '.join(shapes)} cannot be compared offline (config.json / "
            "tokenizer.json not found locally or in the hub cache); `hrsa compare` checks that their rows align")


def shape_of(roles: Mapping[str, Backbone], bb: Backbone, options_of: OptionsOf, root: Path) -> Shape:
    """Depth, width and tokenizer of a role: a recipe's options, the parent's for siblings, else its files."""
    first = root_backbone(roles, bb)
    if first.recipe == "pretrain":
        opts = options_of(first)
        return Shape(_int_or_none(opts.get("num_layers")), _int_or_none(opts.get("hidden_size")),
                     f"recipe:{first.model_id}", f"pretrain recipe of {first.model_id}",
                     _int_or_none(opts.get("intermediate_size")), _int_or_none(opts.get("vocab_size")))
    config = published_file(first, "config.json", root)
    tokenizer = published_file(first, "tokenizer.json", root)
    data: dict[str, Any] = {}
    origin = f"{first.source}: no config.json offline"
    if config is not None:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"pairs: {bb.model_id} ({first.source}): cannot read {config} ({exc})") from None
        data = data.get("text_config", data)
        origin = str(config)
    return Shape(data.get("num_hidden_layers"), data.get("hidden_size"),
                 vocab_digest(tokenizer) if tokenizer else None, origin, data.get("intermediate_size"),
                 data.get("vocab_size"))


def published_file(bb: Backbone, filename: str, root: Path) -> Path | None:
    """A file of a published backbone: from its local directory, or from the hub cache (never the network)."""
    assert bb.source is not None
    local = root / bb.source
    if bb.source.startswith((".", "/")) or local.exists():
        return local / filename if (local / filename).is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # hrsa.grid stays importable without the hub client
        return None
    try:
        cached = try_to_load_from_cache(bb.source, filename)
    except ValueError:  # not a valid repo id: nothing cached under it
        return None
    return Path(cached) if isinstance(cached, str) else None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def vocab_digest(tokenizer_json: Path) -> str | None:
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
