"""The checkpoint writer lock (hrsa.locks) across real processes: exclusion, holder named, freed when its holder
dies."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hrsa.errors import HrsaError
from hrsa.locks import exclusive_dir_lock, lock_path

HOLD = """
import sys, time
from hrsa.locks import exclusive_dir_lock
with exclusive_dir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(directory: Path, seconds: float) -> subprocess.Popen[str]:
    """Start a process that holds the lock for `seconds`; return once it holds it."""
    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_fails_at_once_naming_directory_and_holder(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    proc = _holder(ckpt, 30)
    try:
        start = time.monotonic()
        with pytest.raises(HrsaError) as err, exclusive_dir_lock(ckpt, wait=False):
            pass
        assert time.monotonic() - start < 1
        msg = str(err.value)
        assert str(ckpt) in msg and f"pid={proc.pid}" in msg and "slurm_job=4242" in msg and "\n" not in msg
    finally:
        proc.kill()
        proc.wait()


def test_waiter_runs_after_holder_ends(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    proc = _holder(ckpt, 1.5)
    start = time.monotonic()
    log = io.StringIO()
    with exclusive_dir_lock(ckpt, log=log):
        assert time.monotonic() - start > 1.2, "the waiter got the lock while the holder still held it"
        assert f"pid={os.getpid()}" in lock_path(ckpt).read_text()
    assert f"waiting for {ckpt}" in log.getvalue() and f"pid={proc.pid}" in log.getvalue()
    proc.wait()


def test_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    proc = _holder(ckpt, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    with exclusive_dir_lock(ckpt, wait=False):
        pass
    assert time.monotonic() - start < 1


def test_lock_survives_the_directory_being_discarded(tmp_path: Path) -> None:
    """fingerprinted_dir may rmtree the checkpoint directory: the lock lives beside it, so it stays held."""
    import shutil

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with exclusive_dir_lock(ckpt):
        shutil.rmtree(ckpt)
        with pytest.raises(HrsaError), exclusive_dir_lock(ckpt, wait=False):
            pass
