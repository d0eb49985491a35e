"""Data as users have it, through the CLI: a plain Alpaca file (no ``answer``, an extra ``id``) and chat
files (OpenAI ``messages``, ShareGPT ``conversations``) prepare with no extra flag; ``validate`` counts
what ``bad_records: drop`` leaves; ``--preview`` shows the kept records and brackets the loss tokens."""

import json

import yaml

from tests.helpers.cli import assert_refused, run_cli
from tests.helpers.paths import TINY
from tests.helpers.tokenizers import save_chatml_tokenizer

TOKENIZER = TINY / "llama"
ALPACA = [
    {"id": i, "instruction": f"What is {i} + 1?", "input": "", "output": f"The answer is {i + 1}"}
    for i in range(8)
]
CHATS = [
    {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"What is {i} + 1?"},
            {"role": "assistant", "content": f"The answer is {i + 1}"},
            {"role": "user", "content": "And plus 2?"},
            {"role": "assistant", "content": f"The answer is {i + 2}"},
        ]
    }
    for i in range(4)
]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": f"What is {i} + 1?"}, {"from": "gpt", "value": str(i + 1)}]}
    for i in range(4)
]


def write(path, records, jsonl=False):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records))
    return path


def recipe(tmp_path, data_file, **data):
    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(TOKENIZER), "random_init": True, "dtype": "float32"},
                "data": {"train": [str(data_file)], "cutoff_len": 64, **data},
                "train": {"global_batch_size": 2, "micro_batch_size": 2, "max_steps": 2, "warmup_steps": 0},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    return path


def test_plain_alpaca_file_prepares_with_no_flag(tmp_path):
    data = write(tmp_path / "alpaca.json", ALPACA)
    result = run_cli("prepare", "--dataset", data, "--tokenizer", TOKENIZER, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "ignored fields {'id': 8}" in result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["examples"] == 8 and manifest["train_on_inputs"] is False
    assert (
        manifest["sources"][0]["ignored_fields"] == {"id": 8}
        and manifest["sources"][0]["format"] == "instruction"
    )
    first = json.loads((tmp_path / "out" / "records.jsonl").read_text().splitlines()[0])
    assert first == {
        "instruction": "What is 0 + 1?",
        "input": "",
        "output": "The answer is 1",
        "source": "alpaca",
    }
    checked = run_cli("validate", recipe(tmp_path, data))
    assert checked.exit_code == 0 and f"# ignored_fields: {{'{data}': {{'id': 8}}}}" in checked.output
    assert run_cli("validate", "--strict", recipe(tmp_path, data)).exit_code == 0  # reported, not refused


def test_validate_counts_what_drop_leaves(tmp_path):
    data = write(tmp_path / "bad.json", [{"instruction": "x"}, "text"])
    assert_refused(
        run_cli("validate", recipe(tmp_path, data, bad_records="drop")),
        str(data),
        "no records left",
        "fix the file",
    )


def test_preview_shows_kept_records_and_loss_brackets(tmp_path):
    data = write(tmp_path / "a.json", [{"instruction": "x"}] + ALPACA)
    args = ["prepare", "--dataset", data, "--tokenizer", TOKENIZER, "--preview", "1", "--cutoff-len", "512"]
    result = run_cli(*args, "--bad-records", "drop")  # was a KeyError on the missing 'answer'
    assert result.exit_code == 0, result.output
    assert "⟦" in result.output and "What is 0 + 1?" in result.output and "answer '" not in result.output
    loss = run_cli(*args, "--bad-records", "drop", "--preview-brackets", "loss")
    assert loss.output.rstrip().endswith("answer is 1<eos>⟧") and loss.output.count("⟦") == 2  # legend + loss


def test_chat_files_prepare_through_the_chat_template(tmp_path):
    tok = save_chatml_tokenizer(tmp_path / "tok")
    for name, records in (("chats.jsonl", CHATS), ("sharegpt.json", SHAREGPT)):
        data = write(tmp_path / name, records, jsonl=name.endswith("l"))
        args = ["prepare", "--dataset", data, "--tokenizer", tok, "--cutoff-len", "512"]
        refused = run_cli(*args, "--out", tmp_path / f"x-{name}")
        assert_refused(refused, str(data), "chat records", "set data.template: chat")
        result = run_cli(*args, "--template", "chat", "--out", tmp_path / f"out-{name}")
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / f"out-{name}" / "manifest.json").read_text())
        assert manifest["examples"] == len(records) and manifest["template"]["name"] == "chat"
    shown = run_cli(*args[:-2], "--template", "chat", "--preview", "1", "--preview-brackets", "loss")
    assert shown.exit_code == 0, shown.output
    assert "⟦1<eos>⟧" in shown.output  # SHAREGPT's first answer and its <|im_end|>, nothing else


def test_chat_template_missing_is_refused_with_alternatives(tmp_path):
    data = write(tmp_path / "chats.jsonl", CHATS, jsonl=True)
    result = run_cli(
        "prepare", "--dataset", data, "--tokenizer", TOKENIZER, "--template", "chat", "--out", tmp_path / "o"
    )
    assert_refused(result, "has no chat template", "llm_adapters, alpaca_clean", "data.chat_template")
    assert not (tmp_path / "o").exists()
