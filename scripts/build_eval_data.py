#!/usr/bin/env python3
"""Build the small local retrieval tasks under data/eval/ deterministically (byte-identical on every run).

- milton_retrieval/: query = first 2 lines of a 10-line verse passage from Paradise Lost, Paradise Regained or Comus;
  relevant document = the remaining 8 lines; distractors = the last 8 lines of other, unused passages.
- arithmetic_reasoning/: query = a small arithmetic problem; relevant document = its worked solution; one distractor
  per query = the worked solution of a sibling problem built from the same numbers (other operations or order).

Randomness comes from SHA-256 of fixed keys, never from `random`, so the output does not depend on the Python version.
Standard library only.  Usage: python scripts/build_eval_data.py [--corpus data/corpus/milton] [--out data/eval]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = "hrsa-eval-v1"

# work -> (file name, number of query passages, number of distractor passages)
MILTON_WORKS: dict[str, tuple[str, int, int]] = {
    "paradiselost": ("paradiselost.txt", 130, 130),
    "paradiseregained": ("paradiseregained.txt", 40, 40),
    "comus": ("comus.txt", 30, 30),
}
QUERY_LINES = 2
DOC_LINES = 8
N_ARITH = 200


# ----------------------------------------------------------------------------------------------------------- helpers
def hkey(*parts: object) -> str:
    """Stable hex digest of the parts: the only source of 'randomness' in this script."""
    return hashlib.sha256(":".join(map(str, (SEED, *parts))).encode()).hexdigest()


class HashRng:
    """Tiny deterministic generator over SHA-256 (independent of Python's `random` implementation)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.counter = 0

    def randint(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        self.counter += 1
        return lo + int(hkey(self.name, self.counter)[:12], 16) % (hi - lo + 1)

    def choice(self, items: list[str]) -> str:
        return items[self.randint(0, len(items) - 1)]


def write_jsonl(path: Path, rows: Iterable[dict[str, object]]) -> None:
    """One JSON object per line, fixed key order, '\\n' endings: byte-stable output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_task(
    out: Path, queries: list[dict[str, str]], docs: list[dict[str, str]], qrels: list[tuple[str, str]]
) -> None:
    """Write queries.jsonl, corpus.jsonl and qrels.jsonl of one retrieval task."""
    write_jsonl(out / "queries.jsonl", queries)
    write_jsonl(out / "corpus.jsonl", docs)
    write_jsonl(out / "qrels.jsonl", ({"query_id": q, "doc_id": d, "score": 1} for q, d in qrels))


# ------------------------------------------------------------------------------------------------------------ Milton
_LINE_NUMBER = re.compile(r"\s{2,}\d+\s*$")
_STAGE_DIRECTION = re.compile(r"\s*\[_.*$")
_SPEAKER = re.compile(r"^_[A-Z][A-Za-z ]*\._\s*")


def clean_verse(line: str) -> str:
    """Strip margin line numbers, inline stage directions and speaker tags from one verse line."""
    line = _STAGE_DIRECTION.sub("", line.rstrip())
    line = _LINE_NUMBER.sub("", line)
    return _SPEAKER.sub("", line.strip()).strip()


def epic_verse(lines: list[str]) -> list[str]:
    """Verse lines of Paradise Lost / Regained: non-empty lines with lower-case letters (headings are capitals)."""
    out = [clean_verse(ln) for ln in lines if re.search(r"[a-z]", ln)]
    return [ln for ln in out if ln]


def comus_verse(lines: list[str]) -> list[str]:
    """Verse lines of Comus: the indented lines between the 'COMUS.' heading and the editor's 'NOTES.'."""
    start = lines.index("COMUS.")
    end = lines.index("NOTES.")
    body = [ln for ln in lines[start + 1 : end] if ln.startswith("    ") and not ln.strip().startswith(("_", "["))]
    out = [clean_verse(ln) for ln in body]
    return [ln for ln in out if ln]


def read_lines(path: Path) -> list[str]:
    """Lines of a Gutenberg text without line terminators (CRLF or LF) and trailing blanks."""
    return [ln.rstrip() for ln in path.read_text(encoding="utf-8").splitlines()]


def milton_windows(corpus: Path) -> dict[str, list[list[str]]]:
    """Non-overlapping 10-line verse windows per work."""
    size = QUERY_LINES + DOC_LINES
    out = {}
    for work, (fname, _, _) in MILTON_WORKS.items():
        lines = read_lines(corpus / fname)
        verse = comus_verse(lines) if work == "comus" else epic_verse(lines)
        out[work] = [verse[i : i + size] for i in range(0, len(verse) - size + 1, size)]
    return out


def build_milton(corpus: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], list[tuple[str, str]]]:
    """Queries (passage openings), corpus (continuations + distractor continuations) and qrels."""
    queries: list[dict[str, str]] = []
    pool: list[tuple[str, str, str | None]] = []  # (sort key, doc text, query id or None)
    for work, windows in milton_windows(corpus).items():
        _, n_query, n_distract = MILTON_WORKS[work]
        order = sorted(range(len(windows)), key=lambda i: hkey("milton", work, i))
        for rank, idx in enumerate(order[: n_query + n_distract]):
            win = windows[idx]
            doc = "\n".join(win[QUERY_LINES:])
            if rank < n_query:
                qid = f"mq-{work}-{idx:04d}"
                queries.append({"id": qid, "text": "\n".join(win[:QUERY_LINES])})
                pool.append((hkey("milton-doc", work, idx), doc, qid))
            else:
                pool.append((hkey("milton-doc", work, idx), doc, None))
    return finish(queries, pool, "md")


def finish(
    queries: list[dict[str, str]], pool: list[tuple[str, str, str | None]], prefix: str
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[tuple[str, str]]]:
    """Shuffle documents by hash, number them, and pair each query with its document id."""
    queries = sorted(queries, key=lambda q: q["id"])
    docs, qrels = [], []
    for i, (_, text, qid) in enumerate(sorted(pool)):
        did = f"{prefix}{i:04d}"
        docs.append({"id": did, "title": "", "text": text})
        if qid is not None:
            qrels.append((qid, did))
    return queries, docs, sorted(qrels)


# -------------------------------------------------------------------------------------------------------- arithmetic
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
).split()
OPS = ("+", "-", "*")
APPLY: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


