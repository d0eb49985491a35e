"""The seeded train / validation / test split of an instruction FILE (math_data.json:test): keyed by
the normalised question, so no question is in two parts, duplicates stay together, the split does
not depend on the file's order; specs resolve through the same path as every dataset spec."""

import json
import random
from collections import Counter

import pytest

from rocoft_llm.data.file_split import FILE_PARTS, parse_file_split_spec, split_file_records
from rocoft_llm.data.heldout_split import normalise_question, parse_split_spec
from rocoft_llm.data.sources import resolve_source
from rocoft_llm.errors import RoCoFTError


def math_records(n=600):
    records = [
        {
            "instruction": f"Tom has {i} apples and buys {i % 13} more. How many apples does he have?",
            "input": "",
            "output": f"{i} + {i % 13} = {i + i % 13}. The answer is {i + i % 13}",
            "answer": str(i + i % 13),
        }
        for i in range(n)
    ]
    # duplicates that differ only in case, punctuation and spacing: the same question
    twins = [dict(r, instruction="  " + r["instruction"].upper().replace("?", " ??")) for r in records[::7]]
    return records + twins


def parts_of(records, source="synthetic.json"):
    return {part: split_file_records(records, part, source) for part in FILE_PARTS}


def assert_disjoint_cover(records, parts):
    assert sum(len(p) for p in parts.values()) == len(records)
    questions = {part: {normalise_question(r["instruction"]) for r in rs} for part, rs in parts.items()}
    for a in FILE_PARTS:
        for b in FILE_PARTS:
            if a < b:
                assert not questions[a] & questions[b], (a, b)


def test_parts_are_disjoint_cover_the_file_and_keep_duplicates_together():
    records = math_records()
    parts = parts_of(records)
    assert_disjoint_cover(records, parts)
    n = len(records)
    assert 0.05 * n < len(parts["validation"]) < 0.16 * n and 0.05 * n < len(parts["test"]) < 0.16 * n
    where = {}
    for part, rs in parts.items():
        for r in rs:
            where.setdefault(normalise_question(r["instruction"]), set()).add(part)
    assert all(len(p) == 1 for p in where.values())
    assert max(Counter(normalise_question(r["instruction"]) for r in records).values()) == 2  # twins exist


def test_split_does_not_depend_on_order():
    records = math_records()
    shuffled = records[:]
    random.Random(5).shuffle(shuffled)
    for part in FILE_PARTS:
        assert sorted(r["instruction"] for r in split_file_records(shuffled, part, "x")) == sorted(
            r["instruction"] for r in split_file_records(records, part, "x")
        )


def test_spec_parsing_and_resolution(tmp_path):
    path = tmp_path / "math_data.json"
    records = math_records(200)
    path.write_text(json.dumps(records))
    assert parse_file_split_spec(f"{path}:Validation") == (str(path), "validation")
    assert parse_file_split_spec("boolq:heldout") is None and parse_file_split_spec(str(path)) is None
    assert parse_split_spec(f"{path}:train") is None  # a file split, not a test-set split
    src = resolve_source(f"{path}:test")
    assert src.records == split_file_records(records, "test", str(path))
    assert src.name == "math_data:test" and "split" in src.files
    with pytest.raises(RoCoFTError, match="missing.json is not a file"):
        resolve_source(f"{tmp_path / 'missing.json'}:train")


def test_a_record_without_instruction_is_refused_by_index():
    with pytest.raises(RoCoFTError, match=r"data.json: record\(s\) \[1\]"):
        split_file_records([{"instruction": "a"}, {"output": "b"}], "train", "data.json")


def test_real_math_data_split_is_disjoint(shared_data):
    path = shared_data / "ft-training_set" / "math_data.json"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    records = json.loads(path.read_text())
    parts = {part: resolve_source(f"{path}:{part}").records for part in FILE_PARTS}
    assert_disjoint_cover(records, parts)
    assert all(len(parts[p]) > 0.08 * len(records) for p in ("validation", "test"))
