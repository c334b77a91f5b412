"""Jobs sized for a scheduler: requests from the config's `resources:` scaled by the pair's size, and the paper grid's
SLURM submissions (groups and local rules applied as the cluster executor applies them) within the targets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from hrsa.grid import Study
from smk import REPO, dry_run, environment, job_blocks, write_config


def _validated(config: dict) -> dict:
    from snakemake.utils import validate

    validate(config, str(REPO / "src/hrsa/config.schema.yaml"))
    return config


def test_params_b_is_given_or_estimated_from_the_architecture(tmp_path: Path) -> None:
    cfg = _validated(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    opts = cfg["recipes"]["pretrain"]  # the tiny pretrain recipe: L (4 d^2 + 3 d f) + V d
    L, d, f, V = opts["num_layers"], opts["hidden_size"], opts["intermediate_size"], opts["vocab_size"]
    assert Study(cfg, root=REPO).params_b("tiny") == pytest.approx((L * (4 * d * d + 3 * d * f) + V * d) / 1e9)
    # a published backbone: its config.json (Qwen2.5-1.5B's shape: 1.65e9 by this count; the model has 1.54e9)
    local = tmp_path / "qwen-like"
    local.mkdir()
    (local / "config.json").write_text(json.dumps(
        {"num_hidden_layers": 28, "hidden_size": 1536, "intermediate_size": 8960, "vocab_size": 151936}))
    pub = _validated({"pairs": [{"name": "p", "base": str(local)}], "comparisons": []})
    assert Study(pub, root=tmp_path).params_b("p") == pytest.approx(1.6536, abs=1e-4)
    # given explicitly, the value wins; unknown (a hub id not in the cache), 1
    pub["pairs"][0]["params_b"] = 0.5
    assert Study(pub, root=tmp_path).params_b("p") == 0.5
    hub = _validated({"pairs": [{"name": "h", "base": "no-such-org/no-such-model", "num_layers": 2}],
                      "comparisons": []})
    assert Study(hub, root=tmp_path).params_b("h") == 1.0


def _dry_run_resources(tmp_path: Path, config: dict, profile: str = "local", **environ: str) -> dict[str, list[str]]:
    """Each job's block (threads and resources lines) per rule, in a dry run through a profile."""
    proc = dry_run(tmp_path, write_config(tmp_path, config), "--profile", str(REPO / "profiles" / profile),
                   timeout=240, env=environment(**environ))
    return job_blocks(proc.stdout + proc.stderr)


