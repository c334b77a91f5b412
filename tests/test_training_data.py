"""Training records from local JSONL/Parquet files and from dataset ids (a local dataset directory stands in for the
hub)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hrsa.cli import main
from hrsa.data import hub_training_records, validate_training_records
from hrsa.errors import DataError

RECORDS = [{"query": ["Find the line", f"question {i}"], "pos": [f"answer {i}"], "neg": [f"wrong {i}", f"bad {i}"],
            "source": "s"} for i in range(6)]


def _triplets(path, n=12, negative=True):
    """A dataset directory with the column layout of sentence-transformers' hub mirrors (anchor/positive/negative)."""
    path.mkdir()
    cols = {"anchor": [f"who wrote line {i}" for i in range(n)],
            "positive": [f"Milton wrote line {i}" for i in range(n)]}
    if negative:
        cols["negative"] = [f"Shakespeare wrote line {i}" for i in range(n)]
    pq.write_table(pa.table(cols), path / "train.parquet")
    return path


def test_parquet_and_jsonl_records_are_the_same(tmp_path):
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "r.parquet")
    assert validate_training_records(tmp_path / "r.parquet", 2) == validate_training_records(tmp_path / "r.jsonl", 2)


def test_parquet_errors_name_file_and_row(tmp_path):
    rows = [dict(r) for r in RECORDS]
    rows[3]["neg"] = ["only one"]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"r\.parquet:4: `neg` has 1 texts, 2 asked"):
        validate_training_records(tmp_path / "r.parquet", 2)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="broken.parquet: not a readable Parquet file"):
        validate_training_records(tmp_path / "broken.parquet", 2)


def test_dataset_columns_map_to_records(tmp_path):
    ds = _triplets(tmp_path / "mirror")
    entry = {"dataset": str(ds), "instruction": "Given a question, retrieve the answer", "neg_fields": ["negative"],
             "max_rows": 10}
    rows = hub_training_records(entry, num_negatives=1)
    assert len(rows) == 10
    assert rows[7] == {"query": ["Given a question, retrieve the answer", "who wrote line 7"],
                       "pos": ["Milton wrote line 7"], "neg": ["Shakespeare wrote line 7"], "source": "mirror"}
    with pytest.raises(DataError, match=r"no columns \['question'\]"):
        hub_training_records({**entry, "query_field": "question"})
    with pytest.raises(DataError, match="row 0: `neg` has 1 texts, 3 asked"):
        hub_training_records(entry, num_negatives=3)


