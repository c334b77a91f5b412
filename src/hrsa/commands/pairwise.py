"""HRSA of any two models, without the study: extract, kNN graphs, compare and figures of MODEL_A against MODEL_B on
a text file (one text per line, or JSONL with a `text` field) or a hub dataset, through the workflow's own rules.

    hrsa pairwise MODEL_A MODEL_B --texts texts.txt [--out DIR] [--layers 0,4,8] [--cores N]
    hrsa pairwise Qwen/Qwen2.5-1.5B Qwen/Qwen2.5-Math-1.5B --dataset ag_news --split test --n-texts 512

Writes DIR/config.yaml (one pair: MODEL_A as `base`, MODEL_B as `reason`; one probe; the comparison base~reason; no
training, no evaluation) and runs Snakemake in DIR on the HRSA table and its figures: DIR/results/hrsa/texts/
pairwise.base~reason.parquet and DIR/results/hrsa/texts/pairwise.base~reason.figures/ (curves.png, cka_layers.png,
table.tsv, index.md). A re-run reuses what is finished. Models of different depth, width or tokenizer are refused
before anything runs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hrsa.commands.options import add_config, config_of
from hrsa.errors import ConfigError, DataError, HrsaError

REPO = Path(__file__).resolve().parents[3]
PAIR, PROBE = "pairwise", "texts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs=2, metavar="MODEL", help="two models: hub ids or local directories")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--texts", type=Path, help="text file: one text per line (.txt), or JSONL with a text field")
    src.add_argument("--dataset", help="hub dataset id of the probe texts")
    p.add_argument("--dataset-config", default="", help="config name of --dataset")
    p.add_argument("--split", default="test", help="split of --dataset")
    p.add_argument("--text-field", default="text", help="column (or JSONL field) with the text")
    p.add_argument("--n-texts", type=int, default=None,
                   help="texts used (a seeded sample; default: every text of --texts, 256 of --dataset)")
    p.add_argument("--granularity", choices=["token", "sentence"], default="token",
                   help="token rows, or one pooled row per text (adds the `pooled` layer)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text (longer texts truncated)")
    p.add_argument("--layers", default="all", help="'all' or comma-separated layer indices and/or pooled, e.g. 0,4,8")
    add_config(p, "hrsa", "HRSA settings (the `hrsa:` config slice: knn_k, bootstrap, blocks, ...)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the models' own modelling code")
    p.add_argument("--out", type=Path, default=Path("hrsa-pairwise"), help="working directory of the run")
    p.add_argument("--cores", type=int, default=1, help="CPU cores Snakemake may use (each job's threads too)")
    p.add_argument("--dry-run", action="store_true", help="write the config and show the jobs; run nothing")


def _model(name: str, flag: str) -> str:
    """A local directory as an absolute path, a hub id as given; a path that is not a directory is a DataError."""
    from hrsa.hub import is_hub_id

    if is_hub_id(name):
        return name
    path = Path(name).expanduser().resolve()
    if not path.is_dir():
        raise DataError(f"{flag} {name}: no such model directory (give a local directory or a hub id)")
    return str(path)


def check_shapes(a: str, b: str) -> None:
    """Two models of different depth, width or tokenizer vocabulary (as read offline) are one-line errors."""
    from hrsa.grid.config import Backbone
    from hrsa.grid.shapes import shape_of

    shapes = []
    for role, source in (("base", a), ("reason", b)):
        bb = Backbone(PAIR, role, source=source)
        shapes.append(shape_of({role: bb}, bb, lambda _: {}, REPO))
    for attr, what in (("depth", "depth (num_hidden_layers)"), ("width", "width (hidden_size)"),
                       ("tokenizer", "tokenizer vocabulary")):
        va, vb = getattr(shapes[0], attr), getattr(shapes[1], attr)
        if va is not None and vb is not None and va != vb:
            shown = "" if attr == "tokenizer" else f" ({va} vs {vb})"
            raise DataError(f"{a} and {b} differ in {what}{shown}: HRSA compares models of one architecture and "
                            "tokenizer")


def probe_file(texts: Path, field: str, out: Path) -> tuple[Path, int]:
    """The probe JSONL of a text file (a .txt file: one text per non-blank line) and its number of texts."""
    from hrsa.io import atomic_path

    if not texts.is_file():
        raise DataError(f"--texts {texts}: no such file")
    try:
        lines = [line for line in texts.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--texts {texts}: unreadable ({exc})") from None
    if texts.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get(field), str):
                raise DataError(f"--texts {texts}: line {i} is not a JSON object with a string {field!r} field")
            rows.append(row[field])
        lines = rows
    if len(lines) < 2:
        raise DataError(f"--texts {texts}: {len(lines)} text(s); HRSA needs at least 2")
    path = out / "inputs" / "texts.jsonl"
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(lines)),
                       encoding="utf-8")
    return path, len(lines)


def _layers(spec: str) -> Any:
    if spec == "all":
        return "all"
    out: list[int | str] = []
    for part in (s.strip() for s in spec.split(",")):
        if part == "pooled" or part.isdigit():
            out.append(part if part == "pooled" else int(part))
        else:
            raise ConfigError(f"--layers: {part!r} is neither a layer index nor 'pooled' (e.g. --layers 0,4,pooled)")
    return out


def pairwise_config(args: argparse.Namespace, a: str, b: str, out: Path) -> dict[str, Any]:
    """The config of the run: one pair, one probe, base~reason, no training and no evaluation."""
    probe: dict[str, Any] = {"name": PROBE, "granularity": args.granularity, "max_length": args.max_length}
    if args.texts is not None:
        path, n = probe_file(args.texts, args.text_field, out)
        probe.update(path=str(path), n_texts=args.n_texts or n)
    else:
        probe["hf"] = {"dataset": args.dataset, "config": args.dataset_config, "split": args.split,
                       "text_field": args.text_field}
        if args.n_texts:
            probe["n_texts"] = args.n_texts
    threads = max(1, args.cores)
    return {"pairs": [{"name": PAIR, "base": a, "reason": b, "trust_remote_code": bool(args.trust_remote_code)}],
            "seeds": [0], "layers": _layers(args.layers), "probes": [probe], "comparisons": ["base~reason"],
            "hrsa": config_of(args), "evaluation": {"tasks": []}, "download": {"enabled": False},
            "resources": {stage: {"threads": threads} for stage in ("extract", "knn", "compare")}}


def check_config(config: dict[str, Any]) -> None:
    """The config as the Snakefile checks it (schema, then the Study), in this process: one line, before any job."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from hrsa.grid import Study
    from hrsa.schema import SCHEMA_PATH

    filled = copy.deepcopy(config)
    try:
        validate(filled, str(SCHEMA_PATH))
    except WorkflowError as exc:
        raise ConfigError(f"invalid settings: {str(exc).splitlines()[0]}") from None
    Study(filled, root=REPO)


def targets() -> list[str]:
    """The HRSA table of the pair and its figures."""
    from hrsa import paths

    comparison = f"{PAIR}.base~reason"
    return [paths.HRSA_TABLE.format(probe=PROBE, comparison=comparison),
            paths.PAIRWISE_FIGURES.format(probe=PROBE, comparison=comparison)]


def run(args: argparse.Namespace) -> None:
    import yaml

    a, b = _model(args.models[0], "MODEL_A"), _model(args.models[1], "MODEL_B")
    check_shapes(a, b)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = pairwise_config(args, a, b, out)
    check_config(config)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(out),
           "--configfile", str(out / "config.yaml"), "--cores", str(max(1, args.cores)), "--rerun-incomplete",
           *(["-n", "--printshellcmds"] if args.dry_run else []), *targets()]
    proc = subprocess.run(cmd, cwd=out, env=env)
    if proc.returncode != 0:
        log = out / "logs"
        raise HrsaError(f"the workflow failed (exit {proc.returncode}); its job logs are under {log}")
    if not args.dry_run:
        table, figures = (out / t for t in targets())
        print(f"HRSA table: {table}\nfigures: {figures / 'index.md'}")
