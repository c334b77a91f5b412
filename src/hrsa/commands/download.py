"""Fetch every hub model, dataset and mteb task dataset a config names into the Hugging Face cache (or, with --plan,
only list them, offline), so that jobs on compute nodes without network can run with HF_HUB_OFFLINE=1.

Writes {"plan": {models, datasets, mteb_tasks}, "fetched": {kind: ids}} to --out (atomically, after every fetch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `hrsa download`."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="JSON", help="the validated study config (or its slice) as JSON")
    source.add_argument("--configfile", type=Path, metavar="YAML",
                        help="a config file, validated against the workflow's schema (defaults filled), as Snakemake "
                        "validates it")
    p.add_argument("--root", type=Path, default=Path("."), help="repository root: local paths of the config are "
                   "relative to it (default: the working directory)")
    p.add_argument("--plan", action="store_true", help="only list what would be fetched (offline), fetch nothing")
    p.add_argument("--out", type=Path, default=None, metavar="JSON",
                   help="write the plan (and what was fetched) here; default: print it")


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The config from --config (JSON, already validated by Snakemake) or --configfile (validated here)."""
    from hrsa.errors import ConfigError

    if args.config is not None:
        try:
            config = json.loads(args.config)
        except ValueError as exc:
            raise ConfigError(f"--config is not valid JSON ({exc})") from None
        if not isinstance(config, dict):
            raise ConfigError("--config must be a JSON object (the study config)")
        return config
    from hrsa.schema import SCHEMA_PATH

    return validated_config(args.configfile, SCHEMA_PATH)


def validated_config(path: Path, schema: Path) -> dict[str, Any]:
    """A YAML config validated against the workflow's schema with its defaults filled in (snakemake.utils.validate,
    the call the Snakefile makes), so the plan sees the config exactly as the workflow does."""
    from hrsa.errors import ConfigError
    from hrsa.grid.checks import load_yaml_strict

    try:
        config = load_yaml_strict(path)  # duplicate keys refused, as the Snakefile refuses them
    except ConfigError as exc:
        raise ConfigError(f"--configfile {exc}") from None
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema))
    except WorkflowError as exc:
        raise ConfigError(f"--configfile {path}: {str(exc).splitlines()[0]}") from None
    return config


def run(args: argparse.Namespace) -> None:
    """Compute the plan; unless --plan, fetch it; write or print the result."""
    from hrsa.download import download_plan, fetch, plan_ids
    from hrsa.io import write_json

    plan = download_plan(load_config(args), args.root)
    counts = ", ".join(f"{len(ids)} {kind}" for kind, ids in plan_ids(plan).items())
    print(f"download plan: {counts}", file=sys.stderr)
    result: dict[str, Any] = {"plan": plan}
    if not args.plan:
        result["fetched"] = fetch(plan, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.out is None:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        write_json(args.out, result)
