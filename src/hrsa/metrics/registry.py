"""Canonical metric names -> one signature `metric(X, Y, **hp) -> float`, with declared invariances (property tests
are generated from them) and what a bootstrap or permutation null may resample. Keys are Snakemake `{metric}` values."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hrsa.errors import HrsaError
from hrsa.knn import knn_graph
from hrsa.metrics.cka import linear_cka
from hrsa.metrics.dimwise import dimwise_correlation
from hrsa.metrics.manifold import twonn_from_ratios, twonn_ratios_of
from hrsa.metrics.neighbours import jaccard_per_row, retention_per_row
from hrsa.metrics.probe import probe_predictions
from hrsa.metrics.procrustes import procrustes
from hrsa.schema import default

#: transformations of Y a metric may be invariant to; permutation = of feature columns, scaling by c > 0
INVARIANCES = frozenset({"orthogonal", "isotropic-scaling", "translation", "permutation"})
Level = Literal["representation", "geometry", "function"]
#: moments: the per-block sums of one streaming pass; same-width: X and Y of equal width; graph: the stored cosine kNN
#: graphs; l2-graph: Euclidean neighbours (not stored: such metrics run only on rows in memory); labels: probe labels
NEEDS = frozenset({"moments", "same-width", "graph", "l2-graph", "labels"})
ALL = INVARIANCES


@dataclass(frozen=True)
class Metric:
    """A registered metric. `units` (optional) gives per-unit values whose `reduce` (default: mean) is the metric,
    so a bootstrap resamples units instead of rows; `null` (optional) scores many row permutations of Y at once;
    `row_paired=False` marks per-model summaries (intrinsic dimension) for which a row-permutation null is void."""

    name: str
    fn: Callable[..., float]
    invariances: frozenset[str]
    level: Level
    needs_labels: bool
    higher_is_more_similar: bool
    description: str
    params: frozenset[str] = frozenset()
    units: Callable[..., np.ndarray] | None = field(default=None, compare=False)
    reduce: Callable[[np.ndarray], float] | None = field(default=None, compare=False)
    null: Callable[..., np.ndarray] | None = field(default=None, compare=False)
    row_paired: bool = True  # False: the value ignores which row of X goes with which row of Y (no permutation null)
    graph_k: int = 0  # neighbours a precomputed kNN graph (indices_x / indices_y) must hold for this metric
    family: str = ""  # metrics of one family come from one computation per replicate (one SVD, one probe fit)
    stat: str = ""  # the key of this metric in its family's output
    needs: frozenset[str] = frozenset()  # what `compare` must have to plan it (NEEDS)
    bounds: tuple[float, float] = (-math.inf, math.inf)  # the values it can take (intervals are clipped to them)
    interval: bool = True  # False: a point diagnostic (an integer rank), never given a bootstrap interval

    def __post_init__(self) -> None:
        if not self.needs <= NEEDS:
            raise ValueError(f"{self.name}: unknown needs {sorted(self.needs - NEEDS)}")
        if not self.invariances <= INVARIANCES:
            raise ValueError(f"{self.name}: unknown invariances {sorted(self.invariances - INVARIANCES)}")
        if self.level not in ("representation", "geometry", "function"):
            raise ValueError(f"{self.name}: bad level {self.level!r}")

    def check_hp(self, hp: dict[str, Any]) -> None:
        """HrsaError on missing labels or unknown hyper-parameters (labels are accepted, and ignored, by every
        metric)."""
        unknown = set(hp) - self.params - {"labels"}
        if unknown:
            raise HrsaError(f"metric {self.name} does not take {sorted(unknown)}; it takes {sorted(self.params)}")
        if self.needs_labels and hp.get("labels") is None:
            raise HrsaError(f"metric {self.name} needs labels= (one label per row)")

    def __call__(self, X: Any, Y: Any, **hp: Any) -> float:
        self.check_hp(hp)
        return float(self.fn(X, Y, **hp))


# ------------------------------------------------------------------------------------------ representation
def _cka(debiased: bool) -> Callable[..., float]:
    def fn(X: Any, Y: Any, **hp: Any) -> float:
        return linear_cka(X, Y, debiased=debiased)
    return fn


def _dimwise(X: Any, Y: Any, **hp: Any) -> float:
    return dimwise_correlation(X, Y)


def _procrustes(key: str) -> Callable[..., float]:
    def fn(X: Any, Y: Any, **hp: Any) -> float:
        return procrustes(X, Y)[key]
    return fn


# ------------------------------------------------------------------------------------------ geometry
def _graph(A: Any, given: Any, k: int) -> np.ndarray:
    """Neighbour indices: the precomputed ones (hp indices_x / indices_y) or an exact cosine kNN search."""
    if given is not None:
        idx = np.asarray(given)
        if idx.ndim != 2 or idx.shape[1] < k:
            raise HrsaError(f"precomputed neighbour indices need at least {k} columns, got shape {idx.shape}")
        return idx
    return knn_graph(A, k, "cosine")[1]


def _knn_units(per_row: Callable[[Any, Any, int], np.ndarray], k: int, need: int) -> Callable[..., np.ndarray]:
    def units(X: Any, Y: Any, indices_x: Any = None, indices_y: Any = None, **hp: Any) -> np.ndarray:
        ix, iy = _graph(X, indices_x, need), _graph(Y, indices_y, need)
        if ix.shape[0] != iy.shape[0]:
            raise HrsaError(f"X and Y must have aligned rows: {ix.shape[0]} vs {iy.shape[0]}")
        return per_row(ix, iy, k)
    return units


def _knn_null(per_row: Callable[[Any, Any, int], np.ndarray], k: int, need: int) -> Callable[..., np.ndarray]:
    """Row permutation pi of Y relabels its graph: neighbours of row r become pi^-1(I_y[pi(r)]); no new search."""
    def null(X: Any, Y: Any, perms: Sequence[np.ndarray], indices_x: Any = None, indices_y: Any = None,
             **hp: Any) -> np.ndarray:
        ix, iy = _graph(X, indices_x, need), _graph(Y, indices_y, need)
        out = np.empty(len(perms))
        for t, p in enumerate(perms):
            inv = np.empty_like(p)
            inv[p] = np.arange(p.size)
            out[t] = per_row(ix, inv[iy[p]], k).mean()
        return out
    return null


def _mean_of(units: Callable[..., np.ndarray]) -> Callable[..., float]:
    def fn(X: Any, Y: Any, **hp: Any) -> float:
        return float(units(X, Y, **hp).mean())
    return fn


def _twonn_units(metric: Literal["cosine", "l2"]) -> Callable[..., np.ndarray]:
    def units(X: Any, Y: Any, **hp: Any) -> np.ndarray:
        if int(np.shape(X)[0]) != int(np.shape(Y)[0]):
            raise HrsaError(f"X and Y must have aligned rows: {np.shape(X)[0]} vs {np.shape(Y)[0]}")
        return np.stack([twonn_ratios_of(X, metric), twonn_ratios_of(Y, metric)], axis=1)
    return units


def _twonn_absdiff(mu: np.ndarray) -> float:
    return abs(twonn_from_ratios(mu[:, 0]) - twonn_from_ratios(mu[:, 1]))


# ------------------------------------------------------------------------------------------ function
def _probe_units(side: Literal["source", "target"]) -> Callable[..., np.ndarray]:
    def units(X: Any, Y: Any, labels: Any = None, seed: int = 42, **hp: Any) -> np.ndarray:
        truth, ps, pt = probe_predictions(X, Y, labels, seed)
        return np.stack([truth, ps if side == "source" else pt], axis=1)
    return units


def _accuracy(u: np.ndarray) -> float:
    return float(np.mean(u[:, 0] == u[:, 1]))


def _macro_f1(u: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(u[:, 0], u[:, 1], average="macro"))


def _reduced(units: Callable[..., np.ndarray], reduce: Callable[[np.ndarray], float]) -> Callable[..., float]:
    def fn(X: Any, Y: Any, **hp: Any) -> float:
        return reduce(units(X, Y, **hp))
    return fn


# ------------------------------------------------------------------------------------------ the registry
def _representation() -> list[Metric]:
    mom, same = frozenset({"moments"}), frozenset({"moments", "same-width"})
    return [
        Metric("cka-linear-biased", _cka(False), ALL, "representation", False, True,
               "column-centred linear CKA (biased HSIC): global geometry", family="cka", stat="biased", needs=mom,
               bounds=(0.0, 1.0)),
        Metric("cka-linear-debiased", _cka(True), ALL, "representation", False, True,
               "linear CKA with the unbiased HSIC estimator (Song et al. 2007): no small-n/large-d inflation",
               family="cka", stat="debiased", needs=mom),
        Metric("dimwise-corr", _dimwise, frozenset({"translation", "isotropic-scaling"}), "representation", False, True,
               "mean Pearson r of matching coordinates (constant ones skipped): is the coordinate basis shared",
               family="dimwise", stat="r", needs=same, bounds=(-1.0, 1.0)),
        Metric("procrustes-rvr", _procrustes("rvr"), frozenset({"orthogonal", "permutation"}), "representation", False,
               False, "residual variance ratio ||XO - Y||^2 / ||Y||^2 after orthogonal alignment (lower: closer)",
               family="procrustes", stat="rvr", needs=same,
               bounds=(0.0, math.inf)),
        Metric("procrustes-cosine", _procrustes("cosine"),
               frozenset({"orthogonal", "permutation", "isotropic-scaling"}), "representation", False, True,
               "mean row cosine of XO and Y after orthogonal alignment",
               family="procrustes", stat="cosine", needs=same, bounds=(-1.0, 1.0)),
        Metric("procrustes-rie", _procrustes("rie"), frozenset({"permutation", "isotropic-scaling", "translation"}),
               "representation", False, True,
               "inverse row entropy of O^2: 1 = bases equal up to signed permutation, 0 = fully rotated (basis drift)",
               family="procrustes", stat="rie", needs=same, bounds=(0.0, 1.0)),
        Metric("procrustes-sparsity", _procrustes("sparsity"),
               frozenset({"permutation", "isotropic-scaling", "translation"}), "representation", False, True,
               "share of |O_ab| < 1e-5 in the Procrustes rotation (basis alignment)", family="procrustes",
               stat="sparsity", needs=same, bounds=(0.0, 1.0)),
        Metric("procrustes-rank", _procrustes("rank"), ALL, "representation", False, True,
               "effective rank of the centred X'Y the Procrustes map is fitted from (singular values above "
               "max * d * 10 eps(float64)); below d the map is the identity on the null space (rows flagged "
               "rank-deficient) and the other procrustes metrics' invariances hold only on the range",
               family="procrustes", stat="rank", needs=same, bounds=(0.0, math.inf), interval=False),
    ]


def knn_metrics(ks: Sequence[int]) -> list[Metric]:
    """The kNN metrics for the configured neighbourhood sizes: Jaccard at every k, and retention of k within 2k
    wherever 2k fits in the graph the workflow builds (graph_k: max(ks) neighbours per row, what Jaccard at the
    largest k needs); retention of a larger k cannot be computed from that graph and is dropped."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise HrsaError(f"kNN sizes must be positive integers, got {ks}")
    knn_inv = frozenset({"orthogonal", "isotropic-scaling", "permutation"})
    graph = frozenset({"graph"})
    ms = []
    for k in ks:
        units = _knn_units(jaccard_per_row, k, k)
        ms.append(Metric(f"knn-jaccard-k{k}-cosine", _mean_of(units), knn_inv, "geometry", False, True,
                         f"mean per-row Jaccard of exact cosine {k}-NN sets (chance about {k}/(2n)): local geometry",
                         frozenset({"indices_x", "indices_y"}), units=units,
                         null=_knn_null(jaccard_per_row, k, k), graph_k=k, family="knn", stat=f"jaccard@{k}",
                         needs=graph, bounds=(0.0, 1.0)))
    for k in (k for k in ks if 2 * k <= ks[-1]):
        units = _knn_units(retention_per_row, k, 2 * k)
        ms.append(Metric(f"knn-retention-k{k}-cosine", _mean_of(units), knn_inv, "geometry", False, True,
                         f"share of one model's {k} cosine neighbours within the other's {2 * k} (symmetric; chance "
                         f"about {2 * k}/n): rank-tolerant neighbourhood preservation",
                         frozenset({"indices_x", "indices_y"}), units=units,
                         null=_knn_null(retention_per_row, k, 2 * k), graph_k=2 * k, family="knn",
                         stat=f"retention@{k}", needs=graph, bounds=(0.0, 1.0)))
    return ms


