"""`make install GPU=1` resolves: every pin of requirements/constraints-gpu.txt exists on PyPI for this interpreter and
platform, torch resolves to the CUDA build (not the local CPU wheel), and faiss-gpu-cu12 replaces faiss-cpu.

Needs PyPI (the registries are reachable in CI here); without it the test skips and says so."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from smk import REPO

GPU = REPO / "requirements/constraints-gpu.txt"


def pins(path):
    return dict(re.match(r"([A-Za-z0-9_.-]+)==(\S+)$", line).groups() for line in path.read_text().splitlines()
                if re.match(r"[A-Za-z0-9_.-]+==", line))


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def test_gpu_constraints_extend_the_cpu_lock_without_contradicting_it():
    text = GPU.read_text()
    assert "-c constraints.txt" in text and "torch!=2.13.0+cpu" in text
    cpu, gpu = pins(REPO / "requirements/constraints.txt"), pins(GPU)
    assert not set(cpu) & set(gpu)  # one pin per package: the GPU file only adds
    assert "faiss-gpu-cu12" in gpu and "faiss-cpu" in cpu
    makefile = (REPO / "Makefile").read_text()
    assert "-c requirements/constraints-gpu.txt torch faiss-gpu-cu12" in makefile


@pytest.mark.skipif(not pypi_reachable(), reason="PyPI is not reachable: the GPU install cannot be resolved offline")
def test_gpu_install_resolves_on_pypi(tmp_path):
    report = tmp_path / "report.json"
    gpu = pins(GPU)
    # every GPU pin, and torch through both files (the CPU lock's torch==2.13.0 and the GPU file's exclusion)
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--no-deps",
           "--quiet", "--report", str(report), "--index-url", "https://pypi.org/simple", "-c", str(GPU), "torch",
           *(f"{name}=={version}" for name, version in gpu.items())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = {i["metadata"]["name"].lower(): i for i in json.loads(report.read_text())["install"]}
    torch = got["torch"]
    assert torch["metadata"]["version"] == pins(REPO / "requirements/constraints.txt")["torch"]  # no +cpu label
    assert any("nvidia" in d or "cuda" in d for d in torch["metadata"].get("requires_dist", []))  # the CUDA build
    assert got["faiss-gpu-cu12"]["metadata"]["version"] == gpu["faiss-gpu-cu12"]
    assert set(got) == {n.lower() for n in gpu} | {"torch"}