def test_make_data_from_dataset_mines_missing_negatives(tmp_path, repo, capsys):
    ds = _triplets(tmp_path / "pairs", n=30, negative=False)
    spec = {"builtin": "", "num_negatives": 2,
            "hf": [{"dataset": str(ds), "instruction": "Given a question, retrieve the answer"}]}
    out = tmp_path / "train.jsonl"
    args = ["make-data", "train", "--root", str(repo), "--out", str(out)]
    # without a miner the missing negatives are refused before any training
    assert main([*args, "--config", json.dumps(spec)]) == 2 and not out.exists()
    assert "pairs row 0: `neg` has 0 texts, 2 asked" in capsys.readouterr().err
    spec["mine"] = {"enabled": True}  # records may now lack negatives: the `mine` verb (its own rule) fills them in
    raw = tmp_path / "train.prepared.jsonl"
    assert main([*args[:-1], str(raw), "--config", json.dumps(spec)]) == 0
    assert all(json.loads(x)["neg"] == [] for x in raw.read_text().splitlines())
    mine = ["mine", "--data", str(raw), "--num-negatives", "2", "--range-max", "10", "--device", "cpu"]
    assert main([*mine, "--num-negatives", "40", "--out", str(out)]) == 2 and not out.exists()
    assert "range_max 10 must be at least num_negatives 40" in capsys.readouterr().err
    assert main([*mine, "--num-negatives", "40", "--range-max", "60", "--out", str(out)]) == 2 and not out.exists()
    captured = capsys.readouterr()  # 30 records hold too few candidates for 40 negatives: all dropped, nothing written
    assert "dropped 30 records of source 'pairs'" in captured.out
    assert "every record was dropped by mining" in captured.err
    assert main([*mine, "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 30
    for r in rows:
        assert len(r["neg"]) == 2 and r["pos"][0] not in r["neg"]  # mined from the other rows' positives
        assert all(n.startswith("Milton wrote line") for n in r["neg"])
    assert validate_training_records(out, 2) == rows


def test_pinned_row_count_samples_exactly_and_a_short_set_is_named(tmp_path):
    ds = _triplets(tmp_path / "mirror")
    entry = {"dataset": str(ds), "instruction": "Given a question, retrieve the answer", "neg_fields": ["negative"]}
    full = hub_training_records(entry, num_negatives=1)
    pinned = hub_training_records({**entry, "rows": 12}, num_negatives=1)
    assert len(pinned) == 12 and all(r in full for r in pinned)
    assert pinned == hub_training_records({**entry, "rows": 12}, num_negatives=1)  # the same sample every run
    assert hub_training_records({**entry, "rows": len(full)}, num_negatives=1) == full
    with pytest.raises(DataError, match=rf"mirror: {len(full)} rows, fewer than the {len(full) + 1} pinned"):
        hub_training_records({**entry, "rows": len(full) + 1}, num_negatives=1)


def test_stratified_probe_keeps_class_shares_and_drops_small_classes(tmp_path, repo, capsys):
    rows = ([{"text": f"sports {i}", "label": "sports"} for i in range(600)]
            + [{"text": f"world {i}", "label": "world"} for i in range(300)]
            + [{"text": f"rare {i}", "label": "rare"} for i in range(40)])
    (tmp_path / "probe.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "p", "path": str(tmp_path / "probe.jsonl"), "n_texts": 90, "stratify": True,
            "min_class_rows": 100}
    from hrsa.data import probe_rows

    picked = probe_rows(spec, repo)
    labels = [r["label"] for r in picked]
    assert labels.count("sports") == 60 and labels.count("world") == 30 and "rare" not in labels
    assert "dropped 1 classes with fewer than 100 rows: ['rare']" in capsys.readouterr().out
    assert [r["id"] for r in picked] == list(range(90)) and picked == probe_rows(spec, repo)  # seeded
    everything = probe_rows({**spec, "n_texts": 7600}, repo)  # the whole split, small class dropped
    assert len(everything) == 900
    spec_uniform = {**spec, "stratify": False, "min_class_rows": 0}
    assert {r["label"] for r in probe_rows({**spec_uniform, "n_texts": 7600}, repo)} == {"sports", "world", "rare"}


def test_given_negatives_are_kept_first_and_mining_fills_only_the_rest(tmp_path, repo, capsys):
    """A triplet set's `negative` column (neg_fields) becomes each record's neg[0]; the miner adds only the missing
    num_negatives - 1, as the study's miner did. paper.yaml names that column for every triplet mirror."""
    import yaml

    ds = _triplets(tmp_path / "triplets", n=30)
    spec = {"builtin": "", "num_negatives": 3, "mine": {"enabled": True},
            "hf": [{"dataset": str(ds), "instruction": "Given a question, retrieve the answer",
                    "neg_fields": ["negative"]}]}
    raw, out = tmp_path / "train.prepared.jsonl", tmp_path / "train.mined.jsonl"
    assert main(["make-data", "train", "--root", str(repo), "--out", str(raw), "--config", json.dumps(spec)]) == 0
    prepared = [json.loads(x) for x in raw.read_text().splitlines()]
    assert [r["neg"] for r in prepared] == [[f"Shakespeare wrote line {i}"] for i in range(30)]
    assert main(["mine", "--data", str(raw), "--num-negatives", "3", "--range-max", "20", "--device", "cpu",
                 "--out", str(out)]) == 0
    mined = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(mined) == 30 and "mined hard negatives for 30 of 30 records" in capsys.readouterr().out
    for r in mined:
        i = int(r["query"][1].rsplit(" ", 1)[1])
        assert r["neg"][0] == f"Shakespeare wrote line {i}" and len(r["neg"]) == 3 == len(set(r["neg"]))
        assert r["pos"][0] not in r["neg"][1:]
    paper = yaml.safe_load((repo / "config/paper.yaml").read_text())["training_data"]
    triplets = [e for e in paper["hf"] if "triplet" in (e.get("config") or "")]
    assert len(triplets) == 7 and all(e.get("neg_fields") == ["negative"] for e in triplets)
    assert paper["mine"]["keep_existing"] and paper["num_negatives"] == 3
