"""RLVR sibling: GRPO (TRL) with a verifiable reward.

Two problem sources: seeded arithmetic with an exact-first-integer reward (the tiny offline default), or maths problems
with worked solutions (GSM8K, MATH, JSONL; see hrsa.backbones.maths) rewarded by math-verify, as for real bases.
Kept checkpoints (every `save_steps`) let prolonged-training drift be analysed from one RL run.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrsa.backbones.common import PROGRESS_EVERY, load_backbone, model_inputs, read_jsonl, save_backbone
from hrsa.backbones.maths import (
    Problem,
    ProblemSource,
    load_problems,
    problems_digest,
    sibling_recipe,
    verified_reward,
)
from hrsa.corpus import arithmetic_problems, correct_reward
from hrsa.errors import ConfigError, HrsaError
from hrsa.runtime import progress
from hrsa.schema import settings_from

if TYPE_CHECKING:
    from datasets import Dataset

VERB = "rlvr"
REWARDS: dict[str, Any] = {"first_integer": correct_reward, "math_verify": verified_reward}
CURVE = "reward_curve.tsv"


@dataclass(frozen=True)
class RlvrSettings:
    """GRPO settings: `recipes.rlvr` of the config (no defaults here: the schema's, through `from_config`, keep a
    tiny run around 25 s on one CPU thread)."""

    steps: int
    lr: float
    batch_size: int  # completions per micro-batch
    num_generations: int
    max_completion_length: int
    prompts_per_step: int  # prompts per optimiser step (0: batch_size / num_generations)
    updates_per_rollout: int  # optimiser steps sharing one rollout batch
    beta: float  # KL coefficient (TRL beta)
    entropy_coef: float  # entropy bonus (TRL entropy_coef)
    continuous_batching: bool  # TRL use_transformers_continuous_batching
    seed: int
    reward: str  # first_integer | math_verify | auto (math_verify for maths problems, else first_integer)
    temperature: float  # sampling temperature of the rollouts
    save_steps: int  # keep a loadable model every N steps under checkpoints/step-N (0: none)
    problems: str | None  # maths problem source as JSON (hrsa.backbones.maths.ProblemSource), None: arithmetic
    data: str | None  # JSONL of {prompt, answer} (None: generated arithmetic)
    trust_remote_code: bool = False  # not a recipe key: the pair's own flag

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None = None, trust_remote_code: bool = False) -> RlvrSettings:
        """`recipes.rlvr` with the role's overrides, missing keys from the schema."""
        values = sibling_recipe("recipes/rlvr", block)
        return settings_from(cls, "recipes/rlvr", values, trust_remote_code=trust_remote_code)

    def accumulation(self) -> int:
        """Micro-batches per optimiser step: prompts_per_step x num_generations completions in batch_size pieces."""
        return max(1, self.prompts_per_step * self.num_generations // self.batch_size)

    def step_prompts(self) -> int:
        """Prompts per optimiser step."""
        return self.prompts_per_step or self.batch_size // self.num_generations

    def reward_name(self) -> str:
        """The reward actually used."""
        if self.reward != "auto":
            return self.reward
        return "math_verify" if self.problems else "first_integer"

    def validate(self) -> None:
        """Reject settings GRPO would refuse later; messages name the config key."""
        for name in ("steps", "batch_size", "max_completion_length"):
            if getattr(self, name) < 1:
                raise HrsaError(f"recipes.rlvr.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise HrsaError("recipes.rlvr.num_generations must be >= 2 (GRPO compares completions), "
                            f"got {self.num_generations}")
        if self.batch_size % self.num_generations:
            raise HrsaError(
                f"recipes.rlvr.batch_size ({self.batch_size}) must be a multiple of recipes.rlvr.num_generations "
                f"({self.num_generations})"
            )
        if self.lr <= 0:
            raise HrsaError(f"recipes.rlvr.lr must be > 0, got {self.lr}")
        if self.prompts_per_step < 0 or (self.prompts_per_step * self.num_generations) % self.batch_size:
            raise HrsaError(
                f"recipes.rlvr.prompts_per_step ({self.prompts_per_step}) x num_generations ({self.num_generations}) "
                f"must be a multiple of recipes.rlvr.batch_size ({self.batch_size}), the completions per micro-batch"
            )
        if self.updates_per_rollout < 1:
            raise HrsaError(f"recipes.rlvr.updates_per_rollout must be >= 1, got {self.updates_per_rollout}")
        for name in ("beta", "entropy_coef"):
            if getattr(self, name) < 0:
                raise HrsaError(f"recipes.rlvr.{name} must be >= 0, got {getattr(self, name)}")
        if self.reward not in (*REWARDS, "auto"):
            raise HrsaError(f"recipes.rlvr.reward must be one of {[*REWARDS, 'auto']}, got {self.reward!r}")
        if self.temperature <= 0:
            raise HrsaError(f"recipes.rlvr.temperature must be > 0, got {self.temperature}")
        if self.save_steps < 0:
            raise HrsaError(f"recipes.rlvr.save_steps must be >= 0, got {self.save_steps}")
        if self.problems is not None:
            ProblemSource.parse(self.problems)


def prompt_dataset(
    settings: RlvrSettings, data: str | Path | None = None, problems: list[Problem] | None = None
) -> Dataset:
    """Dataset with columns prompt, answer: maths problems, a JSONL file, or enough seeded arithmetic for all steps."""
    from datasets import Dataset

    if problems is not None:
        rows = [{"prompt": p.prompt, "answer": p.answer} for p in problems]
    elif data is not None:
        rows = read_jsonl(data, ("prompt", "answer"))
    else:
        n = max(64, settings.steps * settings.step_prompts())
        rows = [{"prompt": r["prompt"], "answer": r["answer"]} for r in arithmetic_problems(n, seed=settings.seed)]
    return Dataset.from_list(rows)


def _progress_callback(steps: int) -> Any:
    """TrainerCallback printing one line per PROGRESS_EVERY steps (and the last) with the mean reward."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.perf_counter()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            step = state.global_step
            if logs and "reward" in logs and (step == 1 or step % PROGRESS_EVERY == 0 or step == steps):
                progress(
                    VERB,
                    f"step {step}/{steps} reward {logs['reward']:.3f} " f"({time.perf_counter() - self.start:.1f}s)",
                )

    return Progress()


def reward_curve(log: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-step reward curve from the trainer log: mean reward (= pass rate of sampled completions for a 0/1
    reward), its std across completions, and the mean completion length."""
    keys = {"reward": "reward", "reward_std": "reward_std", "completion_length": "completions/mean_length"}
    return [
        {"step": r["step"], **{k: float(r.get(src, float("nan"))) for k, src in keys.items()}}
        for r in log
        if "reward" in r and "step" in r
    ]


def curve_summary(curve: list[dict[str, float]]) -> str:
    """One line: pass rate over the first and last thirds of the run."""
    third = max(1, len(curve) // 3)
    first = sum(r["reward"] for r in curve[:third]) / third
    last = sum(r["reward"] for r in curve[-third:]) / third
    return f"pass rate (mean reward) first third {first:.3f}, last third {last:.3f} over {len(curve)} steps"


def _no_checkpointing(config_cls: type) -> dict[str, Any]:
    """Turn activation checkpointing off (TRL defaults it on; slow, useless at this size) under its current name."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return (
        {"activation_checkpointing": False}
        if "activation_checkpointing" in names
        else {"gradient_checkpointing": False}
    )


def _optional_fields(config_cls: type, settings: RlvrSettings) -> dict[str, Any]:
    """Entropy bonus and continuous batching under TRL's names where this TRL has them; set but missing: refused."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    wanted = {"entropy_coef": ("entropy_coef", settings.entropy_coef, 0.0),
              "use_transformers_continuous_batching": ("continuous_batching", settings.continuous_batching, False)}
    out: dict[str, Any] = {}
    for field, (key, value, off) in wanted.items():
        if field in names:
            out[field] = value
        elif value != off:
            raise ConfigError(f"recipes.rlvr.{key}: the installed TRL's GRPOConfig has no {field}")
    return out


def grpo_config(settings: RlvrSettings, output_dir: str | Path, cuda: bool = False) -> Any:
    """TRL's GRPOConfig for the recipe: rollouts of prompts_per_step x updates_per_rollout prompts, num_generations
    completions each, shared by updates_per_rollout optimiser steps of prompts_per_step prompts (batch_size
    completions per micro-batch, accumulated); KL beta and entropy bonus as set."""
    from trl import GRPOConfig

    settings.validate()
    accumulation = settings.accumulation()
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=accumulation * settings.updates_per_rollout,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        learning_rate=settings.lr,
        beta=settings.beta,
        temperature=settings.temperature,
        logging_steps=1,
        save_strategy="steps" if settings.save_steps else "no",
        save_steps=settings.save_steps or 500,
        save_only_model=True,
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        fp16=False,
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=True,
        trust_remote_code=settings.trust_remote_code,
        **_optional_fields(GRPOConfig, settings),
        **_no_checkpointing(GRPOConfig),
    )


