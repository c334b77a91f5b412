"""Score a SentenceTransformer directory on local, mteb and benchmark tasks through mteb.evaluate with a result cache.

mteb keys its cache by model name + revision only (not by weights), so both are mandatory here: an unnamed model would
land in `no_model_name_available/` and collide with every other unnamed model under overwrite_strategy='only-missing'.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa.errors import HrsaError

# Metrics copied into the summary when a task reports them (the full record stays in the mteb cache).
SUMMARY_METRICS = (
    "cosine_spearman",
    "cosine_pearson",
    "spearman",
    "pearson",
    "ndcg_at_10",
    "map_at_10",
    "mrr_at_10",
    "recall_at_10",
    "recall_at_100",
    "precision_at_1",
    "accuracy",
    "f1",
    "ap",
    "v_measure",
    "map",
    "mrr",
)
# How queries are instructed at evaluation: "task" = each task's own instruction in the training template (mteb's
# InstructSentenceTransformerModel convention), "model" = the embedder's single saved query prompt for every task.
INSTRUCTION_MODES = ("task", "model")
# Keys of a model's own `prompts` (sentence-transformers column or prompt names) -> mteb prompt types.
QUERY_PROMPT_KEYS = ("query", "anchor")
DOCUMENT_PROMPT_KEYS = ("document", "passage", "corpus", "positive")
_REVISION_OK = re.compile(r"[A-Za-z0-9._+=-]+")  # fullmatch: `$` lets "r1\n" through


# ------------------------------------------------------------------------------------------------------ task names
def _as_entries(spec: Any) -> list[Any]:
    """A config value (a name, a {benchmark|task|tasks: ...} mapping, or a list of those) as a flat list."""
    if isinstance(spec, (str, Mapping)):
        return [spec]
    if isinstance(spec, Iterable):
        return [e for item in spec for e in _as_entries(item)]
    raise HrsaError(f"evaluation task entry must be a name, a mapping or a list, got {spec!r}")


def _benchmark_tasks(name: str) -> list[Any]:
    """Task objects of an mteb benchmark (metadata only; offline-safe); HrsaError if the benchmark is unknown."""
    import mteb

    try:
        return list(mteb.get_benchmark(name).tasks)
    except KeyError as exc:
        raise HrsaError(f"unknown mteb benchmark {name!r}: {exc}") from exc


def _is_mteb_task(name: str) -> bool:
    import mteb

    try:
        mteb.get_tasks(tasks=[name])
    except KeyError:
        return False
    return True


def task_refs_for(spec: Any) -> list[tuple[str, str | None]]:
    """(task name, benchmark or None) per concrete task of a config entry, in order, without duplicates.

    The benchmark is kept because a benchmark may restrict a task (e.g. MTEB(eng, v2) evaluates only the English
    subsets of STS17): pass it back to `resolve_tasks(..., benchmark=...)` / `hrsa evaluate --benchmark`.
    """
    from hrsa.evaluation.tasks import LOCAL_TASKS

    refs: list[tuple[str, str | None]] = []
    for entry in _as_entries(spec):
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"benchmark", "task", "tasks"}
            if unknown or len(entry) != 1:
                raise HrsaError(f"evaluation task entry {dict(entry)!r}: use one of benchmark, task or tasks")
            if "benchmark" in entry:
                bench = str(entry["benchmark"])
                refs += [(t.metadata.name, bench) for t in _benchmark_tasks(bench)]
            else:
                refs += task_refs_for(entry.get("task", entry.get("tasks")))
        elif entry in LOCAL_TASKS or _is_mteb_task(entry):
            refs.append((entry, None))
        else:  # a plain benchmark name
            refs += [(t.metadata.name, entry) for t in _benchmark_tasks(entry)]
    return list(dict.fromkeys(refs))


def task_names_for(spec: Any) -> list[str]:
    """Concrete task names of config entries such as {"benchmark": "MTEB(eng, v2)"} or plain names; no network."""
    return list(dict.fromkeys(name for name, _ in task_refs_for(spec)))


def resolve_tasks(
    names: Sequence[str], *, benchmark: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> list[Any]:
    """mteb task objects for local task names, mteb task names or benchmark names; HrsaError names all unknowns.

    With `benchmark`, an mteb task is taken as that benchmark defines it (its language subsets and splits).
    """
    import mteb

    from hrsa.evaluation.tasks import LOCAL_TASKS

    bench_tasks = {t.metadata.name: t for t in _benchmark_tasks(benchmark)} if benchmark else {}
    tasks: list[Any] = []
    unknown: list[str] = []
    for name in names:
        if name in LOCAL_TASKS:
            tasks.append(LOCAL_TASKS[name](data_dir=data_dir))
        elif name in bench_tasks:
            tasks.append(bench_tasks[name])
        elif _is_mteb_task(name):
            tasks.extend(mteb.get_tasks(tasks=[name]))
        else:
            try:
                tasks.extend(mteb.get_benchmark(name).tasks)
            except KeyError:
                unknown.append(name)
    if unknown:
        raise HrsaError(
            f"unknown evaluation task(s) {', '.join(map(repr, unknown))}: not a local task "
            f"({', '.join(LOCAL_TASKS)}), an mteb task or an mteb benchmark"
        )
    return list({t.metadata.name: t for t in tasks}.values())


# -------------------------------------------------------------------------------------------------------- model
def check_model_id(model_name: str, revision: str) -> None:
    """mteb needs 'org/name'; the revision becomes a folder name, so it must be a single safe path component."""
    if model_name.count("/") != 1 or not all(model_name.split("/")):
        raise HrsaError(f"--model-name must look like 'org/name' (it keys the mteb result cache), got {model_name!r}")
    if not _REVISION_OK.fullmatch(revision or "") or revision in {".", ".."}:
        raise HrsaError(f"--revision must be a non-empty folder-safe string (letters, digits, ._+=-), got {revision!r}")


def mteb_prompts(prompts: Mapping[str, str | None] | None) -> dict[str, str] | None:
    """The model's own prompts as mteb prompt types: the anchor/query prompt for queries, a document prompt or ''.

    sentence-transformers 6 adds empty 'query'/'document' prompts to every model, so a non-empty prompt under any
    of the accepted keys wins over an empty one (a model trained with prompts={'anchor': ...} gets that for queries).
    """
    prompts = {k: v for k, v in (prompts or {}).items() if v is not None}
    if not any(k in prompts for k in QUERY_PROMPT_KEYS + DOCUMENT_PROMPT_KEYS):
        return None
    return {
        "query": _first_nonempty(prompts, QUERY_PROMPT_KEYS),
        "document": _first_nonempty(prompts, DOCUMENT_PROMPT_KEYS),
    }


def _first_nonempty(prompts: Mapping[str, str], keys: Sequence[str]) -> str:
    return next((prompts[k] for k in keys if prompts.get(k)), "")


def task_instruction(task: Any, overrides: Mapping[str, str] | None = None) -> str:
    """A task's query instruction: the config's override, else the task's own prompt (its mteb metadata), else mteb's
    default for its task type (e.g. 'Retrieve text based on user query.'); '' if none of these exists."""
    name = task.metadata.name
    if overrides and overrides.get(name):
        return str(overrides[name])
    prompt = task.metadata.prompt
    if isinstance(prompt, Mapping):
        prompt = prompt.get("query")
    return prompt or getattr(task, "abstask_prompt", "") or ""


def task_prompts(tasks: Sequence[Any], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """sentence-transformers prompts under the keys mteb looks up per task: '{task}-query' and '{task}' (symmetric
    tasks such as STS encode both sides as queries) get 'Instruct: {instruction}\nQuery: ', '{task}-document' none,
    as in training. The embedder's Pooling(include_prompt=False) drops the instruction tokens."""
    from hrsa.train import QUERY_TEMPLATE

    unknown = set(overrides or {}) - {t.metadata.name for t in tasks}
    if unknown:
        raise HrsaError(f"evaluation.task_instructions: {sorted(unknown)} are not among the tasks evaluated here")
    prompts: dict[str, str] = {}
    for task in tasks:
        instruction = task_instruction(task, overrides)
        if instruction:
            name, text = task.metadata.name, QUERY_TEMPLATE.format(instruction=instruction)
            prompts.update({name: text, f"{name}-query": text, f"{name}-document": ""})
    return prompts


