"""The config schema shipped in the package: the one source of every config default. The Snakefile validates against
it, and verbs fill the keys a config slice leaves out from it (`with_defaults`), so no module keeps a copy."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from hrsa.errors import ConfigError

T = TypeVar("T")
SCHEMA_PATH = Path(str(resources.files("hrsa") / "config.schema.yaml"))


@functools.cache
def load_schema() -> dict[str, Any]:
    """The parsed schema (cached: it is read once per process)."""
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _resolve(node: Mapping[str, Any]) -> dict[str, Any]:
    """A schema node with a local `$ref` (`#/a/b`) merged under its own keys (its own description wins). The target's
    default is not inherited: an override block that refers to a global key takes the global value, not its default."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    target: Any = load_schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    inherited = {k: v for k, v in _resolve(target).items() if k != "default"}
    return {**inherited, **node}


def node(dpath: str) -> dict[str, Any]:
    """The schema node of a config key, e.g. `training/learning_rate` or `recipes/rlvr` (`pairs/*` for list items)."""
    current = _resolve(load_schema())
    for part in [p for p in dpath.split("/") if p]:
        if part == "*":
            current = _resolve(current["items"])
            continue
        props = current.get("properties") or {}
        if part not in props:
            raise ConfigError(f"{dpath}: no such config key in the schema")
        current = _resolve(props[part])
    return current


def default(dpath: str) -> Any:
    """The schema's default of one config key (a deep copy, safe to change)."""
    found = node(dpath)
    if "default" not in found:
        raise ConfigError(f"{dpath}: the schema gives no default")
    return copy.deepcopy(found["default"])


def description(dpath: str) -> str:
    """The schema's one-line description of a config key."""
    return str(node(dpath).get("description", ""))


def with_defaults(dpath: str, block: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A config object (`training`, `hrsa`, `recipes/rlvr`, ...) with every key it leaves out taken from the schema,
    nested objects filled the same way, as Snakemake's validate() fills a whole config."""
    return _fill(node(dpath), dict(block or {}))


def _fill(schema_node: Mapping[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    out = dict(block)
    for key, sub in (schema_node.get("properties") or {}).items():
        sub = _resolve(sub)
        if key not in out:
            if "default" not in sub:
                continue
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out[key], dict) and sub.get("type") == "object":
            out[key] = _fill(sub, out[key])
    return out


def settings_from(cls: type[T], dpath: str, block: Mapping[str, Any] | None = None, *, elsewhere: tuple[str, ...] = (),
                  **extra: Any) -> T:
    """A settings dataclass from a config object filled from the schema: its fields are the object's keys, less
    `elsewhere` (keys another argument of the verb carries); `extra` sets fields that are not config keys here."""
    values = with_defaults(dpath, block)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names - set(elsewhere)
    if unknown:
        raise ConfigError(f"{dpath.replace('/', '.')}: unknown keys {sorted(unknown)}")
    return cls(**{k: v for k, v in values.items() if k in names}, **extra)
