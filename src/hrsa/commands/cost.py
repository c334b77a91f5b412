"""Print what a config costs before it runs: GPU-hours and CPU-hours requested (runtime x devices, summed by rule),
the number of scheduler submissions (the profile's groups applied), and the storage of activations and kNN graphs per
probe. Offline, from Snakemake's DAG of the config; nothing runs.

    hrsa cost --configfile config/paper.yaml                      # as profiles/slurm would submit it
    hrsa cost --configfile config/config.yaml my.yaml --profile profiles/local
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `hrsa cost`."""
    p.add_argument("--configfile", type=Path, nargs="+", required=True, metavar="YAML",
                   help="config files, merged in order as Snakemake merges them")
    p.add_argument("--profile", default=str(REPO / "profiles/slurm"),
                   help="Snakemake profile whose group-components decide the submissions ('none': the rules' groups as "
                   "Snakemake joins them without a profile)")
    p.add_argument("--snakefile", type=Path, default=REPO / "Snakefile", help="the workflow")
    p.add_argument("--json", action="store_true", help="print the jobs' summary and storage as JSON")


def run(args: argparse.Namespace) -> None:
    """Build the DAG in a scratch directory (no outputs exist there: every job is counted) and print the cost."""
    from hrsa.cost import dag_cost, render, summarise
    from hrsa.errors import ConfigError

    for f in args.configfile:
        if not f.is_file():
            raise ConfigError(f"--configfile {f}: no such file")
    profile = None if args.profile == "none" else args.profile
    with tempfile.TemporaryDirectory(prefix="hrsa-cost-") as tmp:
        # the Snakefile's `configfile:` (config/config.yaml) comes first, as in a run from the repository root; the
        # scratch directory has none, so it is named here
        directive = (args.snakefile.resolve().parent / "config/config.yaml").resolve()
        files = [f.resolve() for f in args.configfile]
        files = files if not directive.is_file() or directive in files else [directive, *files]
        result = dag_cost(files, profile, args.snakefile.resolve(), tmp)
    summary = summarise(result["jobs"])
    if args.json:
        print(json.dumps({"summary": summary, "storage": result["storage"]}, indent=2, sort_keys=True))
    else:
        names = " + ".join(str(f) for f in args.configfile)
        print(render(summary, result["storage"], f"{names} (profile: {Path(profile).name if profile else 'none'})"))
