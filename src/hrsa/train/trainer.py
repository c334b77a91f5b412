"""Contrastive training of a backbone into an embedder with sentence-transformers (the paper's recipe).

InfoNCE over in-batch plus hard negatives via CachedMultipleNegativesRankingLoss (GradCache), scale = 1/temperature,
mean pooling without instruction tokens, bidirectional attention, the study's batches (hrsa.train.batches),
checkpoints for resume.
"""

from __future__ import annotations

import json
from typing import Any

from hrsa.data import QUERY_TEMPLATE, validate_training_records
from hrsa.embedder import build_embedder, check_reload
from hrsa.errors import ConfigError, HrsaError
from hrsa.train.recipe import Recipe, recipe_settings
from hrsa.train.resume import (
    ScheduleComplete,
    is_main_process,
    resume_point,
    run_training,
    training_fingerprint,
    world_size,
)


def records_to_datasets(records: list[dict[str, Any]], num_negatives: int,
                        seed: int | None = None) -> tuple[Any, dict[str, dict[str, str]]]:
    """One dataset per (source, instruction), columns anchor/positive/negative_i, and its query prompt per dataset.

    Sentence-transformers keys prompts by dataset name and column name, so each group carries its own instruction
    and Pooling(include_prompt=False) drops exactly those tokens. With a seed, as the study's data loader does, each
    record's positive is a seeded choice among its positives and its negatives a seeded sample of `num_negatives` of
    its negatives (without one: the first positive and the first negatives).
    """
    import random

    from datasets import Dataset, DatasetDict

    rng = random.Random(seed) if seed is not None else None

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec.get("source", "data"), rec["query"][0]), []).append(rec)
    datasets, prompts = {}, {}
    for i, ((source, instruction), recs) in enumerate(sorted(groups.items())):
        name = f"{i:02d}-{''.join(c if c.isalnum() else '_' for c in source)}"
        pos = [rng.choice(r["pos"]) if rng else r["pos"][0] for r in recs]
        negs = [rng.sample(r["neg"], num_negatives) if rng else r["neg"][:num_negatives] for r in recs]
        cols: dict[str, list[str]] = {"anchor": [r["query"][1] for r in recs], "positive": pos}
        for k in range(num_negatives):
            cols[f"negative_{k + 1}"] = [n[k] for n in negs]
        datasets[name] = Dataset.from_dict(cols)
        prompts[name] = {"anchor": QUERY_TEMPLATE.format(instruction=instruction)}
    return DatasetDict(datasets), prompts


def build_model(backbone: str, recipe: Recipe, trust_remote_code: bool = False, device: str = "cpu") -> Any:
    """The embedder the recipe trains (`hrsa.embedder.build_embedder` with its attention, pooling and max length),
    with LoRA adapters where the recipe asks for them. Its weights are float32 whatever dtype the backbone was saved
    in (published Qwen3 is bf16, which transformers would keep): they are the optimiser's master weights, and bf16
    comes from training.precision's autocast."""
    model = build_embedder(backbone, recipe.attention, recipe.pooling, recipe.max_length, trust_remote_code, device,
                           dtype="float32")
    if recipe.lora is not None:
        add_lora(model, recipe.lora)
    return model


def add_lora(model: Any, opts: dict[str, Any]) -> None:
    """LoRA adapters through peft (`add_adapter`); only the adapter weights train."""
    from peft import LoraConfig, TaskType

    model.add_adapter(LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=int(opts["r"]), lora_alpha=opts["alpha"],
                                 lora_dropout=float(opts["dropout"]), target_modules=list(opts["target_modules"])))