def instructed_revision(revision: str, prompts: Mapping[str, str]) -> str:
    """The mteb cache revision of a run with per-task prompts: weights revision + a digest of the prompts, so results
    scored with other instructions (or none) are never taken from the cache for these."""
    import hashlib
    import json

    if not prompts:
        return revision
    return f"{revision}+instr-{hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()[:10]}"


def load_encoder(model_dir: str | os.PathLike[str], model_name: str, revision: str, device: str,
                 per_task: Mapping[str, str] | None = None, trust_remote_code: bool = False) -> Any:
    """SentenceTransformer from a local directory, wrapped for mteb under the given name/revision and prompts.

    `per_task` prompts (from `task_prompts()`) are added to the model's own query/document prompts and win for their
    tasks. `trust_remote_code` lets the model's own modelling code run (only when its pair's config says so).
    """
    from mteb.models import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from hrsa.runtime import torch_device

    path = Path(model_dir)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise HrsaError(f"model directory {path} holds no sentence-transformers model (no modules.json/config.json)")
    st = SentenceTransformer(str(path.resolve()), device=torch_device(device), local_files_only=True,
                             trust_remote_code=trust_remote_code)
    st.model_card_data.model_name = model_name
    st.model_card_data.base_model_revision = revision
    prompts = mteb_prompts(st.prompts)
    if prompts is not None:  # the wrapper reads st.prompts; keys it does not know (e.g. 'anchor') would be dropped
        st.prompts = prompts
    with warnings.catch_warnings():  # mteb 2.26 calls renamed/deprecated sentence-transformers APIs here
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        wrapper = SentenceTransformerEncoderWrapper(st)
    wrapper.mteb_model_meta = wrapper.mteb_model_meta.model_copy(update={"name": model_name, "revision": revision})
    if per_task:  # added after wrapping: mteb validates prompt keys against its registry, which lacks local tasks
        st.prompts = {**(st.prompts or {}), **per_task}
        wrapper.model_prompts = {**(wrapper.model_prompts or {}), **per_task}
    return wrapper


