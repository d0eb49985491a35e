"""The seeded train/held-out split of a test file: disjoint, keyed by the normalised question
(stable under reordering, duplicates together), and the held-out part never reaches training
(through `prepare` with a recipe's data.train)."""

import json
import random

import pytest

from rocoft_llm.data.heldout_split import in_heldout, normalise_question, parse_split_spec, split_records
from rocoft_llm.data.prepare import PrepareOptions, prepare
from rocoft_llm.data.sources import resolve_source
from rocoft_llm.errors import RoCoFTError
from tests.helpers.tokenizers import save_tiny_tokenizer


def boolq_records(n=200):
    return [
        {
            "instruction": f"Passage {i}: the sky is blue {i % 7}.\nQuestion: is item {i} true?\n\nAnswer format: "
            "true/false",
            "input": "",
            "output": f"the correct answer is {'true' if i % 3 else 'false'}",
            "answer": "true" if i % 3 else "false",
        }
        for i in range(n)
    ]


@pytest.fixture
def adapters_dir(tmp_path):
    (tmp_path / "boolq").mkdir()
    records = boolq_records()
    records.append(
        dict(records[5], instruction=records[5]["instruction"].replace("Passage", "PASSAGE  "))
    )  # duplicate
    (tmp_path / "boolq" / "test.json").write_text(json.dumps(records))
    return tmp_path


def test_parts_are_disjoint_and_cover_the_file():
    records = boolq_records()
    train, held = split_records(records, "train"), split_records(records, "heldout")
    assert len(train) + len(held) == len(records) and 70 < len(held) < 130  # a 50% split, seeded
    assert not {normalise_question(r["instruction"]) for r in train} & {
        normalise_question(r["instruction"]) for r in held
    }
    assert parse_split_spec("BoolQ:HeldOut") == ("BoolQ", "heldout") and parse_split_spec("boolq") is None


def test_split_is_stable_under_reordering_and_keeps_duplicates_together():
    records = boolq_records()
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert sorted(r["instruction"] for r in split_records(shuffled, "heldout")) == sorted(
        r["instruction"] for r in split_records(records, "heldout")
    )
    for r in records[:50]:
        question, fmt = r["instruction"].split("\n\nAnswer format:")
        twin = dict(
            r,
            instruction="  "
            + question.replace("Passage", "PASSAGE").replace(" ", "\t ")
            + "\n\nAnswer format:"
            + fmt,
        )
        assert in_heldout(twin) == in_heldout(r)
    assert split_records(records, "heldout", seed=1) != split_records(records, "heldout")  # the seed matters


def test_heldout_part_never_reaches_training(adapters_dir, tmp_path):
    path, manifest = prepare(
        PrepareOptions(
            datasets=["boolq:train"],
            tokenizer_path=str(save_tiny_tokenizer(tmp_path / "tok")),
            llm_adapters_dir=str(adapters_dir),
        ),
        out=tmp_path / "prep",
        progress=False,
    )
    trained = {
        normalise_question(json.loads(line)["instruction"]) for line in (path / "records.jsonl").open()
    }
    held = resolve_source("boolq:heldout", llm_adapters_dir=str(adapters_dir))
    assert trained and held.records
    assert not trained & {normalise_question(r["instruction"]) for r in held.records}
    assert manifest["sources"][0]["name"] == "boolq:train"
    # the contamination report sees the overlap with the FULL test file (held-out eval then excludes it)
    assert manifest["contamination"]["exact_overlap"]["boolq:train"]["boolq"] == len(trained)


def test_split_of_unknown_dataset_is_a_clear_error(adapters_dir):
    with pytest.raises(RoCoFTError, match="'nope' is not a test set id"):
        resolve_source("nope:train", llm_adapters_dir=str(adapters_dir))
