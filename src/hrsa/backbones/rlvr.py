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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrsa.backbones.common import PROGRESS_EVERY, load_backbone, model_inputs, read_jsonl, save_backbone
from hrsa.runtime import progress
from hrsa.backbones.maths import Problem, ProblemSource, load_problems, problems_digest, verified_reward
from hrsa.corpus import arithmetic_problems, correct_reward
from hrsa.errors import HrsaError

if TYPE_CHECKING:
    from datasets import Dataset

VERB = "rlvr"
REWARDS = {"first_integer": correct_reward, "math_verify": verified_reward}
CURVE = "reward_curve.tsv"


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
    reward: str = "auto"  # first_integer | math_verify | auto (math_verify for maths problems, else first_integer)
    temperature: float = 1.0  # sampling temperature of the rollouts
    save_steps: int = 0  # keep a loadable model every N steps under checkpoints/step-N (0: none)
    problems: str | None = None  # maths problem source as JSON (hrsa.backbones.maths.ProblemSource)

    def reward_name(self) -> str:
        """The reward actually used."""
        if self.reward != "auto":
            return self.reward
        return "math_verify" if self.problems else "first_integer"

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
        if self.reward not in (*REWARDS, "auto"):
            raise HrsaError(f"--reward must be one of {[*REWARDS, 'auto']}, got {self.reward!r}")
        if self.temperature <= 0:
            raise HrsaError(f"--temperature must be > 0, got {self.temperature}")
        if self.save_steps < 0:
            raise HrsaError(f"--save-steps must be >= 0, got {self.save_steps}")
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


def _no_checkpointing(config_cls: type) -> dict[str, bool]:
    """Turn activation checkpointing off (TRL defaults it on; slow, useless at this size) under its current name."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return (
        {"activation_checkpointing": False}
        if "activation_checkpointing" in names
        else {"gradient_checkpointing": False}
    )


def rlvr(model: str, out: str | Path, settings: RlvrSettings = RlvrSettings(), data: str | Path | None = None) -> Path:
    """GRPO-tune `model` (directory or hub id) with a verifiable reward; save model, tokenizer, log, reward curve,
    kept checkpoints and provenance."""
    import torch
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    settings.validate()
    inputs = model_inputs(model)  # raises HrsaError for a missing directory before anything heavy
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
        cfg = GRPOConfig(
            output_dir=scratch,
            max_steps=settings.steps,
            per_device_train_batch_size=settings.batch_size,
            num_generations=settings.num_generations,
            max_completion_length=settings.max_completion_length,
            learning_rate=settings.lr,
            beta=0.0,
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
            **_no_checkpointing(GRPOConfig),
        )
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
