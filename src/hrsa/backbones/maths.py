"""Maths problems with verifiable final answers, shared by the RLVR and SFT recipes of real bases.

One problem set feeds both siblings, so SFT and RLVR differ only in the objective: RLVR samples completions of `prompt`
and is rewarded when the final answer verifies (math-verify) against `answer`; SFT trains on `prompt + solution`.
Sources: a hub dataset (GSM8K's `#### answer`, MATH's last `\\boxed{}`) or a local JSONL file with the same fields,
optionally filtered by difficulty level (MATH's "Level 3") and mixed with further sources (`mix`), as SimpleRL-Zoo
grades its data (Easy: GSM8K + MATH level 1; Hard: MATH levels 3-5).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hrsa.errors import DataError, HrsaError
from hrsa.schema import with_defaults

#: SimpleRL-Zoo's prompt for base models: plain text, the final answer inside \boxed{}
PROMPT = "Question:\n{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\nAnswer:\n"
ANSWER_FORMATS = ("gsm8k", "boxed")
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, e.g. <<48/2=24>>


def sibling_recipe(dpath: str, block: Mapping[str, Any] | None) -> dict[str, Any]:
    """A sibling recipe's config object (`recipes/rlvr`, `recipes/sft`) filled from the schema, with its sources as
    the settings carry them: problems as JSON (None: the generated arithmetic), an empty data path as None."""
    values = with_defaults(dpath, block)
    values["problems"] = problems_json(values["problems"])
    values["data"] = values["data"] or None
    return values


def problems_json(problems: Mapping[str, Any] | None) -> str | None:
    """The `problems:` block of a recipe as the JSON its settings carry, or None where it names no source (dataset
    or path): the tiny default's generated arithmetic."""
    if not problems or not (problems.get("dataset") or problems.get("path")):
        return None
    return json.dumps(dict(problems), sort_keys=True)


@dataclass(frozen=True)
class ProblemSource:
    """Where problems come from: `path` (JSONL) or `dataset` (hub id) with its config, split and field names."""

    dataset: str | None = None
    path: str | None = None
    config: str | None = None
    split: str = "train"
    question_field: str = "question"
    solution_field: str = "answer"
    answer_format: str = "gsm8k"
    limit: int | None = None
    levels: tuple[int, ...] | None = None  # keep rows whose `level_field` holds one of these (None: all rows)
    level_field: str = "level"
    mix: tuple[ProblemSource, ...] = ()  # further sources, appended in order

    def sources(self) -> list[ProblemSource]:
        """This source and its mix, in load order."""
        return [self, *self.mix]

    @classmethod
    def parse(cls, spec: str | dict[str, Any], nested: bool = False) -> ProblemSource:
        """From the config/CLI form (a dict or its JSON); unknown keys and bad values name themselves."""
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise HrsaError(f"--problems: not valid JSON ({exc.msg})") from None
        if not isinstance(spec, dict):
            raise HrsaError(f"--problems: expected an object, got {type(spec).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise HrsaError(f"problems: unknown key(s) {unknown} (known: {sorted(known)})")
        spec = dict(spec)
        mix = spec.pop("mix", None) or []
        if mix and nested:
            raise HrsaError("problems.mix: a mixed-in source cannot have its own mix")
        if not isinstance(mix, list):
            raise HrsaError(f"problems.mix: expected a list of sources, got {type(mix).__name__}")
        levels = spec.pop("levels", None) or None
        if levels is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in levels):
            raise HrsaError(f"problems.levels: expected integers (MATH's 1-5), got {levels!r}")
        # the config schema fills unset keys with "" / 0: those mean "not given"
        source = cls(
            **{k: v for k, v in spec.items() if v not in ("", None) and not (k == "limit" and v == 0)},
            levels=tuple(levels) if levels else None,
            mix=tuple(cls.parse(m, nested=True) for m in mix),
        )
        if (source.dataset is None) == (source.path is None):
            raise HrsaError("problems: give exactly one of `dataset` (hub id) or `path` (JSONL)")
        if source.answer_format not in ANSWER_FORMATS:
            raise HrsaError(f"problems.answer_format: {source.answer_format!r} is not one of {list(ANSWER_FORMATS)}")
        if source.limit is not None and source.limit < 1:
            raise HrsaError(f"problems.limit: must be >= 1, got {source.limit}")
        return source


