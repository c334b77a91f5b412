"""Score a SentenceTransformer directory on local, mteb and benchmark tasks through mteb.evaluate with a result cache.

mteb keys its cache by model name + revision only (not by weights), so both are mandatory here: an unnamed model would
land in `no_model_name_available/` and collide with every other unnamed model under overwrite_strategy='only-missing'.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from hrsa.embedder import check_revision
from hrsa.errors import HrsaError
from hrsa.evaluation.cache import cached_results, prepare_cache, scoring_settings
from hrsa.evaluation.encoder import check_model_id, load_encoder, token_batch_size
from hrsa.evaluation.names import resolve_tasks
from hrsa.evaluation.prompts import (
    INSTRUCTION_MODES,
    log_fallbacks,
    prompts_for,
    read_instruction_tables,
    resolve_instructions,
)
from hrsa.evaluation.results import summarize
from hrsa.hub import HubMissError, is_hub_miss
from hrsa.schema import default


class EvaluationFailed(HrsaError):
    """Some tasks of a grouped evaluation failed; the others were scored (and cached) and are in `results`."""

    def __init__(self, message: str, results: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.results = results


def evaluate(
    model_dir: str | os.PathLike[str],
    task_names: Sequence[str],
    model_name: str,
    revision: str,
    cache_dir: str | os.PathLike[str],
    batch_size: int | None = None,
    device: str = "auto",
    *,
    benchmark: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    instructions: str | None = None,
    task_instructions: Mapping[str, str] | None = None,
    trust_remote_code: bool = False,
    instruction_tables: Sequence[str | os.PathLike[str]] = (),
    max_seq_length: int | None = None,
    max_tokens_per_batch: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Run mteb.evaluate with a ResultCache (only-missing) and return {task: {main_score, main_score_name, scores,
    split_scores, query_prompt, instruction_source, settings, ...}}.

    instructions="task" gives each task's queries its own instruction (config override > instruction tables > mteb
    metadata); "model" uses the embedder's saved query prompt for every task. All tasks of one embedder share one cache
    revision (its weights' revision); the prompts and max_seq_length are recorded beside each result, and a cached
    result is reused only when they match, in which case the model is not even loaded. batch_size and instructions
    left out are the schema's (evaluation.batch_size, evaluation.instructions); max_seq_length None = the length
    saved with the model.
    """
    import mteb

    batch_size = default("evaluation/batch_size") if batch_size is None else batch_size
    instructions = default("evaluation/instructions") if instructions is None else instructions
    if instructions not in INSTRUCTION_MODES:
        raise HrsaError(f"evaluation.instructions: {instructions!r} is not one of {INSTRUCTION_MODES}")
    for flag, value in (("max_seq_length", max_seq_length), ("max_tokens_per_batch", max_tokens_per_batch)):
        if value is not None and value < 1:
            raise HrsaError(f"evaluation.{flag} must be at least 1, got {value}")
    check_model_id(model_name, revision)
    check_revision(model_dir, revision)  # before the cache: results of other weights must not be reused
    tasks = resolve_tasks(task_names, benchmark=benchmark, data_dir=data_dir)
    sources: dict[str, tuple[str, str]] = {}
    if instructions == "task":
        sources = resolve_instructions(tasks, task_instructions, read_instruction_tables(instruction_tables))
        log_fallbacks(sources, instruction_tables)
    prompts = prompts_for(sources)
    settings = {
        t.metadata.name: scoring_settings(t.metadata.name, prompts, instructions, max_seq_length) for t in tasks
    }
    cache = mteb.ResultCache(str(cache_dir))
    results = cached_results(cache, tasks, model_name, revision, settings)
    failed: dict[str, str] = {}
    if len(results) < len(tasks):
        encoder = load_encoder(model_dir, model_name, revision, device, prompts, max_seq_length, trust_remote_code)
        prepare_cache(cache, settings, model_name, revision)
        batch = token_batch_size(batch_size, max_tokens_per_batch, int(encoder.model.max_seq_length))
        todo = [t for t in tasks if t.metadata.name not in results]
        for task in todo:  # one task at a time on one loaded model: a failing task fails alone, named
            try:
                _score(mteb, encoder, task, cache, batch)
            except Exception as exc:
                if len(tasks) == 1:
                    raise
                failed[task.metadata.name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # read back what mteb stored (rounded), so a fresh run and a cached rerun report identical numbers
        results = cached_results(cache, tasks, model_name, revision, settings)
        missing = [t.metadata.name for t in todo if t.metadata.name not in results and t.metadata.name not in failed]
        if missing:
            raise HrsaError(f"mteb did not store complete results of {missing} for {model_name}@{revision} in "
                            f"{cache_dir}")
    summary = {
        t.metadata.name: {
            **summarize(results[t.metadata.name], t),
            "cache_revision": revision,
            "query_prompt": prompts.get(f"{t.metadata.name}-query"),
            "instruction_source": sources.get(t.metadata.name, ("", "model"))[1],
            "settings": settings[t.metadata.name],
        }
        for t in tasks
        if t.metadata.name in results
    }
    if failed:
        detail = "; ".join(f"{name}: {why}" for name, why in failed.items())
        raise EvaluationFailed(f"{model_name}: {len(failed)} of {len(tasks)} tasks failed ({detail}); the other "
                               "tasks are scored and cached, a re-run scores only the failed ones", summary)
    return summary


def _score(mteb: Any, encoder: Any, task: Any, cache: Any, batch: int) -> None:
    """mteb.evaluate of one task into the cache (only-missing: a killed job's finished subsets are kept); task data
    that is neither cached nor reachable (hrsa.hub's one test) becomes a one-line HubMissError naming the task."""
    try:
        mteb.evaluate(
            encoder,
            [task],
            cache=cache,
            overwrite_strategy="only-missing",
            encode_kwargs={"batch_size": batch, "show_progress_bar": False},
            show_progress_bar=False,
        )
    except Exception as exc:
        if not is_hub_miss(exc):
            raise
        raise _task_data_miss(exc, [task]) from exc


def _task_data_miss(exc: BaseException, tasks: Sequence[Any]) -> HubMissError:
    """The one-line error for task data missing from the Hugging Face cache while the hub cannot be reached: names
    the task(s) (those whose dataset the error mentions, else all) and how to pre-fetch them."""
    text = str(exc)
    paths = {t.metadata.name: str((t.metadata.dataset or {}).get("path", "")) for t in tasks}
    names = [name for name, path in paths.items() if path and path in text] or list(paths)
    fetch = f"import mteb; [t.load_data() for t in mteb.get_tasks(tasks={names!r})]"
    return HubMissError(
        f"data of evaluation task(s) {', '.join(names)} is not in the Hugging Face cache and the hub cannot be reached "
        f"({text}); pre-fetch it into the same HF cache (HF_HOME) on a machine with network access, e.g. "
        f'python -c "{fetch}", then re-run'
    )
