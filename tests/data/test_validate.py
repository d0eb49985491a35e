"""Every bad-record kind is caught with file and index; drop policy counts per reason."""

import json

import pytest

from rocoft_llm.data.records import read_instruction_records, read_json_array
from rocoft_llm.data.validate import validate_records
from rocoft_llm.errors import RoCoFTError

GOOD = {
    "instruction": "Q? Answer format: true/false",
    "input": "",
    "output": "the correct answer is true",
    "answer": "true",
}
BAD = [
    ({"instruction": "Q", "input": "", "answer": "true"}, "missing_field"),
    ({**GOOD, "input": 3}, "non_string_input"),
    ({**GOOD, "answer": 3}, "non_string_answer"),
    ({**GOOD, "answer": "  "}, "empty_answer"),
    ({**GOOD, "answer": "maybe"}, "answer_not_an_option"),
    ("just a string", "not_an_object"),
]


@pytest.mark.parametrize("record,reason", BAD)
def test_each_bad_kind(record, reason):
    with pytest.raises(RoCoFTError, match=rf"src.json: 1 bad record\(s\): record 1: {reason}"):
        validate_records([GOOD, record], {"type": "label", "labels": ["true", "false"]}, "src.json")


def test_math_answers_must_be_numbers_and_letters_options():
    num = {**GOOD, "instruction": "How many?", "answer": "12.5"}
    assert validate_records([num], {"type": "number"}, "m")[0] == [num]
    with pytest.raises(RoCoFTError, match="answer_not_a_number: 'twelve'"):
        validate_records([{**num, "answer": "twelve"}], {"type": "number"}, "m")
    with pytest.raises(RoCoFTError, match="answer_not_an_option: 'F'"):
        validate_records([{**num, "answer": "F"}], {"type": "letter", "labels": list("ABCDE")}, "aqua")
    mixed = {"type": "number_or_letter"}
    assert len(validate_records([num, {**num, "answer": "C"}], mixed, "math_10k")[0]) == 2


def test_drop_policy_counts_per_reason():
    records = [GOOD] + [r for r, _ in BAD] + [{**GOOD, "answer": "nope"}]
    kept, drops = validate_records(records, {"type": "label"}, "src", policy="drop")
    assert kept == [GOOD]
    assert drops["answer_not_an_option"] == 2 and drops["missing_field"] == 1 and sum(drops.values()) == 7


def test_training_records_need_no_answer_and_extra_fields_are_ignored():
    """Plain Alpaca records: no answer, no input, an id - kept (input ""), the id left out and counted."""
    alpaca = [{"id": i, "instruction": f"Q{i}", "output": "o", "category": "qa"} for i in range(3)]
    kept, drops = validate_records(alpaca, {"type": "label"}, "alpaca.json")
    assert kept == [{"instruction": f"Q{i}", "input": "", "output": "o"} for i in range(3)]
    assert drops.ignored == {"id": 3, "category": 3} and drops.format == "instruction" and not drops
    with pytest.raises(RoCoFTError, match="empty_answer"):  # an answer that is there is still checked
        validate_records([{**GOOD, "answer": ""}], {}, "src")


def test_error_lists_all_problems_at_once():
    with pytest.raises(RoCoFTError, match=r"3 bad record\(s\): record 0: .*record 1: .*record 2: "):
        validate_records([{}, {}, {}], {}, "src")


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n {"instruction": "x",\n ]')
    with pytest.raises(RoCoFTError, match=r"bad.json: line 3: data file is not valid JSON \(.* at column 2"):
        read_json_array(path)
    path.write_text('{"instruction": "x"}')
    with pytest.raises(RoCoFTError, match="expected a JSON array"):
        read_instruction_records(path)
    path.write_text(json.dumps([GOOD]))
    assert read_instruction_records(path) == [GOOD]
