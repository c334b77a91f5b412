"""Whole-config checks run when the DAG is built (and by `hrsa download`), so that no job can fail on a config value.

The schema (validated first) says what each key may be; JSON-schema cannot say everything, and these checks do the
rest, each naming the config key it rejects:
- every number finite (schema bounds are false for NaN, so `.nan` passes `minimum`), integers that are integers
  (`1.0` passes as a JSON-schema integer), walked over the whole config;
- hub ids and local paths without shell characters (one full-string pattern);
- every file a config names exists and parses; local models are model directories (config.json);
- names short enough for every file name the workflow derives from them (hrsa.paths);
- probe sizes against `hrsa.knn_k` where the probe can be read offline; layers each probe can be extracted at;
- `hrsa.procrustes_intervals` names layers of every pair; comparisons in the canonical order;
- duplicate keys in config files (YAML loaders keep the last one silently).
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hrsa import paths
from hrsa.errors import ConfigError
from hrsa.grid.ids import ROLES, parse_model_id, split_role
from hrsa.hub import is_hub_id, local_path
from hrsa.schema import load_schema

#: a hub id (`org/name`, `name`) or a local path: no whitespace, quote, `$`, `;`, `|`, `&`, backtick, glob or redirect
SAFE_ID = re.compile(r"\A[A-Za-z0-9_.~/+@=,:-]+\Z")
#: longest file name (bytes) of common file systems (ext4, xfs, NTFS, APFS)
NAME_MAX = 255
#: the query template of training and evaluation (hrsa.train.recipe, hrsa.evaluation): the instruction before the text
QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: "


def _key(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# ---- numbers -------------------------------------------------------------------------------------------------------
def check_numbers(config: Mapping[str, Any]) -> None:
    """Every number of the config finite; every value the schema types as integer an integer (not `1.0`)."""
    for parts, value in _leaves(config, ()):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{_key(parts)}: {value} is not a finite number")
    _integers(load_schema(), config, ())


def _leaves(value: Any, parts: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, (*parts, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, (*parts, i))
    else:
        yield parts, value


def _resolve(node: Mapping[str, Any]) -> dict[str, Any]:
    node = dict(node)
    while "$ref" in node:
        target: Any = load_schema()
        for part in node.pop("$ref").removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **node}
    return node


def _types(node: Mapping[str, Any]) -> set[str]:
    node = _resolve(node)
    kinds = node.get("type", [])
    out = {kinds} if isinstance(kinds, str) else set(kinds)
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        out |= _types(branch)
    return out


def _branches(node: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The schema node and its oneOf/anyOf branches that may describe a value of JSON type `kind`."""
    node = _resolve(node)
    alternatives = node.get("oneOf", []) + node.get("anyOf", [])
    if not alternatives:
        return [node]
    return [b for alt in alternatives for b in _branches(alt, kind) if kind in _types(b) or not _types(b)]


def _integers(node: Mapping[str, Any], value: Any, parts: tuple[str | int, ...]) -> None:
    if isinstance(value, float):
        kinds = _types(node)
        if "integer" in kinds and "number" not in kinds:
            raise ConfigError(f"{_key(parts)}: {value!r} is not an integer (write it without a decimal point)")
    elif isinstance(value, Mapping):
        for branch in _branches(node, "object"):
            props = branch.get("properties") or {}
            extra = branch.get("additionalProperties")
            for k, v in value.items():
                sub = props.get(k, extra if isinstance(extra, Mapping) else None)
                if sub is not None:
                    _integers(sub, v, (*parts, str(k)))
    elif isinstance(value, list):
        for branch in _branches(node, "array"):
            if isinstance(branch.get("items"), Mapping):
                for i, v in enumerate(value):
                    _integers(branch["items"], v, (*parts, i))


