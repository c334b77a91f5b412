"""Probe transfer with its chance line, TwoNN intrinsic dimension per layer, and the training records: the
contrastive loss of every embedder (train_log.jsonl) and the RL reward of every recipe-built sibling
(reward_curve.tsv, GRPO's log history)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import hrsa.report.figures as core
from hrsa.errors import DataError
from hrsa.grid import parse_model_id
from hrsa.report.context import Context, Figure
from hrsa.report.layers import degenerate, last_layer

SEED_LINES = ("-", "--", "-.", ":")
SEED_MARKERS = ("o", "s", "^", "v", "D")


def _integer_ticks(n: int) -> Any:
    from matplotlib.ticker import MaxNLocator  # deferred: hrsa.report is imported when the DAG is built

    return MaxNLocator(nbins=n, integer=True)


def _kind_order(kind: str) -> tuple[int, str]:
    """Comparison kinds in reading order: backbones, embedders, a model before~after training, seed noise floors."""
    left, right = kind.split("~")
    if left == right:
        return (3, kind)
    return ((left.endswith("-E") + right.endswith("-E")) if left.endswith("-E") == right.endswith("-E") else 2, kind)


def plot_probe_transfer(ctx: Context, out: Path) -> list[Figure]:
    """Per pair and probe at the headline layer (`pooled`: the study's probe on L2-normalised encode() outputs; else
    the last numbered layer): source vs target probe accuracy for every comparison kind
    (bars: mean over seeds; error bars: the interval envelope) against chance (the majority-class share of the probe
    set's labels). Per-split metrics get one panel per split; else the test split alone."""
    tab, figs = ctx.tab, list[Figure]()
    if tab.empty:
        return figs
    acc = tab[tab.metric.str.match(r"probe-transfer-(source|target)-accuracy")]
    for (probe, pair), sub in acc.groupby(["probe", "pair"], sort=True):
        last = "pooled" if "pooled" in set(sub.layer) else last_layer(list(sub.layer))
        sub = sub[sub.layer == last].copy()
        parts = sub.metric.str.extract(r"probe-transfer-(source|target)-accuracy(?:-(\w+))?")
        sub["side"], sub["split"] = parts[0], parts[1].fillna("test")
        splits = sorted(set(sub.split))
        kinds = sorted(set(sub.kind), key=_kind_order)
        fig, axes = core.figure(1, len(splits), height=0.45 * len(kinds) + 1.3)
        rows = []
        chance = ctx.chance.get(str(probe))
        for ax, split in zip(axes[0], splits, strict=True):
            s = sub[sub.split == split]
            for j, side in enumerate(("source", "target")):
                v = s[s.side == side].set_index("kind").reindex(kinds)
                err = np.vstack([(v["mean"] - v["ci_low"]).clip(lower=0).fillna(0),
                                 (v["ci_high"] - v["mean"]).clip(lower=0).fillna(0)])
                colour = core.OKABE_ITO["sky"] if side == "source" else core.OKABE_ITO["orange"]
                ax.barh(np.arange(len(kinds)) + (j - 0.5) * 0.4, v["mean"], 0.4, xerr=err, color=colour,
                        hatch=None if side == "source" else "//", edgecolor="black", capsize=2,
                        label=f"{side}: probe fitted on the left model, tested on the "
                              f"{'left' if side == 'source' else 'right'}")
                rows += [{"split": split, "kind": k, "side": side, "layer": last, "y": y, "chance": chance}
                         for k, y in zip(kinds, v["mean"], strict=True)]
            if chance is not None:
                ax.axvline(chance, color=core.STYLES["chance"][0], linestyle=core.STYLES["chance"][1], lw=1.4,
                           label=f"chance: majority class ({chance:.2f})")
            ax.set_yticks(range(len(kinds)), kinds)
            ax.invert_yaxis()  # read top-down: backbones, embedders, each model before~after, seed noise floors
            ax.set_xlim(0, 1)
            ax.set_xlabel(f"accuracy, {split} split")
        axes[0][0].set_ylabel("comparison (left~right)")
        core.shared_legend(fig, axes, ncols=1)
        ci, _ = core.methods(sub)
        seeds = int(sub["count"].max()) if "count" in sub else 1
        where = ("the headline layer pooled (each model's encode() output, L2-normalised; a raw backbone: mean of "
                 "its last hidden state)" if last == "pooled" else f"the last layer ({last})")
        caption = (f"Probe transfer at {where}, pair {pair}, probe set {probe}: StandardScaler + logistic regression "
                   "fitted on the left model's train split (0.8/0.1/0.1, seed 42), tested unchanged on the left "
                   "(source) and right (target) model's test features; per-layer probes are rows of "
                   f"tables/hrsa_layers.tsv; bars: mean over up to {seeds} seeds, error bars: envelope of the 95% "
                   f"intervals ({ci}; resampling unit: probe texts). Null: chance = "
                   + (f"majority-class share {chance:.3f}." if chance is not None else
                      "not drawn (the probe set's labels were not given)."))
        figs.append(core.save(fig, pd.DataFrame(rows), out, f"probe_{pair}_{probe}", caption))
    return figs


def plot_intrinsic_dimension(ctx: Context, out: Path) -> list[Figure]:
    """Per pair and probe: TwoNN intrinsic dimension per layer, one line per model role (embedders: seed mean);
    large hollow markers (legend: FLAGGED) where the estimate is degenerate (flag duplicate-rows)."""
    ids, figs = ctx.ids, list[Figure]()
    for (probe, pair), sub in (ids.groupby(["probe", "pair"], sort=True) if not ids.empty else []):
        fig, axes = core.figure(1, 1, height=3.4)
        ax = axes[0][0]
        pos = core.positions(list(sub.layer))
        rows = []
        for role in [r for r in core.ROLE_STYLES if r in set(sub.role)]:
            s = core.ordered(sub[sub.role == role])
            colour, ls, marker = core.ROLE_STYLES[role]
            x = [pos[v] for v in s.layer]
            ax.plot(x, s["mean"], color=colour, linestyle=ls, marker=marker, ms=5, lw=1.6, label=role)
            flags = core.flags_of(s)
            core.mark_flagged(ax, x, s["mean"], flags, colour, marker)
            rows += [{"role": role, "layer": lay, "y": y, "flag": f}
                     for lay, y, f in zip(s.layer, s["mean"], flags, strict=True)]
        core.layer_ticks(ax, pos)
        ax.set_ylabel("TwoNN intrinsic dimension")
        core.shared_legend(fig, axes, ncols=4)
        caption = (f"TwoNN intrinsic dimension (cosine neighbours; Facco et al. 2017) per layer, pair {pair}, probe "
                   f"set {probe}: backbones solid (blue, sky blue, green), embedders dashed (vermilion, orange, "
                   "purple; mean over seeds). Point estimates: no interval; no null."
                   + (f" {core.FLAG_NOTE}" if degenerate(sub["flag"].astype(str)).any() else ""))
        figs.append(core.save(fig, pd.DataFrame(rows), out, f"id_{pair}_{probe}", caption))
    return figs


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(f"training log {path} is unreadable ({exc}): rerun the job that wrote it") from None


def training_logs(dirs: list[Path]) -> pd.DataFrame:
    """Loss per optimiser step of every embedder directory given (its train_log.jsonl, the trainer's log history):
    pair, role, seed, step, loss."""
    rows = []
    for d in dirs:
        pair, role, seed = parse_model_id(d.name)
        if seed is None or not (d / "train_log.jsonl").is_file():
            continue
        rows += [{"pair": pair, "role": f"{role}-E", "seed": seed, "step": r["step"], "loss": float(r["loss"])}
                 for r in _jsonl(d / "train_log.jsonl") if "loss" in r and "step" in r]
    return pd.DataFrame(rows, columns=["pair", "role", "seed", "step", "loss"])


def reward_logs(dirs: list[Path]) -> pd.DataFrame:
    """Mean reward per GRPO step of every recipe-built backbone given that kept one (reward_curve.tsv, else the
    `reward` rows of its train_log.jsonl): pair, role, step, reward, reward_std."""
    frames = []
    for d in dirs:
        pair, role, seed = parse_model_id(d.name)
        if seed is not None:
            continue
        if (d / "reward_curve.tsv").is_file():
            c = pd.read_csv(d / "reward_curve.tsv", sep="\t")
        elif (d / "train_log.jsonl").is_file():
            c = pd.DataFrame([r for r in _jsonl(d / "train_log.jsonl") if "reward" in r and "step" in r])
        else:
            continue
        if not c.empty and {"step", "reward"} <= set(c):
            frames.append(c.assign(pair=pair, role=role).reindex(
                columns=["pair", "role", "step", "reward", "reward_std"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_training_curves(ctx: Context, out: Path) -> list[Figure]:
    """Per pair: the contrastive loss of every embedder per step, one panel per role, one line per seed."""
    logs, figs = training_logs(ctx.model_dirs), list[Figure]()
    for pair, sub in (logs.groupby("pair", sort=True) if not logs.empty else []):
        roles = [r for r in core.ROLE_STYLES if r in set(sub.role)]
        fig, axes = core.figure(1, len(roles), height=2.6)
        for ax, role in zip(axes[0], roles, strict=True):
            colour = core.ROLE_STYLES[role][0]
            for i, (seed, s) in enumerate(sub[sub.role == role].groupby("seed", sort=True)):
                ax.plot(s.step, s.loss, color=colour, linestyle=SEED_LINES[i % 4], marker=SEED_MARKERS[i % 5],
                        ms=3, lw=1.4, label=f"seed {seed}")
            chance = _chance_loss(ctx.training, pair, role)
            if chance is not None:  # ln(batch x (1 + negatives)): a loss above it ranks no better than guessing
                ax.axhline(chance, color=core.STYLES["chance"][0], linestyle=core.STYLES["chance"][1], lw=1.2,
                           label="chance: ln(batch x (1 + negatives))")
            ax.set_title(role)
            ax.set_xlabel("optimiser step")
            ax.xaxis.set_major_locator(_integer_ticks(5))
        axes[0][0].set_ylabel("training loss")
        core.shared_legend(fig, axes, ncols=4)
        caption = (f"Contrastive training of every embedder of pair {pair}: the loss logged per optimiser step "
                   "(train_log.jsonl), one panel per role, one line per seed; null: the chance loss ln(batch x (1 + "
                   "negatives)) where the training summaries give it. A loss that does not fall below it marks an "
                   "embedder that did not learn (the training-health table applies the rule). Training records: no "
                   "interval.")
        figs.append(core.save(fig, sub, out, f"training_{pair}", caption))
    return figs


def _chance_loss(training: pd.DataFrame, pair: str, role: str) -> float | None:
    """The chance loss of a role's embedders (their training summaries; one value per recipe), or None."""
    if training.empty or "chance_loss" not in training:
        return None
    rows = training[(training.pair == pair) & (training.role == role)].chance_loss.dropna()
    return float(rows.iloc[0]) if len(rows) else None


def plot_reward_curves(ctx: Context, out: Path) -> list[Figure]:
    """Per pair: the mean RL reward per GRPO step of every recipe-built sibling that kept one."""
    logs, figs = reward_logs(ctx.model_dirs), list[Figure]()
    for pair, sub in (logs.groupby("pair", sort=True) if not logs.empty else []):
        fig, axes = core.figure(1, 1, height=2.8)
        ax = axes[0][0]
        for role, s in sub.groupby("role", sort=True):
            colour, ls, marker = core.ROLE_STYLES.get(role.split("@")[0], core.ROLE_STYLES["reason"])
            ax.plot(s.step, s.reward, color=colour, linestyle=ls, marker=marker, ms=3, lw=1.6,
                    label=f"{role}: mean reward")
            if s.reward_std.notna().any():
                ax.fill_between(s.step, s.reward - s.reward_std, s.reward + s.reward_std, color=colour, alpha=0.2,
                                linewidth=0, label=f"{role}: ± std across completions")
        ax.set_xlabel("GRPO step")
        ax.xaxis.set_major_locator(_integer_ticks(8))
        ax.set_ylabel("reward")
        core.shared_legend(fig, axes, ncols=2)
        steps = int(sub.step.max()) if len(sub) else 0
        caption = (f"RL reward of every recipe-built RLVR sibling of pair {pair} per GRPO step (up to step {steps}; "
                   "reward_curve.tsv, TRL's log history): the mean reward of a step's sampled completions (the pass "
                   "rate for a 0/1 reward); band: their std across completions, a spread, not an interval of the "
                   "mean. No null. A flat curve at 0 marks an RL run that learned nothing.")
        figs.append(core.save(fig, sub, out, f"reward_{pair}", caption))
    return figs


