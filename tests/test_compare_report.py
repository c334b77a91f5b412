"""HRSA compare over real Parquet shards and kNN graphs (known answers), and the report's tables (known means)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hrsa.activations import LayerWriter, part_path, row_hash
from hrsa.cli import main

N, D = 120, 16
ROLE = {"x": "base", "rot": "reason", "noise": "sft"}  # the fixture's models as the roles of pair p


def write_acts(root: Path, layers: dict[str, np.ndarray], model_id: str, probe_hash: str = "p") -> None:
    """Activation directory as extraction writes it (sentence level: one row per text)."""
    text_id = np.arange(N, dtype=np.int32)
    pos = np.full(N, -1, np.int32)
    meta = {"model_id": model_id, "probe_hash": probe_hash, "granularity": "sentence", "layers": list(layers),
            "n_rows": N, "row_hash": row_hash(text_id, pos)}
    for layer, X in layers.items():
        w = LayerWriter(part_path(root, layer), layer, X.shape[1], "float32", meta)
        w.add(text_id, pos, pos, X)
        w.close()
    (root / "_meta.json").write_text(json.dumps(meta))


def knn(acts: Path, layer: str, out: Path) -> None:
    assert main(["knn", "--activations", str(acts), "--layer", layer, "--config", json.dumps({"knn_k": [20]}),
                 "--out", str(out / f"layer={layer}.npz")]) == 0


@pytest.fixture()
def setup(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], N // 3)
    # layer 0 carries the class structure; layers 1 and 2 are independent noise
    base = {str(i): rng.normal(size=(N, D)) + 3 * (i == 0) * (labels[:, None] == "a") for i in range(3)}
    Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    rotated = {k: 2.0 * v @ Q + 1.0 for k, v in base.items()}  # CKA- and kNN-invariant transform
    noise = {k: rng.normal(size=(N, D)) for k in base}
    probe = tmp_path / "probe.jsonl"
    probe.write_text("".join(json.dumps({"id": i, "text": f"t{i}", "label": str(lab)}) + "\n"
                             for i, lab in enumerate(labels)))
    for name, layers in (("x", base), ("rot", rotated), ("noise", noise)):
        write_acts(tmp_path / "acts" / name, layers, f"p.{ROLE[name]}")
        for layer in layers:
            knn(tmp_path / "acts" / name, layer, tmp_path / "knn" / name)
    return tmp_path


def run_compare(wd: Path, left: str, right: str, settings: dict) -> pd.DataFrame:
    """`hrsa compare` with the fixture's graphs (20 neighbours: knn_k up to 10 fits Jaccard and retention)."""
    settings = {"knn_k": [5, 10], **settings}
    out = wd / f"{left}~{right}.parquet"
    assert main(["compare", "--left", str(wd / "acts" / left), "--right", str(wd / "acts" / right),
                 "--knn-left", str(wd / "knn" / left), "--knn-right", str(wd / "knn" / right),
                 "--probe", str(wd / "probe.jsonl"), "--config", json.dumps(settings),
                 "--comparison", f"p.{ROLE[left]}~{ROLE[right]}", "--out", str(out)]) == 0
    return pd.read_parquet(out)


def test_invariant_transform_gives_identity_scores(setup):
    df = run_compare(setup, "x", "rot", {"bootstrap": 0, "permutations": 0})
    diag = df[df.layer_x == df.layer_y].set_index(["layer_x", "metric"])["value"]
    for layer in (0, 1, 2):
        assert diag[(layer, "cka-linear-biased")] == pytest.approx(1.0, abs=1e-5)
        assert diag[(layer, "knn-jaccard-k10-cosine")] < 1.0 + 1e-9  # cosine kNN is not translation-invariant
        assert diag[(layer, "procrustes-rvr")] > 0  # scaling and translation are not undone by a rotation
    # the off-diagonal CKA grid is filled: 3 x 3 layers
    assert len(df[df.metric == "cka-linear-biased"]) == 9
    off = df[(df.metric == "cka-linear-biased") & (df.layer_x != df.layer_y)].value
    assert (off < 0.9).all()  # independent layers are not similar


