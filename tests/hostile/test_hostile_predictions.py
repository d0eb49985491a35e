"""Hostile prediction files through `rocoft-llm score`: refused with exit 2 and a message naming the file,
the line and the fix; never a traceback or a 0-record "0.0%" result."""

import json

import pytest

from tests.helpers.cli import assert_refused, run_cli, snapshot

GOOD = {"response": "The answer is 4", "answer": "4"}
TEST = [{"instruction": "2+2?", "input": "", "output": "4", "answer": "4"}]


def lines(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


CASES = {
    # name: (file bytes, extra args, message parts)
    "empty file": (b"", [], ["holds no records"]),
    "only blank lines": (b"\n  \n", [], ["holds no records"]),
    "not UTF-8": (
        lines(GOOD) + b'{"response": "\xff", "answer": "1"}\n',
        [],
        ["line 2", "not UTF-8", "UTF-8"],
    ),
    "a line that is not JSON": (lines(GOOD, "{response: 1"), [], ["line 2", "not JSON"]),
    "a JSON array, not JSONL": (lines([GOOD]), [], ["line 1", "expected a JSON object, got list"]),
    "integer response": (
        lines({"response": 3, "answer": "3"}),
        [],
        ["line 1", "'response' is 3, not a string"],
    ),
    "null response": (lines({"response": None, "answer": "3"}), [], ["'response' is None, not a string"]),
    "no response": (lines({"answer": "3"}), [], ["no 'response' field"]),
    "null answer": (lines({"response": "3", "answer": None}), [], ["'answer' is None"]),
    "neither answer nor index": (lines({"response": "3"}), [], ["neither 'answer' nor 'index'"]),
    "negative index": (lines({"response": "3", "index": -1}), [], ["'index' is -1, not a record number"]),
    "string index": (lines({"response": "3", "index": "0"}), [], ["'index' is '0', not a record number"]),
    "index past the test file": (
        lines({"response": "3", "index": 5}),
        ["--test-file", "TEST"],
        ["line 1", "'index' 5 is outside the test file (1 records"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_score_refuses(tmp_path, monkeypatch, case):
    monkeypatch.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
    content, extra, needles = CASES[case]
    (tmp_path / "test.json").write_text(json.dumps(TEST))
    pred = tmp_path / "p.jsonl"
    pred.write_bytes(content)
    before = snapshot(tmp_path)
    args = [str(tmp_path / "test.json") if a == "TEST" else a for a in extra]
    result = run_cli("score", "--task", "gsm8k", "--predictions", pred, *args)
    assert_refused(result, str(pred), *needles)
    assert snapshot(tmp_path) == before


def test_answers_in_the_file_need_no_test_set(tmp_path, monkeypatch):
    """Only an 'index' join reads the LLM-Adapters files; numeric gold answers are accepted as written."""
    monkeypatch.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
    pred = tmp_path / "p.jsonl"
    pred.write_bytes(lines(GOOD, {"response": "so 7", "answer": 7}, {"response": "no idea", "answer": "5"}))
    result = run_cli("score", "--task", "gsm8k", "--predictions", pred)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["n"] == 3 and summary["protocol"]["correct"] == 2


def test_index_join_without_test_files_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
    pred = tmp_path / "p.jsonl"
    pred.write_bytes(lines({"response": "4", "index": 0}))
    assert_refused(run_cli("score", "--task", "gsm8k", "--predictions", pred), "--llm-adapters-dir")


def test_unknown_task_is_named(tmp_path):
    pred = tmp_path / "p.jsonl"
    pred.write_bytes(lines(GOOD))
    assert_refused(run_cli("score", "--task", "gsm9k", "--predictions", pred), "'gsm9k'", "test set id")


def test_score_cuts_a_huge_response_in_its_table_and_json(tmp_path):
    """A 10 MB response (its last number is the protocol's prediction) is shown as a short preview."""
    pred = tmp_path / "p.jsonl"
    pred.write_bytes(lines({"response": "The answer is " + "7" * 10_000_000, "answer": "4"}))
    result = run_cli("score", "--task", "gsm8k", "--predictions", pred)
    assert result.exit_code == 0, result.output[:300]
    assert len(result.output) < 20_000 and "more characters cut" in result.output