@dataclass(frozen=True)
class Problem:
    """Left-to-right arithmetic over 2 or 3 operands, e.g. (7, ('+', '-'), (5, 3)) = 7 + 5 - 3."""

    start: int
    ops: tuple[str, ...]
    args: tuple[int, ...]

    def steps(self) -> list[int]:
        """Running totals after each operation."""
        out, acc = [], self.start
        for op, x in zip(self.ops, self.args, strict=True):
            acc = APPLY[op](acc, x)
            out.append(acc)
        return out

    def valid(self) -> bool:
        """No negative intermediate results and a modest final answer."""
        steps = self.steps()
        return min(steps) >= 0 and steps[-1] <= 200


def num(x: int, words: bool) -> str:
    return NUMBER_WORDS[x] if words and x < len(NUMBER_WORDS) else str(x)


QUERY_OPS = {"+": "plus", "-": "minus", "*": "times"}
SYMBOLS = {"+": "+", "-": "-", "*": "x"}


def query_text(p: Problem, style: int) -> str:
    """The problem as a question, in one of three styles (words, symbols, story)."""
    if style == 0:
        body = " ".join(f"{QUERY_OPS[o]} {num(x, True)}" for o, x in zip(p.ops, p.args, strict=True))
        return f"Q: What is {num(p.start, True)} {body}?"
    if style == 1:
        body = " ".join(f"{SYMBOLS[o]} {x}" for o, x in zip(p.ops, p.args, strict=True))
        return f"Q: Compute {p.start} {body}, working from left to right."
    story = {
        "+": "then {x} more are added",
        "-": "then {x} are taken out",
        "*": "then the number of marbles is multiplied by {x}",
    }
    parts = ", ".join(story[o].format(x=x) for o, x in zip(p.ops, p.args, strict=True))
    return f"Q: A jar holds {p.start} marbles; {parts}. How many marbles are in the jar now?"


