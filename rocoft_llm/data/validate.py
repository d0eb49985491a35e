"""Record validation: every bad record is named by source and index, with a reason; policy
``error`` (default) stops with all problems listed, ``drop`` removes them and counts drops per reason."""

from __future__ import annotations

import re
from collections import Counter

from ..errors import RoCoFTError
from .answers import LETTERS, is_letter

#: the fields of an LLM-Adapters record, all strings (records.py reads files of them)
FIELDS = ("instruction", "input", "output", "answer")

_FORMAT_LINE = re.compile(r"Answer format:\s*([\w/]+)\s*$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.replace(",", "").strip()))


def allowed_labels(record: dict, spec: dict) -> list[str] | None:
    """Labels an option answer must be among: the catalog's, or the record's "Answer format:" line."""
    m = _FORMAT_LINE.search(record.get("instruction", ""))
    if m:
        return m.group(1).split("/")
    return list(spec.get("labels", [])) or None


def record_problem(record, spec: dict) -> str | None:
    """Why ``record`` is bad (a short reason key + detail), or None."""
    if not isinstance(record, dict):
        return f"not_an_object: got {type(record).__name__}"
    missing = [f for f in FIELDS if f not in record]
    if missing:
        return f"missing_field: {missing}"
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        return f"extra_field: {extra}"
    for f in FIELDS:
        if not isinstance(record[f], str):
            return f"non_string_{f}: {record[f]!r}"
    if not record["instruction"].strip():
        return "empty_instruction"
    answer = record["answer"].strip()
    if not answer:
        return "empty_answer"
    kind = spec.get("type")
    if kind == "number" and not is_number(answer):
        return f"answer_not_a_number: {answer!r}"
    if kind == "letter" and answer not in spec.get("labels", LETTERS):
        return f"answer_not_an_option: {answer!r} not in {list(spec.get('labels', LETTERS))}"
    if kind == "number_or_letter" and not (is_number(answer) or is_letter(answer)):
        return f"answer_not_a_number_or_letter: {answer!r}"
    if kind == "label":
        labels = allowed_labels(record, spec)
        if labels and answer not in labels:
            return f"answer_not_an_option: {answer!r} not in {labels}"
    return None


def validate_records(
    records: list, spec: dict, source: str, policy: str = "error"
) -> tuple[list[dict], Counter]:
    """(kept records, drops per reason). ``policy='error'`` raises listing every bad record."""
    kept, drops, problems = [], Counter(), []
    for i, rec in enumerate(records):
        problem = record_problem(rec, spec)
        if problem is None:
            kept.append(rec)
            continue
        reason = problem.split(":", 1)[0]
        drops[reason] += 1
        problems.append(f"record {i}: {problem}")
    if problems and policy == "error":
        shown = "; ".join(problems[:10]) + (
            f"; ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise RoCoFTError(
            f"{source}: {len(problems)} bad record(s): {shown}. Fix the file, or pass "
            "--bad-records drop (data.bad_records: drop) to drop them with counts."
        )
    return kept, drops
