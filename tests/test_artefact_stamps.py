"""Artefacts prove what they are (issue 20, section 1): every reader checks each file against what its rule expects
(the model and layer a file is stamped with, the content hash it records) and refuses a mismatch with one line naming
the file and the job to re-run, instead of trusting the file's path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hrsa.activations import load_layer, part_path
from hrsa.cli import main
from hrsa.errors import DataError

SPEC = {"granularity": "sentence", "max_length": 24}
LAYERS = ["0", "1", "2"]
SETTINGS = json.dumps({"bootstrap": 0, "permutations": 0, "knn_k": [5, 10]})


def extract(model: Path, probe: Path, out: Path, model_id: str) -> Path:
    assert main(["extract", "--model", str(model), "--model-id", model_id, "--probe", str(probe), "--config",
                 json.dumps(SPEC), "--layers", ",".join(LAYERS), "--device", "cpu", "--out", str(out)]) == 0
    return out


def graphs(acts: Path, out: Path) -> Path:
    assert main(["knn", "--activations", str(acts), "--layers", ",".join(LAYERS), "--config",
                 json.dumps({"knn_k": [10]}), "--out-dir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_backbone, probe) -> Path:
    """Activations and kNN graphs of t.base, t.reason and t.sft laid out as results/ holds them (one backbone under
    three model ids: cheap, and their stamps are all that tells them apart)."""
    root = tmp_path_factory.mktemp("stamps")
    for role in ("base", "reason", "sft"):
        extract(tiny_backbone, probe, root / "acts" / f"t.{role}", f"t.{role}")
        graphs(root / "acts" / f"t.{role}", root / "knn" / f"t.{role}")
    return root


@pytest.fixture()
def wd(built, tmp_path) -> Path:
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    return tmp_path


def compare(wd: Path, comparison: str, capsys) -> tuple[int, str]:
    c = comparison.split(".", 1)[1]
    left, right = (f"t.{side}" for side in c.split("~"))
    capsys.readouterr()
    rc = main(["compare", "--left", str(wd / "acts" / left), "--right", str(wd / "acts" / right),
               "--knn-left", str(wd / "knn" / left), "--knn-right", str(wd / "knn" / right), "--config", SETTINGS,
               "--comparison", comparison, "--out", str(wd / f"{comparison}.parquet")])
    return rc, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------- 1: another model's activations
def test_another_models_activations_and_graphs_are_refused_by_the_comparison(wd, capsys):
    rc, _ = compare(wd, "t.base~reason", capsys)
    assert rc == 0  # the genuine artefacts compare
    for kind in ("acts", "knn"):
        shutil.rmtree(wd / kind / "t.reason")
        shutil.copytree(wd / kind / "t.sft", wd / kind / "t.reason")
    (wd / "t.base~reason.parquet").unlink()
    rc, err = compare(wd, "t.base~reason", capsys)
    line = one_line(err)
    assert rc == 2 and str(wd / "acts/t.reason") in line and "'t.sft', not 't.reason'" in line
    assert "re-run its extract job" in line and not (wd / "t.base~reason.parquet").exists()
    rc, err = compare(wd, "t.base~sft", capsys)  # the copied directory still serves the comparison it belongs to
    assert rc == 0, err


def test_a_comparison_name_that_names_no_models_is_refused(wd, capsys):
    rc, err = compare(wd, "t.base~reason", capsys)
    assert rc == 0
    capsys.readouterr()
    rc = main(["compare", "--left", str(wd / "acts/t.base"), "--right", str(wd / "acts/t.reason"), "--knn-left",
               str(wd / "knn/t.base"), "--knn-right", str(wd / "knn/t.reason"), "--config", SETTINGS,
               "--comparison", "t.x~y", "--out", str(wd / "x.parquet")])
    assert rc == 2 and "not a comparison name" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------ 2: swapped layers
def test_swapped_layer_folders_are_refused_naming_the_shard(wd, capsys):
    acts = wd / "acts/t.base"
    (acts / "layer=1").rename(acts / "swap")
    (acts / "layer=2").rename(acts / "layer=1")
    (acts / "swap").rename(acts / "layer=2")
    rc, err = compare(wd, "t.base~reason", capsys)
    line = one_line(err)
    shard = part_path(acts, "1")
    assert rc == 2 and str(shard) in line and "stamped layer '2'" in line and "its folder says '1'" in line
    assert "re-run its extract job" in line and not (wd / "t.base~reason.parquet").exists()
    rc = main(["knn", "--activations", str(acts), "--layer", "1", "--out", str(wd / "g.npz")])
    assert rc == 2 and str(shard) in one_line(capsys.readouterr().err) and not (wd / "g.npz").exists()
    with pytest.raises(DataError, match="stamped layer '2'"):
        load_layer(acts, "1")
    assert load_layer(acts, "0").shape == (240, 32)  # the layer left in place still reads


def test_a_shard_of_another_model_is_refused(wd, capsys):
    """A shard copied from another model's directory into the same layer folder: its own stamp names its model."""
    shutil.copy(part_path(wd / "acts/t.sft", "1"), part_path(wd / "acts/t.base", "1"))
    with pytest.raises(DataError, match=r"stamped model_id 't\.sft', but its _meta\.json says 't\.base'"):
        load_layer(wd / "acts/t.base", "1")


