"""Names of the study's things as they appear in paths: model ids, comparison names, roles and the pooled layer.

Model ids: `{pair}.{role}` for backbones, `{pair}.{role}-E.s{seed}` for embedders (see DESIGN.md). A role may name a
kept checkpoint of its recipe run, `reason@N` (step N of the RLVR run): `tiny.reason@20`, `tiny.reason@20-E.s0`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hrsa.errors import ConfigError

ROLES = ("base", "reason", "sft")
# \A...\Z, not ^...$: `$` also matches before a final newline, so "x\n" passed and split a shell command.
SAFE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]*\Z")
POOLED = "pooled"
#: a role, or a kept checkpoint of it (`reason@50`: step 50 of its recipe run)
ROLE = r"(?:base|reason|sft)(?:@[1-9][0-9]*)?"
#: one side of a comparison: a role, with -E for the embedder trained from it
SIDE = re.compile(rf"({ROLE})(-E)?")

_SIDE = rf"{ROLE}(?:-E)?"
_COMPARISON_NAME = re.compile(
    rf"(?P<pair>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<left>{_SIDE})~(?P<right>{_SIDE})"
    r"(?:\.s(?P<seed>\d+)(?:-s(?P<right_seed>\d+))?)?"
)
_MODEL_ID = re.compile(rf"(?P<pair>[^.]+)\.(?P<role>{ROLE})(?:-E\.s(?P<seed>\d+))?")


@dataclass(frozen=True)
class Comparison:
    """Two models compared layer by layer, e.g. `tiny.base-E~reason-E.s0`, or a noise floor `tiny.base-E~base-E.s0-s1`
    (one embedder role trained with two seeds: `seed` is the left model's, `right_seed` the right one's)."""

    pair: str
    left: str  # role, with -E suffix for embedders
    right: str
    seed: int | None
    right_seed: int | None = None  # only for seed-replicate (noise-floor) comparisons

    @property
    def kind(self) -> str:
        """The comparison as written in `comparisons:` (no pair, no seed), e.g. `base-E~reason-E`."""
        return f"{self.left}~{self.right}"

    @property
    def name(self) -> str:
        if self.right_seed is not None:
            suffix = f".s{self.seed}-s{self.right_seed}"
        else:
            suffix = f".s{self.seed}" if self.seed is not None else ""
        return f"{self.pair}.{self.kind}{suffix}"

    def model(self, side: str) -> str:
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        if side == "left":
            return model_id(self.pair, self.left, self.seed)
        return model_id(self.pair, self.right, self.seed if self.right_seed is None else self.right_seed)


def parse_comparison(name: str) -> Comparison:
    """Inverse of Comparison.name: `PAIR.L~R`, `PAIR.L~R.sSEED`, or `PAIR.X-E~X-E.sA-sB` (a noise floor)."""
    m = _COMPARISON_NAME.fullmatch(name)
    if not m:
        raise ConfigError(f"not a comparison name: {name!r} (expected PAIR.ROLE~ROLE[.sSEED] or PAIR.X-E~X-E.sA-sB)")
    seed, right_seed = m.group("seed"), m.group("right_seed")
    return Comparison(m.group("pair"), m.group("left"), m.group("right"),
                      None if seed is None else int(seed), None if right_seed is None else int(right_seed))


def split_role(role: str) -> tuple[str, int | None]:
    """(role, kept step or None) of a role as written in ids, without -E: `reason@50` -> ("reason", 50)."""
    name, _, step = role.removesuffix("-E").partition("@")
    return name, int(step) if step else None


def model_id(pair: str, role: str, seed: int | None = None) -> str:
    """`{pair}.{role}` for a backbone; `{pair}.{role}-E.s{seed}` for an embedder (role given with its -E)."""
    if role.endswith("-E"):
        if seed is None:
            raise ValueError(f"embedder role {role!r} needs a seed")
        return f"{pair}.{role}.s{seed}"
    return f"{pair}.{role}"


def parse_model_id(mid: str) -> tuple[str, str, int | None]:
    """Inverse of model_id: (pair, role without -E, seed or None)."""
    m = _MODEL_ID.fullmatch(mid)
    if not m:
        raise ConfigError(f"not a model id: {mid!r} (expected PAIR.ROLE or PAIR.ROLE-E.sSEED)")
    seed = m.group("seed")
    return m.group("pair"), m.group("role"), int(seed) if seed is not None else None