@dataclass(frozen=True)
class Problem:
    """One verifiable problem: the prompt the model sees, the gold final answer, and the worked solution (for SFT)."""

    prompt: str
    answer: str
    solution: str


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None


def split_solution(text: str, answer_format: str) -> tuple[str, str]:
    """(worked solution ending in a boxed final answer, gold answer) from a dataset's solution field."""
    if answer_format == "gsm8k":
        body, sep, answer = text.rpartition("####")
        if not sep or not answer.strip():
            raise ValueError("no '#### answer' line")
        answer = answer.strip().replace(",", "")
        body = _CALCULATOR.sub("", body).strip()
        return f"{body}\nThe final answer is \\boxed{{{answer}}}.", answer
    boxed = last_boxed(text)
    if not boxed:
        raise ValueError("no \\boxed{} answer")
    return text.strip(), boxed


def _rows(source: ProblemSource) -> list[dict[str, Any]]:
    if source.path is not None:
        from hrsa.data import numbered_jsonl

        path = Path(source.path)
        if not path.is_file():
            raise DataError(f"problems file not found: {path}")
        return [dict(obj, _where=f"{path}:{n}") for n, obj in numbered_jsonl(path)]
    from hrsa.data import load_hub_dataset
    from hrsa.hub import HubMissError

    try:
        assert source.dataset is not None  # parse() checked: a path or a dataset
        ds = load_hub_dataset(source.dataset, source.config, source.split)
    except HubMissError:
        raise  # already one line naming the set and how to fetch it
    except Exception as exc:  # datasets raises many types for bad ids and configs
        raise DataError(
            f"cannot load problems {source.dataset!r} (config {source.config!r}, split {source.split!r}): "
            f"{str(exc).splitlines()[0]} — fetch it into the Hugging Face cache first"
        ) from None
    return [dict(row, _where=f"{source.dataset}[{i}]") for i, row in enumerate(ds)]


_LEVEL = re.compile(r"\d+")


def row_level(row: Mapping[str, Any], field: str, where: str) -> int | None:
    """A row's difficulty level: an integer, or the first number of a string ("Level 3"); None for "Level ?"."""
    if field not in row:
        raise DataError(f"{where}: no level field {field!r} to filter problems.levels on (fields: {sorted(row)})")
    value = row[field]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = _LEVEL.search(str(value))
    return int(found.group()) if found else None


def load_problems(source: ProblemSource) -> list[Problem]:
    """Problems of the source (the first `limit` of those at its `levels`), then of each source in its mix; a
    record without its fields or final answer is a DataError."""
    problems: list[Problem] = []
    for one in source.sources():
        problems += _load_one(one)
    return problems


def _load_one(source: ProblemSource) -> list[Problem]:
    problems: list[Problem] = []
    for row in _rows(source):
        if source.limit is not None and len(problems) == source.limit:
            break
        where = row.pop("_where")
        if source.levels is not None and row_level(row, source.level_field, where) not in source.levels:
            continue
        missing = [f for f in (source.question_field, source.solution_field) if not isinstance(row.get(f), str)]
        if missing:
            raise DataError(f"{where}: no string field(s) {missing} (fields: {sorted(row)})")
        try:
            solution, answer = split_solution(row[source.solution_field], source.answer_format)
        except ValueError as exc:
            raise DataError(
                f"{where}: {exc} in {source.solution_field!r} (answer_format {source.answer_format})"
            ) from exc
        problems.append(Problem(PROMPT.format(question=row[source.question_field].strip()), answer, solution))
    if not problems:
        at = f" at levels {list(source.levels)}" if source.levels else ""
        raise DataError(f"problems: no records{at} in {source.path or source.dataset}")
    return problems


def problems_digest(problems: Sequence[Problem]) -> str:
    """Content hash of a problem set (provenance: both siblings can show they trained on the same problems)."""
    blob = json.dumps([asdict(p) for p in problems], sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def verified_reward(completions: Sequence[str], answer: Sequence[str], **_: object) -> list[float]:
    """RLVR reward: 1.0 where math-verify finds the completion's final answer equal to the gold answer, else 0.0."""
    from math_verify import parse, verify

    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        try:
            ok = verify(parse(f"${gold}$"), parse(completion))
        except Exception:  # an unparsable completion earns no reward, it must not stop the run
            ok = False
        rewards.append(1.0 if ok else 0.0)
    return rewards
