"""Benchmark of the training rule against a bare SentenceTransformerTrainer on the same data (not a test).

Both run the embedded default's recipe (tiny pretrained base from a demo run, CachedMNRL, bidirectional attention,
same batches) in fresh subprocesses; prints wall time, time per step and peak RSS, and the ratio (target <= 1.05).

    .venv/bin/python bench/bench_train.py --backbone results/backbones/tiny.base --data results/data/train.mined.jsonl
"""

from __future__ import annotations

import argparse
import json
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
model = SentenceTransformer(modules=[t, Pooling(t.get_embedding_dimension(), "mean", include_prompt=False)], device="cpu")
cols = {"anchor": [r["query"][1] for r in rows], "positive": [r["pos"][0] for r in rows]}
for k in range(recipe["num_negatives"]):
    cols[f"negative_{k + 1}"] = [r["neg"][k] for r in rows]
ds = Dataset.from_dict(cols)
args = SentenceTransformerTrainingArguments(output_dir=sys.argv[5], per_device_train_batch_size=recipe["batch_size"],
    learning_rate=recipe["learning_rate"], max_steps=recipe["max_steps"], save_strategy="no", use_cpu=True,
    report_to="none", seed=0, disable_tqdm=True, prompts={"anchor": "Instruct: Given a query, retrieve relevant passages\nQuery: "})
loss = CachedMultipleNegativesRankingLoss(model, scale=1 / recipe["temperature"], mini_batch_size=recipe["mini_batch_size"])
t0 = time.time()
SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss).train()
print(json.dumps({"train_s": time.time() - t0}))
'''


def run(cmd: list[str]) -> dict[str, float]:
    t0 = time.time()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB %M", *cmd], capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    rss_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines()[::-1] if line.startswith("MAXRSS_KB"))
    return {"wall_s": wall, "peak_rss_mib": rss_kb / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backbone", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    recipe = {"max_length": 64, "batch_size": 32, "mini_batch_size": 8, "temperature": 0.02, "learning_rate": 5e-5,
              "max_steps": args.steps, "save_steps": 10 ** 6, "num_negatives": 3}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bare = run([sys.executable, "-c", BARE, args.backbone, args.data, json.dumps(recipe), str(args.threads), tmp + "/bare"])
        ours = run([sys.executable, "-m", "hrsa.cli", "train", "--threads", str(args.threads), "--backbone", args.backbone,
                    "--data", args.data, "--seed", "0", "--recipe", json.dumps(recipe), "--checkpoints", tmp + "/ck",
                    "--model-id", "bench.base-E.s0", "--device", "cpu", "--out", tmp + "/out"])
        rows = [("bare SentenceTransformerTrainer", bare), ("hrsa train (rule)", ours)]
    print(f"steps={args.steps} threads={args.threads} (wall includes ~5 s of imports in each)")
    print(f"{'run':34s} | {'wall [s]':>8s} | {'s/step':>7s} | {'peak RSS [MiB]':>14s}")
    for name, r in rows:
        print(f"{name:34s} | {r['wall_s']:8.2f} | {r['wall_s'] / args.steps:7.3f} | {r['peak_rss_mib']:14.0f}")
    print(f"ratio hrsa / bare: {ours['wall_s'] / bare['wall_s']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
