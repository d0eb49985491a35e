"""Data reports for the manifest: train/test contamination and the math-rationale quirk.

* Contamination: exact overlap of normalised questions between every training source and every
  test set found locally, plus the known structural case - math_10k contains MAWPS, which
  overlaps AddSub, MultiArith and SingleEq - flagged loudly whenever such data is prepared.
* Quirk: LLM-Adapters' math ``output`` is a model-written rationale whose last number often
  disagrees with ``answer``; counted and reported, never used as gold.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..io_utils import read_json
from .answers import LETTER_CLASS, is_letter
from .catalog import load_catalog
from .chat import record_question
from .heldout_split import normalise_question

log = logging.getLogger("rocoft_llm")

_LAST_NUMBER = re.compile(r"-?\d+\.?\d*")


_LAST_OPTION = re.compile(rf"\(({LETTER_CLASS})\)")


def rationale_disagrees(record: dict) -> bool | None:
    """True when the rationale's final answer is not ``answer``: its last number (numeric answers,
    the protocol's extraction rule) or its last "(X)" option (letter answers). None: neither kind."""
    answer = record["answer"].strip()
    if is_letter(answer):
        options = _LAST_OPTION.findall(record["output"])
        return not options or options[-1] != answer
    try:
        gold = float(answer.replace(",", ""))
    except ValueError:
        return None
    numbers = _LAST_NUMBER.findall(record["output"].replace(",", ""))
    if not numbers:
        return True
    return abs(float(numbers[-1]) - gold) > 1e-3


def local_test_sets(test_dir: str | Path | None) -> dict[str, Path]:
    """Catalog test files present under ``test_dir`` or else $ROCOFT_LLM_ADAPTERS_DIR (LLM-Adapters
    layout, flat or under dataset/): found exactly as the data sources find them."""
    from .sources import _find_llm_adapters_file, _llm_adapters_root

    root = _llm_adapters_root(str(test_dir) if test_dir else None)
    if root is None:
        return {}
    found = {}
    for entry in load_catalog()[0].values():
        path = _find_llm_adapters_file(root, f"{entry.llm_adapters_dir}/test.json")
        if path is not None:
            found[entry.id] = path
    return found


def test_question_sets(test_dir: str | Path | None) -> dict[str, set[str]]:
    """The normalised questions of every local test set (:func:`local_test_sets`), per task."""
    test_questions = {}
    for task, path in local_test_sets(test_dir).items():
        records = read_json(path, "test set", "fix or replace it (it is read for the contamination report)")
        test_questions[task] = (
            {
                normalise_question(r.get("instruction", ""))
                for r in records
                if isinstance(r, dict) and isinstance(r.get("instruction", ""), str)
            }
            if isinstance(records, list)
            else set()
        )
    return test_questions


class OverlapCounter:
    """The distinct questions of one training source found in each test set, fed one record at a
    time (memory: the matches, at most the test sets' size)."""

    def __init__(self, tests: dict[str, set[str]]):
        self.tests, self.matched = tests, {task: set() for task in tests}

    def add(self, record: dict) -> None:
        question = normalise_question(record_question(record) or "")
        for task, questions in self.tests.items():
            if question in questions:
                self.matched[task].add(question)

    def counts(self) -> dict[str, int]:
        return {task: len(found) for task, found in self.matched.items() if found}


def contamination_report(
    sources: list, tests: dict[str, set[str]], overlaps: dict[str, dict[str, int]]
) -> dict:
    """Exact overlaps per (training source, test set) (``overlaps``: :meth:`OverlapCounter.counts` per
    source name) and the structural flags, with warnings."""
    datasets, _ = load_catalog()
    report = {
        "exact_overlap": {},
        "flagged_test_sets": {},
        "warnings": [],
        "test_sets_checked": sorted(tests),
    }
    for src in sources:
        report["exact_overlap"][src.name] = overlaps.get(src.name, {})
        names = {src.name, *(src.members or [])}
        for task, entry in datasets.items():
            if names & set(entry.contaminated_by):
                report["flagged_test_sets"].setdefault(task, []).append(src.name)
    if report["flagged_test_sets"]:
        msg = (
            f"CONTAMINATION: training data {sorted({s for v in report['flagged_test_sets'].values() for s in v})} "
            f"(math_10k-style, contains MAWPS) overlaps the test sets {sorted(report['flagged_test_sets'])}; "
            "accuracy on them is not a clean held-out number - report it as contaminated."
        )
        report["warnings"].append(msg)
        log.warning(msg)
    for name, overlaps in report["exact_overlap"].items():
        if overlaps:
            msg = f"CONTAMINATION: {name} shares exact questions with test sets: {overlaps}"
            report["warnings"].append(msg)
            log.warning(msg)
    return report


class QuirkCounter:
    """How many math rationales disagree with their gold answer (only meaningful for math data), fed
    one record at a time; records without an answer are not checked."""

    def __init__(self):
        self.checked, self.disagree = 0, 0

    def add(self, record: dict) -> None:
        flag = rationale_disagrees(record) if isinstance(record.get("answer"), str) else None
        if flag is not None:
            self.checked += 1
            self.disagree += flag

    def report(self) -> dict:
        return {"checked": self.checked, "rationale_final_answer_disagrees": self.disagree}
