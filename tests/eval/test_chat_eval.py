"""Evaluation in the chat format: generation prompts are the training conversation's prefix (same ids),
``eval --run`` takes the run's chat template, lm-eval gets apply_chat_template / fewshot_as_multiturn,
``eval --metric nll`` scores the assistant tokens; the round trip train -> eval --run -> export-peft ->
held-out NLL on the tiny model; a plain Alpaca file trains and scores with --metric nll, and is refused
by the answer scorers naming ``answer``."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from rocoft_llm.data.chat_template import assistant_spans, encode_chat
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.eval.generate import render_prompts
from tests.helpers.chat_templates import SMOLLM2_CHAT_TEMPLATE, TINY_CHAT_TEMPLATE
from tests.helpers.cli import assert_refused, run_cli
from tests.helpers.recipes import TINY, tiny_recipe
from tests.helpers.tokenizers import save_chatml_tokenizer

RECORD = {"instruction": "What is 3 + 5?", "input": "", "output": "The answer is 8", "answer": "8"}


def chats(n, offset=0):
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} + 1?"},
                {"role": "assistant", "content": f"The answer is {i + 1}"},
                {"role": "user", "content": "And plus 2?"},
                {"role": "assistant", "content": f"The answer is {i + 2}"},
            ]
        }
        for i in range(offset, offset + n)
    ]


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_chat_prompt_is_the_training_prefix(tmp_path):
    tok = AutoTokenizer.from_pretrained(save_chatml_tokenizer(tmp_path / "tok"))
    (prompt,) = render_prompts("chat", [RECORD], tok)
    assert prompt.endswith("<|im_start|>user\nWhat is 3 + 5?<|im_end|>\n<|im_start|>assistant\n")
    turns = [
        {"role": "user", "content": RECORD["instruction"]},
        {"role": "assistant", "content": RECORD["output"]},
    ]
    ids, [(start, _)] = assistant_spans(tok, SMOLLM2_CHAT_TEMPLATE, turns)
    assert tok(prompt)["input_ids"] == ids[:start]  # generation sees exactly what training conditioned on
    with pytest.raises(RoCoFTError, match="pass the tokenizer"):
        render_prompts("chat", [RECORD])


def test_lm_eval_gets_the_chat_options(tmp_path, monkeypatch):
    from rocoft_llm.eval import harness

    (tmp_path / "la" / "boolq").mkdir(parents=True)
    boolq = {"instruction": "q? Answer format: true/false", "input": "", "output": "true", "answer": "true"}
    (tmp_path / "la" / "boolq" / "test.json").write_text(json.dumps([boolq] * 3))
    tok = AutoTokenizer.from_pretrained(save_chatml_tokenizer(tmp_path / "tok"))
    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before lm-eval runs

    monkeypatch.setattr("lm_eval.simple_evaluate", fake)
    monkeypatch.setattr("lm_eval.models.huggingface.HFLM", lambda **kwargs: "lm")
    with pytest.raises(KeyboardInterrupt):
        harness.run_harness(
            None,
            tok,
            ["boolq"],
            None,
            {},
            str(tmp_path / "la"),
            apply_chat_template=True,
            fewshot_as_multiturn=True,
        )
    assert seen["apply_chat_template"] is True and seen["fewshot_as_multiturn"] is True


def saved_base(tmp_path):
    torch.manual_seed(0)
    base = tmp_path / "base"
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).save_pretrained(base)
    AutoTokenizer.from_pretrained(TINY / "llama").save_pretrained(base)
    return base


@pytest.mark.slow
def test_chat_round_trip(tmp_path):
    """A chat-format run: train, eval --run (its template), export-peft, held-out NLL of the assistant turns."""
    template = tmp_path / "chat.jinja"
    template.write_text(TINY_CHAT_TEMPLATE)  # the tiny tokenizer has none: the file override
    data = {
        "train": [str(jsonl(tmp_path / "train.jsonl", chats(16)))],
        "template": "chat",
        "train_on_inputs": False,
    }
    data["chat_template"] = str(template)
    model = {"name_or_path": str(saved_base(tmp_path)), "random_init": False}
    recipe = tiny_recipe(tmp_path, "chat", model=model, data=data)
    result = run_cli("train", recipe)
    assert result.exit_code == 0, result.output
    run = tmp_path / "chat"
    manifest = json.loads((run / "data_manifest.json").read_text())
    assert manifest["template"]["name"] == "chat" and manifest["template"]["chat"] == TINY_CHAT_TEMPLATE

    arith = TINY / "data" / "arith" / "test.json"
    result = run_cli(
        "eval", "--run", run, "--tasks", arith, "--limit", "2", "--num-beams", "1", "--max-new-tokens", "4"
    )
    assert result.exit_code == 0, result.output
    decoding = json.loads((run / "eval" / "adapted" / "summary.json").read_text())[0]["decoding"]
    assert decoding["template"] == "chat" and decoding["chat_template"] == str(template)

    result = run_cli("export-peft", run, "--out", tmp_path / "peft")
    assert result.exit_code == 0, result.output

    heldout = jsonl(tmp_path / "heldout.jsonl", chats(3, offset=50))
    result = run_cli("eval", "--metric", "nll", "--run", run, "--tasks", heldout, "--with-base")
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "eval" / "nll" / "summary.json").read_text())
    tok = AutoTokenizer.from_pretrained(TINY / "llama")
    want = sum(
        sum(
            1
            for t in encode_chat(tok, TINY_CHAT_TEMPLATE, r["messages"], 192, False, True)["labels"]
            if t != -100
        )
        for r in chats(3, offset=50)
    )
    # every assistant token (both turns, with EOS) is a target; the first token of a sequence never is
    assert [s["target_tokens"] for s in summary["summaries"]] == [want, want]
    assert summary["options"]["template"] == "chat"


@pytest.mark.slow
def test_plain_alpaca_file_trains_and_scores_nll_and_scorers_name_answer(tmp_path):
    records = [
        {"id": i, "instruction": f"What is {i} + 1?", "input": "", "output": f"It is {i + 1}"}
        for i in range(16)
    ]
    train_file = tmp_path / "alpaca.json"
    train_file.write_text(json.dumps(records))
    result = run_cli(
        "train", tiny_recipe(tmp_path, "alpaca", data={"train": [str(train_file)], "train_on_inputs": False})
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "alpaca"
    result = run_cli("eval", "--metric", "nll", "--run", run, "--tasks", train_file, "--limit", "4")
    assert result.exit_code == 0, result.output
    refused = run_cli("eval", "--run", run, "--tasks", train_file)
    assert_refused(refused, str(train_file), "have no 'answer'", "--metric nll")
