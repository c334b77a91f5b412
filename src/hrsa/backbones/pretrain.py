"""Pretrain the tiny base backbone: a Qwen2 decoder on Milton text mixed with short arithmetic lines."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hrsa.backbones.common import BatchSampler, save_backbone, train_causal_lm
from hrsa.runtime import progress
from hrsa.corpus import arithmetic_line, arithmetic_problems, read_corpus

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM

VERB = "pretrain"


@dataclass(frozen=True)
class PretrainSettings:
    """Sizes and optimisation of the base backbone; defaults are the FACTS.md recipe (1.1 M parameters)."""

    vocab_size: int = 4096
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 512
    steps: int = 600
    batch_size: int = 32
    max_length: int = 64
    lr: float = 3e-3
    arithmetic_share: float = 0.3
    seed: int = 0

    def validate(self) -> None:
        """Reject settings that would fail deep inside torch; messages name the flag."""
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
                raise HrsaError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise HrsaError("--hidden-size must be divisible by --num-heads, and --num-heads by --num-kv-heads")
        if not 0.0 <= self.arithmetic_share <= 1.0:
            raise HrsaError(f"--arithmetic-share must be in [0, 1], got {self.arithmetic_share}")
        if self.lr <= 0:
            raise HrsaError(f"--lr must be > 0, got {self.lr}")


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
        max_position_embeddings=settings.max_position_embeddings,
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


def pretrain(corpus_dir: str | Path, out: str | Path, settings: PretrainSettings = PretrainSettings()) -> Path:
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
    model = build_model(settings, tokenizer).to(device)
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
