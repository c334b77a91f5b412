"""The SLURM profile against a real single-node cluster (tests/slurm/slurm-local.sh: slurmctld + slurmd + munge, one
fake GPU): a reduced embedded default through `--profile profiles/slurm` with only the site settings a user gives, one
job that fails, re-running that rule alone, a training job cancelled mid-way, and the snakemake process itself killed
mid-way.

Needs root and Debian's slurm packages (the script installs them with apt-get when missing); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from smk import BIN, REPO, SNAKEFILE, environment, job_resources, snakemake

SCRIPT = REPO / "tests/slurm/slurm-local.sh"
# What a user sets once for a site (profiles/slurm/config.yaml reads these); the local cluster has one partition.
SITE = {"HRSA_SLURM_ACCOUNT": "ci", "HRSA_SLURM_CPU_PARTITION": "debug", "HRSA_SLURM_GPU_PARTITION": "debug",
        "HRSA_SLURM_NODE_CPUS": "2", "HRSA_SLURM_NODE_MEM_MB": "20000"}
PARAMS_B = 0.1  # the reduced default's pair declares its size: jobs ask for memory scaled by it
# Test-only speed knob: the plugin's first status check after 2 s instead of 20 s.
FAST = ("--slurm-init-seconds-before-status-checks", "2")
FAILING_TASK = "STSBenchmark"  # an mteb task whose dataset is not in the (offline) HF cache: fails at run time
FAILING_GROUP = "tasks-saved-0"  # its evaluation group: no benchmark, the saved max_seq_length, the first such group
STEPS, SAVE = 20, 10  # the reduced default's training
LONG, LONG_SAVE = 100, 10  # seed 1's training, cancelled or orphaned after its first checkpoint


def _apt_reachable() -> bool:
    try:
        return subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A running single-node cluster with two fake GPUs (brought up once; left up for later runs, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start slurmctld/slurmd/munged")
    if not shutil.which("slurmctld") and not _apt_reachable():
        pytest.skip("slurm is not installed and apt-get cannot reach a Debian mirror to install it")
    proc = subprocess.run(["timeout", "-k", "10", "300", "bash", str(SCRIPT), "up"], capture_output=True, text=True,
                          env={**os.environ, "SLURM_LOCAL_GPUS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _cancel_leftovers()
    yield
    _cancel_leftovers()  # a failed test must not leave jobs (a suspended orphan) holding the node


def _cancel_leftovers() -> None:
    """Cancel the workflow's jobs (named hrsa_*) still queued, running or suspended on the test cluster."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %t"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job, name, state = line.split()
        if name.startswith("hrsa_"):
            if state == "S":
                subprocess.run(["scontrol", "resume", job], capture_output=True)
            subprocess.run(["scancel", job], capture_output=True)


def reduced_config(path: Path, backbone: Path) -> Path:
    """The embedded default cut down to 10 SLURM jobs: one published-style local backbone (no build jobs), one seed, the
pooled layer, one probe, one comparison, one (failing) task."""
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg.update(
        pairs=[{"name": "tiny", "base": str(backbone), "num_layers": 2, "params_b": PARAMS_B}], seeds=[0],
        layers=["pooled"],
        comparisons=["base~base-E"], hrsa={"knn_k": [5], "bootstrap": 2, "permutations": 2, "seed": 0},
        evaluation={**cfg["evaluation"], "tasks": [FAILING_TASK]},
    )
    cfg["recipes"] = {}
    cfg["training_data"] = {**cfg["training_data"], "n_records": 64, "mine": {"enabled": False}}
    cfg["training"] = {**cfg["training"], "batch_size": 8, "mini_batch_size": 4, "max_steps": STEPS,
                       "save_steps": SAVE}
    cfg["probes"] = [{"name": "works", "builtin": "milton-works", "n_texts": 48, "granularity": "sentence",
                      "max_length": 32}]
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict[str, str]:
    return environment(**SITE, OMP_NUM_THREADS="1")