def test_layers_are_int64_and_sort_numerically_with_the_probe_named(setup, tmp_path):
    """layer_x / layer_y are int64 (pooled = -1) beside their names, and the table names its probe set; the report
    reads the names back."""
    from hrsa.compare import write_rows
    from hrsa.report.load import load_hrsa

    df = run_compare(setup, "x", "rot", {"bootstrap": 0, "permutations": 0})
    assert df.layer_x.dtype == "int64" and df.layer_y.dtype == "int64" and set(df.probe) == {"probe"}
    assert set(df.layer_x) == {0, 1, 2} and (df.layer_x.astype(str) == df.layer_x_name).all()
    names = [str(i) for i in range(12)] + ["pooled"]
    rows = [{"comparison": "p.base~reason", "layer_x": name, "layer_y": name, "metric": "cka-linear-biased",
             "value": 1.0, "n": 3} for name in reversed(names)]
    out = tmp_path / "works" / "p.base~reason.parquet"
    out.parent.mkdir()
    write_rows(rows, out, probe="works")
    table = pd.read_parquet(out)
    assert table.layer_x.dtype == "int64" and set(table.probe) == {"works"}
    assert table.sort_values("layer_x").layer_x_name.tolist() == ["pooled", *names[:-1]]  # 0, 1, 2, ..., 10, 11
    back = load_hrsa([out])
    assert back.layer_x.tolist() == list(reversed(names)) and "layer_x_name" not in back


def test_self_comparison_and_noise(setup):
    same = run_compare(setup, "x", "x", {"bootstrap": 10, "permutations": 5})
    d = same[same.layer_x == same.layer_y].set_index(["layer_x", "metric"])
    assert d.loc[(1, "knn-jaccard-k10-cosine"), "value"] == pytest.approx(1.0)
    assert d.loc[(1, "procrustes-rvr"), "value"] == pytest.approx(0.0, abs=1e-5)
    assert (d.loc[(1, "probe-transfer-target-accuracy"), "value"]
            == d.loc[(1, "probe-transfer-source-accuracy"), "value"])
    assert d.loc[(1, "cka-linear-biased"), "null_mean"] < 0.3  # chance level reported beside the score
    noise = run_compare(setup, "x", "noise", {"bootstrap": 0, "permutations": 0})
    n = noise[noise.layer_x == noise.layer_y].set_index(["layer_x", "metric"])["value"]
    assert n[(1, "cka-linear-biased")] < 0.4 and n[(1, "knn-jaccard-k10-cosine")] < 0.2


def test_misaligned_rows_are_refused(setup, capsys):
    meta = json.loads((setup / "acts/noise/_meta.json").read_text())
    meta["row_hash"] = "other"
    (setup / "acts/noise/_meta.json").write_text(json.dumps(meta))
    rc = main(["compare", "--left", str(setup / "acts/x"), "--right", str(setup / "acts/noise"),
               "--knn-left", str(setup / "knn/x"), "--knn-right", str(setup / "knn/noise"),
               "--comparison", "p.base~sft", "--out", str(setup / "bad.parquet")])
    assert rc == 2 and "do not align" in capsys.readouterr().err
    assert not (setup / "bad.parquet").exists()


def test_report_tables(tmp_path):
    from hrsa.report import build_report, grid_summary

    scores = {("base", 0): 0.50, ("base", 1): 0.52, ("reason", 0): 0.55, ("reason", 1): 0.58}
    for (role, seed), value in scores.items():
        p = tmp_path / "eval" / f"t.{role}-E.s{seed}" / "TaskA.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"model": {"name": f"hrsa/t.{role}-E.s{seed}"},
                                 "results": {"TaskA": {"main_score": value, "main_score_name": "ndcg"}}}))
    for seed in (0, 1):
        rows = [{"comparison": f"t.base-E~reason-E.s{seed}", "layer_x": lx, "layer_y": ly,
                 "metric": "cka-linear-biased", "value": 0.9 + 0.01 * seed if lx == ly else 0.5}
                for lx in ("0", "1") for ly in ("0", "1")]
        p = tmp_path / "hrsa" / "probe" / f"t.base-E~reason-E.s{seed}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(p)
    index = build_report(sorted((tmp_path / "hrsa").glob("*/*.parquet")), sorted((tmp_path / "eval").glob("*/*.json")),
                         {}, tmp_path / "report", grid=grid_summary({"pairs": [{"name": "t"}], "seeds": [0, 1]}))
    emb = pd.read_csv(tmp_path / "report/tables/embedding_scores.tsv", sep="\t")
    reason = emb[(emb.role == "reason-E") & (emb.task == "TaskA")].iloc[0]
    assert reason["mean"] == pytest.approx(0.565)
    assert reason["delta"] == pytest.approx(0.055)  # paired: (0.05 + 0.06) / 2
    assert reason["delta_std"] == pytest.approx(np.std([0.05, 0.06], ddof=1))
    hr = pd.read_csv(tmp_path / "report/tables/hrsa_layers.tsv", sep="\t")
    assert hr[hr.layer == 0]["mean"].iloc[0] == pytest.approx(0.905)
    text = index.read_text()
    assert "56.5 ± 2.1" in text and "TaskA" in text  # per-task scores on Table 1's ×100 scale, 3 significant digits
    assert list((tmp_path / "report/figures").glob("cka_*.png"))