def test_recorded_layer_hash_is_checked_against_the_shards(wd, other_activations, capsys):
    """A shard replaced by one of the same model id and layer but other content (re-extracted from rebuilt weights):
    its stamp fits, the recorded layer hash does not; before, the graphs, stamped with that recorded hash, passed."""
    shutil.copy(part_path(other_activations, "1"), part_path(wd / "acts/t.base", "1"))
    rc, err = compare(wd, "t.base~reason", capsys)
    line = one_line(err)
    assert rc == 2 and str(wd / "acts/t.base/layer=1") in line and "not the ones extraction recorded" in line
    assert "re-run its extract job" in line and not (wd / "t.base~reason.parquet").exists()
    rc = main(["knn", "--activations", str(wd / "acts/t.base"), "--layer", "1", "--out", str(wd / "g.npz")])
    assert rc == 2 and "not the ones extraction recorded" in one_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def other_activations(tmp_path_factory, tiny_backbone, probe) -> Path:
    """t.base's activations extracted from perturbed weights (same model id, rows and layers)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    root = tmp_path_factory.mktemp("other")
    shutil.copytree(tiny_backbone, root / "model")
    weights = load_file(root / "model/model.safetensors")
    rng = np.random.default_rng(1)
    save_file({k: (v + 0.05 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in weights.items()},
              root / "model/model.safetensors", metadata={"format": "pt"})
    return extract(root / "model", probe, root / "acts", "t.base")



# ------------------------------------------------------------------------- 3 and 4: the report's tables and scores
MODELS = [f"t.{role}-E.s{seed}" for role in ("base", "reason", "sft") for seed in (0, 1)]


@pytest.fixture()
def report_inputs(tmp_path) -> Path:
    """Evaluation results and HRSA tables as `hrsa evaluate` and `hrsa compare` write them (each names its model or
    comparison itself), small enough for a real report."""
    import pandas as pd

    for i, model in enumerate(MODELS):
        path = tmp_path / "eval" / model / "HrsaLee50.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"model": {"name": f"hrsa/{model}", "revision": "r"},
                                    "results": {"HrsaLee50": {"main_score": 0.5 + 0.01 * i,
                                                              "main_score_name": "spearman"}}}))
    for name, value in (("t.base~reason", 0.95), ("t.base~sft", 0.70)):
        rows = [{"comparison": name, "layer_x": lx, "layer_y": ly, "metric": "cka-linear-biased",
                 "value": value if lx == ly else 0.5, "n": 240} for lx in ("0", "1") for ly in ("0", "1")]
        path = tmp_path / "hrsa" / "lines" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(path)
    return tmp_path


def report(root: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["report", "--hrsa", *map(str, sorted((root / "hrsa").glob("*/*.parquet"))), "--eval-dir",
               str(root / "eval"), "--models", *MODELS, "--tasks", "HrsaLee50", "--out", str(root / "report")])
    return rc, capsys.readouterr().err


def refused(root: Path, capsys) -> str:
    """The one error line of a report that must refuse its inputs (exit 2, nothing written)."""
    rc, err = report(root, capsys)
    line = one_line(err)
    assert rc == 2 and not (root / "report").exists(), err
    return line


def test_another_comparisons_table_is_refused_by_the_report(report_inputs, capsys):
    rc, err = report(report_inputs, capsys)
    assert rc == 0, err
    shutil.rmtree(report_inputs / "report")
    target = report_inputs / "hrsa/lines/t.base~reason.parquet"
    shutil.copy(report_inputs / "hrsa/lines/t.base~sft.parquet", target)
    line = refused(report_inputs, capsys)
    assert str(target) in line and "comparison t.base~sft, not t.base~reason" in line
    assert "re-run its compare job" in line


def test_another_models_scores_are_refused_by_the_report(report_inputs, capsys):
    target = report_inputs / "eval/t.reason-E.s0/HrsaLee50.json"
    shutil.copy(report_inputs / "eval/t.base-E.s0/HrsaLee50.json", target)
    line = refused(report_inputs, capsys)
    assert str(target) in line and "'hrsa/t.base-E.s0', not 'hrsa/t.reason-E.s0'" in line
    assert "re-run the evaluate job of t.reason-E.s0" in line
    target.write_text('{"model": {"name": "hrsa/t.reason-E.s0"}, "resu')  # truncated: one line too
    line = refused(report_inputs, capsys)
    assert "truncated or unreadable" in line and str(target) in line


# ------------------------------------------------------------------------------ 5: weights changed, revision kept
@pytest.fixture(scope="module")
def embedders(tiny_backbone, tmp_path_factory) -> Path:
    """Two saved embedders of one recipe, seeds 0 and 1 (different weights), each with its revision.txt made as
    `hrsa train` makes it (the content hash of its weights); built from the tiny backbone without training."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from hrsa.io import sha256_tree

    root = tmp_path_factory.mktemp("embedders")
    shape = {"attention": "bidirectional", "pooling": "mean", "max_length": 32}
    for seed in (0, 1):
        out = root / f"t.base-E.s{seed}"
        assert main(["baseline", "--backbone", str(tiny_backbone), "--config", json.dumps(shape), "--model-id",
                     "t.base", "--out", str(out)]) == 0
        weights = load_file(out / "model.safetensors")
        rng = np.random.default_rng(seed)
        save_file({k: (v + 0.02 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in weights.items()},
                  out / "model.safetensors", metadata={"format": "pt"})
        (out / "revision.txt").write_text(sha256_tree(out, ("*.safetensors",))[:16] + "\n")  # as save_embedder
    return root


def evaluate(model: Path, out: Path, cache: Path, capsys) -> tuple[int, str]:
    """`hrsa evaluate` as the evaluate rule runs it: the revision is what `cat revision.txt` gives."""
    capsys.readouterr()
    rc = main(["evaluate", "--model", str(model), "--task", "HrsaLee50", "--model-name", f"hrsa/{model.name}",
               "--revision", (model / "revision.txt").read_text().strip(), "--cache", str(cache), "--device", "cpu",
               "--out-dir", str(out), "--out", str(out / "groups/tasks-saved-0.json")])
    return rc, capsys.readouterr().err


def test_changed_weights_under_a_kept_revision_are_not_scored_from_the_cache(embedders, tmp_path, capsys):
    s0, s1 = tmp_path / "t.base-E.s0", embedders / "t.base-E.s1"
    shutil.copytree(embedders / "t.base-E.s0", s0)
    rc, err = evaluate(s0, tmp_path / "eval/t.base-E.s0", tmp_path / "cache", capsys)
    assert rc == 0, err
    shutil.copy(s1 / "model.safetensors", s0 / "model.safetensors")  # weights of s1, revision.txt of s0
    shutil.rmtree(tmp_path / "eval")
    rc, err = evaluate(s0, tmp_path / "eval/t.base-E.s0", tmp_path / "cache", capsys)
    line = one_line(err)
    assert rc == 2 and str(s0) in line and "re-run its train_embedder job" in line
    assert (s1 / "revision.txt").read_text().strip() in line  # the revision the weights hash to
    assert not (tmp_path / "eval").exists()  # no cached score of the old weights came back
    rc, err = evaluate(s1, tmp_path / "eval/t.base-E.s1", tmp_path / "cache", capsys)
    assert rc == 0, err  # s1's own directory is scored


def test_a_revision_other_than_the_one_recorded_is_refused(embedders, tmp_path):
    from hrsa.embedder import check_revision

    model = embedders / "t.base-E.s0"
    check_revision(model, (model / "revision.txt").read_text().strip())
    with pytest.raises(DataError, match="is not the revision .*revision.txt records"):
        check_revision(model, "0123456789abcdef")
    check_revision(tmp_path, "any-label")  # not saved by hrsa (no revision.txt): scored under the label given
