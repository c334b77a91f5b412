"""Every path pattern of a workflow run, in one place: outputs under results/, logs under logs/, job records
(Snakemake `benchmark:` TSVs) under results/benchmarks/, with the outputs they describe, so a copy of results/
carries them. Rules use the patterns as they are (their fields are wildcards);
Python fills them with `.format(...)`. Paths are relative to the working directory (the repository root)."""

from __future__ import annotations

# ---- outputs ----------------------------------------------------------------------------------------------------
BACKBONE = "results/backbones/{pair}.{role}"
BACKBONE_CHECKPOINT = "results/backbones/{pair}.{role}/checkpoints/step-{step}"  # a kept step of a recipe run
EMBEDDER = "results/embedders/{pair}.{role}-E.s{seed}"
MODEL_EMBEDDER = "results/embedders/{model}"
TRAIN_HEALTH = "results/embedders/{pair}.{role}-E.s{seed}.training.json"  # did it learn (hrsa.train.health)
MODEL_TRAIN_HEALTH = "results/embedders/{model}.training.json"
BASELINE = "results/baselines/{pair}.{role}"
MODEL_BASELINE = "results/baselines/{model}"
TRAIN_PREPARED = "results/data/train.prepared.jsonl"
TRAIN_MINED = "results/data/train.mined.jsonl"
PROBE = "results/data/probes/{probe}.jsonl"
ACTIVATIONS = "results/activations/{probe}/{model}"
KNN = "results/knn/{probe}/{model}"
HRSA_TABLE = "results/hrsa/{probe}/{comparison}.parquet"
PROCRUSTES_MAP = "results/hrsa/{probe}/{comparison}.procrustes.npz"
PAIRWISE_FIGURES = "results/hrsa/{probe}/{comparison}.figures"  # one table's curves, CKA map, table (hrsa figures)
EVAL_DIR = "results/eval/{model}"
EVAL = "results/eval/{model}/{task}.json"
EVAL_GROUP = "results/eval/{model}/groups/{group}.json"  # every task of one evaluate job (its declared output)
HEALTH = "results/health/{pair}.{role}.json"  # sibling health: pass@1, gain, weight change
MTEB_CACHE = "results/mteb-cache"
DOWNLOADED = "results/download/fetched.json"
REPORT_DIR = "results/report"
REPORT_INDEX = "results/report/index.md"
REPORT_HTML = "results/report/index.html"
REPORT_ANSWER = "results/report/answer.rst"  # the answer, included by the description of Snakemake's report
REPORT_TABLES = "results/report/tables"
REPORT_FIGURES = "results/report/figures"

# ---- resumable state (outside the rules' outputs, so Snakemake's clean-up of a failed job keeps it) ----------------
TRAIN_CHECKPOINTS = "results/checkpoints/{model}"
EXTRACT_WORK = "results/checkpoints/extract/{probe}/{model}"

# ---- job records ------------------------------------------------------------------------------------------------
BENCH_BACKBONE = "results/benchmarks/backbones/{pair}.{role}.tsv"
BENCH_MINE = "results/benchmarks/data/mine.tsv"
BENCH_TRAIN_DATA = "results/benchmarks/data/train.tsv"
BENCH_PROBE = "results/benchmarks/data/probe.{probe}.tsv"
BENCH_BASELINE = "results/benchmarks/baselines/{pair}.{role}.tsv"
BENCH_TRAIN = "results/benchmarks/train/{model}.tsv"
BENCH_EXTRACT = "results/benchmarks/extract/{probe}/{model}.tsv"
BENCH_KNN = "results/benchmarks/knn/{probe}/{model}.tsv"
BENCH_COMPARE = "results/benchmarks/hrsa/{probe}/{comparison}.tsv"
BENCH_FIGURES = "results/benchmarks/hrsa/{probe}/{comparison}.figures.tsv"
BENCH_EVAL = "results/benchmarks/eval/{model}/{group}.tsv"
BENCH_HEALTH = "results/benchmarks/health/{pair}.{role}.tsv"
BENCH_DOWNLOAD = "results/benchmarks/download.tsv"
BENCH_REPORT = "results/benchmarks/report.tsv"
BENCH_ROOT = "results/benchmarks/"

# ---- logs -------------------------------------------------------------------------------------------------------
LOG_BACKBONE = "logs/backbones/{pair}.{role}.log"
LOG_BASELINE = "logs/baselines/{pair}.{role}.log"
LOG_TRAIN_DATA = "logs/data/train.log"
LOG_MINE = "logs/data/mine.log"
LOG_PROBE = "logs/data/probe.{probe}.log"
LOG_TRAIN = "logs/train/{pair}.{role}-E.s{seed}.log"
LOG_EXTRACT = "logs/extract/{probe}/{model}.log"
LOG_KNN = "logs/knn/{probe}/{model}.log"
LOG_COMPARE = "logs/hrsa/{probe}/{comparison}.log"
LOG_FIGURES = "logs/hrsa/{probe}/{comparison}.figures.log"
LOG_EVAL = "logs/eval/{model}/{group}.log"
LOG_HEALTH = "logs/health/{pair}.{role}.log"
LOG_DOWNLOAD = "logs/download.log"
LOG_REPORT = "logs/report.log"
