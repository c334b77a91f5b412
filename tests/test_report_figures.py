"""Every figure of the report, drawn on the demo-like fixture, is fit to publish: Okabe-Ito colours only, backbones
and embedders told apart by colour and line style, one legend per figure (a figure legend, none per axes), text of
at least 9 pt on a page-width figure, no internal metric id in any text, and no text clipped (each visible text
artist's window extent lies inside the figure)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text

sys.path.insert(0, str(Path(__file__).parent))
from hrsa.metrics.registry import REGISTRY  # noqa: E402
from test_report_demo import build_demo, run_report  # noqa: E402


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{figure name: the matplotlib Figure just before it is saved} of the whole report."""
    from hrsa.report import figures as core

    seen: dict[str, Any] = {}
    original = core.save

    def keep(fig: Any, data: Any, out: Path, name: str, caption: str) -> Any:
        fig.canvas.draw()
        seen[name] = {"fig": fig, "caption": caption, "texts": _texts(fig), "lines": _lines(fig),
                      "legends": len(fig.legends), "axes_legends": sum(ax.get_legend() is not None for ax in fig.axes),
                      "clipped": _clipped(fig), "width": fig.get_figwidth()}
        return original(fig, data, out, name, caption)

    root = tmp_path_factory.mktemp("figs")
    mp = pytest.MonkeyPatch()
    mp.setattr(core, "save", keep)
    try:
        run_report(root, build_demo(root))
    finally:
        mp.undo()
    return seen


def _texts(fig: Any) -> list[tuple[str, float]]:
    return [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _lines(fig: Any) -> list[tuple[str, str, str]]:
    return [(ln.get_label(), to_hex(ln.get_color()), ln.get_linestyle()) for ax in fig.axes for ln in ax.get_lines()
            if not ln.get_label().startswith("_")]


def _clipped(fig: Any) -> list[str]:
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    undrawn = set()  # tick labels of ticks outside the axis' view (matplotlib keeps them but does not draw them)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    undrawn |= {id(tick.label1), id(tick.label2)}
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in undrawn:
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(t.get_text())
    return out


def test_every_figure_is_drawn(drawn):
    kinds = {name.split("_")[0] for name in drawn}
    assert kinds == {"layers", "knn", "cka", "procrustes", "probe", "id", "training", "reward"}
    assert sum(name.startswith("procrustes") for name in drawn) == 1  # one figure: a panel per comparison kind


def test_no_text_is_clipped_and_text_is_readable_at_page_width(drawn):
    for name, f in drawn.items():
        assert not f["clipped"], f"{name}: text outside the figure: {f['clipped']}"
        assert f["width"] <= 6.5 + 1e-9, name
        small = [(t, s) for t, s in f["texts"] if s < 9]
        assert not small, f"{name}: text under 9 pt: {small[:5]}"


def test_one_shared_legend_per_figure_and_paper_names(drawn):
    ids = set(REGISTRY)
    for name, f in drawn.items():
        if name.startswith(("cka", "procrustes")):
            continue  # colour bars, no legend
        assert f["legends"] == 1 and f["axes_legends"] == 0, name
        texts = " ".join(t for t, _ in f["texts"])
        assert not [m for m in ids if m in texts], f"{name}: internal metric id in the figure"
        assert name.split("_")[0] in f["caption"] or "per layer" in f["caption"] or f["caption"]


def test_palette_tells_backbones_from_embedders_by_colour_and_line_style(drawn):
    from hrsa.report.figures import OKABE_ITO

    palette = {c.lower() for c in OKABE_ITO.values()}
    for name, f in drawn.items():
        for label, colour, _ in f["lines"]:
            assert colour.lower() in palette, f"{name}: {label} drawn in {colour}, not Okabe-Ito"
    curves = drawn["layers_tiny_works_reason"]["lines"]
    layers = {label.split(" ")[0]: (colour, style) for label, colour, style in curves}
    assert layers["backbones"][0] != layers["embedders"][0] and layers["backbones"][1] != layers["embedders"][1]
    ids = {label: (colour, style) for label, colour, style in drawn["id_tiny_prose"]["lines"]}
    assert ids["base"][1] != ids["base-E"][1] and ids["base"][0] != ids["base-E"][0]
    assert len({v for k, v in ids.items() if k != "flagged: duplicate rows"}) == 6  # six distinguishable lines
    assert "flagged: duplicate rows" in ids  # the token probe's layer 0 is marked


def test_captions_name_probe_layer_interval_and_null(drawn):
    for name, f in drawn.items():
        cap = f["caption"]
        assert not cap.endswith(".png") and len(cap.split()) > 20, name
        if name.startswith(("layers", "knn", "cka", "procrustes", "probe", "id")):
            assert "probe set" in cap and "layer" in cap, name
            assert "null" in cap.lower() and ("interval" in cap.lower()), name
    assert "chance = majority-class share 0.500" in drawn["probe_tiny_works"]["caption"]


def test_training_curves_draw_the_chance_loss_of_the_training_summaries(tmp_path, monkeypatch):
    """The training figure draws chance, ln(batch x (1 + negatives)) from each role's training summary: the line a
    loss must fall below for the embedder to count as learned."""
    import json

    from hrsa.report import figures as core
    from hrsa.report.context import Context
    from hrsa.report.figures_more import plot_training_curves
    from hrsa.report.training import load_training

    d = tmp_path / "tiny.base-E.s0"
    d.mkdir()
    (d / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 5.0 - 0.2 * s}) + "\n"
                                               for s in range(1, 11)))
    summary = tmp_path / "tiny.base-E.s0.training.json"
    summary.write_text(json.dumps({"model": "tiny.base-E.s0", "steps": 10, "first_loss": 4.8, "last_loss": 3.0,
                                   "chance_loss": 4.852, "accuracy_before": 0.1, "accuracy_after": 0.3,
                                   "learned": True}))
    seen: dict[str, Any] = {}
    original = core.save

    def keep(fig: Any, data: Any, out: Path, name: str, caption: str) -> Any:
        seen["y"] = [tuple(line.get_ydata()) for ax in fig.axes for line in ax.get_lines()]
        seen["caption"] = caption
        return original(fig, data, out, name, caption)

    monkeypatch.setattr(core, "save", keep)
    ctx = Context.of(model_dirs=[d], training=load_training([summary]))
    assert len(plot_training_curves(ctx, tmp_path)) == 1
    assert (4.852, 4.852) in seen["y"] and "chance loss" in seen["caption"]
    seen.clear()
    plot_training_curves(Context.of(model_dirs=[d]), tmp_path)  # no summaries: no chance line
    assert (4.852, 4.852) not in seen["y"]
