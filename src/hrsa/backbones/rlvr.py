"""RLVR sibling: GRPO (TRL) on arithmetic prompts with a verifiable reward (exact first integer)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrsa.backbones.common import PROGRESS_EVERY, load_backbone, model_inputs, progress, read_jsonl, save_backbone
from hrsa.corpus import arithmetic_problems, correct_reward
from hrsa.errors import HrsaError

if TYPE_CHECKING:
    from datasets import Dataset

VERB = "rlvr"


@dataclass(frozen=True)
class RlvrSettings:
    """GRPO settings; defaults keep a run around 25 s on one CPU thread (FACTS.md, section 1).

    lr 2e-4: on the tiny base, 1e-3 lowered the greedy pass rate for all 3 seeds tried and 5e-4 collapsed one seed
    into non-numbers (reward 0); 2e-4 moves the weights ~1% and keeps the model answering with numbers.
    """

    steps: int = 40
    lr: float = 2e-4
    batch_size: int = 16
    num_generations: int = 4
    max_completion_length: int = 8
    seed: int = 0
    trust_remote_code: bool = False

    def validate(self) -> None:
        """Reject settings GRPO would refuse later; messages name the flag."""
        for name in ("steps", "batch_size", "max_completion_length"):
            if getattr(self, name) < 1:
                raise HrsaError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise HrsaError(f"--num-generations must be >= 2 (GRPO compares completions), got {self.num_generations}")
        if self.batch_size % self.num_generations:
            raise HrsaError(
                f"--batch-size ({self.batch_size}) must be a multiple of --num-generations " f"({self.num_generations})"
            )
        if self.lr <= 0:
            raise HrsaError(f"--lr must be > 0, got {self.lr}")


def prompt_dataset(settings: RlvrSettings, data: str | Path | None = None) -> Dataset:
    """Dataset with columns prompt, answer: from a JSONL file, else enough seeded arithmetic problems for all steps."""
    from datasets import Dataset

    if data is not None:
        rows = read_jsonl(data, ("prompt", "answer"))
    else:
        n = max(64, settings.steps * settings.batch_size // settings.num_generations)
        rows = [{"prompt": r["prompt"], "answer": r["answer"]} for r in arithmetic_problems(n, seed=settings.seed)]
    return Dataset.from_list(rows)


def _progress_callback(steps: int) -> Any:
    """TrainerCallback printing one line per PROGRESS_EVERY steps (and the last) with the mean reward."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):  # type: ignore[misc]
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


def _no_checkpointing(config_cls: type) -> dict[str, bool]:
    """Turn activation checkpointing off (TRL defaults it on; slow, useless at this size) under its current name."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return (
        {"activation_checkpointing": False}
        if "activation_checkpointing" in names
        else {"gradient_checkpointing": False}
    )


def rlvr(model: str, out: str | Path, settings: RlvrSettings = RlvrSettings(), data: str | Path | None = None) -> Path:
    """GRPO-tune `model` (directory or hub id) on verifiable arithmetic; save model, tokenizer, log, provenance."""
    import torch
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    settings.validate()
    inputs = model_inputs(model)  # raises HrsaError for a missing directory before anything heavy
    if data is not None:
        inputs["data"] = str(data)
    dataset = prompt_dataset(settings, data)
    cuda = torch.cuda.is_available()
    lm, tokenizer = load_backbone(model, settings.trust_remote_code, device="cpu")
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation needs prompts flush right
    with tempfile.TemporaryDirectory(prefix="hrsa-rlvr-") as scratch:
        cfg = GRPOConfig(
            output_dir=scratch,
            max_steps=settings.steps,
            per_device_train_batch_size=settings.batch_size,
            num_generations=settings.num_generations,
            max_completion_length=settings.max_completion_length,
            learning_rate=settings.lr,
            beta=0.0,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=not cuda,
            bf16=cuda,
            fp16=False,
            seed=settings.seed,
            data_seed=settings.seed,
            disable_tqdm=True,
            trust_remote_code=settings.trust_remote_code,
            **_no_checkpointing(GRPOConfig),
        )
        trainer = GRPOTrainer(
            model=lm,
            reward_funcs=correct_reward,
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
    params = {"verb": VERB, "model": model, "data": None if data is None else str(data), **dataclasses.asdict(settings)}
    return save_backbone(out, trained, tokenizer, log, params, inputs)
