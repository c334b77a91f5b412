"""Offline training text: the bundled public-domain corpus (Milton, Gutenberg) and a seeded arithmetic generator.

The tiny backbones are pretrained on this text, RLVR-tuned on the arithmetic prompts (reward = exact answer) and
SFT-tuned on worked solutions, so the whole workflow runs without downloading anything.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypedDict

from hrsa.errors import DataError

_WS = re.compile(r"\s+")
_INT = re.compile(r"-?\d+")
_LETTER = re.compile(r"[A-Za-z]")

# op symbol -> (function, verb used in worked solutions)
OPS: dict[str, tuple[Callable[[int, int], int], str]] = {
    "+": (operator.add, "plus {b} makes"),
    "-": (operator.sub, "minus {b} leaves"),
    "*": (operator.mul, "times {b} gives"),
}
DEFAULT_OPS: tuple[str, ...] = ("+", "-")


class ArithmeticRecord(TypedDict):
    """One problem: `prompt` to complete, `answer` (decimal string), worked `solution` text (prompt included)."""

    prompt: str
    answer: str
    solution: str


# ----------------------------------------------------------------------------------------------- corpus text


def corpus_files(corpus_dir: str | Path) -> list[Path]:
    """All *.txt files under corpus_dir (recursively, sorted); raises DataError naming the path if there are none."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise DataError(f"corpus directory not found: {root}")
    files = sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not files:
        raise DataError(f"corpus directory has no *.txt files: {root}")
    return files


def normalise(text: str) -> str:
    """Collapse every run of whitespace (CRLF, tabs, indentation) to one space and strip the ends."""
    return _WS.sub(" ", text).strip()


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs (blocks separated by blank lines) with whitespace normalised; empty blocks dropped."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [p for p in (normalise(b) for b in blocks) if p]


def split_lines(text: str) -> list[str]:
    """Non-empty lines with whitespace normalised (verse keeps its line structure this way)."""
    return [ln for ln in (normalise(x) for x in text.splitlines()) if ln]


def chunk_words(paragraph: str, max_words: int) -> list[str]:
    """Split a paragraph into consecutive pieces of at most max_words words, so each fits a short context."""
    if max_words < 1:
        raise ValueError("max_words must be >= 1")
    words = paragraph.split(" ")
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def read_corpus(corpus_dir: str | Path, max_words: int = 16, unit: str = "lines") -> list[str]:
    """Training passages from every *.txt under corpus_dir, in file order, each cut to <= max_words words.

    unit="lines" keeps the text's own lines (verse lines; short, so a step stays cheap on one CPU thread);
    unit="paragraphs" joins blank-line separated blocks first. Passages without a letter (page numbers) are dropped.
    Raises DataError naming the directory if it is missing or holds no text.
    """
    if unit not in ("lines", "paragraphs"):
        raise ValueError(f"unit must be 'lines' or 'paragraphs', got {unit!r}")
    split = split_lines if unit == "lines" else split_paragraphs
    files = corpus_files(corpus_dir)
    passages = [
        chunk
        for path in files
        for block in split(path.read_text(encoding="utf-8", errors="replace"))
        for chunk in chunk_words(block, max_words)
        if _LETTER.search(chunk)
    ]
    if not passages:
        raise DataError(f"corpus is empty (no text in {', '.join(str(f) for f in files)})")
    return passages


# ----------------------------------------------------------------------------------------------- arithmetic


def arithmetic_prompt(a: int, op: str, b: int) -> str:
    """The prompt format shared by pretraining, RLVR and SFT: 'Q: 3+4=? A:'."""
    return f"Q: {a}{op}{b}=? A:"


def make_problem(a: int, op: str, b: int) -> ArithmeticRecord:
    """Record for a op b with its answer and a worked solution ('... A: 3 plus 4 makes 7. The answer is 7.')."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {sorted(OPS)}")
    fn, verb = OPS[op]
    answer = str(fn(a, b))
    prompt = arithmetic_prompt(a, op, b)
    solution = f"{prompt} {a} {verb.format(b=b)} {answer}. The answer is {answer}."
    return {"prompt": prompt, "answer": answer, "solution": solution}


def iter_arithmetic(
    seed: int, lo: int = 0, hi: int = 9, ops: Sequence[str] = DEFAULT_OPS
) -> Iterator[ArithmeticRecord]:
    """Endless seeded stream of problems with operands in [lo, hi]; subtraction is ordered so answers are >= 0."""
    if lo > hi:
        raise ValueError(f"lo ({lo}) must be <= hi ({hi})")
    if not ops or any(op not in OPS for op in ops):
        raise ValueError(f"ops must be a non-empty subset of {sorted(OPS)}, got {list(ops)}")
    rng = random.Random(seed)
    while True:
        a, b, op = rng.randint(lo, hi), rng.randint(lo, hi), rng.choice(list(ops))
        if op == "-" and b > a:
            a, b = b, a
        yield make_problem(a, op, b)


def arithmetic_problems(
    n: int, seed: int, lo: int = 0, hi: int = 9, ops: Sequence[str] = DEFAULT_OPS
) -> list[ArithmeticRecord]:
    """n problems, identical for identical arguments. Operands stay small (0-9) so a tiny model gets reward signal."""
    stream = iter_arithmetic(seed, lo, hi, ops)
    return [next(stream) for _ in range(n)]


def arithmetic_line(record: ArithmeticRecord) -> str:
    """Short pretraining form 'Q: 3+4=? A: 7' (answer right after 'A:')."""
    return f"{record['prompt']} {record['answer']}"


def first_integer(text: str) -> str | None:
    """The first (optionally negative) integer in text, as written, or None."""
    m = _INT.search(text)
    return m.group(0) if m else None


def correct_reward(completions: Sequence[str], answer: Sequence[str], **_: object) -> list[float]:
    """RLVR reward: 1.0 where the first integer of the completion equals the answer exactly, else 0.0."""
    return [1.0 if first_integer(c) == str(a).strip() else 0.0 for c, a in zip(completions, answer, strict=True)]
