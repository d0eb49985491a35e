"""The question and option texts of an LLM-Adapters multiple-choice instruction, for scoring by the
log-likelihood of each option's TEXT (lm-eval's standard "Question: ...\\nAnswer: <option>"
formulation, where a small base model is already above chance) rather than of its label."""

from __future__ import annotations

import re

from ..errors import RoCoFTError

_HEAD = re.compile(r"^Please choose the correct (?:answer|solution|ending)[^:]*:\s*", re.I)
_OPTION = re.compile(r"\b(?:Answer|Solution|Option|Ending)(\d)\s*:\s*")
_FORMAT = re.compile(r"\s*Answer format:.*$", re.S)


def parse_options(instruction: str, answer: str) -> dict:
    """``{question, choices, gold}`` (gold = 0-based index of ``answer``, e.g. "answer2" -> 1)."""
    body = _FORMAT.sub("", _HEAD.sub("", instruction.strip()))
    parts = _OPTION.split(body)
    question, rest = parts[0].strip(), parts[1:]
    numbers, texts = rest[0::2], [t.strip() for t in rest[1::2]]
    digits = re.findall(r"\d+$", answer)
    if (
        len(texts) < 2
        or numbers != [str(i + 1) for i in range(len(texts))]
        or not digits
        or not 1 <= int(digits[0]) <= len(texts)
    ):
        raise RoCoFTError(
            f"cannot read the options of instruction {instruction[:80]!r}... (answer {answer!r}); "
            "log-likelihood scoring of option texts needs 'Answer1: ... Answer2: ...' style options."
        )
    return {"question": question, "choices": texts, "gold": int(digits[0]) - 1}
