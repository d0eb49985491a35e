"""A seeded train / validation / test split of an instruction FILE, e.g. LLM-Adapters'
``ft-training_set/math_data.json``: ``<file>.json:train``, ``<file>.json:validation`` and
``<file>.json:test`` are dataset specs usable in recipes' ``data.train``, ``prepare --dataset``,
``eval.nll_data`` and ``eval --metric nll --tasks``.

The rule is the one of :mod:`.heldout_split`: a record's position in [0, 1) is
``sha256("<seed>|<normalised question>")`` (:func:`~.heldout_split.heldout_score`, seed
``SPLIT_SEED``); below ``VALIDATION_FRACTION`` it is validation, below ``VALIDATION_FRACTION +
TEST_FRACTION`` test, else train. So the split does not depend on the file's order, duplicated
questions always land in the same part, and no normalised question is in two parts (tested, also
on the real math_data.json when it is present). Seed and fractions are fixed so that every command
that names ``math_data.json:test`` means the same records.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import RoCoFTError
from .chat import record_question
from .heldout_split import SPLIT_SEED, heldout_score

FILE_PARTS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.1
_SPEC = re.compile(r"^(?P<path>.+\.jsonl?):(?P<part>train|validation|test)$", re.I)


def parse_file_split_spec(spec: str) -> tuple[str, str] | None:
    """(file path, part) for ``"<file>.json:train|validation|test"``, else None (syntax only)."""
    m = _SPEC.match(spec.strip())
    return (m["path"], m["part"].lower()) if m else None


def file_part_problem(spec: str) -> str | None:
    """The problem with ``<existing file>:<part>`` whose part is not one of :data:`FILE_PARTS`, else None."""
    head, _, part = spec.rpartition(":")
    if not head or parse_file_split_spec(spec) or not Path(head).is_file():
        return None
    return (
        f"{spec!r}: {part!r} is not a split part of the file {head}; use {head}:train, "
        f"{head}:validation or {head}:test (or the file itself)"
    )


def file_split_part(instruction: str, seed: int = SPLIT_SEED) -> str:
    """The part ("train", "validation" or "test") of a record with this instruction."""
    score = heldout_score(instruction, seed)
    if score < VALIDATION_FRACTION:
        return "validation"
    if score < VALIDATION_FRACTION + TEST_FRACTION:
        return "test"
    return "train"


def split_file_records(records: list, part: str, source: str, seed: int = SPLIT_SEED) -> list:
    """The records of ``part`` in their original order, keyed by the instruction (a chat record: its first
    user turn). A record without one cannot be placed: refused, naming ``source`` and the record's index."""
    if part not in FILE_PARTS:
        raise RoCoFTError(f"{source}: split part {part!r} is not one of {', '.join(FILE_PARTS)}.")
    questions = [record_question(r) for r in records]
    bad = [i for i, q in enumerate(questions) if q is None]
    if bad:
        raise RoCoFTError(
            f"{source}: record(s) {bad[:5]} have no string 'instruction' (a chat record: no user turn), so "
            "they cannot be assigned to a split part (the split is keyed by the question); fix or remove "
            f"them ({len(bad)} in all)."
        )
    return [r for r, q in zip(records, questions) if file_split_part(q, seed) == part]


def file_split_fingerprint(part: str, seed: int = SPLIT_SEED) -> str:
    """What a cache key needs to know about the split rule."""
    return f"file-split v1 seed={seed} validation={VALIDATION_FRACTION} test={TEST_FRACTION} part={part}"
