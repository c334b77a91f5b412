"""One writer per resume directory: an exclusive `flock` that dies with its process, so a dead job never blocks a
re-run.

Why: when Snakemake itself is killed, its SLURM jobs keep running; a re-run then submits a second job for the same
output. Two trainers sharing one checkpoint directory corrupt each other's schedule. The second writer waits for the
first (the orphan finishes its schedule, the waiter then resumes from the final checkpoint), naming the holder while it
waits.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from hrsa.errors import HrsaError


def takes_run_lock() -> bool:
    """True on the one process of a run that takes its lock: rank 0 of a torchrun group (RANK, set by torchrun), the
    only process outside torchrun. Its sibling ranks must not lock: they would wait for rank 0 for ever."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def run_lock(directory: str | os.PathLike[str], log: TextIO = sys.stdout) -> Iterator[Path | None]:
    """exclusive_dir_lock of `directory` on the process that takes_run_lock; a no-op (yields None) on the others,
    which wait for rank 0 in the process group instead."""
    if not takes_run_lock():
        yield None
        return
    with exclusive_dir_lock(directory, log=log) as path:
        yield path


def lock_path(directory: str | os.PathLike[str]) -> Path:
    """The lock file of a resume directory: a sibling `<dir>.lock`, since the directory itself may be discarded and
    recreated (io.fingerprinted_dir), which would unlink a lock file held inside it."""
    directory = Path(directory)
    return directory.parent / f"{directory.name}.lock"


def holder_line() -> str:
    """Who holds the lock: host, pid and SLURM job id (or `-` outside SLURM)."""
    return f"host={socket.gethostname()} pid={os.getpid()} slurm_job={os.environ.get('SLURM_JOB_ID', '-')}"


def _read_holder(fh: TextIO) -> str:
    fh.seek(0)
    return fh.read().strip() or "unknown holder"


@contextmanager
def exclusive_dir_lock(directory: str | os.PathLike[str], wait: bool = True,
                       log: TextIO = sys.stdout) -> Iterator[Path]:
    """Hold the exclusive writer lock of `directory` for the block.

    A held lock is reported on one line naming the directory and its holder; then `wait=True` blocks until the holder
    ends (a lock never outlives its process), `wait=False` raises HrsaError at once.
    """
    path = lock_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fh)
            if not wait:
                raise HrsaError(f"{directory} is being written by another job ({holder}); "
                                f"wait for it to end or cancel it (scancel), then re-run") from None
            print(f"waiting for {directory}: written by another job ({holder})", file=log, flush=True)
            start = time.monotonic()
            fcntl.flock(fh, fcntl.LOCK_EX)
            print(f"lock on {directory} acquired after {time.monotonic() - start:.0f} s", file=log, flush=True)
        fh.seek(0)
        fh.truncate()
        fh.write(holder_line() + "\n")
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
