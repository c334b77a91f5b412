"""Pretrain the tiny base backbone: a Qwen2 decoder on Milton text mixed with short arithmetic lines."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrsa.backbones.common import BatchSampler, save_backbone, train_causal_lm
from hrsa.corpus import arithmetic_line, arithmetic_problems, read_corpus
from hrsa.runtime import progress
from hrsa.schema import settings_from

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

VERB = "pretrain"
MAX_POSITIONS = 512  # position embeddings of the tiny model (longer than any text it sees)


@dataclass(frozen=True)
class PretrainSettings:
    """Sizes and optimisation of the base backbone: `recipes.pretrain` of the config (no defaults here: the schema's,
    through `from_config`, are the measured tiny recipe of 1.1 M parameters)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    steps: int
    batch_size: int
    max_length: int
    lr: float
    arithmetic_share: float
    seed: int

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None = None) -> PretrainSettings:
        """`recipes.pretrain` (the corpus is the verb's own argument), missing keys from the schema."""
        return settings_from(cls, "recipes/pretrain", block, elsewhere=("corpus",))

    def validate(self) -> None:
        """Reject settings that would fail deep inside torch; messages name the config key."""
        from hrsa.errors import HrsaError

        positive = (
            "vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "steps",
            "batch_size",
            "max_length",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise HrsaError(f"recipes.pretrain.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise HrsaError("--hidden-size must be divisible by --num-heads, and --num-heads by --num-kv-heads")
        if not 0.0 <= self.arithmetic_share <= 1.0:
            raise HrsaError(f"recipes.pretrain.arithmetic_share must be in [0, 1], got {self.arithmetic_share}")
        if self.lr <= 0:
            raise HrsaError(f"recipes.pretrain.lr must be > 0, got {self.lr}")


def build_model(settings: PretrainSettings, tokenizer: PreTrainedTokenizerBase) -> Qwen2ForCausalLM:
    """Freshly initialised Qwen2ForCausalLM (seeded) whose vocabulary matches the trained tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_kv_heads,
        intermediate_size=settings.intermediate_size,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(settings.seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def mixed_sampler(passages: list[str], arithmetic: list[str], share: float) -> BatchSampler:
    """Batches where each text is an arithmetic line with probability `share`, else a corpus passage."""

    def sample(rng: random.Random, n: int) -> list[str]:
        return [
            rng.choice(arithmetic) if (arithmetic and rng.random() < share) else rng.choice(passages) for _ in range(n)
        ]

    return sample


def pretrain(corpus_dir: str | Path, out: str | Path, settings: PretrainSettings) -> Path:
    """Train tokenizer and base model from scratch on corpus_dir, save both (plus log, provenance) atomically to out."""
    from hrsa.backbones.tokenizer import train_tokenizer
    from hrsa.runtime import torch_device

    settings.validate()
    passages = read_corpus(corpus_dir)  # raises DataError naming the path before any training
    arithmetic = [arithmetic_line(r) for r in arithmetic_problems(4096, seed=settings.seed)]
    start = time.perf_counter()
    tokenizer = train_tokenizer(passages + arithmetic, vocab_size=settings.vocab_size)
    progress(
        VERB, f"tokenizer: {len(tokenizer)} tokens from {len(passages)} passages ({time.perf_counter() - start:.1f}s)"
    )
    device = torch_device("auto")
    model = build_model(settings, tokenizer).to(device)  # type: ignore[arg-type]  # transformers types .to()
    progress(VERB, f"model: {model.num_parameters():,} parameters on {device}")
    rows = train_causal_lm(
        model,
        tokenizer,
        mixed_sampler(passages, arithmetic, settings.arithmetic_share),
        steps=settings.steps,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        lr=settings.lr,
        seed=settings.seed,
        device=device,
        verb=VERB,
    )
    params = {"verb": VERB, **dataclasses.asdict(settings), "corpus": str(corpus_dir)}
    return save_backbone(out, model, tokenizer, rows, params, inputs={"corpus": str(corpus_dir)})