def snakemake_cmd(work: Path, *args: str, limit: int) -> list[str]:
    """Every snakemake call is wrapped in `timeout -k`, so a hang fails the test instead of the CI; Popen-able."""
    return ["timeout", "-k", "20", str(limit), str(BIN / "snakemake"), "-s", str(SNAKEFILE),
            "--directory", str(work), "--profile", str(REPO / "profiles/slurm"), *FAST, "--verbose", *args]


def run(work: Path, *args: str, limit: int = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(snakemake_cmd(work, *args, limit=limit), cwd=work, env=env(), capture_output=True,
                          text=True)
    n = len(list(work.glob("snakemake-*.out")))
    (work / f"snakemake-{n}.out").write_text(proc.stdout + proc.stderr)  # kept for a failing test's reader
    assert proc.returncode not in (124, 137), f"snakemake hung (killed after {limit} s):\n{proc.stderr[-3000:]}"
    return proc


def sbatch_calls(log: str) -> dict[str, list[str]]:
    """The plugin's logged sbatch calls (--verbose), keyed by the rule named in --comment, or by `group_<id>` for a
    group submission (its SLURM log folder, e.g. group_features_tiny.base_extract_activations_knn_graph)."""
    calls: dict[str, list[str]] = {}
    for m in re.finditer(r"sbatch call: (sbatch .*)", log):
        group = re.search(r"slurm_logs/group_(\S+?)_(?:extract|knn|compare)", m.group(1))
        rule = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_|'| )", m.group(1))
        assert group or rule, m.group(1)
        key = f"group_{group.group(1)}" if group else rule.group(1)
        calls.setdefault(key, []).append(m.group(1))
    return calls


def train_shell(log: str, target: str) -> str:
    """The `hrsa train` command Snakemake ran for `target` (printshellcmds), to repeat it locally uninterrupted."""
    for m in re.finditer(r"^\s*(?:Shell command: )?(hrsa train .*)$", log, flags=re.M):
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


@pytest.mark.slurm
def test_run_submits_site_flags_and_reports_the_failed_job(work, first_run):
    out = first_run.stdout + first_run.stderr
    assert first_run.returncode != 0, "a failed job must make the run exit non-zero"
    failed = f"logs/eval/tiny.base-E.s0/{FAILING_GROUP}.log"  # the evaluate job of the group of the failing task
    assert "Error in rule evaluate" in out and failed in out
    # keep-going: every job independent of the failed one finished
    assert (work / "results/embedders/tiny.base-E.s0").is_dir()
    assert (work / "results/knn/works/tiny.base-E.s0/layer=pooled.npz").is_file()  # every layer in one job
    assert (work / "results/hrsa/works/tiny.base~base-E.s0.parquet").is_file()
    calls = sbatch_calls(out)
    # one submission per training job, per model's features, per bundle of comparisons and per role's sibling
    # health; preparation is local
    assert sorted(calls) == ["evaluate", "group_features_tiny.base", "group_features_tiny.base-E.s0", "group_hrsa",
                             "sibling_health", "train_embedder"], sorted(calls)
    train = calls["train_embedder"][0]
    # memory scaled by the pair's size: resources.train.mem_mb + mem_mb_per_b x params_b = 16000 + 16000 x 0.1
    for flag in ("--gpus=1", "--mem 17600", "-t 720", "--cpus-per-task=1", "-A ci", "-p debug"):
        assert flag in train, train
    assert "--job-name hrsa_" in train
    # a model's extraction and kNN graphs (FAISS on the GPU) in one GPU job: the larger memory (extract: 16000 +
    # 8000 x 0.1), the two runtimes in series (120 + 120 minutes)
    for model in ("tiny.base", "tiny.base-E.s0"):
        (features,) = calls[f"group_features_{model}"]
        for flag in ("--gpus=1", "--mem 16800", "-t 240", "--cpus-per-task=1", "-p debug"):
            assert flag in features, features
        assert f"extract_activations:probe=works,model={model}" in features
        assert f"knn_graph:probe=works,model={model}" in features
    (compare,) = calls["group_hrsa"]
    assert "--gpus" not in compare and "--gres" not in compare  # hrsa.gpu is off: a CPU job
    # the failed evaluation was retried once with twice the runtime (resources.evaluate.runtime: 15 min per task)
    retried = calls["evaluate"]  # the task group holding the failing task (its only task here)
    assert len(retried) == 2 and "-t 15 " in retried[0] and "-t 30 " in retried[1], retried
    # SLURM logs of successful jobs are kept
    assert list((work / ".snakemake/slurm_logs/rule_train_embedder").rglob("*.log"))


@pytest.mark.slurm
def test_rerun_of_the_failed_rule_alone(work, first_run):
    target = f"results/eval/tiny.base-E.s0/groups/{FAILING_GROUP}.json"
    done = work / "results/hrsa/works/tiny.base~base-E.s0.parquet"
    before = done.stat().st_mtime_ns
    # targets first: --configfile takes several values and would swallow a target after it
    proc = run(work, target, "--configfile", str(work / "config.yaml"), "--retries", "0", limit=240)
    calls = sbatch_calls(proc.stdout + proc.stderr)
    assert list(calls) == ["evaluate"] and len(calls["evaluate"]) == 1  # that task group's job alone
    assert done.stat().st_mtime_ns == before
    assert proc.returncode != 0  # still offline: the dataset is not in the HF cache (README: pre-fill it)


TARGET = "results/embedders/tiny.base-E.s1"
CKPT = "results/checkpoints/tiny.base-E.s1"


def long_config(work: Path) -> Path:
    """Seed 1 with a longer schedule; its embedder is the only target of the two kill tests."""
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["seeds"] = [1]
    cfg["training"].update(max_steps=LONG, save_steps=LONG_SAVE)
    path = work / "config-long.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(work: Path, *extra: str) -> subprocess.Popen[str]:
    """Start the seed-1 training run in the background; return once its first checkpoint is complete."""
    proc = subprocess.Popen(snakemake_cmd(work, TARGET, "--configfile", str(long_config(work)), *extra, limit=500),
                            cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = work / CKPT / f"checkpoint-{LONG_SAVE}" / "trainer_state.json"
    wait_for(lambda: first.is_file() or proc.poll() is not None, "the first checkpoint", limit=300)
    return proc


@pytest.fixture(scope="module")
def reference(work: Path, first_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed-1 embedder trained locally, uninterrupted (the command Snakemake prints, other paths)."""
    dry = run(work, TARGET, "--configfile", str(long_config(work)), "-n", "--forceall", limit=120)
    return local_reference(work, dry.stdout + dry.stderr, TARGET, tmp_path_factory.mktemp("reference"))


@pytest.mark.slurm
def test_scancel_of_training_resumes_from_checkpoint(work, reference):
    proc = start(work)
    jobs = squeue_ids("rule_train_embedder")
    assert jobs, "training ended before it could be cancelled"
    subprocess.run(["scancel", *jobs], check=True)
    out, _ = proc.communicate(timeout=600)
    (work / "snakemake-scancel.out").write_text(out)
    assert proc.returncode == 0, out[-4000:]
    assert f"SLURM-job '{jobs[0]}' failed" in out and "CANCELLED" in out
    assert "resuming from" in (work / "logs/train/tiny.base-E.s1.log").read_text()
    same_embedder(work / TARGET, reference)


@pytest.mark.slurm
def test_killed_snakemake_rerun_never_shares_checkpoints(work, reference):
    for path in (work / TARGET, work / CKPT):
        shutil.rmtree(path, ignore_errors=True)  # train seed 1 afresh
    # two training jobs must fit the node at once (2 fake GPUs, 21 GB): a user's override for a small cluster
    small = ("--set-resources", "train_embedder:mem_mb=4000")
    proc = start(work, *small)
    orphan = squeue_ids("rule_train_embedder")
    assert orphan, "training ended before snakemake could be killed"
    _kill_snakemake(proc)  # as when the login shell is lost
    assert squeue_ids("rule_train_embedder") == orphan, "the SLURM job must outlive snakemake"
    # hold the orphan (SIGSTOP through SLURM) so that it still runs when the re-run's job starts, on any machine speed
    subprocess.run(["scontrol", "suspend", orphan[0]], check=True)
    try:
        _rerun_after_the_kill(work, orphan[0], small, reference)
    finally:  # whatever fails, the orphan must not stay suspended on the node
        subprocess.run(["scontrol", "resume", orphan[0]], capture_output=True)


def _rerun_after_the_kill(work: Path, orphan: str, small: tuple[str, str], reference: Path) -> None:
    """Unlock, re-run while the orphan is suspended, let the orphan go on: the re-run's job must wait for its lock."""
    cfg = str(long_config(work))
    unlock = run(work, TARGET, "--configfile", cfg, "--unlock", limit=120)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    again = subprocess.Popen(snakemake_cmd(work, TARGET, "--configfile", cfg, *small, limit=500), cwd=work, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = work / "logs/train/tiny.base-E.s1.log"
    # Snakemake removes the killed job's log before it submits again: read it only once the new job has written it
    wait_for(lambda: again.poll() is not None
             or (log.is_file() and f"waiting for {CKPT}" in log.read_text(errors="replace")),
             "the re-run's training job to find the orphan's lock", limit=300)
    subprocess.run(["scontrol", "resume", orphan], check=True)
    out, _ = again.communicate(timeout=500)
    (work / "snakemake-killed.out").write_text(out)
    assert again.returncode == 0, out[-4000:]
    # the re-run's job waited for the orphan (named by its SLURM job id) instead of writing the same checkpoints
    text = log.read_text(errors="replace")
    assert f"waiting for {CKPT}" in text and f"slurm_job={orphan}" in text, text[-3000:]
    steps = json.loads((work / TARGET / "provenance.json").read_text())["params"]["steps"]
    assert steps == LONG, steps  # nobody trained past the schedule
    assert not list((work / CKPT).glob("checkpoint-*"))  # the finished run left nothing to resume from
    same_embedder(work / TARGET, reference)


@pytest.mark.parametrize("flag", ["gpus", "gres"])
def test_profile_alone_sets_site_resources(tmp_path, flag):
    """No SLURM needed: a dry run through the profile reads only it (no implicit workflow profile), takes the site's
    account and partitions from the environment and maps GPU rules to `gpu=1` or `gres=gpu:1`."""
    assert not (REPO / "profiles/default").exists(), "Snakemake would load profiles/default on top of --profile"
    proc = snakemake("--profile", str(REPO / "profiles/slurm"), "-n", "--configfile", str(REPO / "config/config.yaml"),
                     cwd=tmp_path, timeout=180, env={**env(), "HRSA_SLURM_GPU_FLAG": flag,
                                                     "HRSA_SLURM_GPU_PARTITION": "a100", "HRSA_SLURM_ACCOUNT": "lab"})
    out = proc.stdout + proc.stderr
    assert out.count("Using profile") == 1 and "profiles/local" not in out
    resources = job_resources(out)
    train, knn = resources["train_embedder"], resources["knn_graph"]
    assert "slurm_account=lab" in train and "slurm_partition=a100" in train and "runtime=720" in train
    assert "slurm_partition=a100" in knn  # FAISS on the GPU: all layers of a (model, probe) in one job
    if flag == "gpus":
        assert "gpu=1" in train and "gres" not in train
    else:
        assert "gres=gpu:1" in train and "gpu=0" in train
    gpu_backbones = [m.group(0) for m in re.finditer(r"rule build_backbone:\n(?:    .*\n)*?    resources: .*", out)]
    assert len(gpu_backbones) == 3
    assert sum(("gres=gpu:1" if flag == "gres" else "gpu=1") in b for b in gpu_backbones) == 2  # pretrain needs none
