"""RLVR and SFT recipes for real bases: maths problems with verifiable answers, math-verify reward, kept checkpoints,
and SFT/RLVR siblings built from the same base weights and the same problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hrsa.backbones.maths import PROMPT, ProblemSource, last_boxed, load_problems, split_solution, verified_reward
from hrsa.cli import main
from hrsa.errors import DataError, HrsaError

GSM8K_ROWS = [
    {"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
     "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}
    for a, b in [(3, 4), (10, 5), (7, 8), (2, 2), (12, 30), (1, 1), (5, 9), (6, 6)]
]


@pytest.fixture()
def problems_file(tmp_path: Path) -> Path:
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    return path


def test_reward_verifies_known_worked_answers() -> None:
    completions = [
        "Natalia sold 48 / 2 = 24 clips in May, so 48 + 24 = 72 in total. The final answer is \\boxed{72}.",
        "48 + 24 = 71, so the answer is \\boxed{71}.",
        "She sold 72 clips altogether. The final answer is 72.",
        "I do not know.",
        "",
    ]
    assert verified_reward(completions, ["72"] * len(completions)) == [1.0, 0.0, 1.0, 0.0, 0.0]
    # equivalent forms verify, a different value does not
    assert verified_reward(["So x = \\boxed{0.5}", "x = \\boxed{\\dfrac12}", "x = \\boxed{\\frac{1}{3}}"],
                           ["\\frac{1}{2}"] * 3) == [1.0, 1.0, 0.0]


def test_gsm8k_and_boxed_solutions_split_into_worked_solution_and_gold_answer() -> None:
    solution, answer = split_solution("Half is 48/2 = <<48/2=24>>24.\nTotal 48+24 = <<48+24=72>>72.\n#### 1,072",
                                      "gsm8k")
    assert answer == "1072"
    assert "<<" not in solution and solution.endswith("The final answer is \\boxed{1072}.")
    assert last_boxed("so \\boxed{2} then \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert split_solution("We get $\\boxed{\\sqrt{2}}$.", "boxed")[1] == "\\sqrt{2}"
    with pytest.raises(ValueError, match="####"):
        split_solution("no marker here", "gsm8k")


def test_problem_source_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(HrsaError, match="unknown key"):
        ProblemSource.parse({"path": "x.jsonl", "qestion_field": "q"})
    with pytest.raises(HrsaError, match="exactly one of"):
        ProblemSource.parse({"path": "x.jsonl", "dataset": "openai/gsm8k"})
    with pytest.raises(HrsaError, match="answer_format"):
        ProblemSource.parse({"path": "x.jsonl", "answer_format": "latex"})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "no final answer"}) + "\n")
    with pytest.raises(DataError, match=rf"{bad}:1: .*####"):
        load_problems(ProblemSource(path=str(bad)))


MATH_ROWS = [{"problem": f"What is ${i}+{i}$?", "solution": f"It is $\\boxed{{{2 * i}}}$.", "level": f"Level {lv}"}
             for i, lv in enumerate([1, 3, 5, 2, 4, "?", 3], start=1)]


def test_levels_keep_only_graded_rows_and_mix_appends_sources(problems_file: Path, tmp_path: Path) -> None:
    """SimpleRL-Zoo's graded data: MATH-like rows filtered to levels 3-5 ('Level ?' dropped), GSM8K mixed in after."""
    maths = tmp_path / "math.jsonl"
    maths.write_text("".join(json.dumps(r) + "\n" for r in MATH_ROWS))
    spec = {"path": str(maths), "question_field": "problem", "solution_field": "solution", "answer_format": "boxed",
            "levels": [3, 4, 5], "level_field": "level", "limit": 0, "mix": [{"path": str(problems_file), "limit": 2}]}
    source = ProblemSource.parse(json.dumps(spec))
    problems = load_problems(source)
    assert [p.answer for p in problems] == ["4", "6", "10", "14", "7", "15"]  # rows 2, 3, 5, 7; then 2 GSM8K rows
    assert load_problems(ProblemSource.parse({**spec, "mix": [], "limit": 2}))[-1].answer == "6"  # limit after filter
    with pytest.raises(DataError, match="no level field 'difficulty'"):
        load_problems(ProblemSource.parse({**spec, "level_field": "difficulty"}))
    with pytest.raises(DataError, match=r"no records at levels \[9\]"):
        load_problems(ProblemSource.parse({**spec, "levels": [9], "mix": []}))
    with pytest.raises(HrsaError, match="cannot have its own mix"):
        ProblemSource.parse({**spec, "mix": [{**spec["mix"][0], "mix": [{"path": "x"}]}]})


