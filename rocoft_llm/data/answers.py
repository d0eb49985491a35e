"""Answer kinds - declared once for the catalog, record validation, reports, task inference and scoring.

The catalog's ``answer.type`` of a dataset is one of :data:`AnswerType`; evaluation scores each with
the scorer kind in :data:`SCORER_KIND`. Multiple-choice math (AQuA) answers are the :data:`LETTERS`.
"""

from __future__ import annotations

import typing
from typing import Literal

AnswerType = Literal["label", "number", "letter", "number_or_letter"]
ANSWER_TYPES: tuple[str, ...] = typing.get_args(AnswerType)
#: answer types whose records carry a rationale ending in an answer (the math quirk report reads them)
MATH_ANSWER_TYPES = ("number", "letter", "number_or_letter")
#: the option letters of multiple-choice math answers
LETTERS: tuple[str, ...] = ("A", "B", "C", "D", "E")
LETTER_PATTERN = "|".join(LETTERS)  # the regex alternation the LLM-Adapters scorer uses
LETTER_CLASS = f"[{LETTERS[0]}-{LETTERS[-1]}]"  # the same letters as a regex character class

ScorerKind = Literal["option", "number", "letter"]
#: catalog answer type -> the scorer kind evaluation uses for it
SCORER_KIND: dict[str, str] = {"label": "option", "number": "number", "letter": "letter"}


def is_letter(answer: str) -> bool:
    return answer in LETTERS
