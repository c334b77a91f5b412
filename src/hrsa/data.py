"""Contrastive training records and probe sets: built-in sets generated from the bundled corpus, local JSONL, hub.

Training record format (also accepted from user files): {"query": [instruction, text], "pos": [text, ...],
"neg": [text, ...], "source": name}. Probe rows: {"id": int, "text": str, "label": str | null}.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hrsa.corpus import chunk_words, corpus_files, iter_arithmetic, make_problem, split_lines, split_paragraphs
from hrsa.errors import DataError
from hrsa.schema import with_defaults

# the study's query prompt (training and evaluation alike); documents get none
QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: "
DEFAULT_QUERY_INSTRUCTION = "Given a query, retrieve relevant passages"
VERSE_INSTRUCTION = "Given lines of verse, retrieve the lines that follow"
MATH_INSTRUCTION = "Given an arithmetic problem, retrieve its worked solution"


ARITHMETIC_HI = 19  # largest operand of the demo's arithmetic records: 1,010 distinct problems


def _verse_groups(corpus_dir: Path, size: int = 2, min_words: int = 4) -> list[tuple[str, str]]:
    """Consecutive groups of `size` verse lines per work: (work, text)."""
    out = []
    for path in corpus_files(corpus_dir):
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = [ln for ln in split_lines(text) if len(ln.split()) >= min_words]
        out += [(path.stem, " ".join(lines[i : i + size])) for i in range(0, len(lines) - size + 1, size)]
    return out


def demo_training_records(corpus_dir: Path, n_records: int, num_negatives: int, seed: int = 0) -> list[dict[str, Any]]:
    """Half verse continuation (lines -> following lines), half arithmetic (problem -> worked solution), every
    query distinct."""
    rng = random.Random(seed)
    groups = _verse_groups(corpus_dir)
    n_verse = n_records // 2
    if n_records - n_verse > 1010:
        raise DataError(f"training_data.n_records: {n_records} asks for more distinct arithmetic problems than 1,010")
    if len(groups) < n_verse + num_negatives + 1:
        raise DataError(f"corpus {corpus_dir} is too small for {n_verse} verse records")
    starts = rng.sample(range(len(groups) - 1), n_verse)
    records = []
    for i in starts:
        negs = [groups[j][1] for j in rng.sample(range(len(groups)), num_negatives + 2) if j not in (i, i + 1)]
        records.append(
            {"query": [VERSE_INSTRUCTION, groups[i][1]], "pos": [groups[i + 1][1]], "neg": negs[:num_negatives],
             "source": "verse"}
        )
    # operands 0..19 and each problem once: a repeated query would be its own in-batch negative (0..9 holds only
    # 255 distinct problems, fewer than the demo's 320 arithmetic records)
    problems = iter_arithmetic(seed + 1, hi=ARITHMETIC_HI, ops=("+", "-", "*"))
    seen: set[str] = set()
    for _ in range(n_records - n_verse):
        p = next(problems)
        while p["prompt"] in seen:
            p = next(problems)
        seen.add(p["prompt"])
        a, op, b = _parse_prompt(p["prompt"])
        # hard negatives: the same operands under the other operations, skipping any with the same answer
        others = [make_problem(a, o, b) for o in ("+", "-", "*") if o != op]
        negs = [o["solution"] for o in others if o["answer"] != p["answer"]]
        while len(negs) < num_negatives:
            extra = next(problems)
            if extra["answer"] != p["answer"]:
                negs.append(extra["solution"])
        records.append(
            {"query": [MATH_INSTRUCTION, p["prompt"]], "pos": [p["solution"]], "neg": negs[:num_negatives],
             "source": "arithmetic"}
        )
    return records


def _parse_prompt(prompt: str) -> tuple[int, str, int]:
    body = prompt.removeprefix("Q: ").split("=")[0]
    for op in "+-*":
        if op in body:
            a, b = body.split(op)
            return int(a), op, int(b)
    raise ValueError(prompt)


def check_record(rec: Any, where: str, num_negatives: int) -> dict[str, Any]:
    """One training record {query: [instruction, text], pos: [...], neg: [...]}; DataError names `where`."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a record object")
    q = rec.get("query")
    if not (isinstance(q, list | tuple) and len(q) == 2 and all(isinstance(x, str) for x in q) and q[1].strip()):
        raise DataError(f"{where}: `query` must be [instruction, text] with a non-empty text")
    pos = rec.get("pos")
    if not (isinstance(pos, list | tuple) and len(pos) and all(isinstance(x, str) and x.strip() for x in pos)):
        raise DataError(f"{where}: `pos` must be a non-empty list of non-empty texts")
    neg = rec.get("neg")
    neg = [] if neg is None else neg
    if not isinstance(neg, list | tuple) or not all(isinstance(x, str) and x.strip() for x in neg):
        raise DataError(f"{where}: `neg` must be a list of non-empty texts")
    if len(neg) < num_negatives:
        raise DataError(f"{where}: `neg` has {len(neg)} texts, {num_negatives} asked")
    return {**rec, "query": list(q), "pos": list(pos), "neg": list(neg)}


