"""The `hrsa` command line: one verb per workflow stage; heavy libraries are imported only by the verb that runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# verb -> module in hrsa.commands; each module defines add_arguments(parser) and run(args) -> None,
# and imports nothing heavy at module level, so `hrsa --help` stays fast.
COMMANDS: dict[str, str] = {
    "pretrain": "pretrain",
    "rlvr": "rlvr",
    "sft": "sft",
    "make-data": "make_data",
    "mine": "mine",
    "train": "train",
    "extract": "extract",
    "knn": "knn",
    "compare": "compare",
    "evaluate": "evaluate",
    "report": "report",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Parser with one sub-parser per verb (or only the verb being run), described by its module's docstring."""
    parser = argparse.ArgumentParser(prog="hrsa", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, module_name in COMMANDS.items():
        if only is not None and verb != only:
            sub.add_parser(verb)
            continue
        module = importlib.import_module(f"hrsa.commands.{module_name}")
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(verb, help=doc[0] if doc else verb, description=module.__doc__)
        p.add_argument("--threads", type=int, default=1, help="CPU threads for torch/BLAS/FAISS (Snakemake's threads)")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hrsa` console script; user errors exit 2 with one clear line."""
    from hrsa.errors import HrsaError
    from hrsa.runtime import limit_threads

    argv = list(sys.argv[1:] if argv is None else argv)
    verb = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only=verb).parse_args(argv)
    limit_threads(args.threads)
    try:
        args._module.run(args)
    except HrsaError as exc:
        print(f"hrsa {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
