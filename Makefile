# Two commands for users: `make demo` (the embedded default, offline, CPU) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed
# Rules call the `hrsa` console script: put the project's venv first on PATH for every recipe.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint fmt clean-demo install rehearsal

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Pinned install: the constraints file locks every package (a CPU torch wheel here, never CUDA). pip byte-compiles on
# one core; compileall does the same on every core (about a minute less here). Like pip, it skips a file that does not
# compile (`|| true`: a few wheels ship template files that are not Python and are never imported).
$(STAMP): $(BIN)/python pyproject.toml requirements/constraints.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-compile -c requirements/constraints.txt -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

# `make install GPU=1`: the CUDA stack on top (requirements/constraints-gpu.txt): PyPI's CUDA torch wheel, and
# faiss-gpu-cu12 in place of faiss-cpu (both ship the `faiss` module, so faiss-cpu goes first). knn and compare then
# run on the GPU by themselves (FAISS GPU index, torch device auto). Checked with CUDA's view of both at the end.
GPU ?=
GPU_STAMP := $(VENV)/.installed-gpu
ifeq ($(GPU),1)
install: $(GPU_STAMP)
else
install: $(STAMP)
endif

$(GPU_STAMP): $(STAMP) requirements/constraints-gpu.txt
	$(BIN)/pip uninstall -q -y faiss-cpu faiss-gpu-cu12  # both: a reinstalled faiss-cpu overwrote the shared files
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints-gpu.txt torch faiss-gpu-cu12
	$(BIN)/python -c "import faiss, torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
	  'GPUs', torch.cuda.device_count(), '| faiss', faiss.__version__, 'GPUs', faiss.get_num_gpus())"
	touch $(GPU_STAMP)

SNAKEMAKE := HF_HUB_OFFLINE=1 $(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/config.yaml

demo: $(STAMP)
	$(SNAKEMAKE)
	$(MAKE) --no-print-directory results/report.html
	@echo "Report: $(CURDIR)/results/report.html (Summary -> index.html), files in $(CURDIR)/results/report/"

# Snakemake's HTML report, rebuilt only when the workflow's report changed.
results/report.html: results/report/index.md
	$(SNAKEMAKE) --report $@ --quiet

test: lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

# The house's guardrails: import layers and no circles (import-linter, pyproject.toml), ruff, mypy, Snakemake's own
# linter and snakefmt.
lint: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/snakemake --lint --configfile config/config.yaml
	$(BIN)/snakefmt --check Snakefile workflow/rules

fmt: $(STAMP)
	$(BIN)/snakefmt Snakefile workflow/rules

# The full-size dress rehearsal (not in CI; config/rehearsal.yaml): a random Qwen3-0.6B-shaped pair with the real Qwen
# vocabulary runs every paper code path for a step or two in rehearsal/, then a table of each job's time and peak RSS
# beside paper.yaml's planning figures, projected to the paper grid. bench/gpu_check.sh is the same on CUDA.
REHEARSAL_STAMP := $(VENV)/.installed-rehearsal
$(REHEARSAL_STAMP): $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[rehearsal]'
	touch $(REHEARSAL_STAMP)

rehearsal: $(REHEARSAL_STAMP)
	$(BIN)/python bench/rehearsal.py backbone --out rehearsal/backbones/qwen3-0b6-random
	HF_HUB_OFFLINE=1 $(BIN)/snakemake --profile profiles/local --cores $(CORES) --snakefile Snakefile \
	  --directory rehearsal --configfile config/rehearsal.yaml
	$(BIN)/python bench/rehearsal.py table --workdir rehearsal
