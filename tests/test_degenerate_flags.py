"""Degenerate estimates are flagged, not plotted as findings (issue 22, item 5): layer 0 of a token probe holds one
vector per token id, so many rows coincide with their first neighbour; its TwoNN and kNN rows carry the flag
duplicate-rows, the report's figures mark those points and their TSVs carry the flag; TwoNN's fit never returns inf."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrsa.cli import main
from hrsa.errors import HrsaError
from hrsa.metrics import twonn_from_ratios
from hrsa.metrics.manifold import DUPLICATE_FLAG, DUPLICATE_SHARE, coincident_share, duplicate_flag
from hrsa.runtime import limit_threads
from synthetic import write_activations

limit_threads(1)


@pytest.fixture(scope="module")
def token_table(tmp_path_factory) -> Path:
    """compare's table of two models on a token probe: 40 texts of 4-9 tokens from a Zipf vocabulary of 30 ids;
    layer 0 is each token's embedding (duplicates: one vector per id), layer 1 adds per-row context."""
    wd = tmp_path_factory.mktemp("degenerate")
    rng = np.random.default_rng(3)
    text = np.repeat(np.arange(40), rng.integers(4, 10, size=40))
    p = 1.0 / np.arange(1, 31)
    tokens = rng.choice(30, size=len(text), p=p / p.sum())
    for model, name in (("p.base", "a"), ("p.reason", "b")):
        emb = rng.normal(size=(30, 16))
        layers = {"0": emb[tokens], "1": emb[tokens] + 0.7 * rng.normal(size=(len(text), 16))}
        write_activations(wd / "acts" / name, layers, text, model)
        for layer in layers:
            assert main(["knn", "--activations", str(wd / "acts" / name), "--layer", layer,
                         "--config", json.dumps({"knn_k": [3]}),
                         "--out", str(wd / "knn" / name / f"layer={layer}.npz")]) == 0
    out = wd / "hrsa" / "tokens" / "p.base~reason.parquet"
    out.parent.mkdir(parents=True)
    assert main(["compare", "--left", str(wd / "acts/a"), "--right", str(wd / "acts/b"), "--knn-left",
                 str(wd / "knn/a"), "--knn-right", str(wd / "knn/b"), "--comparison", "p.base~reason",
                 "--config", json.dumps({"knn_k": [3], "bootstrap": 30, "blocks": 10, "permutations": 0}),
                 "--out", str(out)]) == 0
    return out


def test_token_layer_0_twonn_and_knn_rows_are_flagged(token_table: Path) -> None:
    df = pd.read_parquet(token_table)
    diag = df[df.layer_x == df.layer_y]
    graph = diag[diag.metric.str.startswith(("twonn-", "knn-"))]
    assert set(graph.metric) >= {"twonn-id-left", "twonn-id-right", "twonn-id-absdiff-cosine",
                                 "knn-jaccard-k3-cosine"}
    flagged = graph.flag.str.split(";").map(lambda fs: DUPLICATE_FLAG in fs)
    assert flagged[graph.layer_x == 0].all()  # every TwoNN and kNN row of the duplicate layer
    assert not flagged[graph.layer_x == 1].any()  # context separates the rows: no flag
    # the estimate never comes out infinite (it used to: ratios r2 / r1 of float32 noise, or all ties)
    assert not np.isinf(graph.value).any()
    # other families are not flagged for duplicates
    assert not diag[~diag.metric.str.startswith(("twonn-", "knn-"))].flag.str.contains(DUPLICATE_FLAG).any()


def test_float32_graph_duplicates_are_detected_as_coincident() -> None:
    """A stored graph's float32 similarity of identical rows is 1 - a few ulps (distance ~5e-4), not 1: still a
    duplicate; a layer with up to DUPLICATE_SHARE of such rows is not flagged."""
    from hrsa.knn import graph_distances, knn_graph

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 24)).astype(np.float32)
    dup = np.concatenate([x, x[:60]])
    d = graph_distances(knn_graph(dup, 2, "cosine")[0], "cosine")
    assert coincident_share(d) == pytest.approx(120 / 260)
    assert duplicate_flag(d) == DUPLICATE_FLAG
    few = np.concatenate([x, x[:1]])  # 2 of 201 rows: 1.0% ≤ DUPLICATE_SHARE
    assert coincident_share(graph_distances(knn_graph(few, 2, "cosine")[0])) <= DUPLICATE_SHARE
    assert duplicate_flag(graph_distances(knn_graph(few, 2, "cosine")[0])) == ""
    assert duplicate_flag(graph_distances(knn_graph(x, 2, "cosine")[0])) == ""


