"""The DAG-time task-name check keeps mteb's answer in a cache keyed by the entries and mteb's version, and the answer
the repository ships for config/paper.yaml is exactly mteb's (so a DAG build of the paper grid skips importing mteb)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hrsa.evaluation.names import cached_config_task_refs, config_task_refs, task_refs_cache_name

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data/eval/task-refs"


def test_shipped_answer_for_the_paper_grid_equals_mteb() -> None:
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "src/hrsa/config.schema.yaml"))  # the schema's defaults, as the DAG sees them
    entries = config["evaluation"]["tasks"]
    shipped = SHIPPED / task_refs_cache_name(entries)
    assert shipped.is_file(), f"regenerate {shipped.name} (mteb version or paper.yaml's tasks changed)"
    fresh = config_task_refs(entries)
    assert [tuple(x) for x in json.loads(shipped.read_text())] == list(fresh.items())
    assert len(fresh) == 154 and sum(b == "BRIGHT(v1.1)" for b in fresh.values()) == 12


def test_cache_is_keyed_by_the_entries_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    a, b = ["HrsaLee50", "STS12"], ["HrsaLee50", "STS13"]
    assert task_refs_cache_name(a) != task_refs_cache_name(b)
    assert cached_config_task_refs(a, tmp_path) == {"HrsaLee50": None, "STS12": None}
    cached = tmp_path / task_refs_cache_name(a)
    assert json.loads(cached.read_text()) == [["HrsaLee50", None], ["STS12", None]]
    # the cached answer is what is read next time (a planted answer shows it), never another entry list's
    cached.write_text(json.dumps([["HrsaLee50", None]]))
    assert cached_config_task_refs(a, tmp_path) == {"HrsaLee50": None}
    assert cached_config_task_refs(b, tmp_path) == {"HrsaLee50": None, "STS13": None}
    cached.write_text("{truncated")
    assert cached_config_task_refs(a, tmp_path) == {"HrsaLee50": None, "STS12": None}


def test_a_bad_name_is_never_cached(tmp_path: Path) -> None:
    import pytest

    from hrsa.errors import ConfigError

    with pytest.raises(ConfigError, match=r"evaluation.tasks\[1\]"):
        cached_config_task_refs(["HrsaLee50", "NoSuchTask"], tmp_path)
    assert not list(tmp_path.iterdir())
