"""Batches as the study builds them (gritlm-re's multi-dataset sampler), for the sentence-transformers trainer.

Per epoch, with a generator seeded by (seed, epoch): each source's rows are shuffled and cut into full batches of one
source; every source's last partial batch is pooled (the pieces in a random order) and cut into mixed batches, the
last of which is dropped when incomplete (the study trains with drop_last: fewer than one batch of rows go unused, and
none when the rows fill whole batches); then all batches are shuffled. So every record is used at most once per epoch,
and all but the leftover batches hold one source, so in-batch negatives come from the same task.

A mixed batch holds queries of several sources, each with its own instruction: `SourceCollator` gives every row its
own prompt and the pooling drops each row's own prompt tokens (`per_row_prompt_pooling`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def source_batches(lengths: Sequence[int], batch_size: int, seed: int) -> tuple[list[list[int]], int]:
    """(batches of indices into the concatenation of the sources, how many of them are mixed): the study's order."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} < 1")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    offsets = [sum(lengths[:j]) for j in range(len(lengths))]
    single: list[list[int]] = []
    leftovers: list[list[int]] = []
    for offset, n in zip(offsets, lengths, strict=True):
        order = [offset + i for i in torch.randperm(n, generator=generator).tolist()]
        full = n - n % batch_size
        single += [order[i : i + batch_size] for i in range(0, full, batch_size)]
        if full < n:
            leftovers.append(order[full:])
    mixed: list[list[int]] = []
    if leftovers:
        pooled = [i for k in torch.randperm(len(leftovers), generator=generator).tolist() for i in leftovers[k]]
        mixed = [pooled[i : i + batch_size] for i in range(0, len(pooled) - batch_size + 1, batch_size)]
    batches = single + mixed
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()], len(mixed)


class SourceBatchSampler:
    """The trainer's `multi_dataset_batch_sampler` (picklable: the trainer saves its arguments with every checkpoint):
    builds a sentence-transformers batch sampler of the study's batches for `devices` processes. Each global batch
    is one source's, yielded as `devices` consecutive per-device slices, which accelerate deals out one per
    process."""

    def __init__(self, devices: int = 1) -> None:
        self.devices = devices

    def __call__(self, dataset: Any, batch_samplers: list[Any], generator: Any = None, seed: int = 0) -> Any:
        return _sampler_class()(dataset, batch_samplers=batch_samplers, generator=generator, seed=seed,
                                devices=self.devices)


def source_batch_sampler(devices: int = 1) -> SourceBatchSampler:
    """`SourceBatchSampler` for `devices` processes."""
    return SourceBatchSampler(devices)


def _sampler_class() -> type:
    from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler

    class StudyBatchSampler(MultiDatasetDefaultBatchSampler):
        def __init__(self, dataset: Any, batch_samplers: list[Any], generator: Any = None, seed: int = 0,
                     devices: int = 1) -> None:
            super().__init__(dataset, batch_samplers=batch_samplers, generator=generator, seed=seed)
            self.devices = devices

        def __iter__(self) -> Iterator[list[int]]:
            per_device = self.batch_samplers[0].batch_size
            # the epoch moves the order on as sentence-transformers' own samplers do (seed + epoch)
            batches, _ = source_batches(_lengths(self.dataset), per_device * self.devices,
                                        (self.seed or 0) + self.epoch)
            yield from (b[k * per_device : (k + 1) * per_device] for b in batches for k in range(self.devices))

        def __len__(self) -> int:
            lengths = _lengths(self.dataset)
            b = self.batch_samplers[0].batch_size * self.devices
            return (sum(n // b for n in lengths) + sum(n % b for n in lengths) // b) * self.devices

    return StudyBatchSampler


def _lengths(concat: Any) -> list[int]:
    """Rows of each dataset of a ConcatDataset."""
    return [len(d) for d in concat.datasets]


def source_collator() -> type:
    """The trainer's data collator class: as sentence-transformers' own, except that in a batch mixing sources every
    row gets its own source's prompt, and the prompt lengths go per row (`per_row_prompt_pooling` reads them)."""
    import torch
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

    class SourceCollator(SentenceTransformerDataCollator):
        def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
            names = {f.get("dataset_name") for f in features}
            if len(names) <= 1 or not isinstance(self.prompts, dict):
                return super().__call__(features)
            batch: dict[str, Any] = {"dataset_name": features[0]["dataset_name"]}
            columns = [c for c in features[0] if c != "dataset_name"]
            by_dataset: dict[str, Any] = dict(self.prompts)
            for column in columns:
                prompts = [(by_dataset.get(f["dataset_name"]) or {}).get(column) or "" for f in features]
                texts = [f[column] for f in features]
                if len(set(prompts)) == 1:
                    out = self.preprocess_fn(texts, prompt=prompts[0] or None)
                else:
                    lengths = {p: self._prompt_length(p) for p in set(prompts)}
                    out = self.preprocess_fn([p + t for p, t in zip(prompts, texts, strict=True)])
                    out["prompt_length"] = torch.tensor([lengths[p] for p in prompts])
                for key, value in out.items():
                    batch[f"{column}_{key}"] = value
            return batch

        def _prompt_length(self, prompt: str) -> int:
            if not prompt:
                return 0
            return int(self.preprocess_fn(["x"], prompt=prompt).get("prompt_length") or 0)

    return SourceCollator


def per_row_prompt_pooling(pooling: Any) -> None:
    """Let a Pooling module (include_prompt=False) drop a different number of prompt tokens per row, as a mixed batch
    needs (sentence-transformers reads one length per batch). Only this training instance changes: what is saved is
    the stock module."""
    import torch

    forward = pooling.forward

    def per_row(features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        lengths = features.get("prompt_length")
        if not (isinstance(lengths, torch.Tensor) and lengths.ndim == 1 and lengths.numel() > 1
                and bool((lengths != lengths[0]).any())):
            return forward(features, **kwargs)
        mask = features["attention_mask"].clone()  # a copy: cached losses re-embed the same features
        positions = torch.arange(mask.size(1), device=mask.device).unsqueeze(0)
        start = mask.to(torch.int32).argmax(dim=1)  # left padding, where the tokenizer pads on the left
        mask[positions < (start + lengths.to(mask.device)).unsqueeze(1)] = 0
        inner = {k: v for k, v in features.items() if k != "prompt_length"}
        inner["attention_mask"] = mask
        features["sentence_embedding"] = forward(inner, **kwargs)["sentence_embedding"]
        return features

    pooling.forward = per_row
