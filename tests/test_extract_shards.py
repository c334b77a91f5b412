"""Extraction in shards: same rows as one file, resume after SIGKILL, stale work discarded, failures leave nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from hrsa.activations import iter_layer, load_layer, load_rows, read_meta
from hrsa.cli import main

SPEC = {"granularity": "token", "max_length": 24}
LAYERS = ["0", "1", "2"]



def extract_args(model: Path, probe: Path, out: Path, *extra: str) -> list[str]:
    return ["extract", "--model", str(model), "--model-id", "t.base", "--probe", str(probe), "--config",
            json.dumps(SPEC), "--layers", ",".join(LAYERS), "--device", "cpu", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_backbone, probe):
    """Uninterrupted single-shard result for a batch size (batch composition changes float rounding, shards must
    not)."""
    cache: dict[int, Path] = {}

    def get(batch_size: int) -> Path:
        if batch_size not in cache:
            out = tmp_path_factory.mktemp("ref") / "acts"
            assert main(extract_args(tiny_backbone, probe, out, "--batch-size", str(batch_size))) == 0
            cache[batch_size] = out
        return cache[batch_size]

    return get


def assert_same_activations(a: Path, b: Path) -> None:
    assert read_meta(a)["row_hash"] == read_meta(b)["row_hash"]
    for layer in LAYERS:
        assert np.array_equal(load_layer(a, layer), load_layer(b, layer))
        for x, y in zip(load_rows(a, layer), load_rows(b, layer), strict=True):
            assert np.array_equal(x, y)


def test_shards_hold_the_same_rows_as_one_file(tmp_path, tiny_backbone, probe, reference):
    out = tmp_path / "acts"
    assert main(extract_args(tiny_backbone, probe, out, "--batch-size", "4", "--shard-rows", "300")) == 0
    meta = read_meta(out)
    parts = sorted((out / "layer=1").glob("part-*.parquet"))
    assert meta["shards"] == len(parts) > 3 and read_meta(reference(4))["shards"] == 1
    assert_same_activations(out, reference(4))
    streamed = np.concatenate(list(iter_layer(out, "2", batch_rows=97)))  # how compare reads: batches across shards
    assert np.array_equal(streamed, load_layer(reference(4), "2"))
    table = ds.dataset(str(out), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3 * meta["n_rows"]  # the whole directory is one dataset
    file_meta = json.loads(pq.read_schema(parts[2]).metadata[b"hrsa"])
    for key in ("model_id", "model_hash", "tokenizer_hash", "probe_hash", "layer", "dtype", "attention", "packages"):
        assert file_meta[key], key
    assert file_meta["shard"] == 2 and file_meta["layer"] == "1"
    assert not (tmp_path / "acts.partial").exists()  # the work dir is removed once the output is complete


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, tiny_backbone, probe, reference):
    out, work = tmp_path / "acts", tmp_path / "work"
    args = extract_args(tiny_backbone, probe, out, "--batch-size", "1", "--shard-rows", "1", "--work-dir", str(work))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hrsa.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(work.glob("shard-*.done"))) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(work.glob("shard-*.done")))
    assert 5 <= finished < 240, "the run was not caught mid-way"
    assert not out.exists()  # nothing that looks complete
    rc = subprocess.run([sys.executable, "-m", "hrsa.cli", *args], env=env, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    resumed = read_meta(out)["shards_resumed"]
    assert resumed >= finished and f"resuming: {resumed} of 240 shards" in rc.stdout
    assert_same_activations(out, reference(1))
    assert not work.exists()


def test_work_from_other_settings_is_discarded(tmp_path, tiny_backbone, probe, reference, capsys):
    out, work = tmp_path / "acts", tmp_path / "work"
    (work / "layer=0").mkdir(parents=True)
    (work / "fingerprint.json").write_text('{"dtype": "float16"}')
    (work / "shard-00000.done").write_text("{}")
    (work / "layer=0" / "part-00000.parquet").write_bytes(b"left over from another run")
    assert main(extract_args(tiny_backbone, probe, out, "--batch-size", "4", "--work-dir", str(work))) == 0
    assert "written with other settings" in capsys.readouterr().out
    assert read_meta(out)["shards_resumed"] == 0
    assert_same_activations(out, reference(4))


def _edited_backbone(src: Path, dst: Path, edit) -> Path:
    """A copy of the tiny backbone with its token embedding matrix changed by `edit`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        edit(model.get_input_embeddings().weight)
    model.save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


