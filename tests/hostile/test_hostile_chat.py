"""Hostile chat records (OpenAI ``messages`` and ShareGPT ``conversations``) through ``prepare`` and
``validate``: exit 2, one message naming the file, the record and the turn, nothing written."""

import json

import pytest
import yaml

from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.tokenizers import save_chatml_tokenizer

USER = {"role": "user", "content": "What is 3 + 5?"}
ASSISTANT = {"role": "assistant", "content": "The answer is 8"}
GOOD = [{"messages": [USER, ASSISTANT]} for _ in range(4)]
SHARE = [
    {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]} for _ in range(4)
]

CASES = {
    # name: (records, message parts)
    "an unknown role": (
        GOOD + [{"messages": [{"role": "tool", "content": "x"}, ASSISTANT]}],
        ["unknown_role: turn 0"],
    ),
    "empty content": (
        GOOD + [{"messages": [USER, {**ASSISTANT, "content": "  "}]}],
        ["empty_content: turn 1"],
    ),
    "no assistant turn": (GOOD + [{"messages": [USER]}], ["no_assistant_turn"]),
    "ends on a user turn": (GOOD + [{"messages": [USER, ASSISTANT, USER]}], ["ends_on_user_turn: turn 2"]),
    "non-alternating turns": (
        GOOD + [{"messages": [USER, USER, ASSISTANT]}],
        ["non_alternating: turn 1 is 'user' after 'user'"],
    ),
    "non-string content": (
        GOOD + [{"messages": [USER, {**ASSISTANT, "content": [{"type": "text", "text": "8"}]}]}],
        ["non_string_content: turn 1 (assistant) has content of type list"],
    ),
    "a system turn later": (
        GOOD + [{"messages": [USER, ASSISTANT, {"role": "system", "content": "x"}]}],
        ["misplaced_system: turn 2"],
    ),
    "messages not a list": (GOOD + [{"messages": "hi"}], ["not_a_turn_list"]),
    "a turn that is not an object": (
        GOOD + [{"messages": [USER, "8"]}],
        ["turn_not_an_object: turn 1 is str"],
    ),
    "an instruction record in a chat file": (
        GOOD + [{"instruction": "x", "output": "y"}],
        ["missing_field: ['messages']"],
    ),
    "ShareGPT unknown role": (
        SHARE + [{"conversations": [{"from": "user", "value": "hi"}, {"from": "gpt", "value": "x"}]}],
        ["unknown_role: turn 0 has from 'user'", "human, gpt"],
    ),
    "ShareGPT non-string value": (
        SHARE + [{"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "x"}]}],
        ["non_string_content: turn 0 (human)"],
    ),
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return save_chatml_tokenizer(tmp_path_factory.mktemp("tok"))


def command(kind, tmp_path, data_file, tokenizer):
    if kind == "prepare":
        return [
            "prepare",
            "--dataset",
            data_file,
            "--tokenizer",
            tokenizer,
            "--template",
            "chat",
            "--out",
            tmp_path / "o",
        ]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(tokenizer), "random_init": True, "dtype": "float32"},
                "data": {"train": [str(data_file)], "template": "chat", "cache_dir": str(tmp_path / "cache")},
                "train": {"global_batch_size": 2, "micro_batch_size": 2, "max_steps": 2, "warmup_steps": 0},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    return ["validate", recipe]


@pytest.mark.parametrize("kind", ["prepare", "validate"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_chat_record_is_refused(tmp_path, tokenizer, case, kind):
    records, needles = CASES[case]
    data_file = tmp_path / "chats.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = command(kind, tmp_path, data_file, tokenizer)
    before = snapshot(tmp_path)
    result = run_cli(*args)
    assert_refused(result, str(data_file), f"record {len(records) - 1}: ", *needles)
    assert result.output.count("bad record(s)") == 1  # one message
    assert snapshot(tmp_path) == before  # nothing written: no output, no cache, no lock file


def test_a_template_that_refuses_a_conversation_names_the_record(tmp_path):
    tok = save_chatml_tokenizer(tmp_path / "tok")
    strict = tmp_path / "strict.jinja"
    strict.write_text(
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['role'] + ': ' + m['content'] + eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    data_file = tmp_path / "chats.jsonl"
    records = GOOD + [{"messages": [{"role": "system", "content": "x"}, USER, ASSISTANT]}]
    data_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_cli(
        "prepare", "--dataset", data_file, "--tokenizer", tok, "--template", "chat",
        "--chat-template", strict, "--out", tmp_path / "o",
    )  # fmt: skip
    assert_refused(result, "chats example 4", "the chat template refuses it", "System role not supported")
    assert not (tmp_path / "o").exists()
