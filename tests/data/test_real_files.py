"""The real LLM-Adapters test files (../shared; skipped when absent): counts and answers validate."""

import re

import pytest

from rocoft_llm.data.catalog import dataset_entry
from rocoft_llm.data.sources import from_llm_adapters
from rocoft_llm.data.validate import validate_records
from tests.helpers.paths import LLM_ADAPTERS_TEST_SETS


def provenance_counts(shared_data) -> dict[str, int]:
    rows = re.findall(
        r"^\| (\S+)(?: \(extra\))? \| dataset/\S+/test.json \| (\d+) \|",
        (shared_data / "PROVENANCE.md").read_text(),
        re.M,
    )
    return {folder: int(n) for folder, n in rows}


TASKS = LLM_ADAPTERS_TEST_SETS


@pytest.mark.parametrize("task", TASKS)
def test_real_test_file_counts_and_answers(shared_data, task):
    counts = provenance_counts(shared_data)
    assert len(counts) == 14
    src = from_llm_adapters(task, "test", str(shared_data))
    assert len(src.records) == counts[dataset_entry(task).llm_adapters_dir]
    kept, drops = validate_records(src.records, src.answer_spec, task, policy="drop")
    assert not drops and len(kept) == len(src.records)
    assert all(r["input"] == "" for r in src.records)