@pytest.mark.parametrize("kind", ["overflow", "nan"])
def test_bad_values_fail_naming_model_layer_and_text(tmp_path, tiny_backbone, probe, capsys, kind):
    from transformers import AutoTokenizer

    texts = {r["id"]: r["text"] for r in map(json.loads, probe.read_text().splitlines())}
    token = AutoTokenizer.from_pretrained(tiny_backbone)(texts[17])["input_ids"][3]
    if kind == "overflow":  # fine in float32, beyond float16's 65504
        model = _edited_backbone(tiny_backbone, tmp_path / "m", lambda w: w.mul_(1e7))
        dtype, expected = "float16", "activations beyond the float16 range (set activation_dtype: float32)"
    else:
        model = _edited_backbone(tiny_backbone, tmp_path / "m", lambda w: w[token].fill_(float("nan")))
        dtype, expected = "float32", "non-finite activations"
    out, work = tmp_path / "acts", tmp_path / "work"
    args = extract_args(model, probe, out, "--dtype", dtype, "--batch-size", "8", "--shard-rows", "50",
                        "--work-dir", str(work))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{expected} in model t.base, layer 0, text id " in err
    text_id = int(err.rsplit("text id ", 1)[1].split()[0])
    if kind == "nan":  # the named text really holds the poisoned token
        assert token in AutoTokenizer.from_pretrained(model)(texts[text_id])["input_ids"]
    assert not out.exists()
    # the failed shard left nothing; shards finished before it stay for a re-run
    done = {p.name.split(".")[0].replace("shard", "part") for p in work.glob("shard-*.done")}
    assert not list(work.rglob("*.tmp"))
    for layer in LAYERS:
        assert {p.name.split(".")[0] for p in (work / f"layer={layer}").glob("part-*")} == done
    if kind == "overflow":
        assert main(args[:-4] + ["--dtype", "float32"]) == 0  # the advice in the message works


