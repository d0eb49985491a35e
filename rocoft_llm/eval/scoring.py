"""Answer extraction and scoring.

``protocol`` reproduces LLM-Adapters exactly:

* commonsense: the FIRST case-sensitive match of the task's option regex in the stripped response
  (boolq ``true|false``, piqa ``solution1|solution2``, siqa/arc/obqa ``answer1..answer5``,
  hellaswag ``ending1..ending4``, winogrande ``option1|option2``); correct iff equal to ``answer``;
  no match is wrong;
* math: commas removed, the LAST match of ``-?\\d+\\.?\\d*``; correct iff
  ``|pred - float(answer)| <= 0.001``; no number is wrong;
* AQuA: the FIRST ``A|B|C|D|E`` anywhere in the stripped response (known to be weak: the "A" of
  "A train leaves..." counts).

``strict`` is a stricter, clearly separate variant: the option stated in "the correct answer is
X" / "answer is (X)" / "The answer is N" (case-insensitive), falling back to the only option
named when exactly one is; otherwise wrong. Both are always reported, never mixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..data.answers import LETTER_CLASS, LETTER_PATTERN

COMMONSENSE_PATTERNS = {
    "boolq": r"true|false",
    "piqa": r"solution1|solution2",
    "siqa": r"answer1|answer2|answer3|answer4|answer5",
    "arc_easy": r"answer1|answer2|answer3|answer4|answer5",
    "arc_challenge": r"answer1|answer2|answer3|answer4|answer5",
    "openbookqa": r"answer1|answer2|answer3|answer4|answer5",
    "hellaswag": r"ending1|ending2|ending3|ending4",
    "winogrande": r"option1|option2",
}
_NUMBER = re.compile(r"-?\d+\.?\d*")
_STATED_NUMBER = re.compile(r"answer is:?\s*\$?\s*(-?[\d,]*\.?\d+)", re.I)
_STATED_LETTER = re.compile(rf"answer is:?\s*\(?({LETTER_CLASS})\)?(?![a-z])", re.I)
_STATED_OPTION = re.compile(r"correct answer is:?\s*([a-z]+\d?)", re.I)


@dataclass(frozen=True)
class Score:
    pred: str
    correct: bool


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def number_matches(pred: float | None, answer: str) -> bool:
    gold = _float(answer.replace(",", ""))
    return pred is not None and gold is not None and abs(pred - gold) <= 0.001


# --- protocol (LLM-Adapters) ----------------------------------------------------------------------
def protocol_option(response: str, pattern: str, answer: str) -> Score:
    found = re.findall(pattern, response.strip())
    pred = found[0] if found else ""
    return Score(pred, pred == answer)


def protocol_number(response: str, answer: str) -> Score:
    found = _NUMBER.findall(response.replace(",", ""))
    pred = _float(found[-1]) if found else None
    return Score("" if pred is None else found[-1], number_matches(pred, answer))


def protocol_letter(response: str, answer: str) -> Score:
    found = re.findall(LETTER_PATTERN, response.strip())
    pred = found[0] if found else ""
    return Score(pred, pred == answer)


# --- strict variants ------------------------------------------------------------------------------
def strict_option(response: str, pattern: str, answer: str) -> Score:
    options = pattern.split("|")
    stated = _STATED_OPTION.findall(response)
    for s in reversed(stated):
        if s.lower() in options:
            return Score(s.lower(), s.lower() == answer)
    named = {m.lower() for m in re.findall(pattern, response, re.I)}
    if len(named) == 1:
        pred = named.pop()
        return Score(pred, pred == answer)
    return Score("", False)


def strict_number(response: str, answer: str) -> Score:
    stated = _STATED_NUMBER.findall(response)
    if not stated:
        return Score("", False)
    pred = _float(stated[-1].replace(",", ""))
    return Score(stated[-1], number_matches(pred, answer))


def strict_letter(response: str, answer: str) -> Score:
    stated = _STATED_LETTER.findall(response)
    if stated:
        pred = stated[-1].upper()
        return Score(pred, pred == answer)
    named = set(re.findall(rf"\(({LETTER_CLASS})\)", response))
    if len(named) == 1:
        pred = named.pop()
        return Score(pred, pred == answer)
    return Score("", False)


def score(kind: str, response: str, answer: str, pattern: str | None = None) -> dict[str, Score]:
    """Both scorers for one response. ``kind``: option (with ``pattern``), number or letter."""
    if kind == "option":
        return {
            "protocol": protocol_option(response, pattern, answer),
            "strict": strict_option(response, pattern, answer),
        }
    if kind == "number":
        return {"protocol": protocol_number(response, answer), "strict": strict_number(response, answer)}
    if kind == "letter":
        return {"protocol": protocol_letter(response, answer), "strict": strict_letter(response, answer)}
    raise ValueError(f"unknown scorer kind {kind!r}")


PREDICTIONS_FIX = (
    "write one JSON object per line with a string 'response' and the gold 'answer' (or the test "
    "record's 'index' plus --test-file/--llm-adapters-dir)"
)


def read_predictions(path) -> list[dict]:
    """The records of a prediction file (JSONL), checked before anything is scored: at least one record,
    each an object with a string ``response`` and a gold ``answer`` (a string or number) or an ``index``."""
    from ..errors import InputError
    from ..io_utils import read_jsonl

    lines = read_jsonl(path, "prediction file", PREDICTIONS_FIX)
    if not lines:
        raise InputError(
            path, "the prediction file holds no records (an empty file scores nothing)", PREDICTIONS_FIX
        )
    rows = []
    for line, row in lines:

        def bad(problem: str, line=line):
            return InputError(path, problem, PREDICTIONS_FIX, f"line {line}")

        if not isinstance(row, dict):
            raise bad(f"expected a JSON object, got {type(row).__name__} {row!r:.60}")
        if not isinstance(row.get("response"), str):
            raise bad(
                f"'response' is {row.get('response')!r:.60}, not a string"
                if "response" in row
                else "the record has no 'response' field"
            )
        answer = row.get("answer")
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            row["answer"] = str(answer)  # other tools write numeric gold answers
        elif "answer" in row and not isinstance(answer, str):
            raise bad(f"'answer' is {answer!r:.60}, not a string or number")
        if "answer" not in row:
            index = row.get("index")
            if "index" not in row:
                raise bad(
                    "the record has neither 'answer' nor 'index' (to join with the test file); add one of them"
                )
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise bad(f"'index' is {index!r:.60}, not a record number (an integer >= 0)")
        rows.append({**row, "_line": line})
    return rows


def extract_response(generated: str) -> str:
    """The text after "### Response:", cut at a new "### Instruction", stripped (upstream rule)."""
    text = generated.split("### Response:", 1)[1] if "### Response:" in generated else generated
    return text.split("### Instruction", 1)[0].strip()