def numbered_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, record) of a JSONL or Parquet file of training records."""
    path = Path(path)
    if path.suffix != ".parquet":
        yield from numbered_jsonl(path)
        return
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    yield from enumerate(table.to_pylist(), start=1)


def validate_training_records(source: str | Path, num_negatives: int) -> list[dict]:
    """Read and check every record of a JSONL or Parquet file before any training step; errors name file and line
    (row)."""
    out = [check_record(rec, f"{source}:{line}", num_negatives) for line, rec in numbered_records(source)]
    if not out:
        raise DataError(f"{source}: no training records")
    return out


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows (JSON objects) of a JSONL file; a malformed line, or one that is no object, raises DataError naming file
    and line."""
    for line_no, row in numbered_jsonl(path):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object per line, got a {type(row).__name__}")
        yield row


def numbered_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) of a JSONL file, blank lines skipped; DataError names file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    from hrsa.io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


# ---- probe sets -------------------------------------------------------------------------------------------------
def builtin_probe(name: str, corpus_dir: Path, n_texts: int, seed: int) -> list[dict[str, Any]]:
    """Probe texts from the bundled corpus; every built-in set carries a label for probe transfer."""
    rng = random.Random(seed)
    if name == "milton-lines":
        lines = _verse_groups(corpus_dir, size=1, min_words=6)
        picked = rng.sample(lines, min(n_texts, len(lines)))
    elif name == "milton-works":
        per_work = {path.stem: _chunks_of(path) for path in corpus_files(corpus_dir)}
        works = sorted(per_work)
        k = n_texts // len(works)
        picked = [(w, t) for w in works for t in rng.sample(per_work[w], min(k, len(per_work[w])))]
    elif name == "arithmetic":
        stream = iter_arithmetic(seed, ops=("+", "-", "*"))
        picked = []
        for _ in range(n_texts):
            p = next(stream)
            picked.append((_parse_prompt(p["prompt"])[1], p["solution"]))
    else:
        raise DataError(f"unknown builtin probe set {name!r}")
    return [{"id": i, "text": t, "label": lab} for i, (lab, t) in enumerate(picked)]


def _chunks_of(path: Path, max_words: int = 30, min_words: int = 12) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [c for p in split_paragraphs(text) for c in chunk_words(p, max_words) if len(c.split()) >= min_words]


