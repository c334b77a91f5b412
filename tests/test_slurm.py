"""The SLURM profile against a real single-node cluster (tests/slurm/slurm-local.sh: slurmctld + slurmd + munge, one fake
GPU): a reduced embedded default through `--profile profiles/slurm` with only the site settings a user gives, one job that
fails, re-running that rule alone, a training job cancelled mid-way, and the snakemake process itself killed mid-way.

Needs root and Debian's slurm packages (the script installs them with apt-get when missing); skipped otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests/slurm/slurm-local.sh"
# What a user sets once for a site (profiles/slurm/config.yaml reads these); the local cluster has one partition.
SITE = {"HRSA_SLURM_ACCOUNT": "ci", "HRSA_SLURM_CPU_PARTITION": "debug", "HRSA_SLURM_GPU_PARTITION": "debug"}
# Test-only speed knob: the plugin's first status check after 2 s instead of 20 s.
FAST = ("--slurm-init-seconds-before-status-checks", "2")
FAILING_TASK = "STSBenchmark"  # an mteb task whose dataset is not in the (offline) HF cache: fails at run time
STEPS, SAVE = 120, 10


def _apt_reachable() -> bool:
    try:
        return subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster() -> None:
    """A running single-node cluster with one fake GPU (brought up once; left up for later runs, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start slurmctld/slurmd/munged")
    if not shutil.which("slurmctld") and not _apt_reachable():
        pytest.skip("slurm is not installed and apt-get cannot reach a Debian mirror to install it")
    proc = subprocess.run(["timeout", "-k", "10", "300", "bash", str(SCRIPT), "up"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_LOCAL_GPUS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]


def reduced_config(path: Path, backbone: Path) -> Path:
    """The embedded default cut down: one published-style local backbone, one seed, two layers, one probe, two tasks."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg.update(
        pairs=[{"name": "tiny", "base": str(backbone), "num_layers": 2}], seeds=[0], layers=[1, "pooled"], device="cpu",
        comparisons=["base~base-E"], hrsa={"knn_k": [5], "bootstrap": 2, "permutations": 2, "seed": 0},
        evaluation={**cfg["evaluation"], "tasks": ["HrsaLee50", FAILING_TASK]},
    )
    cfg["recipes"] = {}
    cfg["training_data"] = {**cfg["training_data"], "n_records": 64, "mine": {"enabled": False}}
    cfg["training"] = {**cfg["training"], "batch_size": 8, "mini_batch_size": 4, "max_steps": STEPS,
                       "save_steps": SAVE, "max_length": 32}
    cfg["probes"] = [{"name": "works", "builtin": "milton-works", "n_texts": 48, "granularity": "sentence",
                      "max_length": 32}]
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict[str, str]:
    return {**os.environ, **SITE, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"),
                                                                                 os.environ.get("PYTHONPATH")]))}


def snakemake_cmd(work: Path, *args: str, limit: int) -> list[str]:
    """Every snakemake call is wrapped in `timeout -k`, so a hang fails the test instead of the CI."""
    return ["timeout", "-k", "20", str(limit), str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"),
            "--directory", str(work), "--profile", str(REPO / "profiles/slurm"), *FAST, "--verbose", *args]


def run(work: Path, *args: str, limit: int = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(snakemake_cmd(work, *args, limit=limit), cwd=work, env=env(), capture_output=True,
                          text=True)
    assert proc.returncode not in (124, 137), f"snakemake hung (killed after {limit} s):\n{proc.stderr[-3000:]}"
    return proc


def sbatch_calls(log: str) -> dict[str, list[str]]:
    """The plugin's logged sbatch calls (--verbose), keyed by the rule named in --comment."""
    calls: dict[str, list[str]] = {}
    for m in re.finditer(r"sbatch call: (sbatch .*)", log):
        rule = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_|'| )", m.group(1))
        assert rule, m.group(1)
        calls.setdefault(rule.group(1), []).append(m.group(1))
    return calls


def train_shell(log: str, target: str) -> str:
    """The `hrsa train` command Snakemake ran for `target` (printshellcmds), to repeat it locally uninterrupted."""
    for m in re.finditer(r"^\s*(hrsa train .*)$", log, flags=re.M):
        if f"--out {target}" in m.group(1) or f"--out '{target}'" in m.group(1):
            return m.group(1)
    raise AssertionError(f"no hrsa train command for {target} in the log")


def local_reference(work: Path, log: str, target: str, ref: Path) -> Path:
    """Run the same training locally, uninterrupted, into `ref`; return its output directory."""
    name = Path(target).name
    cmd = train_shell(log, target)
    cmd = cmd.replace(f"results/checkpoints/{name}", str(ref / "ckpt")).replace(target, str(ref / "out"))
    cmd = re.sub(r">\s*\S+\s+2>&1", f"> {ref / 'train.log'} 2>&1", cmd)
    proc = subprocess.run(["timeout", "-k", "10", "300", "bash", "-c", cmd], cwd=work, env=env())
    assert proc.returncode == 0, (ref / "train.log").read_text()[-2000:]
    return ref / "out"


def same_embedder(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    assert (a / "revision.txt").read_text() == (b / "revision.txt").read_text()
    wa, wb = load_file(next(a.rglob("model.safetensors"))), load_file(next(b.rglob("model.safetensors")))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def wait_for(cond, what: str, limit: float = 180) -> None:
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def _kill_snakemake(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the snakemake process (not the `timeout` wrapper's SLURM jobs): its child of `timeout`, then timeout."""
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in kids:
        os.kill(int(pid), signal.SIGKILL)
    proc.kill()
    proc.wait()


def squeue_ids(comment: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if comment in line]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path, cluster: None) -> Path:
    work = tmp_path_factory.mktemp("slurm-run")
    reduced_config(work / "config.yaml", tiny_backbone)
    return work


@pytest.fixture(scope="module")
def first_run(work: Path) -> subprocess.CompletedProcess[str]:
    return run(work, "--configfile", str(work / "config.yaml"), limit=420)


def test_run_submits_site_flags_and_reports_the_failed_job(work, first_run):
    out = first_run.stdout + first_run.stderr
    assert first_run.returncode != 0, "a failed job must make the run exit non-zero"
    failed = f"logs/eval/tiny.base-E.s0/{FAILING_TASK}.log"
    assert "Error in rule evaluate" in out and failed in out
    # keep-going: every job independent of the failed one finished
    assert (work / "results/embedders/tiny.base-E.s0").is_dir()
    assert (work / "results/eval/tiny.base-E.s0/HrsaLee50.json").is_file()
    assert (work / "results/hrsa/works/tiny.base~base-E.s0.parquet").is_file()
    calls = sbatch_calls(out)
    train = calls["train_embedder"][0]
    for flag in ("--gpus=1", "--mem 16000", "-t 720", "--cpus-per-task=1", "-A ci", "-p debug"):
        assert flag in train, train
    assert "--job-name hrsa_" in train
    knn = calls["knn_graph"][0]
    assert "--gpus" not in knn and "--gres" not in knn and "--mem 8000" in knn and "-p debug" in knn
    extract = calls["extract_activations"][0]
    assert "--gpus=1" in extract and "--cpus-per-task=" in extract
    # the failed evaluation was retried once with twice the runtime
    retried = [c for c in calls["evaluate"] if FAILING_TASK in c]
    assert len(retried) == 2 and "-t 240" in retried[0] and "-t 480" in retried[1]
    # SLURM logs of successful jobs are kept
    assert list((work / ".snakemake/slurm_logs/rule_train_embedder").rglob("*.log"))


def test_rerun_of_the_failed_rule_alone(work, first_run):
    target = f"results/eval/tiny.base-E.s0/{FAILING_TASK}.json"
    before = (work / "results/eval/tiny.base-E.s0/HrsaLee50.json").stat().st_mtime_ns
    # targets first: --configfile takes several values and would swallow a target after it
    proc = run(work, target, "--configfile", str(work / "config.yaml"), "--retries", "0", limit=240)
    calls = sbatch_calls(proc.stdout + proc.stderr)
    assert list(calls) == ["evaluate"] and len(calls["evaluate"]) == 1 and FAILING_TASK in calls["evaluate"][0]
    assert (work / "results/eval/tiny.base-E.s0/HrsaLee50.json").stat().st_mtime_ns == before
    assert proc.returncode != 0  # still offline: the dataset is not in the HF cache (README: pre-fill it)


def _embedder_target(seed: int) -> str:
    return f"results/embedders/tiny.base-E.s{seed}"


def _config_with_seed(work: Path, seed: int) -> Path:
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["seeds"] = [0, seed]
    path = work / f"config-s{seed}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_scancel_of_training_resumes_from_checkpoint(work, first_run, tmp_path):
    target = _embedder_target(1)
    ckpt = work / "results/checkpoints/tiny.base-E.s1"
    proc = subprocess.Popen(snakemake_cmd(work, target, "--configfile", str(_config_with_seed(work, 1)), limit=400),
                            cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: (ckpt / f"checkpoint-{SAVE}" / "trainer_state.json").is_file() or proc.poll() is not None,
             "the first checkpoint")
    jobs = squeue_ids("rule_train_embedder")
    assert jobs, "training ended before it could be cancelled"
    subprocess.run(["scancel", *jobs], check=True)
    out, _ = proc.communicate(timeout=420)
    assert proc.returncode == 0, out[-4000:]
    assert f"SLURM-job '{jobs[0]}' failed" in out and "CANCELLED" in out
    assert "resuming from" in (work / "logs/train/tiny.base-E.s1.log").read_text()
    same_embedder(work / target, local_reference(work, out, target, tmp_path))


def test_killed_snakemake_rerun_never_shares_checkpoints(work, first_run, tmp_path):
    target = _embedder_target(2)
    cfg = str(_config_with_seed(work, 2))
    ckpt = work / "results/checkpoints/tiny.base-E.s2"
    proc = subprocess.Popen(snakemake_cmd(work, target, "--configfile", cfg, limit=400), cwd=work, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: (ckpt / f"checkpoint-{SAVE}" / "trainer_state.json").is_file() or proc.poll() is not None,
             "the first checkpoint")
    orphan = squeue_ids("rule_train_embedder")
    assert orphan, "training ended before snakemake could be killed"
    _kill_snakemake(proc)  # as when the login shell is lost
    assert squeue_ids("rule_train_embedder") == orphan, "the SLURM job must outlive snakemake"
    unlock = run(work, target, "--configfile", cfg, "--unlock", limit=120)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = run(work, target, "--configfile", cfg, limit=400)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    log = (work / "logs/train/tiny.base-E.s2.log").read_text()
    # the re-run's job waited for the orphan (named by its SLURM job id) instead of writing the same checkpoints
    assert f"slurm_job={orphan[0]}" in log and "waiting for" in log
    state = yaml.safe_load((ckpt / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS and not list(ckpt.glob(f"checkpoint-{STEPS + SAVE}"))
    same_embedder(work / target, local_reference(work, out, target, tmp_path))
