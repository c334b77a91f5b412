"""Sibling health: does the sibling reason better than its base, and how far did its weights move?

Greedy pass@1 of one backbone on each problem set of `siblings.sets` (held-out arithmetic for the tiny recipes,
checked by the first integer as their reward; maths sets such as GSM8K test and MATH-500 checked by math-verify, in
SimpleRL-Zoo's prompt), and for a sibling its gain over the base (from the base's own health file) and its relative
weight change ||theta_sibling - theta_base|| / ||theta_base|| over the parameters both share by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hrsa.backbones.common import load_backbone
from hrsa.backbones.maths import ProblemSource, load_problems, verified_reward
from hrsa.corpus import arithmetic_problems, correct_reward
from hrsa.errors import ConfigError, DataError
from hrsa.runtime import progress
from hrsa.schema import with_defaults

VERB = "health"
#: seed of the held-out arithmetic (the tiny RLVR run draws from seed recipes.rlvr.seed, 0 by default)
HELD_OUT_SEED = 1_000_003
SOURCE_KEYS = ("dataset", "path", "config", "split", "question_field", "solution_field", "answer_format")


def settings_of(block: Mapping[str, Any] | None) -> dict[str, Any]:
    """`siblings:` with every key it leaves out from the schema, each set's keys too."""
    values = with_defaults("siblings", block)
    values["sets"] = [with_defaults_set(s) for s in values["sets"]]
    return values


def with_defaults_set(entry: Mapping[str, Any]) -> dict[str, Any]:
    props = _set_schema()["properties"]
    return {k: entry.get(k, props[k]["default"]) for k in props}


def _set_schema() -> dict[str, Any]:
    from hrsa.schema import node

    return node("siblings/sets")["items"]


def problem_set(entry: Mapping[str, Any], n: int) -> tuple[list[dict[str, str]], Callable[..., list[float]]]:
    """The first `n` problems ({prompt, answer}) of one set and its checker."""
    if entry["builtin"] == "arithmetic":
        rows = [{"prompt": r["prompt"], "answer": r["answer"]} for r in arithmetic_problems(n, seed=HELD_OUT_SEED)]
        return rows, correct_reward
    if not (entry["dataset"] or entry["path"]):
        raise ConfigError(f"siblings.sets ({entry['name']}): give builtin, dataset or path")
    source = ProblemSource.parse({**{k: entry[k] for k in SOURCE_KEYS}, "limit": n})
    return [{"prompt": p.prompt, "answer": p.answer} for p in load_problems(source)], verified_reward


def greedy_pass_at_1(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, str]],
                     check: Callable[..., list[float]], max_new_tokens: int, batch_size: int) -> float:
    """Share of problems whose greedy completion the checker accepts."""
    import torch

    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    correct = 0.0
    try:
        for i in range(0, len(rows), batch_size):
            batch = rows[i:i + batch_size]
            enc = tokenizer([r["prompt"] for r in batch], return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id)
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            correct += sum(check(texts, [r["answer"] for r in batch]))
    finally:
        tokenizer.padding_side = side
    return correct / len(rows)


def weight_change(base: Any, sibling: Any) -> float:
    """||theta_sibling - theta_base|| / ||theta_base|| over the parameters both have (tied weights counted once)."""
    import torch

    theirs = dict(sibling.named_parameters())
    diff = norm = 0.0
    shared = 0
    for name, p in base.named_parameters():
        q = theirs.get(name)
        if q is None or q.shape != p.shape:
            continue
        shared += 1
        diff += float(torch.sum((q.detach().double().cpu() - p.detach().double().cpu()) ** 2))
        norm += float(torch.sum(p.detach().double().cpu() ** 2))
    if not shared or norm == 0.0:
        raise DataError("the sibling and its base share no parameter by name and shape: not one architecture")
    return math.sqrt(diff) / math.sqrt(norm)


def health(model: str, settings: Mapping[str, Any], device: str, *, base: str | None = None,
           base_result: Mapping[str, Any] | None = None, trust_remote_code: bool = False) -> dict[str, Any]:
    """The health record of one backbone: pass@1 per set; for a sibling (`base` given), the base's pass@1 (read from
    `base_result`), the gain and the relative weight change. A gain below `min_gain` is a DataError."""
    sets = [(e["name"], *problem_set(e, int(settings["problems"]))) for e in settings["sets"]]
    lm, tok = load_backbone(model, trust_remote_code, device=device)
    lm.eval()
    record: dict[str, Any] = {"model": model, "sets": {}, "problems": int(settings["problems"]),
                              "max_new_tokens": int(settings["max_new_tokens"]), "decoding": "greedy"}
    for name, rows, check in sets:
        score = greedy_pass_at_1(lm, tok, rows, check, int(settings["max_new_tokens"]), int(settings["batch_size"]))
        record["sets"][name] = {"n": len(rows), "pass_at_1": score, "checker": check.__name__}
        progress(VERB, f"{name}: pass@1 {score:.3f} over {len(rows)} problems")
    if base is None:
        return record
    assert base_result is not None
    before = {k: v["pass_at_1"] for k, v in base_result["sets"].items()}
    missing = sorted(set(record["sets"]) - set(before))
    if missing:
        raise DataError(f"the base's health file has no set(s) {missing}: re-run the base's health job")
    for name, entry in record["sets"].items():
        entry.update(base_pass_at_1=before[name], gain=entry["pass_at_1"] - before[name])
    record["gain"] = sum(e["gain"] for e in record["sets"].values()) / len(record["sets"])
    base_lm, _ = load_backbone(base, trust_remote_code, device="cpu")
    record["base"] = base
    record["weight_change"] = weight_change(base_lm, lm.cpu())
    progress(VERB, f"gain {record['gain']:+.3f}, relative weight change {record['weight_change']:.4g}")
    floor = settings.get("min_gain")
    if floor is not None and record["gain"] < float(floor):
        raise DataError(f"sibling {model}: pass@1 gain {record['gain']:+.3f} over its base is below siblings.min_gain "
                        f"{float(floor):g} (per set: " + ", ".join(f"{k} {v['gain']:+.3f}" for k, v in
                                                                   record["sets"].items()) + ")")
    return record