def test_hub_id_is_loaded_from_the_cache_and_hashed_by_content(tmp_path, tiny_backbone, probe):
    """A hub id resolves through the local hub cache (offline) and its metadata carries the weights' content hash."""
    import shutil

    from hrsa.io import sha256_tree

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--hrsa-test--tiny"
    shutil.copytree(tiny_backbone, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    out = tmp_path / "acts"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "OMP_NUM_THREADS": "1"}
    args = extract_args(Path("hrsa-test/tiny"), probe, out, "--batch-size", "8")
    rc = subprocess.run([sys.executable, "-m", "hrsa.cli", *args], env=env, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert read_meta(out)["model_hash"] == sha256_tree(tiny_backbone, ("*.safetensors",))


def test_background_writes_keep_each_layers_order_and_raise_errors():
    from hrsa.extract import BackgroundWrites

    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    bg = BackgroundWrites(2, depth=3)
    for i in range(300):
        bg.submit(i % 3, seen[i % 3].append, i)
    bg.drain()
    assert all(seen[k] == list(range(k, 300, 3)) for k in seen)

    def boom() -> None:
        raise ValueError("disk full")

    bg.submit(0, boom)
    with pytest.raises(ValueError, match="disk full"):
        bg.drain()
    bg.shutdown()


def test_overlapped_writes_give_the_same_shards(tmp_path, tiny_backbone, probe, reference):
    """The GPU path's writer threads, run on CPU: same files' contents as writing in the caller."""
    from hrsa.extract import extract

    out = tmp_path / "acts"
    extract(str(tiny_backbone), "t.base", str(probe), SPEC, LAYERS, str(out), "cpu", "float32", 4,
            shard_rows=300, write_threads=2, overlap_writes=True)
    assert read_meta(out)["shards"] > 3
    assert_same_activations(out, reference(4))


def test_row_groups_are_sized_for_streaming_and_files_carry_metadata(tmp_path):
    """Row groups of 32 MB plus at most one batch (in the 8-64 MB streaming range), exact round trip, metadata."""
    from hrsa.activations import TARGET_ROW_GROUP_BYTES, LayerWriter

    dim, n = 1024, 20000
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    path = tmp_path / "layer=3" / "part-00000.parquet"
    writer = LayerWriter(path, "3", dim, "float32", {"model_id": "t.base", "tokenizer_hash": "tok", "probe_hash": "p"})
    for start in range(0, n, 1000):  # batches smaller than a row group are buffered, not written one by one
        ids = np.arange(start, start + 1000, dtype=np.int32)
        writer.add(ids, np.zeros(1000, np.int32), ids, vectors[start : start + 1000])
    writer.close()
    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    rows_per_group = TARGET_ROW_GROUP_BYTES // (dim * 4)  # 8,192
    assert all(rows_per_group <= s < rows_per_group + 1000 for s in sizes[:-1]) and sum(sizes) == n
    assert sizes == [9000, 9000, 2000]  # flushed at the first batch boundary past the target
    assert all(8 << 20 <= s * dim * 4 <= 64 << 20 for s in sizes[:-1])
    stored = json.loads(meta.metadata[b"hrsa"])
    assert stored["layer"] == "3" and stored["dim"] == dim and stored["tokenizer_hash"] == "tok"
    # a reader checks each shard's stamp against its directory's _meta.json (model id) and its folder (layer)
    (tmp_path / "_meta.json").write_text(json.dumps({"model_id": "t.base", "layers": ["3"], "n_rows": n,
                                                      "row_hash": "r"}))
    assert np.array_equal(load_layer(tmp_path, "3"), vectors)


def test_long_texts_fail_preparation_naming_the_count_unless_every_token_is_kept(tiny_backbone, tmp_path, capsys):
    """MATH-500-like worked solutions longer than max_length: with truncate false the extraction stops before any
    forward pass, naming how many texts would lose tokens; max_length 0 keeps every token of every text."""
    from transformers import AutoTokenizer

    steps = " ".join(f"Step {k}: multiply both sides by {k} and simplify the fraction." for k in range(12))
    texts = [f"Solution {i}. " + (steps if i % 3 == 0 else "The answer is 7.") for i in range(9)]
    probe_file = tmp_path / "math.jsonl"
    probe_file.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    lengths = [len(tok(t)["input_ids"]) for t in texts]
    assert sorted(lengths)[5] < 48 < min(lengths[0::3])  # 3 long solutions, 6 short ones

    def extract(spec: dict, out: Path) -> int:
        return main(["extract", "--model", str(tiny_backbone), "--model-id", "t.base", "--probe", str(probe_file),
                     "--config", json.dumps({"name": "math500", "granularity": "token", **spec}), "--layers", "1",
                     "--device", "cpu", "--out", str(out)])

    assert extract({"max_length": 48, "truncate": False}, tmp_path / "cut") == 2 and not (tmp_path / "cut").exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]  # one line (after the weights' loading bar)
    assert err.startswith("hrsa extract: error: probes[math500].max_length: 3 of 9 texts are longer than 48 tokens")
    assert f"(longest: {max(lengths)})" in err
    assert extract({"max_length": 0, "truncate": False}, tmp_path / "all") == 0
    assert read_meta(tmp_path / "all")["n_rows"] == sum(lengths)  # every token of every text
    assert f"9 texts, {sum(lengths)} tokens, every token kept" in capsys.readouterr().out
    assert extract({"max_length": 48, "truncate": True}, tmp_path / "capped") == 0  # a cap the config sets
    assert read_meta(tmp_path / "capped")["n_rows"] == sum(min(n, 48) for n in lengths)