def test_requests_scale_with_the_pair_size_and_the_task_count(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["pairs"][0]["params_b"] = 2.0
    cfg["resources"] = {"train": {"mem_mb": 1000, "mem_mb_per_b": 500, "runtime": 10, "runtime_per_b": 5},
                        "evaluate": {"runtime": 3, "runtime_per_b": 1},
                        "extract": {"mem_mb": 100, "mem_mb_per_b": 50}}
    cfg["evaluation"]["tasks_per_job"] = 2
    res = _dry_run_resources(tmp_path, cfg)
    assert all("mem_mb=2000," in r and "runtime=20," in r for r in res["train_embedder"])  # 1000 + 500 x 2, 10 + 5 x 2
    assert all("mem_mb=200," in r for r in res["extract_activations"])
    # an evaluation job asks (3 + 1 x 2) minutes per task: 2 tasks per job, the last group holds what is left
    n_tasks = len(cfg["evaluation"]["tasks"])
    groups = [[r for r in res["evaluate"] if f"group=tasks-saved-{i}" in r] for i in range((n_tasks + 1) // 2)]
    assert all(groups) and sum(map(len, groups)) == len(res["evaluate"])
    assert all("runtime=10," in r for g in groups[: n_tasks // 2] for r in g)
    if n_tasks % 2:
        assert all("runtime=5," in r for r in groups[-1])
    assert not any("threads:" in r for r in res["train_embedder"])  # 1 thread (the default) is not printed
    cfg["resources"] = {"train": {"threads": 2}}  # threads come from the config too
    res = _dry_run_resources(tmp_path, cfg)
    assert all("    threads: 2\n" in r for r in res["train_embedder"]), res["train_embedder"][0]


def test_the_slurm_profile_caps_requests_at_the_node_and_partition_limits(tmp_path: Path) -> None:
    """No job asks SLURM for more CPUs, memory or time than the site's nodes and partitions have (such a job would sit
    PENDING for ever): the profile's HRSA_SLURM_NODE_CPUS / _NODE_MEM_MB / _MAX_RUNTIME cap every request."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["resources"] = {"train": {"threads": 8, "mem_mb": 50000, "runtime": 900}}
    res = _dry_run_resources(tmp_path, cfg, "slurm", HRSA_SLURM_NODE_CPUS="4", HRSA_SLURM_NODE_MEM_MB="30000",
                             HRSA_SLURM_MAX_RUNTIME="600")
    for block in res["train_embedder"]:
        assert "    threads: 4\n" in block and "mem_mb=30000," in block and "runtime=600," in block, block
    assert all("mem_mb=16000," in b and "runtime=120," in b for b in res["knn_graph"])  # below the caps: unchanged


@pytest.mark.parametrize("flag", ["gpus", "gres"])
def test_gpu_count_reaches_either_flavour(tmp_path: Path, flag: str) -> None:
    """Multi-GPU training and a GPU compare ask for their GPUs as --gpus=N or --gres=gpu:N (never both)."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    # the local profile caps GPU requests at the GPUs present: two visible, so a 2-device job keeps its 2
    default = _dry_run_resources(tmp_path, cfg, HRSA_SLURM_GPU_FLAG=flag, CUDA_VISIBLE_DEVICES="0,1")
    for rule in ("compare", "knn_graph"):  # no GPU unless resources.<stage>.gpu asks (a CPU FAISS ignores one)
        assert all("gpu_slots=0" in b and "gres" not in b for b in default[rule]), default[rule][0]
    cfg["training"]["devices"] = 2
    cfg["resources"] = {"compare": {"gpu": True}, "knn": {"gpu": True}}
    res = _dry_run_resources(tmp_path, cfg, HRSA_SLURM_GPU_FLAG=flag, CUDA_VISIBLE_DEVICES="0,1")
    want = {"train_embedder": 2, "compare": 1, "knn_graph": 1, "extract_activations": 1}
    for rule, n in want.items():
        for block in res[rule]:
            line = next(x for x in block.splitlines() if "resources:" in x)
            assert f"gpu_slots={n}" in line, line
            if flag == "gres":
                assert f"gres=gpu:{n}" in line and "gpu=0" in line, line
            else:
                assert f"gpu={n}" in line and "gres" not in line, line
    pretrain = next(b for b in res["build_backbone"] if "role=base" in b)
    assert "gres=gpu" not in pretrain and "gpu=0" in pretrain  # the pretrain recipe needs no GPU


def _bench_dag():
    spec = importlib.util.spec_from_file_location("bench_dag", REPO / "bench/bench_dag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_grid_submissions_meet_the_targets(tmp_path: Path) -> None:
    bench = _bench_dag()
    kinds = bench.count_submissions(bench.snakemake_argv(str(REPO / "profiles/slurm"),
                                                         str(REPO / "config/paper.yaml"), tmp_path))
    remote = {k: v for k, v in kinds.items() if not v["local"]}
    gpu = sum(v["submissions"] for v in remote.values() if v["gpu"])
    other = sum(v["submissions"] for v in remote.values() if not v["gpu"])
    assert gpu <= bench.MAX_GPU_SUBMISSIONS and other <= bench.MAX_OTHER_SUBMISSIONS, kinds
    # a model's extractions and kNN graphs are one submission: 8 backbones + 3 drift checkpoints + 24 embedders
    assert kinds["group features_{model}"]["submissions"] == 35 and kinds["group features_{model}"]["jobs"] == 140
    assert kinds["group features_{model}"]["gpu"] == 1  # its jobs take turns on one GPU
    for rule in ("prepare_training_data", "prepare_probe", "download", "report"):
        assert kinds[rule]["local"], rule
