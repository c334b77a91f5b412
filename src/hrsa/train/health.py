"""Did an embedder learn? Its training summarised: loss at the start and end against chance, and held-out in-batch
top-1 accuracy before and after training.

- Held-out slice: `training.heldout_rows` records (at most a quarter of them), drawn with a fixed seed (0, the same
  for every role and seed) and left out of training.
- Accuracy: each held-out query (with its instruction) against the positives and negatives of the held-out records of
  its own source (one batch per source, as training batches are; identical texts counted once); top-1 is right when
  the nearest candidate is the query's own positive. Chance: 1 / candidates.
- Loss: the mean of the first and of the last k logged steps, k = max(1, min(5, steps // 4)). Chance: ln of the
  candidates each query is scored against in a training batch, batch_size x (1 + hard negatives).
- Learned: last <= 0.8 x first, last < chance and accuracy after > accuracy before (`LEARNED_RULE`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from hrsa.data import QUERY_TEMPLATE
from hrsa.errors import HrsaError

LEARNED_RULE = "last loss <= 0.8 x first loss, last loss < chance ln(batch x (1 + negatives)), accuracy rose"
HELDOUT_SEED = 0  # fixed: every role and seed is measured on the same held-out records


class DidNotLearn(HrsaError):
    """training.require_learning is set and the embedder's summary says it did not learn."""


def split_heldout(records: list[dict[str, Any]], rows: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, held-out records): `rows` records (at most a quarter) drawn with a fixed seed."""
    k = min(int(rows), len(records) // 4)
    if k <= 0:
        return records, []
    chosen = set(random.Random(HELDOUT_SEED).sample(range(len(records)), k))
    return ([r for i, r in enumerate(records) if i not in chosen], [r for i, r in enumerate(records) if i in chosen])


def heldout_accuracy(model: Any, heldout: Sequence[dict[str, Any]], batch_size: int = 64) -> float | None:
    """Top-1 accuracy of held-out queries against their source's held-out candidates (None without held-out rows)."""
    import numpy as np

    if not heldout:
        return None
    by_source: dict[str, list[dict[str, Any]]] = {}
    for rec in heldout:
        by_source.setdefault(str(rec.get("source", "data")), []).append(rec)
    right = total = 0
    was_training = model.training
    model.eval()
    try:
        for recs in by_source.values():
            cands = list(dict.fromkeys(t for r in recs for t in [r["pos"][0], *r["neg"]]))
            c = np.asarray(model.encode(cands, batch_size=batch_size, normalize_embeddings=True))
            for instruction in dict.fromkeys(r["query"][0] for r in recs):
                group = [r for r in recs if r["query"][0] == instruction]
                q = np.asarray(model.encode([r["query"][1] for r in group], batch_size=batch_size,
                                            prompt=QUERY_TEMPLATE.format(instruction=instruction),
                                            normalize_embeddings=True))
                best = (q @ c.T).argmax(axis=1)
                right += sum(cands[int(b)] == r["pos"][0] for b, r in zip(best, group, strict=True))
                total += len(group)
    finally:
        model.train(was_training)
    return right / total


def loss_window(n: int) -> int:
    """Logged steps averaged at each end: max(1, min(5, n // 4))."""
    return max(1, min(5, n // 4))


def summarise(log_history: Sequence[dict[str, Any]], batch_size: int, num_negatives: int,
              acc_before: float | None, acc_after: float | None, heldout: int, model_id: str) -> dict[str, Any]:
    """The training summary written beside the embedder (`hrsa.paths.TRAIN_HEALTH`)."""
    losses = [float(row["loss"]) for row in log_history if "loss" in row]
    k = loss_window(len(losses))
    first = sum(losses[:k]) / k if losses else float("nan")
    last = sum(losses[-k:]) / k if losses else float("nan")
    chance = math.log(batch_size * (1 + num_negatives))
    rose = acc_before is not None and acc_after is not None and acc_after > acc_before
    learned = bool(losses) and last <= 0.8 * first and last < chance and (rose or acc_before is None)
    return {"model": model_id, "steps": len(losses), "loss_window": k, "first_loss": first, "last_loss": last,
            "chance_loss": chance, "heldout_rows": heldout, "accuracy_before": acc_before,
            "accuracy_after": acc_after, "learned": learned, "rule": LEARNED_RULE}


def describe(summary: dict[str, Any]) -> str:
    """One line of a summary's numbers."""
    def num(v: Any) -> str:
        return "n/a" if v is None else f"{float(v):.3f}"
    return (f"loss {num(summary['first_loss'])} -> {num(summary['last_loss'])} over {summary['steps']} steps "
            f"(chance {num(summary['chance_loss'])}), held-out top-1 accuracy {num(summary['accuracy_before'])} -> "
            f"{num(summary['accuracy_after'])}")


def require_learning(summary: dict[str, Any]) -> None:
    """Fail (one line, naming the embedder and its numbers) when the summary says it did not learn."""
    if not summary["learned"]:
        raise DidNotLearn(f"{summary['model']} did not learn ({LEARNED_RULE}): {describe(summary)}; "
                          "raise training.learning_rate or training.max_steps, or check the training data "
                          "(training.require_learning is set)")
