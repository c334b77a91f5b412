"""A newcomer's everyday steps (issue 23, item 7): an overlay that replaces a list says what it dropped."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from hrsa.grid.overlay import overlay_drops
from smk import demo_config, dry_run, write_config  # noqa: E402


def test_overlay_drops_name_what_a_replacing_list_removes_and_nothing_else():
    base = {"comparisons": ["base~reason", "base-E~reason-E", "base-E~base-E"], "seeds": [0, 1],
            "probes": [{"name": "prose", "n_texts": 9}, {"name": "works"}], "hrsa": {"knn_k": [5, 10], "bootstrap": 3}}
    overlay = {"comparisons": ["base-E~base-E"], "seeds": [0, 1, 2], "probes": [{"name": "prose", "n_texts": 5}],
               "hrsa": {"bootstrap": 5}}
    notes = overlay_drops([("config.yaml", base), ("over.yaml", overlay)])
    assert notes[0].startswith("over.yaml replaces comparisons (3 entries -> 1): dropped base~reason, base-E~reason-E.")
    assert notes[1].startswith("over.yaml replaces probes (2 entries -> 1): dropped works.")
    assert len(notes) == 2  # seeds only grew; hrsa merges key by key (knn_k untouched)
    # a third file is compared with what the first two left: seeds [0, 1, 2] -> [2] drops 0 and 1
    third = overlay_drops([("a", base), ("b", overlay), ("c", {"seeds": [2], "hrsa": {"knn_k": [5]}})])
    assert len(third) == 4 and "c replaces seeds (3 entries -> 1): dropped 0, 1." in third[2]
    assert "c replaces hrsa.knn_k (2 entries -> 1): dropped 10." in third[3]
    assert overlay_drops([("only.yaml", base)]) == []


def test_the_dag_prints_the_comparisons_an_overlay_dropped(tmp_path):
    """`comparisons: [sft-E~sft-E]` over the demo config shrank the report to one comparison without a word."""
    demo = demo_config()
    cfg = write_config(tmp_path, demo)
    overlay = write_config(tmp_path, {"comparisons": ["sft-E~sft-E"]}, "overlay.yaml")
    proc = dry_run(tmp_path, cfg, str(overlay))
    lines = [x for x in proc.stderr.splitlines() if x.startswith("hrsa config: ") and "replaces" in x]
    dropped = demo["comparisons"]
    assert len(dropped) >= 8 and "base~reason" in dropped and "reason-E~reason-E" in dropped
    assert lines == [f"hrsa config: {overlay} replaces comparisons ({len(dropped)} entries -> 1): dropped "
                     f"{', '.join(dropped)}. Lists in a later config file replace the earlier list whole: repeat the "
                     "entries to keep in the overlay"]


def test_the_local_profile_caps_gpu_jobs_at_the_gpus_present(tmp_path):
    """profiles/local sets the run's `gpu` resource to the visible GPUs, so no more GPU jobs run at once than there
    are GPUs (Snakemake constrains each job's request to it): none visible, none asked; one visible, a 2-device
    training job is held to 1."""
    import subprocess

    import yaml

    from smk import REPO, environment, job_resources

    code = ("import yaml; from yte import process_yaml; "
            f"print(yaml.safe_dump(process_yaml(open({str(REPO / 'profiles/local/config.yaml')!r}))))")
    for visible, n in (("0,1", 2), ("3", 1), ("", 0), ("-1", 0)):
        out = subprocess.run([sys.executable, "-c", code], env=environment(CUDA_VISIBLE_DEVICES=visible),
                             capture_output=True, text=True, check=True).stdout
        assert yaml.safe_load(out)["resources"] == [f"gpu={n}"], (visible, out)
    cfg = demo_config()
    cfg["training"]["devices"] = 2
    path = write_config(tmp_path, cfg)
    for visible, want in (("", "gpu=0"), ("0", "gpu=1")):
        proc = dry_run(tmp_path, path, "--profile", str(REPO / "profiles/local"),
                       env=environment(CUDA_VISIBLE_DEVICES=visible))
        res = job_resources(proc.stdout)
        assert f"{want}," in res["train_embedder"] + "," and f"{want}," in res["extract_activations"] + ",", res