def probe_rows(spec: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """Rows of a probe set from its config entry (builtin, local JSONL or hub dataset); never empty.

    An empty set fails here, in the cheap `make-data probe` job, naming the probe and why, instead of at `compare`.
    """
    spec = with_defaults("probes/*", spec)
    name = spec["name"]
    try:
        rows, source = _probe_source_rows(spec, root)
    except DataError as exc:
        raise DataError(f"probe {name!r}: {exc}") from None
    if not rows:
        raise DataError(f"probe {name!r}: no texts: {source}; fix the probe's source or its n_texts")
    return rows


def _probe_source_rows(spec: dict[str, Any], root: Path) -> tuple[list[dict[str, Any]], str]:
    """(rows, what an empty result would mean) from the probe's one source."""
    n, seed = int(spec["n_texts"]), int(spec["seed"])
    if spec.get("builtin"):
        corpus = root / "data/corpus/milton"
        why = f"builtin {spec['builtin']!r} gave none for n_texts={n}"
        if spec["builtin"] == "milton-works":
            works = len(corpus_files(corpus))
            why += f" (it takes n_texts // {works} texts from each of the corpus's {works} works)"
        return builtin_probe(spec["builtin"], corpus, n, seed), why
    if spec.get("path"):
        rows = list(read_jsonl(root / spec["path"]))
        for i, r in enumerate(rows, start=1):
            if not isinstance(r.get("text"), str) or not r["text"].strip():
                raise DataError(f"{spec['path']}:{i}: probe row needs a non-empty `text`")
        return _select(rows, n, seed, **_selection(spec)), f"{spec['path']} has no rows"
    hf = spec["hf"]
    ds = load_hub_dataset(*probe_dataset_args(hf))
    text_field, label = hf["text_field"], hf["label_field"] or None
    missing = [c for c in (text_field, label) if c and c not in ds.column_names]
    if missing:
        raise DataError(f"hub dataset {hf['dataset']}: no columns {missing} (has {ds.column_names})")
    rows = [{"text": r[text_field], "label": r[label] if label else None} for r in ds]
    kept = [r for r in rows if isinstance(r["text"], str) and r["text"].strip()]
    if len(kept) < len(rows):
        dropped = len(rows) - len(kept)
        print(f"probe {spec.get('name', '?')!r}: dropped {dropped} of {len(rows)} rows with an empty {text_field!r}")
    why = f"hub dataset {hf['dataset']} split {hf.get('split', 'test')!r} has no row with a non-empty {text_field!r}"
    return _select(kept, n, seed, **_selection(spec)), why


def _selection(spec: dict[str, Any]) -> dict[str, Any]:
    """How a probe's texts are drawn from its source: stratified by label, small classes dropped."""
    return {"stratify": bool(spec.get("stratify")), "min_class_rows": int(spec.get("min_class_rows") or 0)}


def _select(rows: list[dict[str, Any]], n: int, seed: int, stratify: bool = False,
            min_class_rows: int = 0) -> list[dict[str, Any]]:
    """n rows (ids renumbered in source order): a seeded uniform sample, or stratified by label (each class in
    proportion to its size, largest remainders first). Classes with fewer than min_class_rows rows are dropped first,
    as the study's probe does."""
    if stratify or min_class_rows:
        classes: dict[str, list[int]] = {}
        for j, r in enumerate(rows):
            label = _label(r.get("label"))
            if label is None:
                raise DataError(f"row {j + 1} has no label: stratify / min_class_rows need a labelled probe set")
            classes.setdefault(label, []).append(j)
        small = sorted(c for c, members in classes.items() if len(members) < min_class_rows)
        if small:
            print(f"dropped {len(small)} classes with fewer than {min_class_rows} rows: {small}")
        classes = {c: m for c, m in classes.items() if c not in small}
        pool = sorted(j for members in classes.values() for j in members)
    else:
        pool = list(range(len(rows)))
    rng = random.Random(seed)
    if not stratify or n >= len(pool):
        idx = sorted(rng.sample(pool, min(n, len(pool))))
    else:
        quotas = {c: n * len(m) / len(pool) for c, m in sorted(classes.items())}
        take = {c: int(q) for c, q in quotas.items()}
        for c in sorted(quotas, key=lambda c: (take[c] - quotas[c], c))[: n - sum(take.values())]:
            take[c] += 1
        idx = sorted(j for c, m in sorted(classes.items()) for j in rng.sample(m, take[c]))
    return [{"id": i, "text": rows[j]["text"], "label": _label(rows[j].get("label"))} for i, j in enumerate(idx)]


def _label(value: Any) -> str | None:
    return None if value is None else str(value)


def probe_dataset_args(hf: dict[str, Any]) -> tuple[str, str | None, str]:
    """(dataset, config, split) a probe's `hf` entry loads (the download plan fetches the same)."""
    hf = with_defaults("probes/*/hf", hf)
    return hf["dataset"], hf["config"] or None, hf["split"]


def training_dataset_args(entry: dict[str, Any]) -> tuple[str, str | None, str]:
    """(dataset, config, split) a `training_data.hf` entry loads (the download plan fetches the same)."""
    entry = with_defaults("training_data/hf/*", entry)
    return entry["dataset"], entry["config"] or None, entry["split"]


def load_hub_dataset(name: str, config: str | None, split: str) -> Any:
    """datasets.load_dataset; a set missing from an offline cache is one line naming it (HubMissError)."""
    import datasets

    from hrsa.hub import hub_load

    with hub_load("dataset", name):
        return datasets.load_dataset(name, config, split=split)


def hub_training_records(entry: dict[str, Any], num_negatives: int = 0) -> list[dict[str, Any]]:
    """Records from one hub dataset (clusters; or a local dataset directory): columns mapped to the record format.

    Every row is checked like a local file (errors name the dataset and row); pass num_negatives=0 when negatives
    are mined afterwards.
    """
    entry = with_defaults("training_data/hf/*", entry)
    name = entry["dataset"]
    try:
        ds = load_hub_dataset(*training_dataset_args(entry))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"hub dataset {name}: cannot load ({exc})") from None
    if entry.get("max_rows"):
        ds = ds.select(range(min(int(entry["max_rows"]), len(ds))))
    ds = pin_rows(ds, name, int(entry.get("rows") or 0))
    qf, pf, nfs = entry["query_field"], entry["pos_field"], entry["neg_fields"]
    missing = [c for c in [qf, pf, *nfs] if c not in ds.column_names]
    if missing:
        raise DataError(f"hub dataset {name}: no columns {missing} (has {ds.column_names})")
    source = name.rstrip("/").rsplit("/", 1)[-1] + (f"-{entry['config']}" if entry.get("config") else "")
    return [check_record({"query": [entry["instruction"], row[qf]], "pos": [row[pf]], "neg": [row[c] for c in nfs],
                          "source": source}, f"hub dataset {name} row {i}", num_negatives)
            for i, row in enumerate(ds)]


def pin_rows(ds: Any, name: str, rows: int, seed: int = 0) -> Any:
    """Exactly `rows` rows of a training set (a seeded sample when the set is larger; 0 = all), so a run trains on the
    study's row counts; a set that comes up short is a DataError naming it."""
    if not rows:
        return ds
    if len(ds) < rows:
        raise DataError(f"hub dataset {name}: {len(ds)} rows, fewer than the {rows} pinned in training_data.hf[].rows")
    return ds if len(ds) == rows else ds.shuffle(seed=seed).select(range(rows))
