"""Heatmaps: linear CKA layer by layer before, after and after - before contrastive training, and the Procrustes
maps at the last layer (one panel per comparison kind)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import hrsa.report.figures as core
from hrsa.compare import load_procrustes_map
from hrsa.grid import parse_comparison
from hrsa.report.context import Context, Figure
from hrsa.report.layers import layer_key, siblings

SEQUENTIAL, DIVERGING = "cividis", "PuOr_r"  # colour-blind-safe maps: levels, and signed changes around 0


def _cka_matrix(grp: pd.DataFrame) -> pd.DataFrame:
    """Seed-averaged L x L linear CKA of one comparison kind (rows: left layers, columns: right layers)."""
    mat = grp.pivot_table(index="layer_x", columns="layer_y", values="value", aggfunc="mean")
    return mat.loc[sorted(mat.index, key=layer_key), sorted(mat.columns, key=layer_key)]


def _ticks(ax: Any, mat: pd.DataFrame) -> None:
    step = max(1, math.ceil(max(mat.shape) / 6))
    ax.set_xticks(range(0, mat.shape[1], step), list(mat.columns)[::step])
    ax.set_yticks(range(0, mat.shape[0], step), list(mat.index)[::step])


def plot_cka_matrices(ctx: Context, out: Path) -> list[Figure]:
    """Per pair, probe and sibling: L x L linear CKA before (base~X), after (base-E~X-E, mean over seeds) and the
    change after - before on the layers both have."""
    hr, figs = ctx.hr, list[Figure]()
    if hr.empty:
        return figs
    cka = hr[hr.metric == "cka-linear-biased"]
    for (probe, pair), sub in cka.groupby(["probe", "pair"], sort=True):
        for sib in siblings(sub):
            mats = {k: _cka_matrix(sub[sub.kind == k]) for k in (f"base~{sib}", f"base-E~{sib}-E")
                    if (sub.kind == k).any()}
            panels: list[tuple[str, pd.DataFrame]] = [
                (t, mats[k]) for t, k in (("before", f"base~{sib}"), ("after", f"base-E~{sib}-E")) if k in mats]
            if len(panels) == 2:
                b, a = panels[0][1], panels[1][1]
                rows_, cols_ = [x for x in a.index if x in b.index], [y for y in a.columns if y in b.columns]
                panels.append(("after − before", a.loc[rows_, cols_] - b.loc[rows_, cols_]))
            fig, axes = core.figure(1, len(panels), height=3.4)
            rows, level = [], None
            for ax, (title, mat) in zip(axes[0], panels, strict=True):
                diff = title.startswith("after −")
                lim = max(0.05, float(np.nanmax(np.abs(mat.to_numpy(dtype=float))))) if diff else 1.0
                im = ax.imshow(mat.to_numpy(dtype=float), vmin=-lim if diff else 0, vmax=lim,
                               cmap=DIVERGING if diff else SEQUENTIAL, origin="lower")
                _ticks(ax, mat)
                ax.tick_params(axis="x", labelrotation=90)
                ax.set_xlabel(f"{sib}{'-E' if title == 'after' else ''} layer")
                ax.set_ylabel(f"base{'-E' if title == 'after' else ''} layer")
                ax.set_title(title)
                if diff:
                    fig.colorbar(im, ax=ax, location="bottom", shrink=0.9, label="Δ linear CKA")
                else:
                    level = im
                panel = {"before": f"base~{sib}", "after": f"base-E~{sib}-E"}.get(title, "after - before")
                rows += [{"panel": panel, "layer_x": lx,
                          "layer_y": ly, "value": mat.loc[lx, ly]} for lx in mat.index for ly in mat.columns]
            if level is not None:
                fig.colorbar(level, ax=[a for a, (t, _) in zip(axes[0], panels, strict=True) if t != "after − before"],
                             location="bottom", shrink=0.6, label="linear CKA")
            seeds = sub[sub.kind == f"base-E~{sib}-E"].seed.nunique()
            caption = (f"Linear CKA (biased HSIC) between every layer of base and of {sib}, probe set {probe}, pair "
                       f"{pair}: before contrastive training (backbones), after (embedders, mean over {seeds} seeds) "
                       "and the change after - before (purple: more similar after). Point estimates: no interval "
                       "drawn; the diagonal's intervals and permutation null are in the per-layer curves.")
            figs.append(core.save(fig, pd.DataFrame(rows), out, f"cka_{pair}_{probe}_{sib}", caption))
    return figs


def plot_procrustes_maps(ctx: Context, out: Path) -> list[Figure]:
    """Per pair and probe: |O*| at the last layer, one panel per comparison kind (embedders: their lowest seed;
    noise floors X-E~X-E left out), each titled with the table's Procrustes RIE at that layer."""
    chosen: dict[tuple[str, str], dict[str, tuple[int, Path]]] = {}
    for path in ctx.procrustes_maps:
        c = parse_comparison(path.name.removesuffix(".procrustes.npz"))
        if c.left == c.right:  # two seeds of one recipe: the noise floor, not a comparison of models
            continue
        kinds = chosen.setdefault((c.pair, path.parent.name), {})
        seed = -1 if c.seed is None else c.seed
        if c.kind not in kinds or seed < kinds[c.kind][0]:
            kinds[c.kind] = (seed, path)
    figs, hr = list[Figure](), ctx.hr
    for (pair, probe), kinds in sorted(chosen.items()):
        maps = []
        for kind, (_, path) in kinds.items():
            pm = load_procrustes_map(path)
            if pm["O"].size:  # no layer had a map (e.g. models of different widths)
                maps.append((kind, path.name.removesuffix(".procrustes.npz"), pm))
        if not maps:
            continue
        ncols = min(3, len(maps))
        nrows = math.ceil(len(maps) / ncols)
        fig, axes = core.figure(nrows, ncols, height=2.4 * nrows + 0.4)
        rows, im = [], None
        for ax, (kind, comparison, pm) in zip(axes.ravel(), maps, strict=False):
            rie: Any = hr[(hr.comparison == comparison) & (hr.probe == probe) & (hr.metric == "procrustes-rie")
                     & (hr.layer_x == pm["layer"]) & (hr.layer_y == pm["layer"])]["value"] if not hr.empty else []
            im = ax.imshow(np.abs(pm["O"]), cmap=SEQUENTIAL, vmin=0, vmax=1, origin="upper")
            ax.set_title(f"{kind}\nRIE {rie.iloc[0]:.3f}" if len(rie) else f"{kind}\nRIE not in table")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("right model dimension")
            ax.set_ylabel("left model dimension")
            idx = np.indices(pm["O"].shape).reshape(2, -1)
            rows.append(pd.DataFrame({"kind": kind, "comparison": comparison, "layer": pm["layer"], "row": idx[0],
                                      "col": idx[1], "value": pm["O"].ravel(),
                                      "rie": float(rie.iloc[0]) if len(rie) else math.nan}))
        for ax in axes.ravel()[len(maps):]:
            ax.set_visible(False)
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="|O*| entry")
        layer = maps[0][2]["layer"]
        caption = (f"Orthogonal Procrustes map |O*| (rows: left model's dimensions, columns: right's) at the last "
                   f"layer ({layer}), pair {pair}, probe set {probe}, one panel per comparison kind (embedders: "
                   "one seed; the seed noise floors are left out). A diagonal map means a shared coordinate basis; "
                   "RIE (inverse row entropy of O*², 1 = bases equal up to signed permutation, 0 = fully rotated) "
                   "is the point estimate of the HRSA table; no interval or null is drawn.")
        figs.append(core.save(fig, pd.concat(rows, ignore_index=True), out, f"procrustes_{pair}_{probe}", caption))
    return figs
