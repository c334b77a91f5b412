"""SFT sibling: plain causal-LM fine-tuning of a backbone on worked solutions.

Texts are seeded arithmetic solutions (the tiny offline default), a JSONL of texts, or the same maths problems the RLVR
recipe uses (prompt + worked solution), so that the SFT and RLVR siblings differ only in the objective.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hrsa.backbones.common import BatchSampler, load_backbone, model_inputs, read_jsonl, save_backbone, train_causal_lm
from hrsa.backbones.maths import ProblemSource, load_problems, problems_digest, sibling_recipe
from hrsa.corpus import arithmetic_problems
from hrsa.errors import HrsaError
from hrsa.schema import settings_from

VERB = "sft"


@dataclass(frozen=True)
class SftSettings:
    """SFT settings: `recipes.sft` of the config (no defaults here: the schema's, through `from_config`, keep a tiny
    run around 20 s on one CPU thread)."""

    steps: int
    lr: float
    batch_size: int
    max_length: int
    seed: int
    problems: str | None  # maths problem source as JSON (hrsa.backbones.maths.ProblemSource), None: arithmetic
    data: str | None  # JSONL with a `text` field (None: generated worked solutions)
    trust_remote_code: bool = False  # not a recipe key: the pair's own flag

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None = None, trust_remote_code: bool = False) -> SftSettings:
        """`recipes.sft` with the role's overrides, missing keys from the schema."""
        values = sibling_recipe("recipes/sft", block)
        return settings_from(cls, "recipes/sft", values, trust_remote_code=trust_remote_code)

    def validate(self) -> None:
        """Reject settings that would fail inside torch; messages name the config key."""
        for name in ("steps", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise HrsaError(f"recipes.sft.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise HrsaError(f"recipes.sft.lr must be > 0, got {self.lr}")
        if self.problems is not None:
            ProblemSource.parse(self.problems)


def sft_texts(settings: SftSettings, data: str | Path | None = None) -> list[str]:
    """Training texts: the `text` field of a JSONL file, else seeded worked solutions ('... The answer is 7.')."""
    if data is not None:
        return [r["text"] for r in read_jsonl(data, ("text",))]
    n = max(256, settings.steps * settings.batch_size)
    return [r["solution"] for r in arithmetic_problems(n, seed=settings.seed)]


def shuffled_sampler(texts: list[str]) -> BatchSampler:
    """Batches drawn as seeded epochs over texts (each text once per pass, order reshuffled every pass)."""
    order: list[int] = []

    def sample(rng: random.Random, n: int) -> list[str]:
        batch = []
        for _ in range(n):
            if not order:
                order.extend(rng.sample(range(len(texts)), len(texts)))
            batch.append(texts[order.pop()])
        return batch

    return sample


def sft(model: str, out: str | Path, settings: SftSettings) -> Path:
    """Fine-tune `model` (directory or hub id) on texts with next-token loss; save model, tokenizer, log, provenance."""
    from hrsa.runtime import torch_device

    settings.validate()
    inputs = model_inputs(model)  # raises HrsaError for a missing directory before anything heavy
    data = settings.data
    if data is not None:
        inputs["data"] = str(data)
    digest = None
    if settings.problems is not None:
        problems = load_problems(ProblemSource.parse(settings.problems))
        texts, digest = [p.prompt + p.solution for p in problems], problems_digest(problems)
    else:
        texts = sft_texts(settings, data)
    device = torch_device("auto")
    lm, tokenizer = load_backbone(model, settings.trust_remote_code, device=device)
    rows = train_causal_lm(
        lm,
        tokenizer,
        shuffled_sampler(texts),
        steps=settings.steps,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        lr=settings.lr,
        seed=settings.seed,
        device=device,
        verb=VERB,
    )
    params = {
        "verb": VERB,
        "model": model,
        "data": None if data is None else str(data),
        "problems_sha256": digest,
        **dataclasses.asdict(settings),
    }
    return save_backbone(out, lm, tokenizer, rows, params, inputs)
