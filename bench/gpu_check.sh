#!/usr/bin/env bash
# The GPU check for the first machine with a GPU: the full-size rehearsal (config/rehearsal.yaml) on CUDA with bf16
# training and extraction, bidirectional attention under SDPA, FAISS and compare on the GPU; prints peak memory,
# tokens/s and MFU per job kernel (bench/gpu_check.py kernels), then the workflow's jobs with the device memory
# nvidia-smi sampled while each ran (bench/gpu_check.py jobs).
#
#   make install GPU=1 && bench/gpu_check.sh            # KERNELS_ONLY=1: the kernel table alone (a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-rehearsal-gpu}
BACKBONE=rehearsal/backbones/qwen3-0b6-random
export PATH="$PWD/$BIN:$PATH" HF_HUB_OFFLINE=1

command -v nvidia-smi > /dev/null || { echo "gpu_check: no nvidia-smi: not a GPU machine" >&2; exit 2; }
"$BIN/python" - <<'PY'
import sys
import faiss, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no GPU (CPU wheel? run `make install GPU=1`)")
print(f"torch {torch.__version__} CUDA {torch.version.cuda} on {torch.cuda.get_device_name(0)}; "
      f"faiss {faiss.__version__} with {faiss.get_num_gpus()} GPU(s)")
if faiss.get_num_gpus() < 1:
    sys.exit("gpu_check: faiss has no GPU (faiss-cpu installed? run `make install GPU=1`)")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

"$BIN/python" bench/rehearsal.py backbone --out "$BACKBONE"
echo "== kernels: one job's step each, bf16, SDPA bidirectional (peak memory, tokens/s, MFU)"
"$BIN/python" bench/gpu_check.py kernels --model "$BACKBONE" --device cuda --precision bf16
[[ "${KERNELS_ONLY:-0}" == 1 ]] && exit 0

echo "== the rehearsal's workflow on CUDA in $WORK/"
mkdir -p "$WORK"
cat > "$WORK/gpu.yaml" <<'YAML'
training: {precision: bf16}
activations: {precision: bf16, batch_size: 8, compression: zstd, attention: bidirectional}
resources:
  device: auto
  knn: {gpu: true}
  compare: {gpu: true}
YAML
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 500 > "$WORK/gpu_mem.csv" &
SAMPLER=$!
trap 'kill $SAMPLER 2> /dev/null || true' EXIT
"$BIN/snakemake" --profile profiles/local --cores "${CORES:-8}" --resources gpu=1 --snakefile Snakefile \
    --directory "$WORK" --configfiles config/rehearsal.yaml "$WORK/gpu.yaml"
kill $SAMPLER 2> /dev/null || true
"$BIN/python" bench/gpu_check.py jobs --workdir "$WORK" --samples "$WORK/gpu_mem.csv"
"$BIN/python" bench/rehearsal.py table --workdir "$WORK"
