"""The prepared GPU check and rehearsal scripts run: bench/gpu_check.py's kernels on CPU at small shapes (the same
code path the GPU run takes, with its bidirectional check), and bench/rehearsal.py's table arithmetic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from smk import REPO


def test_gpu_check_kernels_run_on_cpu(tiny_backbone):
    done = subprocess.run([sys.executable, str(REPO / "bench/gpu_check.py"), "kernels", "--model", str(tiny_backbone),
                           "--device", "cpu", "--precision", "bf16", "--small"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "attention bidirectional under sdpa" in done.stdout
    for job in ("train (mini-batch", "extract (", "evaluate (", "knn ("):
        assert job in done.stdout


def test_mfu_counts_the_published_qwen3_size():
    sys.path.insert(0, str(REPO / "bench"))
    from gpu_check import model_flops_per_token
    from rehearsal import QWEN3_0B6
    from transformers import Qwen3Config

    cfg = Qwen3Config(**QWEN3_0B6)
    non_embedding = 596_049_920 - 151_936 * 1024 - 28 * (2 * 1024 + 2 * 128) - 1024  # minus norms
    assert model_flops_per_token(cfg, 1, False) == pytest.approx(2 * non_embedding, rel=1e-3)
    assert model_flops_per_token(cfg, 1, True) == pytest.approx(6 * non_embedding, rel=1e-3)


def test_rehearsal_table_reads_job_records_and_planning_figures(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    import yaml
    from rehearsal import measured, planning

    from hrsa.paths import BENCH_ROOT

    bench = tmp_path / BENCH_ROOT / "train"  # job records live with the outputs (results/benchmarks/)
    bench.mkdir(parents=True)
    (bench / "qwen3-0b6.base-E.s0.tsv").write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t9000.5\n")
    rows = measured(tmp_path)
    assert rows == [{"job": "train/qwen3-0b6.base-E.s0", "rule": "train_embedder", "stage": "train", "s": 12.5,
                     "rss_mb": 9000.5}]
    paper = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    assert planning(paper, "train", 0.6) == (32000 + 32000 * 0.6, 600 + 1200 * 0.6)
    # compare: its rule adds 2 x hrsa.max_accumulator_gb (paper.yaml: 8 GB) to resources.compare.mem_mb
    assert planning(paper, "compare", 0.6) == (8000 + 2048 * 8, 60)
    # every rule's record is named (mining and the local rules, whose figures sit in their .smk, included)
    for name in ("data/mine", "data/probe.prose", "data/train", "report"):
        (tmp_path / BENCH_ROOT / f"{name}.tsv").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / BENCH_ROOT / f"{name}.tsv").write_text("s\th:m:s\tmax_rss\n1.0\t0:00:01\t100\n")
    rules = {r["job"]: (r["rule"], planning(paper, str(r["stage"]), 0.6)[0]) for r in measured(tmp_path)}
    assert rules["data/mine"] == ("mine_hard_negatives", 64000)
    assert rules["data/probe.prose"] == ("prepare_probe", 2000) and rules["data/train"][0] == "prepare_training_data"
    assert rules["report"] == ("report", 4000)
