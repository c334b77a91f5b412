"""The offline backbones: corpus and arithmetic generator, tokenizer, and the pretrain / rlvr / sft verbs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrsa.cli import main
from hrsa.corpus import (
    arithmetic_problems,
    chunk_words,
    correct_reward,
    first_integer,
    read_corpus,
    split_lines,
    split_paragraphs,
)
from hrsa.errors import DataError

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "corpus" / "milton"
PRETRAIN_STEPS = 30
TINY = {"vocab_size": 512, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 128, "batch_size": 16, "max_length": 32}


def cfg(**keys: object) -> list[str]:
    """The verb's --config flag for these recipe keys (the rest from the schema), and one thread."""
    return ["--config", json.dumps(keys), "--threads", "1"]


def _log(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]


def _state(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny pretrained base (30 steps on the bundled Milton corpus) shared by the tests of this module."""
    out = tmp_path_factory.mktemp("backbones") / "base"
    assert main(["pretrain", "--corpus", str(CORPUS), "--out", str(out), *cfg(**TINY, steps=PRETRAIN_STEPS)]) == 0
    return out


# ------------------------------------------------------------------------------------------------ corpus


def test_arithmetic_problems_are_deterministic_and_correct() -> None:
    a, b, c = arithmetic_problems(200, seed=3), arithmetic_problems(200, seed=3), arithmetic_problems(200, seed=4)
    assert a == b
    assert a != c
    ops = set()
    for rec in a:
        lhs = rec["prompt"].removeprefix("Q: ").removesuffix("=? A:")
        op = "+" if "+" in lhs else "-"
        x, y = (int(v) for v in lhs.split(op))
        ops.add(op)
        assert 0 <= x <= 9 and 0 <= y <= 9
        assert rec["answer"] == str(x + y if op == "+" else x - y)
        assert int(rec["answer"]) >= 0  # subtraction operands are ordered
        assert rec["solution"].startswith(rec["prompt"] + " ")
        assert rec["solution"].endswith(f"The answer is {rec['answer']}.")
    assert ops == {"+", "-"}
    products = arithmetic_problems(50, seed=0, ops=("*",), lo=2, hi=3)
    assert {p["answer"] for p in products} <= {"4", "6", "9"}


def test_reward_is_exact_match_of_first_integer() -> None:
    completions = [" 7", " 7\nQ: 1+1=?", " 17", "seven", " -3 then 7", " it is 7.", "", " 07"]
    answers = ["7", "7", "7", "7", "-3", "7", "7", "7"]
    assert correct_reward(completions, answers) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert first_integer("A: 12 and 3") == "12"
    assert first_integer("none") is None


def test_corpus_text_is_normalised_and_split() -> None:
    text = "First  line\r\n   second\tline\r\n\r\n  \r\nNew para"
    assert split_lines(text) == ["First line", "second line", "New para"]
    assert split_paragraphs(text) == ["First line second line", "New para"]
    assert chunk_words("a b c d e", 2) == ["a b", "c d", "e"]
    passages = read_corpus(CORPUS)
    assert len(passages) > 10_000
    assert all(0 < len(p.split()) <= 16 and "  " not in p and "\n" not in p for p in passages)


def test_corpus_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        read_corpus(tmp_path / "missing")
    with pytest.raises(DataError, match="no \\*.txt files"):
        read_corpus(tmp_path)
    (tmp_path / "blank.txt").write_text("  \n\n 12 \n")
    with pytest.raises(DataError, match="empty"):
        read_corpus(tmp_path)


# ------------------------------------------------------------------------------------------------ pretrain


def test_pretrain_saves_a_loadable_model_whose_loss_falls(base: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    tok = AutoTokenizer.from_pretrained(base)
    assert model.config.model_type == "qwen2" and model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2 and model.config.tie_word_embeddings
    assert model.config.vocab_size == len(tok) <= 512
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|pad|>"
    log = _log(base)
    assert [r["step"] for r in log] == list(range(1, PRETRAIN_STEPS + 1))
    last = sum(r["loss"] for r in log[-5:]) / 5
    assert last < log[0]["loss"] - 1.0, (log[0]["loss"], last)
    prov = json.loads((base / "provenance.json").read_text())
    assert prov["params"]["steps"] == PRETRAIN_STEPS and prov["inputs"]["corpus"]["sha256"]
    assert "torch" in prov["packages"]
    assert not [p.name for p in base.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_tokenizer_round_trips_text(base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    for text in ["Of Mans First Disobedience, and the Fruit", "Q: 3+4=? A: 7", "  spaces\tand\nnewlines ", "café ☃"]:
        ids = tok(text)["input_ids"]
        assert tok.eos_token_id not in ids  # no special tokens added implicitly
        assert tok.decode(ids) == text


def test_pretrain_is_deterministic_per_seed(tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / name
        assert (
            main(["pretrain", "--corpus", str(CORPUS), "--out", str(out), *cfg(**TINY, steps=3, seed=int(seed))]) == 0
        )
        outs.append(_state(out))
    assert _max_abs_diff(outs[0], outs[1]) == 0.0
    assert _max_abs_diff(outs[0], outs[2]) > 0.0


def test_missing_corpus_exits_2_naming_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-corpus"
    code = main(["pretrain", "--corpus", str(missing), "--out", str(tmp_path / "out"), "--threads", "1"])
    assert code == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ siblings


def test_rlvr_changes_weights_and_logs_rewards(base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "reason"
    args = ["rlvr", "--model", str(base), "--out", str(out), *cfg(steps=3, batch_size=8, num_generations=4, lr=1e-3)]
    assert main(args) == 0
    AutoModelForCausalLM.from_pretrained(out)
    tok_out, tok_base = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(base)
    assert tok_out.padding_side == tok_base.padding_side  # GRPO's left padding is not persisted
    assert tok_out.get_vocab() == tok_base.get_vocab()
    assert tok_out("Q: 12+3=? A: 15 and so on")["input_ids"] == tok_base("Q: 12+3=? A: 15 and so on")["input_ids"]
    assert _max_abs_diff(_state(base), _state(out)) > 0.0
    steps = [r for r in _log(out) if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(0.0 <= r["reward"] <= 1.0 for r in steps)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["params"]["model"] == str(base) and prov["params"]["trust_remote_code"] is False
    assert prov["inputs"]["model"]["sha256"]


def test_rlvr_reads_prompts_from_jsonl(base: Path, tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q: {i}+1=? A:", "answer": i + 1}) + "\n" for i in range(8)))
    out = tmp_path / "reason"
    args = ["rlvr", "--model", str(base), "--out", str(out),
            *cfg(steps=1, batch_size=4, num_generations=2, data=str(data))]
    assert main(args) == 0
    assert json.loads((out / "provenance.json").read_text())["inputs"]["data"]["path"] == str(data)


def test_sft_changes_weights_and_lowers_loss(base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sft"
    assert (
        main(["sft", "--model", str(base), "--out", str(out), *cfg(steps=5, batch_size=8)])
        == 0
    )
    AutoModelForCausalLM.from_pretrained(out)
    assert _max_abs_diff(_state(base), _state(out)) > 0.0
    log = _log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert log[-1]["loss"] < log[0]["loss"]


@pytest.mark.parametrize("verb", ["rlvr", "sft"])
def test_missing_model_dir_exits_2_naming_the_path(
    verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-model"
    assert main([verb, "--model", str(missing), "--out", str(tmp_path / "out"), "--threads", "1"]) == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["rlvr", "sft"])
def test_bad_jsonl_exits_2_naming_file_and_line(
    verb: str, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "Q: 1+1=? A:", "answer": "2", "text": "ok"}\n{"nothing": 1}\n')
    assert (
        main([verb, "--model", str(base), "--out", str(tmp_path / "out"), *cfg(data=str(data))]) == 2
    )
    assert f"{data}:2" in capsys.readouterr().err


def test_rlvr_rejects_batch_not_multiple_of_generations(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            ["rlvr", "--model", str(base), "--out", str(tmp_path / "o"), *cfg(batch_size=6, num_generations=4)]
        )
        == 2
    )
    assert "recipes.rlvr.num_generations" in capsys.readouterr().err


def test_reloaded_tokenizer_encodes_exactly_like_the_trained_one(base: Path) -> None:
    """AutoTokenizer rebuilds a Qwen2Tokenizer for model_type qwen2; it must match the raw trained tokenizer.json."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    auto, raw = AutoTokenizer.from_pretrained(base), Tokenizer.from_file(str(base / "tokenizer.json"))
    for text in ["Q: 13+4=? A: 17", "Thir place of rest, and Providence thir guide:", "a  b\n\nc"]:
        assert auto(text)["input_ids"] == raw.encode(text).ids


def test_rlvr_is_deterministic_per_seed(base: Path, tmp_path: Path) -> None:
    states = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["rlvr", "--model", str(base), "--out", str(out), *cfg(steps=2, batch_size=8)]
        assert main(args) == 0
        states.append(_state(out))
    assert _max_abs_diff(*states) == 0.0