def rlvr(model: str, out: str | Path, settings: RlvrSettings) -> Path:
    """GRPO-tune `model` (directory or hub id) with a verifiable reward; save model, tokenizer, log, reward curve,
    kept checkpoints and provenance."""
    import torch
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    settings.validate()
    inputs = model_inputs(model)  # raises HrsaError for a missing directory before anything heavy
    data = settings.data
    if data is not None:
        inputs["data"] = str(data)
    problems = load_problems(ProblemSource.parse(settings.problems)) if settings.problems else None
    dataset = prompt_dataset(settings, data, problems)
    digest = problems_digest(problems) if problems else None
    cuda = torch.cuda.is_available()
    lm, tokenizer = load_backbone(model, settings.trust_remote_code, device="cpu")
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation needs prompts flush right
    with tempfile.TemporaryDirectory(prefix="hrsa-rlvr-") as scratch:
        cfg = grpo_config(settings, scratch, cuda)
        trainer = GRPOTrainer(
            model=lm,
            reward_funcs=REWARDS[settings.reward_name()],
            args=cfg,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[_progress_callback(settings.steps)],
        )
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)  # TRL's
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; Progress prints a summary
        trainer.train()
        trained = trainer.accelerator.unwrap_model(trainer.model)
        log = list(trainer.state.log_history)
        tokenizer.padding_side = side  # siblings keep the base's tokenizer files
        curve = reward_curve(log)
        progress(VERB, curve_summary(curve))
        kept = {f"step-{p.name.split('-')[-1]}": p for p in sorted(Path(scratch).glob("checkpoint-*"))}
        params = {
            "verb": VERB,
            "model": model,
            "data": None if data is None else str(data),
            "reward_used": settings.reward_name(),
            "problems_sha256": digest,
            **dataclasses.asdict(settings),
        }
        extra = {CURVE: curve_tsv(curve)}
        return save_backbone(out, trained, tokenizer, log, params, inputs, kept=kept, extra_files=extra)


def curve_tsv(curve: list[dict[str, float]]) -> str:
    """The reward curve as TSV text (step, reward, reward_std, completion_length), kept beside the model."""
    cols = ["step", "reward", "reward_std", "completion_length"]
    return "\t".join(cols) + "\n" + "".join("\t".join(f"{r[c]:g}" for c in cols) + "\n" for r in curve)
