"""Pieces shared by pretrain, RLVR and SFT: model loading with clear errors, a plain causal-LM loop, atomic saving."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hrsa.errors import DataError, HrsaError
from hrsa.hub import looks_like_path
from hrsa.io import atomic_path, provenance, write_json
from hrsa.runtime import progress

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PROGRESS_EVERY = 50
TRAIN_LOG = "train_log.jsonl"
PROVENANCE = "provenance.json"
CHECKPOINTS = "checkpoints"
# files of a trainer checkpoint that make a loadable model (weights are *.safetensors)
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json")

# draws one batch of training texts from the seeded generator
BatchSampler = Callable[[random.Random, int], list[str]]


def quiet_transformers() -> None:
    """Silence transformers' per-file progress bars (loading/writing weights) so job logs hold only our lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def is_local_model(spec: str) -> bool:
    """True when spec names an existing directory; raises HrsaError when it looks like a path that does not exist."""
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise HrsaError(f"model directory has no config.json: {path}")
        return True
    if looks_like_path(spec):
        raise HrsaError(f"model directory not found: {spec}")
    return False  # a hub id such as 'Qwen/Qwen2.5-0.5B'


def model_inputs(spec: str) -> dict[str, str]:
    """Provenance inputs for a model: a local directory is content-hashed, a hub id is recorded by name only."""
    return {"model": str(Path(spec).expanduser())} if is_local_model(spec) else {}


def load_backbone(
    spec: str, trust_remote_code: bool = False, device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Causal LM (float32) and its tokenizer from a local directory or hub id; failures become HrsaError naming spec."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hrsa.hub import hub_load

    quiet_transformers()
    local = is_local_model(spec)
    source = str(Path(spec).expanduser()) if local else spec
    try:
        with hub_load("model", spec):
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32,
                                                         trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        kind = "model directory" if local else "model (hub id, offline cache)"
        raise HrsaError(f"cannot load {kind} {spec}: {str(exc).splitlines()[0]}") from exc
    if tokenizer.pad_token is None:  # many hub LMs ship without one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer  # type: ignore[arg-type]  # transformers types .to() for modules


def read_jsonl(path: str | Path, fields: Sequence[str]) -> list[dict[str, str]]:
    """Records of a JSONL file with the required string-valued fields; DataError names file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    from hrsa.data import numbered_jsonl

    rows: list[dict[str, str]] = []
    for lineno, obj in numbered_jsonl(path):
        if not isinstance(obj, dict) or any(f not in obj for f in fields):
            raise DataError(f"{path}:{lineno}: expected an object with fields {list(fields)}")
        rows.append({f: str(obj[f]) for f in fields})
    if not rows:
        raise DataError(f"data file has no records: {path}")
    return rows


def warmup_cosine(steps: int, warmup_frac: float = 0.05, floor: float = 0.1) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over warmup_frac of the steps, then cosine decay to `floor`."""
    warmup = max(1, int(steps * warmup_frac))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return factor


def encode_batch(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, device: str
) -> dict[str, torch.Tensor]:
    """Right-padded token ids with EOS appended; labels are the ids with padding masked to -100."""
    eos = tokenizer.eos_token or ""
    enc = tokenizer(
        [t + eos for t in texts], max_length=max_length, truncation=True, padding="longest", return_tensors="pt"
    )
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return {
        "input_ids": enc["input_ids"].to(device),
        "attention_mask": enc["attention_mask"].to(device),
        "labels": labels.to(device),
    }


def train_causal_lm(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sample: BatchSampler,
    *,
    steps: int,
    batch_size: int,
    max_length: int,
    lr: float,
    seed: int,
    device: str,
    verb: str,
) -> list[dict[str, float]]:
    """Plain AdamW next-token training on sampled batches (deterministic for a seed); returns per-step loss rows."""
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # loss positions must not shift under left padding
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps))
    model.train()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            batch = encode_batch(tokenizer, sample(rng, batch_size), max_length, device)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            rows.append({"step": step, "loss": float(loss.detach()), "lr": sched.get_last_lr()[0]})
            if step == 1 or step % PROGRESS_EVERY == 0 or step == steps:
                progress(verb, f"step {step}/{steps} loss {rows[-1]['loss']:.3f} ({time.perf_counter() - start:.1f}s)")
    finally:
        tokenizer.padding_side = saved_side
    model.eval()
    return rows


def _reset_backend(tokenizer: PreTrainedTokenizerBase) -> None:
    """Drop the truncation/padding state the last call left on a fast tokenizer, so tokenizer.json stays identical
    across base and siblings and raw `tokenizers` users get no hidden max_length."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()


def save_backbone(
    out: str | Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    log_rows: Sequence[dict[str, Any]],
    params: dict[str, Any],
    inputs: dict[str, str] | None = None,
    kept: dict[str, Path] | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write model, tokenizer, train_log.jsonl and provenance.json into `out` as one atomic directory rename;
    `kept` ({name: trainer checkpoint dir}) adds loadable intermediate models under out/checkpoints/{name}/,
    `extra_files` ({file name: text}) adds small text files such as a reward curve."""
    quiet_transformers()
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        model.save_pretrained(tmp)
        _reset_backend(tokenizer)
        tokenizer.save_pretrained(tmp)
        for name, src in (kept or {}).items():
            dst = tmp / CHECKPOINTS / name
            dst.mkdir(parents=True)
            for f in src.iterdir():
                if f.name in MODEL_FILES or f.suffix == ".safetensors":
                    shutil.copy2(f, dst / f.name)
            tokenizer.save_pretrained(dst)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        (tmp / TRAIN_LOG).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in log_rows))
        write_json(tmp / PROVENANCE, provenance(params, inputs))
    return out
