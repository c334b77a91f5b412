"""What a config overlay removes. Snakemake merges config files in order (`configfile:` in the Snakefile, then every
`--configfile`): mappings merge key by key, but a list in a later file replaces the earlier list whole, so an overlay
`comparisons: [sft-E~sft-E]` on config/config.yaml silently keeps only that comparison. `overlay_drops` names, per
later file and list key, the entries it drops, so the DAG build can print them (Snakefile)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _label(item: Any) -> str:
    """An entry as a reader knows it: a mapping by its `name` (pairs, probes), anything else as written."""
    if isinstance(item, Mapping) and "name" in item:
        return str(item["name"])
    return item if isinstance(item, str) else json.dumps(item, sort_keys=True, default=str)


def _walk(old: Mapping[str, Any], new: Mapping[str, Any], key: str, out: list[tuple[str, list[str]]]) -> None:
    for k, value in new.items():
        path = f"{key}.{k}" if key else str(k)
        before = old.get(k)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            _walk(before, value, path, out)
        elif isinstance(value, list) and isinstance(before, list):
            kept = {_label(x) for x in value}
            dropped = [lab for lab in map(_label, before) if lab not in kept]
            if dropped:
                out.append((path, list(dict.fromkeys(dropped))))


def _merge(base: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's update_config: mappings merge recursively, anything else (lists included) replaces."""
    for k, value in new.items():
        if isinstance(value, Mapping) and isinstance(base.get(k), Mapping):
            base[k] = _merge(dict(base[k]), value)
        else:
            base[k] = value
    return base


def overlay_drops(layers: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[str]:
    """One line per (later file, list key) whose list drops entries of the config merged before it, e.g.
    `overlay.yaml replaces comparisons (8 entries -> 1): dropped base~reason, base~sft, ...`. `layers` are
    (file name, parsed content) in merge order."""
    merged: dict[str, Any] = {}
    notes = []
    for i, (name, content) in enumerate(layers):
        content = content or {}
        if i:
            found: list[tuple[str, list[str]]] = []
            _walk(merged, content, "", found)
            for key, dropped in found:
                before, after = _count(merged, key), _count(content, key)
                notes.append(f"{name} replaces {key} ({before} entries -> {after}): dropped {', '.join(dropped)}. "
                             "Lists in a later config file replace the earlier list whole: repeat the entries to keep "
                             "in the overlay")
        merged = _merge(merged, content)
    return notes


def _count(config: Mapping[str, Any], key: str) -> int:
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return len(node)


def config_layers(directive: Sequence[str | Path], command_line: Sequence[str | Path],
                  replace_directive: bool = False) -> list[tuple[str, Any]]:
    """The config files in Snakemake's merge order, parsed: the Snakefile's `configfile:` files (unless
    --replace-workflow-config), then the `--configfile` files."""
    from hrsa.grid.checks import load_yaml_strict

    files = [] if replace_directive else [f for f in directive if f not in command_line]
    return [(str(f), load_yaml_strict(f)) for f in [*files, *command_line] if Path(f).is_file()]
