"""The one way the tests start Snakemake on this repository's workflow and read what it prints: every call is
wrapped in `timeout -k` (a hang fails the test, not CI), runs offline with the project's venv first on PATH, and
dry runs are parsed by the functions below (shell commands, job counts, each job's block)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
_JOB_BLOCK = re.compile(r"^( *)rule (\w+):\n((?:\1    .*\n)*)", flags=re.M)  # grouped jobs sit one level deeper


def environment(**extra: str) -> dict[str, str]:
    """The jobs' environment: offline, the venv's `hrsa` and `snakemake` first on PATH, this checkout's sources."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])), **extra}


def snakemake(*args: str, cwd: Path, timeout: int = 300, check: bool = True, snakefile: Path = SNAKEFILE,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `snakemake -s SNAKEFILE --directory CWD ARGS` (check: fail the test with the output's tail on an error)."""
    cmd = ["timeout", "-k", "10", str(timeout), str(BIN / "snakemake"), "-s", str(snakefile), "--directory", str(cwd),
           *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env or environment(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_config(directory: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    """A config as a YAML file in `directory` (for --configfile)."""
    path = directory / name
    path.write_text(yaml.safe_dump(config))
    return path


def demo_config() -> dict[str, Any]:
    """The embedded default config/config.yaml, as a dict to change."""
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def dry_run(cwd: Path, configfile: Path, *args: str, check: bool = True,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`snakemake -n --printshellcmds --configfile CONFIGFILE ARGS` in `cwd`."""
    return snakemake("-n", "--printshellcmds", "--configfile", str(configfile), *args, cwd=cwd, check=check, **kwargs)


def shell_commands(output: str) -> list[str]:
    """The `hrsa ...` shell commands of a dry run's output."""
    return [line.removeprefix("Shell command: ") for line in output.splitlines()
            if line.startswith("Shell command: hrsa ")]


def hrsa_argv(command: str) -> list[str]:
    """The argv of `hrsa` in a rule's shell command (up to the log redirection)."""
    words = shlex.split(command)
    assert words[0] == "hrsa", command
    return words[1:words.index(">")]


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: jobs}."""
    return {m.group(1): int(m.group(2)) for line in output.splitlines()
            if (m := re.fullmatch(r"(\w+)\s+(\d+)", line.strip())) and m.group(1) != "total"}


def job_blocks(output: str) -> dict[str, list[str]]:
    """Each job's block of a dry run (its input, output, threads, resources lines...), per rule."""
    out: dict[str, list[str]] = {}
    for m in _JOB_BLOCK.finditer(output):
        out.setdefault(m.group(2), []).append(m.group(3))
    return out


def job_resources(output: str) -> dict[str, str]:
    """The `resources:` line of one job per rule (the last job listed)."""
    return {rule: line.split("resources: ", 1)[1] for rule, blocks in job_blocks(output).items()
            for block in blocks for line in block.splitlines() if "resources: " in line}