def merge_lora(auto_model: Any) -> int:
    """Fold LoRA weights into the base layers and drop the wrappers, so the saved embedder is self-contained
    (full weights and config.json with its attention mode; an adapter-only save reloads the base as causal)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(auto_model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = auto_model.get_submodule(parent_name) if parent_name else auto_model
            setattr(parent, child, module.get_base_layer())
            merged += 1
    auto_model._hf_peft_config_loaded = False
    if hasattr(auto_model, "peft_config"):
        del auto_model.peft_config
    return merged


def check_prompt_lengths(tokenizer: Any, prompts: dict[str, dict[str, str]], max_length: int) -> None:
    """Pooling drops the instruction tokens: an instruction that fills max_length leaves nothing to embed."""
    for columns in prompts.values():
        for prompt in columns.values():
            n = len(tokenizer(prompt)["input_ids"])
            if n + 8 > max_length:
                raise ConfigError(
                    f"training.max_length: {max_length} tokens leave fewer than 8 for the text after the "
                    f"{n}-token instruction {prompt!r}"
                )


def per_device_batch(global_batch: int, devices: int) -> int:
    """Queries per device for the recipe's global batch: training.batch_size = per-device batch x devices.

    GradCache (CachedMNRL's mini-batches) bounds memory whatever the per-device batch, so one device can hold the
    study's 4,096."""
    if devices < 1 or global_batch % devices:
        raise ConfigError(f"training.batch_size {global_batch} is not a multiple of the {devices} training devices")
    return global_batch // devices


def fsdp_arguments(model: Any, recipe: Recipe) -> dict[str, Any]:
    """TrainingArguments of training.fsdp: FSDP2 (torch's fully_shard through accelerate), one unit per decoder
    layer (wrapped by the layer's class), parameters resharded after each forward (full sharding: weights, gradients
    and Adam states split over the devices); none when fsdp is off. Gradient checkpointing goes through FSDP's own
    activation checkpointing, as transformers asks. The embedder is saved from the full state dict gathered to rank 0.

    Accelerate shards only on accelerators (on CPU it would silently fall back to unsharded DDP), so fsdp is refused
    on CPU: the CPU tests check these arguments and the launch, not a sharded run."""
    if not recipe.fsdp:
        return {}
    layer = type(model[0].auto_model.layers[0]).__name__
    return {"fsdp": True,
            "fsdp_config": {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                            "transformer_layer_cls_to_wrap": [layer], "reshard_after_forward": True,
                            "activation_checkpointing": recipe.gradient_checkpointing,
                            "state_dict_type": "FULL_STATE_DICT"}}


def build_trainer(backbone: str, records: list[dict[str, Any]], checkpoints: str, seed: int, recipe: Recipe,
                  device: str, trust_remote_code: bool = False) -> Any:
    """The paper's recipe as a SentenceTransformerTrainer: CachedMNRL (scale 1/temperature), AdamW (fused where torch
    has it) with cosine decay and warmup, the study's batches (one source per batch, leftovers pooled into mixed
    batches, every record once per epoch), seeded order."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss

    from hrsa.train.batches import per_row_prompt_pooling, source_batch_sampler, source_collator

    torch.manual_seed(seed)  # LoRA adapter initialisation
    model = build_model(backbone, recipe, trust_remote_code, device)
    per_row_prompt_pooling(model[1])  # a batch mixing sources drops each row's own instruction
    train_ds, prompts = records_to_datasets(records, recipe.num_negatives, seed)
    check_prompt_lengths(model[0].tokenizer, prompts, recipe.max_length)
    if recipe.fsdp and not device.startswith("cuda"):
        raise ConfigError("training.fsdp: shards over GPUs only (accelerate does not shard on CPU, where the run would "
                          "train unsharded); set training.fsdp false to train on CPU")
    devices = world_size()
    if devices != recipe.devices:
        raise ConfigError(f"training.devices is {recipe.devices} but this run has {devices} process(es): launch "
                          f"{recipe.devices} processes with torchrun (the workflow's train rule does), or set devices")
    # on several devices every query's negatives include the other devices' passages: one batch of batch_size queries
    loss = CachedMultipleNegativesRankingLoss(model, scale=1.0 / recipe.temperature,
                                              mini_batch_size=recipe.mini_batch_size, gather_across_devices=devices > 1)
    per_device_batch(recipe.batch_size, devices)  # refuses a global batch that does not split evenly
    cuda = device.startswith("cuda")
    from hrsa.runtime import compute_dtype

    bf16 = compute_dtype(recipe.precision, device) == "bfloat16"  # mixed precision: autocast over fp32 weights
    # set only when asked: passing False would differ from the default (None) and trigger a deprecation warning
    checkpointing: dict[str, Any] = ({"gradient_checkpointing": True} if recipe.gradient_checkpointing
                                     and not recipe.fsdp else {})
    args = SentenceTransformerTrainingArguments(
        output_dir=checkpoints,
        # the loader draws the global batch and accelerate splits it over the processes, so every layout trains on
        # the same batches in the same order (a per-device sampler would reorder them: other batch sizes, datasets)
        per_device_train_batch_size=recipe.batch_size,
        accelerator_config={"split_batches": True},
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=recipe.warmup_ratio,  # a float below 1 is a ratio of the total steps (transformers v5)
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=2,
        logging_steps=1,
        seed=seed,
        data_seed=seed,
        use_cpu=not cuda,
        bf16=bf16,
        **checkpointing,
        **fsdp_arguments(model, recipe),
        report_to="none",
        prompts=prompts,
        # the study's batches (hrsa.train.batches): one source per batch, leftovers pooled, every record once; the
        # sampler draws whole global batches (accelerate splits each over the processes, as above)
        batch_sampler=BatchSamplers.BATCH_SAMPLER,
        multi_dataset_batch_sampler=source_batch_sampler(1),
        dataloader_drop_last=True,
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (not hidden), so the guard can fail the run
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_ds, loss=loss,
                                         data_collator=source_collator()(preprocess_fn=model.preprocess,
                                                                         prompts=prompts),
                                         callbacks=[make_guard(recipe)])
    if len(trainer.get_train_dataloader()) == 0:  # an embedder "trained" for 0 steps would be saved as the backbone
        sizes = ", ".join(f"{name} {len(ds)}" for name, ds in train_ds.items())
        raise ConfigError(f"training.batch_size: {recipe.batch_size} queries per batch leaves no full batch of the "
                          f"training data (batches come from one source each, leftovers pooled into mixed batches; "
                          f"records per source: {sizes}): lower training.batch_size or add records")
    return trainer


DIVERGENCE_HINT = ("lower training.learning_rate (or raise training.warmup_ratio / training.temperature); no embedder "
                   "was written and the run's checkpoints were discarded")


class TrainingDiverged(HrsaError):
    """Non-finite loss, gradient or weights: the run's result is garbage, so the job fails instead of saving it."""


def make_guard(recipe: Recipe) -> Any:
    """A TrainerCallback that fails the run on a non-finite logged loss or gradient norm (checked every step) and stops
    it before any step past the schedule (HF resuming mid-epoch from the final checkpoint would take one more step)."""
    import math

    from transformers import TrainerCallback

    class TrainingGuard(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.max_steps > 0 and state.global_step >= state.max_steps:
                raise ScheduleComplete

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if value is not None and not math.isfinite(float(value)):
                    raise TrainingDiverged(
                        f"training diverged: {key} is {float(value)} at step {state.global_step} of {state.max_steps} "
                        f"({recipe_settings(recipe)}): {DIVERGENCE_HINT}")

    return TrainingGuard()


def check_finite_weights(model: Any, step: int, recipe: Recipe) -> None:
    """Refuse to save weights holding NaN or inf (a divergence the logged loss did not show)."""
    import torch

    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            raise TrainingDiverged(
                f"training diverged: non-finite weights in {name} after step {step} ({recipe_settings(recipe)}): "
                f"{DIVERGENCE_HINT}")


def train_embedder(
    backbone: str,
    data_path: str,
    out: str,
    seed: int,
    recipe: Recipe,
    checkpoints: str,
    model_id: str,
    device: str = "auto",
    trust_remote_code: bool = False,
    health: str | None = None,
) -> dict[str, Any]:
    """Train one embedder; resumes from the newest checkpoint in `checkpoints` written from the same inputs (by
    content); writes `out` atomically, and the training summary (`hrsa.train.health`) to `health`. A finished run
    removes its checkpoints; a diverged one fails and removes them too, as does one that did not learn under
    `training.require_learning` (nothing is written but the summary)."""
    import shutil

    from hrsa.io import write_json
    from hrsa.runtime import torch_device
    from hrsa.train.health import heldout_accuracy, require_learning, split_heldout, summarise

    records, heldout = split_heldout(validate_training_records(data_path, recipe.num_negatives), recipe.heldout_rows)
    device = torch_device(device)
    trainer = build_trainer(backbone, records, checkpoints, seed, recipe, device, trust_remote_code)
    resume = resume_point(trainer, checkpoints, lambda: training_fingerprint(backbone, data_path, seed, recipe, device,
                                                                             trust_remote_code))
    model = trainer.model
    acc_before = heldout_accuracy(model, heldout)
    try:
        run_training(trainer, resume)
        # drop the autocast wrapper mixed precision put on forward: the saved fp32 weights are checked (check_reload)
        # and written as they encode outside the trainer
        model = trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)
        if recipe.fsdp:  # every rank holds a shard: gather the full weights (a collective) into a whole copy
            model = gathered_model(trainer, backbone, recipe, trust_remote_code)
        if recipe.lora is not None:
            print(f"merged {merge_lora(model[0].auto_model)} LoRA layers into the weights", flush=True)
        check_finite_weights(model, trainer.state.global_step, recipe)
    except TrainingDiverged:
        if is_main_process():
            shutil.rmtree(checkpoints, ignore_errors=True)  # they may hold non-finite weights: never resume from them
        raise
    if not is_main_process():  # rank 0 writes the embedder
        return {"revision": None, "params": {"steps": trainer.state.global_step}}
    summary = summarise(trainer.state.log_history, recipe.batch_size, recipe.num_negatives, acc_before,
                        heldout_accuracy(model, heldout), len(heldout), model_id)
    print(json.dumps(summary), flush=True)
    if health:
        write_json(health, summary)
    if recipe.require_learning and not summary["learned"]:
        shutil.rmtree(checkpoints, ignore_errors=True)  # the same inputs give the same run: nothing to resume
        require_learning(summary)
    prov = save_embedder(model, trainer, out, model_id, {
        "backbone": backbone, "data": data_path, "seed": seed, "recipe": recipe.__dict__, "device": device,
        "resumed_from": str(resume) if resume else None,
    })
    shutil.rmtree(checkpoints)  # finished: nothing a later run could resume from by mistake
    return prov


def gathered_model(trainer: Any, backbone: str, recipe: Recipe, trust_remote_code: bool) -> Any:
    """The trained embedder as one unsharded model on rank 0's CPU, from FSDP's full state dict (every rank must
    call it: the gather is a collective); the other ranks keep their shards."""
    state = trainer.accelerator.get_state_dict(trainer.model)
    if not is_main_process():  # the full state dict lands on rank 0, which alone saves
        return trainer.model
    whole = build_model(backbone, recipe, trust_remote_code, "cpu")
    whole.load_state_dict({k: v.cpu() for k, v in state.items()})
    return whole


def save_embedder(model: Any, trainer: Any, out: str, model_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Save the SentenceTransformer dir with train log, provenance and a weights revision (the mteb cache key)."""
    from hrsa.io import atomic_path, provenance, sha256_tree

    model.model_card_data.model_name = f"hrsa/{model_id}"
    with atomic_path(out) as tmp:
        model.save(str(tmp), create_model_card=False)
        reload_diff = check_reload(model, tmp)
        revision = sha256_tree(tmp, ("*.safetensors",))[:16]
        (tmp / "revision.txt").write_text(revision + "\n")
        with (tmp / "train_log.jsonl").open("w") as fh:
            for row in trainer.state.log_history:
                fh.write(json.dumps(row) + "\n")
        prov = provenance({**params, "model_id": model_id, "steps": trainer.state.global_step},
                          {"data": params["data"]})
        prov["revision"] = revision
        prov["reload_max_abs_diff"] = reload_diff
        (tmp / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n")
    return prov