def _per_model_twonn(side: int) -> Callable[..., float]:
    def fn(X: Any, Y: Any, **hp: Any) -> float:
        return twonn_from_ratios(twonn_ratios_of(X if side == 0 else Y, "cosine"))
    return fn


def _geometry() -> list[Metric]:
    knn_inv = frozenset({"orthogonal", "isotropic-scaling", "permutation"})
    ms = []
    for metric, inv in (("l2", ALL), ("cosine", knn_inv)):
        units = _twonn_units(metric)  # type: ignore[arg-type]
        ms.append(Metric(f"twonn-id-absdiff-{metric}", _reduced(units, _twonn_absdiff), inv, "geometry", False, False,
                         f"|TwoNN intrinsic dimension of X - that of Y| ({metric}; Facco et al. 2017)",
                         units=units, reduce=_twonn_absdiff, row_paired=False, family="twonn", stat="absdiff",
                         needs=frozenset({"graph" if metric == "cosine" else "l2-graph"}), bounds=(0.0, math.inf)))
    for side, name, inv in ((0, "left", ALL), (1, "right", knn_inv)):
        ms.append(Metric(f"twonn-id-{name}", _per_model_twonn(side), inv, "geometry", False, False,
                         f"TwoNN intrinsic dimension of the {name} model (cosine neighbours; Facco et al. 2017)",
                         row_paired=False, family="twonn", stat=name, needs=frozenset({"graph"}),
                         bounds=(0.0, math.inf)))
    return ms


