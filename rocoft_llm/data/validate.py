"""Record validation: every bad record is named by source and index, with a reason; policy
``error`` (default) stops with all problems listed, ``drop`` removes them and counts drops per reason.

Two record formats (:mod:`.chat` detects which per file): instruction records (``instruction`` and
``output``, optional ``input`` and ``answer``) and chat records (``messages`` or ShareGPT
``conversations``, checked by :func:`.chat.chat_problem`). ``answer`` is what the benchmark scorers
need, so training data may lack it (evaluation tasks require it: :func:`missing_answers`); when
present it is checked against the dataset's answer kind. Fields outside the format are not an error:
they are left out of the kept records (never rendered) and counted once per source as ignored.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from ..errors import RoCoFTError
from .answers import LETTERS, is_letter
from .chat import chat_problem, detect_format, list_key, normalise_chat

#: the fields of an instruction record (LLM-Adapters / Alpaca); ``input`` and ``answer`` are optional
FIELDS = ("instruction", "input", "output", "answer")
REQUIRED = ("instruction", "output")

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


def _answer_problem(answer: str, record: dict, spec: dict) -> str | None:
    answer = answer.strip()
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


class Drops(Counter):
    """Drops per reason, plus the file's record format and the fields left out of the text (not drops)."""

    format: str = "instruction"
    ignored: Counter


def format_fields(fmt: str) -> tuple[str, ...]:
    """The fields a record of format ``fmt`` is rendered from; any other field is ignored."""
    return FIELDS if fmt == "instruction" else (list_key(fmt),)


def record_problem(record, spec: dict, fmt: str = "instruction") -> str | None:
    """Why ``record`` is bad (a short reason key + detail), or None. ``fmt``: the file's record format."""
    if not isinstance(record, dict):
        return f"not_an_object: got {type(record).__name__}"
    if fmt != "instruction":
        return chat_problem(record, fmt)
    missing = [f for f in REQUIRED if f not in record]
    if missing:
        return f"missing_field: {missing}"
    for f in FIELDS:
        if f in record and not isinstance(record[f], str):
            return f"non_string_{f}: {record[f]!r}"
    if not record["instruction"].strip():
        return "empty_instruction"
    if "answer" in record:
        return _answer_problem(record["answer"], record, spec)
    return None


def _kept(record: dict, fmt: str) -> dict:
    """The record as rendered: its format's fields only (``input`` defaults to "")."""
    if fmt != "instruction":
        return normalise_chat(record, fmt)
    kept = {f: record[f] for f in FIELDS if f in record}
    kept.setdefault("input", "")
    return {f: kept[f] for f in FIELDS if f in kept}


class RecordChecker:
    """:func:`validate_records` one record at a time, for a source read as a stream: :meth:`check`
    each record in order, then :meth:`finish`. Memory holds the counts and the problems' lines."""

    def __init__(self, spec: dict, source: str, policy: str = "error", declared: str = "auto"):
        self.spec, self.source, self.policy, self.declared = spec, source, policy, declared
        self.fmt = detect_format([], declared, source) if declared != "auto" else None
        self.drops, self.problems, self.ignored = Drops(), [], Counter()

    def check(self, i: int, record) -> dict | None:
        """The kept form of record ``i``, or None when it is bad (counted, and listed for the error)."""
        if self.fmt is None and isinstance(record, dict):  # the format is the first object's
            self.fmt = detect_format([record], self.declared, self.source)
        fmt = self.fmt or "instruction"
        problem = record_problem(record, self.spec, fmt)
        if problem is None:
            known = format_fields(fmt)
            self.ignored.update(k for k in record if k not in known)
            return _kept(record, fmt)
        self.drops[problem.split(":", 1)[0]] += 1
        if len(self.problems) < 10:
            self.problems.append(f"record {i}: {problem}")
        return None

    def finish(self) -> Drops:
        """The drops per reason (with the format and ignored fields); ``policy='error'`` raises
        listing the bad records."""
        bad = sum(self.drops.values())
        if bad and self.policy == "error":
            shown = "; ".join(self.problems) + (f"; ... and {bad - 10} more" if bad > 10 else "")
            raise RoCoFTError(
                f"{self.source}: {bad} bad record(s): {shown}. Fix the file, or pass "
                "--bad-records drop (data.bad_records: drop) to drop them with counts."
            )
        self.drops.ignored, self.drops.format = self.ignored, self.fmt or "instruction"
        return self.drops


def kept_stream(
    records: Iterable, spec: dict, source: str, policy: str = "error", declared: str = "auto"
) -> Iterator[dict]:
    """:func:`validate_records` as a stream: the kept records in order; the problems are raised (policy
    ``error``) once the records are exhausted."""
    checker = RecordChecker(spec, source, policy, declared)
    for i, record in enumerate(records):
        kept = checker.check(i, record)
        if kept is not None:
            yield kept
    checker.finish()


def validate_records(
    records: list, spec: dict, source: str, policy: str = "error", declared: str = "auto"
) -> tuple[list[dict], Drops]:
    """(kept records, drops per reason). ``policy='error'`` raises listing every bad record. The format
    is detected from the records (``declared``: auto, instruction, messages or sharegpt) and kept in
    ``drops.format``; fields outside it are counted in ``drops.ignored`` (field -> records), not refused."""
    checker = RecordChecker(spec, source, policy, declared)
    kept = [k for i, r in enumerate(records) if (k := checker.check(i, r)) is not None]
    return kept, checker.finish()


def missing_answers(records: list, source: str) -> None:
    """Scoring needs a gold ``answer`` per record: refuse a file without them, naming the field."""
    bad = [
        i
        for i, r in enumerate(records)
        if not isinstance(r, dict) or not isinstance(r.get("answer"), str) or not r["answer"].strip()
    ]
    if bad:
        raise RoCoFTError(
            f"{source}: record(s) {bad[:5]} have no 'answer' ({len(bad)} of {len(records)}); the answer "
            "scorers compare each response with the record's gold 'answer' field. Add an 'answer' to every "
            "record, or score the file with --metric nll (which needs only 'output')."
        )
