"""Sibling health of one backbone: greedy pass@1 on the `siblings.sets` problem sets; for a sibling (--base), its gain
over the base (read from the base's own health file) and its relative weight change; exit 2 with one line when the
gain is below `siblings.min_gain`."""

from __future__ import annotations

import argparse
import json

from hrsa.commands.options import add_config, config_of
from hrsa.schema import default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="backbone: local directory or hub id")
    p.add_argument("--base", default=None, help="the pair's base backbone, for a sibling (gain, weight change)")
    p.add_argument("--base-health", default=None, help="the base's health JSON (its pass@1 per set), with --base")
    p.add_argument("--device", default=default("resources/device"), choices=["auto", "cpu", "cuda"])
    add_config(p, "siblings")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off)")
    p.add_argument("--out", required=True, help="health JSON (written atomically)")


def run(args: argparse.Namespace) -> None:
    from hrsa.backbones.health import health, settings_of
    from hrsa.errors import ConfigError, DataError
    from hrsa.io import write_json
    from hrsa.runtime import torch_device

    if (args.base is None) != (args.base_health is None):
        raise ConfigError("--base and --base-health go together (a sibling is measured against its base)")
    settings = settings_of(config_of(args))
    base_result = None
    if args.base_health is not None:
        try:
            with open(args.base_health, encoding="utf-8") as fh:
                base_result = json.load(fh)
        except (OSError, ValueError) as exc:
            raise DataError(f"base health file {args.base_health} is not readable JSON ({exc}): "
                            "re-run its job") from None
    record = health(args.model, settings, torch_device(args.device), base=args.base, base_result=base_result,
                    trust_remote_code=args.trust_remote_code)
    write_json(args.out, record)