def _function() -> list[Metric]:
    ms = []
    for side in ("target", "source"):
        units = _probe_units(side)
        inv = ALL if side == "source" else frozenset()
        note = "" if side == "target" else " (reference for the target score: depends on X only)"
        for stat, reduce in (("accuracy", _accuracy), ("macro-f1", _macro_f1)):
            ms.append(Metric(f"probe-transfer-{side}-{stat}", _reduced(units, reduce), inv, "function", True, True,
                             f"{stat} on {side} test features of a logistic probe trained on source (X) train "
                             f"features{note}", frozenset({"seed"}), units=units, reduce=reduce, family="probe",
                             stat=f"{side}_{stat.replace('-', '_')}", needs=frozenset({"labels"}),
                             bounds=(0.0, 1.0)))
    return ms


def graph_k(ks: Sequence[int]) -> int:
    """Neighbours per row a stored kNN graph must hold for the kNN metrics of sizes `ks` (hrsa.knn_k): the most any
    of them reads (`hrsa knn` builds graphs of this size, `hrsa compare` checks it)."""
    return max(m.graph_k for m in knn_metrics(ks))


def registry_for(ks: Sequence[int]) -> dict[str, Metric]:
    """Every metric `compare` may run with kNN sizes `ks` (hrsa.knn_k), by canonical name."""
    return {m.name: m for m in [*_representation(), *knn_metrics(ks), *_geometry(), *_function()]}


