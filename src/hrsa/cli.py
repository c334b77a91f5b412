"""The `hrsa` command line: one verb per workflow stage; heavy libraries are imported only by the verb that runs."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

# verb -> module in hrsa.commands; each module defines add_arguments(parser) and run(args) -> None,
# and imports nothing heavy at module level, so `hrsa --help` stays fast.
COMMANDS: dict[str, str] = {
    "pretrain": "pretrain",
    "rlvr": "rlvr",
    "sft": "sft",
    "health": "health",
    "make-data": "make_data",
    "mine": "mine",
    "train": "train",
    "extract": "extract",
    "knn": "knn",
    "compare": "compare",
    "evaluate": "evaluate",
    "baseline": "baseline",
    "download": "download",
    "cost": "cost",
    "report": "report",
    "figures": "figures",
    "pairwise": "pairwise",
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows each optional flag's default (none for required flags, switches and unset values)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default in (None, False, "{}", argparse.SUPPRESS) or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Parser with one sub-parser per verb (or only the verb being run), described by its module's docstring; every
    flag's help shows its default."""
    parser = argparse.ArgumentParser(prog="hrsa", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hrsa {version()}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, module_name in COMMANDS.items():
        if only is not None and verb != only:
            sub.add_parser(verb)
            continue
        module = importlib.import_module(f"hrsa.commands.{module_name}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(verb, help=doc.split("\n\n")[0].replace("\n", " ") if doc else verb, description=doc,
                           formatter_class=DefaultsHelpFormatter)
        p.add_argument("--threads", type=int, default=1, help="CPU threads for torch/BLAS/FAISS (Snakemake's threads)")
        p.add_argument("--gpus", type=int, default=None,
                       help="GPUs the job was given (the rule's request): 0 runs on CPU, more picks CUDA where torch "
                            "sees it; overrides --device")
        module.add_arguments(p)
        p.set_defaults(_module=module, _parser=p)
    return parser


def version() -> str:
    """The installed package's version."""
    from importlib import metadata

    try:
        return metadata.version("hrsa")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hrsa` console script; user errors exit 2 with one clear line."""
    from hrsa.errors import HrsaError
    from hrsa.runtime import limit_threads

    argv = list(sys.argv[1:] if argv is None else argv)
    verb = argv[0] if argv and argv[0] in COMMANDS else None
    args, unknown = build_parser(only=verb).parse_known_args(argv)
    if unknown:  # the verb's own usage, not the top-level one
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.gpus is not None and hasattr(args, "device"):
        args.device = "auto" if args.gpus > 0 else "cpu"
    limit_threads(args.threads)
    try:
        args._module.run(args)
    except HrsaError as exc:
        print(f"hrsa {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        message = os_error_message(exc, getattr(args, "out", None))
        if message is None:
            raise  # not about a file or the disk: a bug, keep the traceback
        print(f"hrsa {args.verb}: error: {message}", file=sys.stderr)
        return 2
    return 0


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_NOT_A_DIR = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)


def os_error_message(exc: OSError, out: object = None) -> str | None:
    """One line for a file-system error (naming the file and what to do), or None for an OSError that names no file
    and is not a full disk. Outputs are written atomically, so nothing finished has been replaced when this happens."""
    no_space = exc.errno in _NO_SPACE or "No space left on device" in str(exc)
    target = exc.filename or out
    if no_space:
        return (f"no space left on device while writing {target}: free space there (or point the results or work "
                "directory elsewhere) and re-run; nothing finished was replaced")
    if not exc.filename:
        return None
    reason = exc.strerror or str(exc)
    if exc.errno in _NOT_WRITABLE:
        hint = "make it writable or choose another directory, then re-run"
    elif exc.errno in _NOT_A_DIR:
        hint = "a file is in the way of a directory (or the other way round): move it or choose another path"
    elif exc.errno == errno.ENOENT:
        hint = "check the path (did the job that writes it finish?)"
    else:
        hint = "check the file and the file system, then re-run"
    return f"{exc.filename}: {reason}; {hint}"


if __name__ == "__main__":
    sys.exit(main())