# ---- ids, files and model directories ----------------------------------------------------------------------------
def named_ids(config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(config key, value) of every hub id or local path the config names."""
    for i, pair in enumerate(config.get("pairs") or []):
        for role in ROLES:
            if isinstance(pair.get(role), str):
                yield f"pairs[{i}].{role}", pair[role]
    data = config.get("training_data") or {}
    for i, p in enumerate(data.get("paths") or []):
        yield f"training_data.paths[{i}]", p
    for i, hf in enumerate(data.get("hf") or []):
        yield f"training_data.hf[{i}].dataset", hf.get("dataset", "")
    if (data.get("mine") or {}).get("model"):
        yield "training_data.mine.model", data["mine"]["model"]
    for i, probe in enumerate(config.get("probes") or []):
        yield f"probes[{i}].path", probe.get("path") or ""
        yield f"probes[{i}].hf.dataset", (probe.get("hf") or {}).get("dataset") or ""
    for recipe, opts in (config.get("recipes") or {}).items():
        for k in ("corpus", "data"):
            yield f"recipes.{recipe}.{k}", (opts or {}).get(k) or ""
        for k in ("dataset", "path"):
            yield f"recipes.{recipe}.problems.{k}", ((opts or {}).get("problems") or {}).get(k) or ""
    for i, table in enumerate((config.get("evaluation") or {}).get("instruction_tables") or []):
        yield f"evaluation.instruction_tables[{i}]", table


def check_ids(config: Mapping[str, Any]) -> None:
    """Hub ids and local paths match SAFE_ID (they reach shell commands quoted, and Python intact)."""
    for key, value in named_ids(config):
        if value and not SAFE_ID.fullmatch(value):
            raise ConfigError(f"{key}: {value!r} is not a hub id or a path of letters, digits and _ . ~ / + @ = , : -"
                              " (no spaces, quotes or shell characters)")


def check_files(config: Mapping[str, Any], root: Path) -> None:
    """Every local file the config names exists and parses: instruction tables (JSON), probe and training JSONL
    (every probe row; a training file's first record, the rest is read by `hrsa make-data`), problem sets, corpora;
    a local role is a model directory (config.json)."""
    for i, pair in enumerate(config.get("pairs") or []):
        for role in ROLES:
            spec = pair.get(role)
            if isinstance(spec, str) and not is_hub_id(spec, root):
                where = local_path(spec, root)
                if where.exists() and not (where / "config.json").is_file():
                    raise ConfigError(f"pairs[{i}].{role}: {spec!r} is not a model directory (no config.json in "
                                      f"{where})")
    evaluation = config.get("evaluation") or {}
    for i, table in enumerate(evaluation.get("instruction_tables") or []):
        read_instruction_table(local_path(table, root), f"evaluation.instruction_tables[{i}]")
    data = config.get("training_data") or {}
    if not data.get("builtin"):
        for i, p in enumerate(data.get("paths") or []):
            _jsonl_rows(local_path(p, root), f"training_data.paths[{i}]", first_only=True)
    for i, pair in enumerate(config.get("pairs") or []):  # the files of the recipes a role uses
        for role in ROLES:
            spec = pair.get(role)
            if not isinstance(spec, Mapping) or not spec.get("recipe"):
                continue
            opts = {**((config.get("recipes") or {}).get(spec["recipe"]) or {}), **spec}
            key = f"recipes.{spec['recipe']} (pairs[{i}].{role})"
            if (opts.get("problems") or {}).get("path"):
                _jsonl_rows(local_path(opts["problems"]["path"], root), f"{key}.problems.path", first_only=True)
            if opts.get("data"):
                _jsonl_rows(local_path(opts["data"], root), f"{key}.data", first_only=True)
            if opts.get("corpus") and not local_path(opts["corpus"], root).is_dir():
                raise ConfigError(f"{key}.corpus: {opts['corpus']!r} is not a directory")


def _jsonl_rows(path: Path, key: str, first_only: bool = False) -> list[dict[str, Any]]:
    """The records of a JSONL file (only the first with first_only), each a JSON object; one line on any fault."""
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ConfigError(f"{key}: {path} line {n} is not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{key}: {path} line {n} is not a JSON object")
                rows.append(row)
                if first_only:
                    break
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key}: {path} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not rows:
        raise ConfigError(f"{key}: {path} holds no record")
    return rows


def read_instruction_table(path: Path, key: str = "evaluation.instruction_tables") -> dict[str, str]:
    """{task: query instruction} of a table in the study's format (each value a string or {"query": ..., ...}),
    "default" entry included; one line naming the key and the file on any fault."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{key}: {path} is not valid JSON ({exc})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: {path} must hold a JSON object {{task: instruction}}")
    out: dict[str, str] = {}
    for task, entry in table.items():
        query = entry.get("query") if isinstance(entry, dict) else entry
        if not isinstance(query, str):
            raise ConfigError(f"{key}: {path}: entry {task!r} must be a string or an object with a string 'query', "
                              f"got {entry!r}")
        out[task] = query
    return out


# ---- the study: names, probes, layers, comparisons -----------------------------------------------------------------
def check_study(study: Any) -> None:
    """What needs the grid (a hrsa.grid.Study, which calls this): probes and comparisons, layers per probe,
    Procrustes layers, probe rows, name lengths."""
    config = study.config
    if config.get("comparisons") and not study.probes:
        raise ConfigError("probes: empty, so no comparison can run (comparisons are computed on probe sets): add a "
                          "probe set or remove the comparisons")
    for c in config.get("comparisons") or []:
        left, right = c.split("~")
        if _order(right) < _order(left):
            raise ConfigError(f"comparisons: {c!r} is reversed: write '{right}~{left}' (backbones before embedders, "
                              f"roles in the order {', '.join(ROLES)}; the report reads that order)")
    for probe in study.probes:
        for pair in study.pairs:
            if not study.layers(pair, probe):
                raise ConfigError(f"layers: {study.layer_spec} leaves no layer for probe {probe!r}, a token-level "
                                  "probe (pooled rows are one per text: give layer indices, or granularity: sentence)")
    _check_procrustes(study)
    check_probe_rows(config, study.root)
    _check_name_lengths(study)


def _order(side: str) -> tuple[int, bool]:
    return ROLES.index(split_role(side)[0]), side.endswith("-E")


def _check_procrustes(study: Any) -> None:
    for i, name in enumerate((study.config.get("hrsa") or {}).get("procrustes_intervals") or []):
        if name in ("last", "all"):
            continue
        for pair in study.pairs:
            if name not in study.layers(pair):
                raise ConfigError(f"hrsa.procrustes_intervals[{i}]: {name!r} is not a layer of pair {pair!r} "
                                  f"(layers: {', '.join(study.layers(pair))}; or 'last', 'all')")


def probe_rows(probe: Mapping[str, Any], root: Path, key: str) -> tuple[int | None, str]:
    """The most rows a probe set can yield, as far as its config and (for a local file) its texts say, and why."""
    n_texts = probe.get("n_texts")
    why = f"n_texts={n_texts}"
    if probe.get("path"):
        rows = _jsonl_rows(local_path(probe["path"], root), f"{key}.path")
        texts = [r for r in rows if isinstance(r.get("text"), str) and r["text"].strip()]
        if len(texts) < len(rows):
            bad = next(i for i, r in enumerate(rows) if r not in texts)
            raise ConfigError(f"{key}.path: {probe['path']} record {bad + 1} has no text (a non-empty 'text' string)")
        _check_labels(rows, probe, key)
        if n_texts is None or len(texts) < n_texts:
            n_texts, why = len(texts), f"{probe['path']} holds {len(texts)} texts"
    if n_texts is None:
        return None, ""
    if probe.get("granularity", "token") == "sentence":
        return int(n_texts), f"{why}, one row per text"
    bounds = []
    if probe.get("max_length"):
        bounds.append((int(n_texts) * int(probe["max_length"]), f"{why} x max_length={probe['max_length']}"))
    if probe.get("max_tokens"):
        bounds.append((int(probe["max_tokens"]), f"max_tokens={probe['max_tokens']}"))
    return min(bounds) if bounds else (None, "")


def _check_labels(rows: list[dict[str, Any]], probe: Mapping[str, Any], key: str) -> None:
    """Labels of a local probe file: no NaN or inf (it would become a class named 'nan'); a sentence-level probe whose
    every row is labelled gets probe transfer at compare time, which needs 2 classes or more (10 rows each)."""
    labels = [r.get("label") for r in rows]
    for n, label in enumerate(labels, 1):
        if (isinstance(label, float) and not math.isfinite(label)) or isinstance(label, dict | list):
            raise ConfigError(f"{key}.path: {probe['path']} record {n} has label {label!r} (a string, number or null)")
    if probe.get("granularity", "token") != "sentence" or any(lab is None for lab in labels):
        return
    counts: dict[str, int] = {}
    for label in labels:
        counts[str(label)] = counts.get(str(label), 0) + 1
    kept = {c: m for c, m in counts.items() if m >= int(probe.get("min_class_rows") or 0)}
    if len(kept) < 2:
        raise ConfigError(f"{key}.path: {probe['path']} has {len(kept)} label class(es) {sorted(kept)} after "
                          f"min_class_rows, and probe transfer needs 2 or more: add classes or drop the labels")
    if probe.get("n_texts") is None or int(probe["n_texts"]) >= sum(kept.values()):  # every row is drawn
        small = min(kept, key=lambda c: kept[c])
        if kept[small] < 10:
            raise ConfigError(f"{key}.path: class {small!r} of {probe['path']} has {kept[small]} rows, and probe "
                              "transfer needs 10 per class (a stratified 0.8/0.1/0.1 split)")


def check_probe_rows(config: Mapping[str, Any], root: Path) -> None:
    """Every kNN size leaves neighbours to find: k below the most rows each probe can have."""
    ks = list((config.get("hrsa") or {}).get("knn_k") or [])
    for i, probe in enumerate(config.get("probes") or []):
        bound, why = probe_rows(probe, root, f"probes[{i}]")
        too_big = [k for k in ks if bound is not None and k >= bound]
        if too_big:
            raise ConfigError(
                f"hrsa.knn_k: {too_big} too large for probe {probe['name']!r} (probes[{i}]), which has at most "
                f"{bound} rows ({why}); every k must be below the rows: lower hrsa.knn_k or enlarge the probe"
            )


def _check_name_lengths(study: Any) -> None:
    """Every file name hrsa.paths derives from config names stays under NAME_MAX bytes (longest value per field)."""
    kept = [f"{parse_model_id(m)[1]}-E" for m in study.checkpoint_models()]  # reason@N
    values = {"pair": list(study.pairs), "role": [f"{r}-E" for r in ROLES] + kept,
              "seed": [str(s) for s in study.seeds],
              "model": study.models(), "probe": list(study.probes), "comparison": [c.name for c in study.comparisons]}
    longest = {k: max(v, key=lambda s: len(s.encode())) for k, v in values.items() if v}
    patterns = [v for k, v in vars(paths).items() if k.isupper() and isinstance(v, str)]
    for pattern in patterns:
        for part in pattern.split("/"):
            fields = {f for _, f, _, _ in string.Formatter().parse(part) if f}
            if not fields or not fields <= set(longest):
                continue
            name = part.format(**longest)
            if len(name.encode()) > NAME_MAX:
                culprit = max(fields, key=lambda f: len(longest[f]))
                raise ConfigError(f"{culprit} names: {longest[culprit]!r} makes the file name {name!r} "
                                  f"{len(name.encode())} bytes long, over the {NAME_MAX}-byte limit of file names: "
                                  "shorten the pair or probe name")


# ---- evaluation ----------------------------------------------------------------------------------------------------
def check_query_room(lengths: Mapping[str, int], instructions: Mapping[str, str]) -> None:
    """Each evaluation max_seq_length leaves room for a query after the instruction prompt.

    `lengths` {task: max_seq_length}; `instructions` {task: instruction} as far as known offline (overrides, tables;
    "" for the others). The tokenizer is not read here: every whitespace-separated word of the prompt is at least one
    token under whitespace pre-tokenisation (BPE, WordPiece, SentencePiece alike), so a length of at most the prompt's
    word count truncates every query to nothing."""
    for task, length in lengths.items():
        prompt = QUERY_TEMPLATE.format(instruction=instructions.get(task, ""))
        words = len(prompt.split())
        if length <= words:
            raise ConfigError(f"evaluation.max_seq_length: {length} tokens for {task} leave no room for the query: its "
                              f"prompt {prompt!r} takes at least {words} tokens (one per word); raise it")


# ---- config files --------------------------------------------------------------------------------------------------
def load_yaml_strict(path: str | Path) -> Any:
    """A YAML config file, refusing duplicate keys (a second `hrsa:` block would silently drop the first)."""
    import yaml

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: Strict, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{path}: duplicate key {key!r} (lines {seen[key]} and {line}): a YAML loader keeps "
                                  "only the last; merge them")
            seen[key] = line
        return loader.construct_mapping(node, deep=deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=Strict)  # noqa: S506 (a SafeLoader subclass)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def check_config_files(files: Sequence[str | Path]) -> None:
    """Every config file given (--configfile, configfile:) parses without duplicate keys."""
    for f in files:
        load_yaml_strict(f)