def test_twonn_fraction_one_and_all_ties_are_errors_not_inf() -> None:
    mu = np.exp(np.random.default_rng(1).exponential(1 / 4.0, size=500))  # Pareto ratios of dimension 4
    assert twonn_from_ratios(mu) == pytest.approx(4.0, rel=0.15)
    for fraction in (1.0, 1.5, 0.0):
        with pytest.raises(HrsaError, match=r"fraction must be in \(0, 1\)") as e:
            twonn_from_ratios(mu, fraction=fraction)
        assert "\n" not in str(e.value)
    for method in ("fit", "mle"):
        with pytest.raises(HrsaError, match="tied neighbours"):
            twonn_from_ratios(np.ones(50), method=method)  # type: ignore[arg-type]


def test_figures_mark_flagged_points_and_their_tsvs_carry_the_flag(token_table: Path, tmp_path: Path) -> None:
    from hrsa.report.context import Context
    from hrsa.report.figures import FLAGGED, plot_layer_curves
    from hrsa.report.figures_more import plot_intrinsic_dimension
    from hrsa.report.layers import hrsa_table, intrinsic_dimension
    from hrsa.report.load import load_hrsa

    hr = load_hrsa([token_table])
    ids = intrinsic_dimension(hr)
    assert set(ids.role) == {"base", "reason"}
    dup = ids.flag.str.contains(DUPLICATE_FLAG)
    assert dup[ids.layer == "0"].all() and not dup[ids.layer == "1"].any()
    [png] = [f.path for f in plot_intrinsic_dimension(Context.of(ids=ids), tmp_path)]
    plotted = pd.read_csv(png.with_suffix(".tsv"), sep="\t", dtype={"layer": str}, keep_default_na=False)
    assert "flag" in plotted
    assert plotted[plotted.layer == "0"].flag.str.contains(DUPLICATE_FLAG).all()
    assert not plotted[plotted.layer == "1"].flag.str.contains(DUPLICATE_FLAG).any()
    ctx = Context.of(tab=hrsa_table(hr), settings={"headline_metrics": ["cka-linear-biased"]})
    paths = [f.path for f in plot_layer_curves(ctx, tmp_path)]
    [knn] = [p for p in paths if p.name.startswith("knn_")]
    curve = pd.read_csv(knn.with_suffix(".tsv"), sep="\t", dtype={"layer": str}, keep_default_na=False)
    back = curve[curve.series.str.startswith("backbones")]
    assert back[back.layer == "0"].flag.str.contains(DUPLICATE_FLAG).all()
    assert not back[back.layer == "1"].flag.str.contains(DUPLICATE_FLAG).any()
    assert FLAGGED == "flagged: duplicate rows"


def test_figure_legend_names_the_flag(token_table: Path, tmp_path: Path, monkeypatch) -> None:
    """The intrinsic-dimension figure draws hollow markers with the legend entry FLAGGED."""
    import hrsa.report.figures as figures
    from hrsa.report.context import Context
    from hrsa.report.figures_more import plot_intrinsic_dimension
    from hrsa.report.layers import intrinsic_dimension
    from hrsa.report.load import load_hrsa

    seen: list[list[str]] = []

    def keep(fig, data, out, name, caption):
        seen.append([t.get_text() for legend in fig.legends for t in legend.get_texts()])  # one figure legend
        hollow = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_markerfacecolor() in ("white", "w")]
        seen.append([str(len(h.get_xdata())) for h in hollow])
        return figures.pyplot().close(fig)

    monkeypatch.setattr(figures, "save", keep)
    plot_intrinsic_dimension(Context.of(ids=intrinsic_dimension(load_hrsa([token_table]))), tmp_path)
    legend, hollow = seen
    assert figures.FLAGGED in legend and hollow == ["1", "1"]  # layer 0 of base and of reason
