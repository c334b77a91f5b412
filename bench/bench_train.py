"""Benchmark of the training rule against a bare SentenceTransformerTrainer on the same data (not a test).

Both run the embedded default's recipe (tiny pretrained base from a demo run, CachedMNRL, bidirectional attention,
one dataset per source with its instruction, the same samplers and seed, so the same batches) in fresh subprocesses,
alternating, --repeats times; prints medians of the wall time (imports, loading, saving included), the training
loop's time per step (the trainer's own train_runtime) and peak RSS, and the ratio of the step times (target <= 1.05).

    .venv/bin/python bench/bench_train.py --backbone results/backbones/tiny.base --data results/data/train.mined.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

BARE = r'''
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[4]))
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
recipe = json.loads(sys.argv[3])
rows = [json.loads(l) for l in open(sys.argv[2])]
t = Transformer(sys.argv[1], max_seq_length=recipe["max_length"])
t.auto_model.config.is_causal = False
model = SentenceTransformer(modules=[t, Pooling(t.get_embedding_dimension(), "mean", include_prompt=False)],
                            device="cpu")
from datasets import DatasetDict
from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
groups = {}
for r in rows:  # one dataset per source and instruction, as the recipe batches them
    groups.setdefault((r.get("source", "data"), r["query"][0]), []).append(r)
data, prompts = {}, {}
for i, ((source, instruction), recs) in enumerate(sorted(groups.items())):
    cols = {"anchor": [r["query"][1] for r in recs], "positive": [r["pos"][0] for r in recs]}
    for k in range(recipe["num_negatives"]):
        cols[f"negative_{k + 1}"] = [r["neg"][k] for r in recs]
    data[f"d{i}"] = Dataset.from_dict(cols)
    prompts[f"d{i}"] = {"anchor": f"Instruct: {instruction}\nQuery: "}
ds = DatasetDict(data)
args = SentenceTransformerTrainingArguments(output_dir=sys.argv[5], per_device_train_batch_size=recipe["batch_size"],
    learning_rate=recipe["learning_rate"], max_steps=recipe["max_steps"], save_strategy="no", use_cpu=True,
    report_to="none", seed=0, disable_tqdm=True, prompts=prompts, batch_sampler=BatchSamplers.NO_DUPLICATES,
    multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL, dataloader_drop_last=True)
loss = CachedMultipleNegativesRankingLoss(model, scale=1 / recipe["temperature"],
                                          mini_batch_size=recipe["mini_batch_size"])
out = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss).train()
print("TRAIN_RUNTIME", out.metrics["train_runtime"])
'''


def run(cmd: list[str], train_log: str | None = None) -> dict[str, float]:
    """Wall time and peak RSS of one subprocess; train_s from the trainer's train_runtime (stdout or train log)."""
    t0 = time.time()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    rss_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines()[::-1] if line.startswith("MAXRSS_KB"))
    if train_log:
        rows = [json.loads(line) for line in open(train_log)]
        train_s = next(r["train_runtime"] for r in rows[::-1] if "train_runtime" in r)
    else:
        train_s = next(float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("TRAIN_RUNTIME"))
    return {"wall_s": wall, "train_s": train_s, "peak_rss_mib": rss_kb / 1024}


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backbone", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="alternating runs of each; medians are reported")
    args = p.parse_args()
    recipe = {"max_length": 64, "batch_size": 32, "mini_batch_size": 8, "temperature": 0.02, "learning_rate": 5e-5,
              "max_steps": args.steps, "save_steps": 10 ** 6, "num_negatives": 3}
    training = {k: v for k, v in recipe.items() if k != "num_negatives"}  # `hrsa train --config`: the training slice
    bare_runs, our_runs = [], []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            bare_runs.append(run([sys.executable, "-c", BARE, args.backbone, args.data, json.dumps(recipe),
                                  str(args.threads), tmp + "/bare"]))
            our_runs.append(run([sys.executable, "-m", "hrsa.cli", "train", "--threads", str(args.threads),
                                 "--backbone", args.backbone, "--data", args.data, "--seed", "0", "--config",
                                 json.dumps(training), "--num-negatives", str(recipe["num_negatives"]),
                                 "--checkpoints", tmp + "/ck", "--model-id", "bench.base-E.s0",
                                 "--device", "cpu", "--out", tmp + "/out"], train_log=tmp + "/out/train_log.jsonl"))
        print(f"  run {r + 1}/{args.repeats} done", flush=True)
    bare, ours = median_run(bare_runs), median_run(our_runs)
    print(f"\nsteps={args.steps} threads={args.threads}, medians of {args.repeats} alternating runs")
    print(f"{'run':34s} | {'wall [s]':>8s} | {'loop s/step':>11s} | {'peak RSS [MiB]':>14s}")
    for name, r in (("bare SentenceTransformerTrainer", bare), ("hrsa train (rule)", ours)):
        print(f"{name:34s} | {r['wall_s']:8.2f} | {r['train_s'] / args.steps:11.3f} | {r['peak_rss_mib']:14.0f}")
    print(f"ratio hrsa / bare: step time {ours['train_s'] / bare['train_s']:.3f} (target <= 1.05), "
          f"wall {ours['wall_s'] / bare['wall_s']:.3f}, peak RSS {ours['peak_rss_mib'] / bare['peak_rss_mib']:.3f}")
    print("wall includes ~5 s of imports in each; the rule also checkpoints every save_steps, saves and re-encodes "
          "to check the reload.")


if __name__ == "__main__":
    main()
