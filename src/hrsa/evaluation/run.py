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
# Key of an instruction table's generic entry (the study's "default"); not used, mteb metadata is the fallback.
TABLE_DEFAULT_KEY = "default"
# Folder inside an mteb cache revision folder that records the settings each task was scored under. mteb itself reads
# only {model}/{revision}/*.json and {model}/{revision}/experiments/*/*.json, so this folder stays invisible to it.
SETTINGS_DIR = "hrsa-settings"


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
            unknown = set(entry) - {"benchmark", "task", "tasks", "exclude"}
            if unknown or len(set(entry) - {"exclude"}) != 1 or ("exclude" in entry and "benchmark" not in entry):
                raise HrsaError(f"evaluation task entry {dict(entry)!r}: use one of benchmark (optionally with "
                                "exclude), task or tasks")
            if "benchmark" in entry:
                refs += _benchmark_refs(str(entry["benchmark"]), entry.get("exclude") or [])
            else:
                refs += task_refs_for(entry.get("task", entry.get("tasks")))
        elif entry in LOCAL_TASKS or _is_mteb_task(entry):
            refs.append((entry, None))
        else:  # a plain benchmark name
            refs += [(t.metadata.name, entry) for t in _benchmark_tasks(entry)]
    return list(dict.fromkeys(refs))


def _benchmark_refs(bench: str, exclude: Sequence[str]) -> list[tuple[str, str | None]]:
    """(task, bench) for the tasks of a benchmark less `exclude` (e.g. BRIGHT's long-document tasks); excluding a
    task the benchmark does not have is an error, so a typo cannot silently keep a task."""
    names = [t.metadata.name for t in _benchmark_tasks(bench)]
    if isinstance(exclude, str) or not all(isinstance(x, str) for x in exclude):
        raise HrsaError(f"evaluation task entry for {bench!r}: exclude must be a list of task names, got {exclude!r}")
    stray = sorted(set(exclude) - set(names))
    if stray:
        raise HrsaError(f"evaluation task entry for {bench!r}: exclude names tasks it does not have: {stray}")
    return [(name, bench) for name in names if name not in set(exclude)]


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