#: the registry for the schema's hrsa.knn_k (metric names and declarations; `compare` plans with the configured ks)
REGISTRY: dict[str, Metric] = registry_for(default("hrsa/knn_k"))


def get_metric(name: str | Metric) -> Metric:
    """A registry entry by canonical name (HrsaError listing the names when unknown)."""
    if isinstance(name, Metric):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        raise HrsaError(f"unknown metric {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


#: how the paper and the report print each metric (figure axes, captions, tables, the answer); kNN and TwoNN names
#: that carry a size or a distance are formed in display_name
LABELS = {"cka-linear-biased": "linear CKA", "cka-linear-debiased": "debiased linear CKA",
          "dimwise-corr": "dimension-wise correlation", "procrustes-rvr": "Procrustes RVR",
          "procrustes-cosine": "Procrustes cosine", "procrustes-rie": "Procrustes RIE",
          "procrustes-sparsity": "Procrustes sparsity", "procrustes-rank": "Procrustes rank",
          "twonn-id-left": "TwoNN ID (left)", "twonn-id-right": "TwoNN ID (right)"}


def display_name(name: str) -> str:
    """A metric's printed name (`cka-linear-biased` -> `linear CKA`, `knn-jaccard-k10-cosine` -> `kNN Jaccard@10`,
    `probe-transfer-target-accuracy` -> `probe transfer accuracy (target)`); an unknown name is returned as it is."""
    if name in LABELS:
        return LABELS[name]
    parts = name.split("-")
    if name.startswith(("knn-jaccard-k", "knn-retention-k")) and parts[2][1:].isdigit():
        return f"kNN {'Jaccard' if parts[1] == 'jaccard' else parts[1]}@{parts[2][1:]}"
    if name.startswith("twonn-id-absdiff-"):
        return f"|Δ TwoNN ID| ({'L2' if parts[-1] == 'l2' else parts[-1]})"
    if name.startswith("probe-transfer-") and len(parts) >= 4:
        macro = parts[3:5] == ["macro", "f1"]
        split = "-".join(parts[5:] if macro else parts[4:])
        return f"probe transfer {'macro-F1' if macro else parts[3]} ({parts[2]}{', ' + split if split else ''})"
    return name
