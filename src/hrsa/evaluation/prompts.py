"""Query instructions and prompts at evaluation: the study's instruction tables, per-task instructions (config
override > table > mteb metadata), and the sentence-transformers prompts mteb looks up per task."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa.errors import HrsaError
from hrsa.grid.checks import read_instruction_table as parse_instruction_table

# How queries are instructed at evaluation: "task" = each task's own instruction in the training template (mteb's
# InstructSentenceTransformerModel convention), "model" = the embedder's single saved query prompt for every task.
INSTRUCTION_MODES = ("task", "model")
# Keys of a model's own `prompts` (sentence-transformers column or prompt names) -> mteb prompt types.
QUERY_PROMPT_KEYS = ("query", "anchor")
DOCUMENT_PROMPT_KEYS = ("document", "passage", "corpus", "positive")
# Key of an instruction table's generic entry (the study's "default"); not used, mteb metadata is the fallback.
TABLE_DEFAULT_KEY = "default"


def mteb_prompts(prompts: Mapping[str, str | None] | None) -> dict[str, str] | None:
    """The model's own prompts as mteb prompt types: the anchor/query prompt for queries, a document prompt or ''.

    sentence-transformers 6 adds empty 'query'/'document' prompts to every model, so a non-empty prompt under any
    of the accepted keys wins over an empty one (a model trained with prompts={'anchor': ...} gets that for queries).
    """
    given = {k: v for k, v in (prompts or {}).items() if v is not None}
    if not any(k in given for k in QUERY_PROMPT_KEYS + DOCUMENT_PROMPT_KEYS):
        return None
    return {
        "query": _first_nonempty(given, QUERY_PROMPT_KEYS),
        "document": _first_nonempty(given, DOCUMENT_PROMPT_KEYS),
    }


def _first_nonempty(prompts: Mapping[str, str], keys: Sequence[str]) -> str:
    return next((prompts[k] for k in keys if prompts.get(k)), "")


def read_instruction_table(path: str | os.PathLike[str]) -> dict[str, str]:
    """{task: query instruction} from a table in the study's format (evaluation/task_prompts.json of
    HKUST-KnowComp/Reasoning-Embedding): each value a string or {"query": ..., "passage": ...}, of which the query
    string is taken (documents get no instruction). The table's "default" entry is dropped: tasks missing from every
    table fall back to their mteb metadata. The parser is the DAG-time check's (hrsa.grid.checks)."""
    table = parse_instruction_table(Path(path))
    return {task: query for task, query in table.items() if task != TABLE_DEFAULT_KEY}


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


def log_fallbacks(sources: Mapping[str, tuple[str, str]], tables: Sequence[Any]) -> None:
    """Name the tasks whose instruction did not come from the configured tables (mteb metadata or none)."""
    from hrsa.runtime import progress

    fell_back = sorted(t for t, (_, src) in sources.items() if src in ("mteb", "none"))
    if tables and fell_back:
        progress("evaluate", f"not in the instruction tables, so mteb's metadata instruction is used: {fell_back}")