# ------------------------------------------------------------------------------------------------------- results
def _split_entries(result: Any, task: Any, split: str) -> list[dict[str, Any]]:
    """Score dicts of one split restricted to the task's subsets (a cache may hold more subsets than asked for)."""
    subsets = set(task.hf_subsets)
    return [s for s in result.scores.get(split, []) if s.get("hf_subset") in subsets]


def summarize(result: Any, task: Any) -> dict[str, Any]:
    """{main_score, main_score_name, scores}: means over the task's subsets on 'test' (or all its eval splits)."""
    splits = ["test"] if "test" in task.eval_splits else list(task.eval_splits)
    entries = [e for split in splits for e in _split_entries(result, task, split)]
    if not entries:
        raise HrsaError(f"mteb returned no scores for task {task.metadata.name} on splits {splits}")
    scores = {
        key: sum(float(e[key]) for e in entries) / len(entries)
        for key in SUMMARY_METRICS
        if all(isinstance(e.get(key), (int, float)) for e in entries)
    }
    return {
        "main_score": sum(float(e["main_score"]) for e in entries) / len(entries),
        "main_score_name": task.metadata.main_score,
        "splits": splits,
        "scores": scores,
    }


def hub_miss(exc: BaseException, tasks: Sequence[Any]) -> HrsaError | None:
    """A one-line error for task data that is neither in the Hugging Face cache nor reachable (HF_HUB_OFFLINE=1 or no
    network), naming the task(s) and how to pre-fetch; None when `exc` is not such a miss."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    text = str(exc)
    if not isinstance(exc, (ConnectionError, LocalEntryNotFoundError)) and "offline" not in text.lower():
        return None
    paths = {t.metadata.name: str((t.metadata.dataset or {}).get("path", "")) for t in tasks}
    names = [name for name, path in paths.items() if path and path in text] or list(paths)
    fetch = f"import mteb; [t.load_data() for t in mteb.get_tasks(tasks={names!r})]"
    return HrsaError(
        f"data of evaluation task(s) {', '.join(names)} is not in the Hugging Face cache and the hub cannot be reached "
        f"({text}); pre-fetch it into the same HF cache (HF_HOME) on a machine with network access, e.g. "
        f'python -c "{fetch}", then re-run'
    )


def _cached(cache: Any, tasks: Sequence[Any], model_name: str, revision: str) -> dict[str, Any] | None:
    """Cached TaskResults when every task is complete for (name, revision), so the model need not be loaded."""
    found = {}
    for task in tasks:
        res = cache.load_task_result(task.metadata.name, model_name, revision)
        if res is None or res.get_missing_evaluations(task):
            return None
        found[task.metadata.name] = res
    return found


def evaluate(
    model_dir: str | os.PathLike[str],
    task_names: Sequence[str],
    model_name: str,
    revision: str,
    cache_dir: str | os.PathLike[str],
    batch_size: int = 32,
    device: str = "auto",
    *,
    benchmark: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    instructions: str = "model",
    task_instructions: Mapping[str, str] | None = None,
    trust_remote_code: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run mteb.evaluate with a ResultCache (only-missing) and return {task: {main_score, main_score_name, scores,
    query_prompt}}.

    instructions="task" gives each task's queries its own instruction (`task_prompts`); "model" uses the embedder's
    saved query prompt for every task. Tasks already complete in the cache for (model_name, revision, prompts) are not
    rerun, and the model is not even loaded.
    """
    import mteb

    if instructions not in INSTRUCTION_MODES:
        raise HrsaError(f"evaluation.instructions: {instructions!r} is not one of {INSTRUCTION_MODES}")
    check_model_id(model_name, revision)
    tasks = resolve_tasks(task_names, benchmark=benchmark, data_dir=data_dir)
    prompts = task_prompts(tasks, task_instructions) if instructions == "task" else {}
    revision = instructed_revision(revision, prompts)
    cache = mteb.ResultCache(str(cache_dir))
    results = _cached(cache, tasks, model_name, revision)
    if results is None:
        encoder = load_encoder(model_dir, model_name, revision, device, prompts, trust_remote_code)
        try:
            mteb.evaluate(
                encoder,
                tasks,
                cache=cache,
                overwrite_strategy="only-missing",
                encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
                show_progress_bar=False,
            )
        except (ConnectionError, FileNotFoundError) as exc:
            offline = hub_miss(exc, tasks)
            if offline is None:
                raise
            raise offline from exc
        # read back what mteb stored (rounded), so a fresh run and a cached rerun report identical numbers
        results = _cached(cache, tasks, model_name, revision)
        if results is None:
            raise HrsaError(f"mteb did not store complete results for {model_name}@{revision} in {cache_dir}")
    return {
        t.metadata.name: {**summarize(results[t.metadata.name], t), "cache_revision": revision,
                          "query_prompt": prompts.get(f"{t.metadata.name}-query")}
        for t in tasks
    }
