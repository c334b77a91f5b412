"""Benchmark of activation extraction against a bare forward pass over the same batches (not a test).

For each backbone width it builds a randomly initialised Qwen2 with a published model's block shape (or takes
--backbone), plans the batches once with
hrsa.extract.plan_extraction and times, in the same process: (1) the bare forward pass with all hidden states, as any
extraction must run it, and (2) `hrsa.extract.extract`, which also gathers the kept tokens, checks them, converts and
writes every layer to Parquet. Prints tokens/s of both, their ratio (target <= 1.15), the Parquet write rate and the
on-disk bytes per stored value.

    .venv/bin/python bench/bench_extract.py  # Qwen2.5-0.5B and -1.5B block shapes, float16 and float32
    .venv/bin/python bench/bench_extract.py --backbone results/backbones/tiny.base --dtypes float32
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


# Layer shapes of published backbones: hidden size -> (heads, KV heads, MLP width). Blocks of these shapes make the
# forward/write balance that of the real model (both scale with the number of blocks, so a few blocks suffice).
SHAPES = {896: (14, 2, 4864), 1024: (16, 8, 3072), 1536: (12, 2, 8960)}  # Qwen2.5-0.5B, Qwen3-0.6B, Qwen2.5-1.5B


def build_backbone(out: Path, hidden: int, layers: int, tokenizer_texts: list[str]) -> Path:
    """A random Qwen2 with a published model's block shape (else head dim 64, MLP 4x) and a BPE from the corpus."""
    from hrsa.backbones.pretrain import PretrainSettings, build_model
    from hrsa.backbones.tokenizer import train_tokenizer

    tok = train_tokenizer(tokenizer_texts, vocab_size=4096)
    heads, kv, mlp = SHAPES.get(hidden, (max(1, hidden // 64), max(1, hidden // 128), 4 * hidden))
    settings = PretrainSettings.from_config(dict(vocab_size=4096, hidden_size=hidden, num_layers=layers,
                                                 num_heads=heads, num_kv_heads=kv, intermediate_size=mlp, seed=0))
    build_model(settings, tok).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def bare_forward(model_path: str, probe: Path, spec: dict, batch_size: int) -> tuple[float, int]:
    """Seconds of the forward passes alone (all hidden states, inference mode) over the extraction's own batches."""
    import torch

    from hrsa.data import read_jsonl
    from hrsa.embedder import load_model
    from hrsa.extract import plan_extraction

    loaded = load_model(model_path, "cpu")
    tok = loaded.tokenizer
    tok.padding_side = "right"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    plan = plan_extraction(list(read_jsonl(probe)), tok, spec, batch_size)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for idx in plan.batches:
            batch = tok.pad({"input_ids": [plan.encoded[i] for i in idx]}, return_tensors="pt")
            loaded.auto_model(**batch, output_hidden_states=True)
    return time.perf_counter() - t0, len(plan.text_ids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", help="a saved causal LM instead of the random widths")
    p.add_argument("--widths", default="896,1536",
                   help="hidden sizes of the random backbones (896, 1024, 1536: real block shapes)")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks of the random backbones")
    p.add_argument("--dtypes", default="float16,float32")
    p.add_argument("--texts", type=int, default=600, help="probe texts (Milton lines, every token kept)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="alternating bare/extract runs; medians are reported")
    args = p.parse_args()

    from hrsa.runtime import limit_threads

    limit_threads(args.threads)
    from hrsa.corpus import read_corpus
    from hrsa.data import builtin_probe, write_jsonl
    from hrsa.extract import extract

    tmp = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    probe = tmp / "probe.jsonl"
    write_jsonl(probe, builtin_probe("milton-lines", REPO / "data/corpus/milton", args.texts, seed=0))
    spec = {"granularity": "token", "max_length": 128}
    if args.backbone:
        models = {Path(args.backbone).name: Path(args.backbone)}
    else:
        texts = read_corpus(REPO / "data/corpus/milton")[:4000]
        models = {f"random d={w} x{args.layers} blocks": build_backbone(tmp / f"w{w}", int(w), args.layers, texts)
                  for w in args.widths.split(",")}

    print(f"threads {args.threads}, {args.texts} texts, batch {args.batch_size}, medians of {args.repeats} runs\n")
    header = ("model", "dtype", "rows", "bare tok/s", "hrsa tok/s", "ratio", "write MB/s", "B/value", "layers")
    rows = []
    for name, path in models.items():
        for dtype in args.dtypes.split(","):
            bare, hrsa, write_s, on_disk = [], [], [], 0
            for r in range(args.repeats):
                seconds, n = bare_forward(str(path), probe, spec, args.batch_size)
                bare.append(seconds)
                out = tmp / f"out-{r}"
                n_layers = json.loads((path / "config.json").read_text())["num_hidden_layers"]
                layers = [str(i) for i in range(n_layers + 1)]
                meta = extract(str(path), "bench.base", str(probe), spec, layers, str(out), "cpu", dtype,
                               args.batch_size, work_dir=str(tmp / "work"))
                hrsa.append(meta["seconds"])
                write_s.append(meta["write_seconds"])
                on_disk = sum(f.stat().st_size for f in out.rglob("*.parquet"))
                values = meta["n_rows"] * meta["dim"] * len(layers)
                raw_bytes = values * (2 if dtype == "float16" else 4)
                import shutil

                shutil.rmtree(out)
            b, h, w = statistics.median(bare), statistics.median(hrsa), statistics.median(write_s)
            rows.append((name, dtype, n, f"{n / b:,.0f}", f"{n / h:,.0f}", f"{h / b:.3f}",
                         f"{raw_bytes / w / 1e6:,.0f}", f"{on_disk / values:.3f}", len(layers)))
            print("  done:", name, dtype, flush=True)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print()
    for row in (header, *rows):
        print("  ".join(str(x).rjust(wd) for x, wd in zip(row, widths, strict=True)))
    print("\nratio = extraction time (forward + gather + checks + Parquet write of every layer) / bare forward time;"
          " target <= 1.15.\nwrite MB/s = uncompressed vector bytes / time in conversion + Parquet write;"
          " B/value = on-disk bytes per stored number.")


if __name__ == "__main__":
    main()