def read_instruction_table(path: str | os.PathLike[str]) -> dict[str, str]:
    """{task: query instruction} from a table in the study's format (evaluation/task_prompts.json of
    HKUST-KnowComp/Reasoning-Embedding): each value a string or {"query": ..., "passage": ...}, of which the query
    string is taken (documents get no instruction). The table's "default" entry is dropped: tasks missing from every
    table fall back to their mteb metadata."""
    import json

    file = Path(path)
    try:
        table = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HrsaError(f"evaluation.instruction_tables: cannot read {file}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise HrsaError(f"evaluation.instruction_tables: {file} is not valid JSON ({exc})") from exc
    if not isinstance(table, dict):
        raise HrsaError(f"evaluation.instruction_tables: {file} must hold a JSON object {{task: instruction}}")
    out: dict[str, str] = {}
    for task, entry in table.items():
        query = entry.get("query") if isinstance(entry, dict) else entry
        if not isinstance(query, str):
            raise HrsaError(f"{file}: entry {task!r} must be a string or an object with a string 'query', "
                            f"got {entry!r}")
        if task != TABLE_DEFAULT_KEY:
            out[task] = query
    return out


def read_instruction_tables(paths: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """Tables merged in order; the first table that names a task gives its instruction."""
    merged: dict[str, str] = {}
    for path in paths:
        for task, instruction in read_instruction_table(path).items():
            merged.setdefault(task, instruction)
    return merged


def task_instruction(
    task: Any, overrides: Mapping[str, str] | None = None, table: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """A task's query instruction and where it came from: the config's override ("override"), else the instruction
    table ("table"), else the task's own prompt in its mteb metadata, else mteb's default for its task type (e.g.
    'Retrieve text based on user query.') (both "mteb"); ("", "none") if none of these exists."""
    name = task.metadata.name
    if overrides and overrides.get(name):
        return str(overrides[name]), "override"
    if table and table.get(name):
        return table[name], "table"
    prompt = task.metadata.prompt
    if isinstance(prompt, Mapping):
        prompt = prompt.get("query")
    instruction = prompt or getattr(task, "abstask_prompt", "") or ""
    return instruction, "mteb" if instruction else "none"


def resolve_instructions(
    tasks: Sequence[Any], overrides: Mapping[str, str] | None = None, table: Mapping[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """{task: (instruction, source)} for every task (see `task_instruction`); an override of a task not among
    `tasks` is a config error."""
    unknown = set(overrides or {}) - {t.metadata.name for t in tasks}
    if unknown:
        raise HrsaError(f"evaluation.task_instructions: {sorted(unknown)} are not among the tasks evaluated here")
    return {t.metadata.name: task_instruction(t, overrides, table) for t in tasks}


def prompts_for(instructions: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """sentence-transformers prompts under the keys mteb looks up per task: '{task}-query' and '{task}' (symmetric
    tasks such as STS encode both sides as queries) get 'Instruct: {instruction}\nQuery: ', '{task}-document' none,
    as in training and in the study. The embedder's Pooling(include_prompt=False) drops the instruction tokens."""
    from hrsa.data import QUERY_TEMPLATE

    prompts: dict[str, str] = {}
    for name, (instruction, _) in instructions.items():
        if instruction:
            text = QUERY_TEMPLATE.format(instruction=instruction)
            prompts.update({name: text, f"{name}-query": text, f"{name}-document": ""})
    return prompts


def task_prompts(
    tasks: Sequence[Any], overrides: Mapping[str, str] | None = None, table: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The per-task prompts of `tasks` (`prompts_for(resolve_instructions(...))`)."""
    return prompts_for(resolve_instructions(tasks, overrides, table))


def load_encoder(model_dir: str | os.PathLike[str], model_name: str, revision: str, device: str,
                 per_task: Mapping[str, str] | None = None, max_seq_length: int | None = None,
                 trust_remote_code: bool = False) -> Any:
    """SentenceTransformer from a local directory, wrapped for mteb under the given name/revision and prompts.

    `per_task` prompts (from `task_prompts()`) are added to the model's own query/document prompts and win for their
    tasks. `max_seq_length` (tokens, longer texts truncated) replaces the length saved with the model when given.
    `trust_remote_code` lets the model's own modelling code run (only when its pair's config says so).
    """
    from mteb.models import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from hrsa.runtime import torch_device

    path = Path(model_dir)
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise HrsaError(f"model directory {path} holds no sentence-transformers model (no modules.json/config.json)")
    st = SentenceTransformer(str(path.resolve()), device=torch_device(device), local_files_only=True,
                             trust_remote_code=trust_remote_code)
    if max_seq_length is not None:
        st.max_seq_length = max_seq_length
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
    """{main_score, main_score_name, scores, split_scores, eval_splits, task_type}: main_score and scores are means over
    the task's subsets on 'test' (or all its eval splits); split_scores holds the mean main score of each eval split
    (Table 1 takes the first one, as the study did)."""
    splits = ["test"] if "test" in task.eval_splits else list(task.eval_splits)
    entries = [e for split in splits for e in _split_entries(result, task, split)]
    if not entries:
        raise HrsaError(f"mteb returned no scores for task {task.metadata.name} on splits {splits}")
    scores = {
        key: sum(float(e[key]) for e in entries) / len(entries)
        for key in SUMMARY_METRICS
        if all(isinstance(e.get(key), (int, float)) for e in entries)
    }
    split_scores = {}
    for split in task.eval_splits:
        per_subset = [float(e["main_score"]) for e in _split_entries(result, task, split)]
        if per_subset:
            split_scores[split] = sum(per_subset) / len(per_subset)
    return {
        "main_score": sum(float(e["main_score"]) for e in entries) / len(entries),
        "main_score_name": task.metadata.main_score,
        "splits": splits,
        "scores": scores,
        "eval_splits": list(task.eval_splits),
        "split_scores": split_scores,
        "task_type": task.metadata.type,
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


# ------------------------------------------------------------------------------------------------- scoring settings
def seq_length_for(task: str, benchmark: str | None, spec: Mapping[str, int | None] | None) -> int | None:
    """evaluation.max_seq_length for one task: its own entry, else its benchmark's, else "default"; None = the length
    saved with the embedder (its training max length)."""
    spec = spec or {}
    for key in (task, benchmark, "default"):
        if key is not None and key in spec:
            return spec[key]
    return None


def eval_flags(task: str, benchmark: str | None, evaluation: Mapping[str, Any],
               known: Mapping[str, str | None], root: str | os.PathLike[str]) -> list[str]:
    """`hrsa evaluate` arguments that the `evaluation:` config block gives one (task, benchmark) job: instruction
    tables (relative paths joined to `root`, the repository as jobs see it), max_seq_length and the token budget. `known` maps every
    evaluated task to its benchmark; a max_seq_length key that is none of these tasks, benchmarks or "default" is a
    config error."""
    from hrsa.errors import ConfigError

    lengths = evaluation.get("max_seq_length") or {}
    stray = sorted(set(lengths) - set(known) - {b for b in known.values() if b} - {"default"})
    if stray:
        raise ConfigError(f"evaluation.max_seq_length: {stray} are neither evaluated tasks, their benchmarks nor "
                          "'default'")
    flags: list[str] = []
    for table in evaluation.get("instruction_tables") or []:
        flags += ["--instruction-table", str(Path(root, table))]
    length = seq_length_for(task, benchmark, lengths)
    if length is not None:
        flags += ["--max-seq-length", str(length)]
    if evaluation.get("max_tokens_per_batch") is not None:
        flags += ["--max-tokens-per-batch", str(evaluation["max_tokens_per_batch"])]
    return flags


def token_batch_size(batch_size: int, max_tokens_per_batch: int | None, max_seq_length: int) -> int:
    """Texts per encoding batch under a token budget: at most `batch_size`, at most budget // max_seq_length (a batch
    of full-length texts then fits the budget), at least 1. No budget: `batch_size`."""
    if max_tokens_per_batch is None:
        return batch_size
    return max(1, min(batch_size, max_tokens_per_batch // max(1, max_seq_length)))


def scoring_settings(task: str, prompts: Mapping[str, str], instructions: str,
                     max_seq_length: int | None) -> dict[str, Any]:
    """What, besides the weights (the cache revision), decides a task's score: its prompts and the truncation length.
    Recorded beside the mteb result; a result whose record differs is never reused."""
    keys = (task, f"{task}-query", f"{task}-document")
    return {
        "task": task,
        "instructions": instructions,
        "prompts": {k: prompts[k] for k in keys if k in prompts},
        "max_seq_length": max_seq_length,
    }


def settings_path(cache: Any, task: str, model_name: str, revision: str) -> Path:
    """{cache}/results/{model}/{revision}/hrsa-settings/{task}.json: beside mteb's {task}.json, out of its globs."""
    result = Path(cache.get_task_result_path(task_name=task, model_name=model_name, model_revision=revision))
    return result.parent / SETTINGS_DIR / f"{task}.json"


def _read_settings(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _prepare_cache(cache: Any, settings: Mapping[str, Mapping[str, Any]], model_name: str, revision: str) -> None:
    """Before a run: drop every cached task result not recorded under this run's settings (other instructions or
    length, or no record), then record the settings, so mteb's only-missing resume continues only same-settings work."""
    from hrsa.runtime import progress
    from hrsa.io import write_json

    for task, wanted in settings.items():
        record = settings_path(cache, task, model_name, revision)
        if _read_settings(record) == wanted:
            continue
        stale = Path(cache.get_task_result_path(task_name=task, model_name=model_name, model_revision=revision))
        if stale.exists():
            progress("evaluate", f"{task}: cached result of {model_name}@{revision} was scored under other "
                     "settings (instructions or max_seq_length); scoring it again")
            stale.unlink()
        write_json(record, dict(wanted))


def _cached_each(cache: Any, tasks: Sequence[Any], model_name: str, revision: str,
                 settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{task: cached TaskResult} for the tasks complete for (name, revision) and scored under `settings`."""
    found = {}
    for task in tasks:
        name = task.metadata.name
        if _read_settings(settings_path(cache, name, model_name, revision)) != settings[name]:
            continue
        res = cache.load_task_result(name, model_name, revision)
        if res is not None and not res.get_missing_evaluations(task):
            found[name] = res
    return found


def _cached(cache: Any, tasks: Sequence[Any], model_name: str, revision: str,
            settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Cached TaskResults when every task is complete for (name, revision) and was scored under `settings`, so the
    model need not be loaded."""
    found = _cached_each(cache, tasks, model_name, revision, settings)
    return found if len(found) == len(tasks) else None


class EvaluationFailed(HrsaError):
    """Some tasks of a grouped evaluation failed; the others were scored (and cached) and are in `results`."""

    def __init__(self, message: str, results: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.results = results


def _log_fallbacks(sources: Mapping[str, tuple[str, str]], tables: Sequence[Any]) -> None:
    """Name the tasks whose instruction did not come from the configured tables (mteb metadata or none)."""
    from hrsa.runtime import progress

    fell_back = sorted(t for t, (_, src) in sources.items() if src in ("mteb", "none"))
    if tables and fell_back:
        progress("evaluate", f"not in the instruction tables, so mteb's metadata instruction is used: {fell_back}")


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
    instruction_tables: Sequence[str | os.PathLike[str]] = (),
    max_seq_length: int | None = None,
    max_tokens_per_batch: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Run mteb.evaluate with a ResultCache (only-missing) and return {task: {main_score, main_score_name, scores,
    split_scores, query_prompt, instruction_source, settings, ...}}.

    instructions="task" gives each task's queries its own instruction (config override > instruction tables > mteb
    metadata); "model" uses the embedder's saved query prompt for every task. All tasks of one embedder share one cache
    revision (its weights' revision); the prompts and max_seq_length are recorded beside each result, and a cached
    result is reused only when they match, in which case the model is not even loaded.
    """
    import mteb

    if instructions not in INSTRUCTION_MODES:
        raise HrsaError(f"evaluation.instructions: {instructions!r} is not one of {INSTRUCTION_MODES}")
    for flag, value in (("max_seq_length", max_seq_length), ("max_tokens_per_batch", max_tokens_per_batch)):
        if value is not None and value < 1:
            raise HrsaError(f"evaluation.{flag} must be at least 1, got {value}")
    check_model_id(model_name, revision)
    tasks = resolve_tasks(task_names, benchmark=benchmark, data_dir=data_dir)
    sources: dict[str, tuple[str, str]] = {}
    if instructions == "task":
        sources = resolve_instructions(tasks, task_instructions, read_instruction_tables(instruction_tables))
        _log_fallbacks(sources, instruction_tables)
    prompts = prompts_for(sources)
    settings = {
        t.metadata.name: scoring_settings(t.metadata.name, prompts, instructions, max_seq_length) for t in tasks
    }
    cache = mteb.ResultCache(str(cache_dir))
    results = _cached_each(cache, tasks, model_name, revision, settings)
    failed: dict[str, str] = {}
    if len(results) < len(tasks):
        encoder = load_encoder(model_dir, model_name, revision, device, prompts, max_seq_length, trust_remote_code)
        _prepare_cache(cache, settings, model_name, revision)
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
        results = _cached_each(cache, tasks, model_name, revision, settings)
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
    """mteb.evaluate of one task into the cache (only-missing: a killed job's finished subsets are kept)."""
    try:
        mteb.evaluate(
            encoder,
            [task],
            cache=cache,
            overwrite_strategy="only-missing",
            encode_kwargs={"batch_size": batch, "show_progress_bar": False},
            show_progress_bar=False,
        )
    except (ConnectionError, FileNotFoundError) as exc:
        offline = hub_miss(exc, [task])
        if offline is None:
            raise
        raise offline from exc
