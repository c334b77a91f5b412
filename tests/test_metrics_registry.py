"""Property tests generated from the registry's declarations: each declared invariance of each metric must hold
(transforming Y keeps the value); negative controls show the tests can fail."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from hrsa.errors import HrsaError
from hrsa.knn import knn_graph
from hrsa.metrics import INVARIANCES, REGISTRY, Metric, get_metric
from hrsa.runtime import limit_threads

limit_threads(1)
threadpool_limits(1)

N, D = 72, 8
LABELS = np.repeat(np.arange(3), N // 3)
PROPERTY = settings(max_examples=5, deadline=None, derandomize=True, database=None)


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Partly similar, uncentred X and Y, with labels that X (and so Y) can predict."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)) + 2.0 * np.eye(3, D)[LABELS] + rng.normal(size=D)
    y = x @ rng.normal(size=(D, D)) + 0.7 * rng.normal(size=(N, D)) + 1.0
    return x, y


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


Transform = Callable[[np.ndarray, np.random.Generator, float], np.ndarray]
TRANSFORMS: dict[str, Transform] = {
    "orthogonal": lambda y, rng, p: y @ _orthogonal(y.shape[1], rng),
    "isotropic-scaling": lambda y, rng, p: p * y,
    "translation": lambda y, rng, p: y + p * rng.normal(size=y.shape[1]),
    "permutation": lambda y, rng, p: y[:, rng.permutation(y.shape[1])],
}
CASES = [(name, inv) for name, m in sorted(REGISTRY.items()) for inv in sorted(m.invariances)]


def _hp(m: Metric) -> dict[str, object]:
    return {"labels": LABELS} if m.needs_labels else {}


def test_transforms_cover_invariance_vocabulary() -> None:
    assert set(TRANSFORMS) == INVARIANCES


@pytest.mark.parametrize(("name", "invariance"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
@PROPERTY
@given(seed=st.integers(0, 2**20), param=st.floats(0.05, 20.0))
def test_declared_invariance_holds(name: str, invariance: str, seed: int, param: float) -> None:
    m = REGISTRY[name]
    x, y = _data(seed)
    y2 = TRANSFORMS[invariance](y, np.random.default_rng(seed + 1), param)
    assert m(x, y2, **_hp(m)) == pytest.approx(m(x, y, **_hp(m)), rel=1e-6, abs=1e-8)


NEGATIVE = [
    ("dimwise-corr", "orthogonal"),
    ("knn-jaccard-k10-cosine", "anisotropic-scaling"),
    ("knn-retention-k10-cosine", "translation"),
    ("cka-linear-biased", "anisotropic-scaling"),
    ("procrustes-rvr", "isotropic-scaling"),
    ("procrustes-rie", "orthogonal"),
    ("probe-transfer-target-accuracy", "translation"),
]


@pytest.mark.parametrize(("name", "change"), NEGATIVE)
def test_negative_controls_change_the_value(name: str, change: str) -> None:
    m = REGISTRY[name]
    assert change not in m.invariances
    x, y = _data(7)
    rng = np.random.default_rng(8)
    if change == "anisotropic-scaling":
        y2 = y * np.exp(1.5 * rng.normal(size=D))
    elif change == "translation":
        y2 = y + 8.0 * rng.normal(size=D)
    else:
        y2 = TRANSFORMS[change](y, rng, 3.0)
    assert abs(m(x, y2, **_hp(m)) - m(x, y, **_hp(m))) > 1e-3


def test_registry_entries_are_well_formed() -> None:
    required = {"cka-linear-biased", "cka-linear-debiased", "dimwise-corr", "knn-jaccard-k5-cosine",
                "knn-jaccard-k10-cosine", "knn-jaccard-k50-cosine", "procrustes-rvr", "procrustes-cosine",
                "procrustes-rie", "procrustes-sparsity", "probe-transfer-target-accuracy"}
    assert required <= set(REGISTRY)
    for name, m in REGISTRY.items():
        assert m.name == name and m.description
        assert m.level in ("representation", "geometry", "function")
        assert m.needs_labels == name.startswith("probe-transfer")
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown invariances"):
        Metric("x", lambda X, Y: 0.0, frozenset({"affine"}), "representation", False, True, "bad")


def test_registry_call_checks_hyperparameters() -> None:
    x, y = _data(1)
    with pytest.raises(HrsaError, match="needs labels"):
        REGISTRY["probe-transfer-target-accuracy"](x, y)
    with pytest.raises(HrsaError, match="does not take"):
        REGISTRY["cka-linear-biased"](x, y, k=5)
    with pytest.raises(HrsaError, match="unknown metric"):
        get_metric("cka-rbf")
    assert REGISTRY["cka-linear-biased"](x, y, labels=LABELS) == REGISTRY["cka-linear-biased"](x, y)


def test_knn_metrics_accept_precomputed_graphs() -> None:
    x, y = _data(2)
    ix, iy = knn_graph(x, 50)[1], knn_graph(y, 50)[1]
    for name in ("knn-jaccard-k5-cosine", "knn-jaccard-k50-cosine", "knn-retention-k10-cosine"):
        m = REGISTRY[name]
        assert m(x, y, indices_x=ix, indices_y=iy) == m(x, y)
    with pytest.raises(HrsaError, match="columns"):
        REGISTRY["knn-jaccard-k50-cosine"](x, y, indices_x=ix[:, :10], indices_y=iy)
