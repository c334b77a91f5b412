"""Flags every verb shares: `--config JSON`, the verb's config slice (missing keys come from the schema, whose
defaults its help lists), parsed into a dict with one-line errors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hrsa.errors import ConfigError
from hrsa.schema import node


def schema_defaults(dpath: str) -> str:
    """`key=default` for every key of a config object, as the help of its --config flag shows them."""
    props = node(dpath).get("properties") or {}
    return ", ".join(f"{key}={json.dumps(sub['default'])}" for key, sub in props.items() if "default" in sub)


def add_config(parser: argparse.ArgumentParser, dpath: str, what: str | None = None) -> None:
    """The verb's `--config JSON` flag for the config object at `dpath` (e.g. `recipes/rlvr`)."""
    key = dpath.replace("/", ".")
    parser.add_argument(
        "--config", default="{}", metavar="JSON",
        help=f"{what or 'the `' + key + ':` config slice'} as a JSON object; keys left out take the schema's defaults "
             f"({schema_defaults(dpath)})")


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The --config JSON object of a verb (one line naming the flag when it is not an object)."""
    try:
        value = json.loads(args.config)
    except ValueError as exc:
        raise ConfigError(f"--config is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--config must be a JSON object, got {type(value).__name__}")
    return value