def test_grpo_config_carries_the_paper_recipe(repo: Path, tmp_path: Path) -> None:
    """paper.yaml's recipes.rlvr reaches TRL: SimpleRL-Zoo's KL 1e-4, entropy 1e-3, 8 rollouts, 8,192 tokens, 256
    prompts per optimiser step, 1,024 prompts per rollout."""
    from hrsa.backbones.rlvr import RlvrSettings, grpo_config

    recipe = yaml.safe_load((repo / "config/paper.yaml").read_text())["recipes"]["rlvr"]
    cfg = grpo_config(RlvrSettings.from_config(recipe), tmp_path)
    assert cfg.beta == 1e-4 and cfg.entropy_coef == 1e-3 and cfg.num_generations == 8
    assert cfg.max_completion_length == 8192 and cfg.learning_rate == 5e-7 and cfg.max_steps == 400
    step = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps  # completions per optimiser step
    assert step // cfg.num_generations == 256 and cfg.generation_batch_size // cfg.num_generations == 1024
    assert cfg.use_transformers_continuous_batching


def test_grpo_config_of_the_tiny_default_is_one_micro_batch_without_kl(tmp_path: Path) -> None:
    from hrsa.backbones.rlvr import RlvrSettings, grpo_config

    cfg = grpo_config(RlvrSettings.from_config({}), tmp_path)
    assert (cfg.beta, cfg.entropy_coef, cfg.gradient_accumulation_steps, cfg.steps_per_generation) == (0.0, 0.0, 1, 1)
    assert cfg.generation_batch_size == cfg.per_device_train_batch_size == 16
    with pytest.raises(HrsaError, match=r"recipes\.rlvr\.prompts_per_step \(3\) x num_generations"):
        grpo_config(RlvrSettings.from_config({"prompts_per_step": 3, "batch_size": 8}), tmp_path)


def test_load_problems_builds_prompts_and_honours_limit(problems_file: Path) -> None:
    problems = load_problems(ProblemSource(path=str(problems_file), limit=3))
    assert len(problems) == 3
    assert problems[0].prompt == PROMPT.format(question=GSM8K_ROWS[0]["question"])
    assert problems[0].answer == "7" and problems[0].solution.endswith("\\boxed{7}.")


def _run(verb: str, base: Path, out: Path, problems_file: Path, **recipe: object) -> None:
    """`hrsa VERB` on the problems file: 4 steps of 4, the recipe's other keys as given (the rest from the schema)."""
    config = {"problems": {"path": str(problems_file), "answer_format": "gsm8k"}, "steps": 4, "batch_size": 4,
              **recipe}
    assert main([verb, "--model", str(base), "--out", str(out), "--config", json.dumps(config),
                 "--threads", "1"]) == 0


def test_rlvr_on_maths_problems_keeps_checkpoints_and_reward_curve(
    tiny_backbone: Path, problems_file: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "reason"
    _run("rlvr", tiny_backbone, out, problems_file, num_generations=2, max_completion_length=6, save_steps=2)
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["step-2", "step-4"]
    states = []
    for name in kept:
        model = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / name)
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        assert (out / "checkpoints" / name / "tokenizer.json").is_file()
    final = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all((final[k] == states[1][k]).all() for k in final)  # the last kept checkpoint is the final model
    curve = (out / "reward_curve.tsv").read_text().splitlines()
    assert curve[0].split("\t") == ["step", "reward", "reward_std", "completion_length"]
    assert [int(line.split("\t")[0]) for line in curve[1:]] == [1, 2, 3, 4]
    prov = json.loads((out / "provenance.json").read_text())["params"]
    assert prov["reward_used"] == "math_verify" and prov["temperature"] == 1.0


def test_sft_and_rlvr_siblings_start_from_the_same_base_and_problems(
    tiny_backbone: Path, problems_file: Path, tmp_path: Path
) -> None:
    _run("rlvr", tiny_backbone, tmp_path / "reason", problems_file, num_generations=2, max_completion_length=4)
    _run("sft", tiny_backbone, tmp_path / "sft", problems_file, max_length=64)
    prov = {r: json.loads((tmp_path / r / "provenance.json").read_text()) for r in ("reason", "sft")}
    assert prov["reason"]["inputs"]["model"]["sha256"] == prov["sft"]["inputs"]["model"]["sha256"]
    digests = {r: p["params"]["problems_sha256"] for r, p in prov.items()}
    assert digests["reason"] == digests["sft"] and len(digests["sft"]) == 64