SOLUTION_VERBS = {
    "+": ("adding {x} gives {r}", "increase by {x} to reach {r}", "{x} more makes {r}"),
    "-": ("taking away {x} leaves {r}", "subtract {x} to get {r}", "removing {x} leaves {r}"),
    "*": ("multiplying by {x} gives {r}", "{x} times that is {r}", "scaling by {x} yields {r}"),
}


def solution_text(p: Problem, rng: HashRng) -> str:
    """A worked solution with varied wording: running totals, then the answer."""
    steps = [rng.choice(list(SOLUTION_VERBS[o])).format(x=x, r=r)
             for o, x, r in zip(p.ops, p.args, p.steps(), strict=True)]
    opener = rng.choice(["Start with {s}", "Begin at {s}", "We have {s} to begin with"]).format(s=p.start)
    return f"{opener}; " + "; ".join(steps) + f". The answer is {p.steps()[-1]}."


def random_problem(rng: HashRng) -> Problem:
    """A valid random problem with 2 or 3 operands between 2 and 20."""
    while True:
        n_ops = rng.randint(1, 2)
        p = Problem(
            rng.randint(2, 20),
            tuple(rng.choice(list(OPS)) for _ in range(n_ops)),
            tuple(rng.randint(2, 12) for _ in range(n_ops)),
        )
        if p.valid():
            return p


def sibling(p: Problem, rng: HashRng, taken: set[Problem]) -> Problem | None:
    """A different valid problem over the same numbers (other operations and/or order), not already used."""
    numbers = (p.start, *p.args)
    for _ in range(50):
        perm = [numbers[i] for i in _permutation(len(numbers), rng)]
        ops = tuple(rng.choice(list(OPS)) for _ in p.ops)
        q = Problem(perm[0], ops, tuple(perm[1:]))
        if q != p and q not in taken and q.valid() and q.steps()[-1] != p.steps()[-1]:
            return q
    return None


def _permutation(n: int, rng: HashRng) -> list[int]:
    """Fisher-Yates over range(n) driven by HashRng."""
    idx = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randint(0, i)
        idx[i], idx[j] = idx[j], idx[i]
    return idx


def build_arithmetic() -> tuple[list[dict[str, str]], list[dict[str, str]], list[tuple[str, str]]]:
    """Problems as queries; their worked solutions plus sibling-problem solutions as the corpus."""
    rng = HashRng("arith")
    taken: set[Problem] = set()
    queries: list[dict[str, str]] = []
    pool: list[tuple[str, str, str | None]] = []
    while len(queries) < N_ARITH:
        p = random_problem(rng)
        if p in taken:
            continue
        sib = sibling(p, rng, taken | {p})
        if sib is None:
            continue
        taken |= {p, sib}
        qid = f"aq{len(queries):04d}"
        queries.append({"id": qid, "text": query_text(p, len(queries) % 3)})
        pool.append((hkey("arith-doc", qid, "pos"), solution_text(p, rng), qid))
        pool.append((hkey("arith-doc", qid, "sib"), solution_text(sib, rng), None))
    return finish(queries, pool, "ad")


# -------------------------------------------------------------------------------------------------------------- main
def build(corpus: Path, out: Path) -> None:
    """Write both tasks under `out`."""
    write_task(out / "milton_retrieval", *build_milton(corpus))
    write_task(out / "arithmetic_reasoning", *build_arithmetic())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "corpus" / "milton")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "eval")
    args = parser.parse_args()
    build(args.corpus, args.out)


if __name__ == "__main__":
    main()
