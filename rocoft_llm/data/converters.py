"""Converters: one row of an original dataset (as the Hub serves it) -> one LLM-Adapters
instruction record ``{instruction, input, output, answer}``, with LLM-Adapters' exact wording:
option numbering ("Answer1: ... Answer2: ..."), "Answer format: ..." lines, and
"the correct answer is X" outputs. The gold answer always comes from the gold field; math
outputs are the source's gold rationale where it has one (GSM8K, AQuA), else a short
"The answer is N" derived from the gold equation/answer.

Bump ``CONVERTER_VERSION`` whenever any output changes: it is part of the data cache key.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import RoCoFTError

CONVERTER_VERSION = 2  # 2: MultiArith / LILA / Calc-mawps field names from their cards


def _record(instruction: str, output: str, answer: str) -> dict:
    return {"instruction": instruction, "input": "", "output": output, "answer": answer}


def _choice_record(stem: str, options: list[str], gold: int, word: str = "answer") -> dict:
    """'Please choose the correct answer to the question: ...' with Answer1..N, space-separated."""
    listed = " ".join(f"{word.capitalize()}{i + 1}: {o}" for i, o in enumerate(options))
    fmt = "/".join(f"{word}{i + 1}" for i in range(len(options)))
    label = f"{word}{gold + 1}"
    return _record(
        f"Please choose the correct answer to the question: {stem}\n\n{listed}\n\nAnswer format: {fmt}",
        f"the correct answer is {label}",
        label,
    )


def boolq(row: dict) -> dict:
    answer = "true" if row["answer"] in (True, "true", "True", 1) else "false"
    return _record(
        f"Please answer the following question with true or false, question: {row['question']}?\n\n"
        "Answer format: true/false",
        f"the correct answer is {answer}",
        answer,
    )


def piqa(row: dict) -> dict:
    label = f"solution{int(row['label']) + 1}"
    return _record(
        f"Please choose the correct solution to the question: {row['goal']}\n\n"
        f"Solution1: {row['sol1']}\n\nSolution2: {row['sol2']}\n\nAnswer format: solution1/solution2",
        f"the correct answer is {label}",
        label,
    )


def siqa(row: dict) -> dict:
    return _choice_record(
        f"{row['context']} {row['question']}",
        [row["answerA"], row["answerB"], row["answerC"]],
        int(row["label"]) - 1,
    )


def hellaswag(row: dict) -> dict:
    endings = " ".join(f"Ending{i + 1}: {e}" for i, e in enumerate(row["endings"]))
    fmt = "/".join(f"ending{i + 1}" for i in range(len(row["endings"])))
    label = f"ending{int(row['label']) + 1}"
    return _record(
        f"Please choose the correct ending to complete the given sentence: {row['activity_label']}: "
        f"{row['ctx']}\n\n{endings}\n\nAnswer format: {fmt}",
        f"the correct answer is {label}",
        label,
    )


def winogrande(row: dict) -> dict:
    label = f"option{int(row['answer'])}"
    return _record(
        "Please choose the correct answer to fill in the blank to complete the given sentence: "
        f"{row['sentence']}\n\nOption1: {row['option1']} Option2: {row['option2']} "
        "Answer format: option1/option2",
        f"the correct answer is {label}",
        label,
    )


def _keyed_choice(stem: str, choices: dict, key: str) -> dict:
    labels = list(choices["label"])
    if key not in labels:
        raise ValueError(f"answerKey {key!r} not among choice labels {labels}")
    return _choice_record(stem, list(choices["text"]), labels.index(key))


def arc(row: dict) -> dict:
    return _keyed_choice(row["question"], row["choices"], row["answerKey"])


def openbookqa(row: dict) -> dict:
    return _keyed_choice(row["question_stem"], row["choices"], row["answerKey"])


_CALC = re.compile(r"<<[^>]*>>")


def _format_number(value) -> str:
    number = float(str(value).replace(",", ""))
    return str(int(number)) if number.is_integer() else repr(number)


def gsm8k(row: dict) -> dict:
    """Gold rationale: calculator notes <<...>> removed, '#### N' rewritten to 'The answer is N.'"""
    rationale, _, final = row["answer"].rpartition("####")
    answer = _format_number(final.strip())
    text = _CALC.sub("", rationale).strip()
    return _record(row["question"], f"{text}\nThe answer is {answer}.", answer)


def svamp(row: dict) -> dict:
    body = row["Body"].strip()
    question = row["Question"].strip()
    answer = _format_number(row["Answer"])
    equation = str(row.get("Equation", "")).strip()
    output = (f"{equation} = {answer}. " if equation else "") + f"The answer is {answer}."
    return _record(f"{body} {question}" if body else question, output, answer)


_OPTION = re.compile(r"^\(?([A-E])\)\s*(.*)$")


def aqua(row: dict) -> dict:
    options = []
    for opt in row["options"]:
        m = _OPTION.match(opt.strip())
        if not m:
            raise ValueError(f"option {opt!r} is not like 'A)21'")
        options.append(f"({m.group(1)}) {m.group(2)}")
    letter = row["correct"].strip()
    return _record(
        f"{row['question']} Answer Choices: {' '.join(options)}",
        f"{row['rationale'].strip()}\nThe answer is ({letter}).",
        letter,
    )


#: question / answer / equation field names of the number-answer sources, as their cards name them
_QUESTION_FIELDS = ("sQuestion", "question", "input")  # MAWPS json; ChilleD/MultiArith, Calc-mawps; LILA
_ANSWER_FIELDS = ("lSolutions", "final_ans", "result", "output_answer")  # same order of sources
_EQUATION_FIELDS = ("lEquations", "equation")  # MAWPS json; Calc-mawps (LILA's output_program is code)


def _first_field(row: dict, names: tuple[str, ...]):
    for name in names:
        if row.get(name) not in (None, "", []):
            return row[name]
    raise KeyError(f"none of {list(names)}")


def mawps_style(row: dict) -> dict:
    """Number-answer word problems: MAWPS json (sQuestion, lSolutions, lEquations), ChilleD/MultiArith
    (question, final_ans), MU-NLPC/Calc-mawps (question, result, equation), allenai/lila addsub /
    singleq (input, output_answer)."""
    question = _first_field(row, _QUESTION_FIELDS)
    value = _first_field(row, _ANSWER_FIELDS)
    answer = _format_number(value[0] if isinstance(value, list) else value)
    equations = next((row[n] for n in _EQUATION_FIELDS if row.get(n)), "")
    equation = equations[0] if isinstance(equations, list) else equations
    output = (f"{equation}. " if equation else "") + f"The answer is {answer}."
    return _record(question, output, answer)


CONVERTERS: dict[str, Callable[[dict], dict]] = {
    f.__name__: f
    for f in (boolq, piqa, siqa, hellaswag, winogrande, arc, openbookqa, gsm8k, svamp, aqua, mawps_style)
}


def convert_rows(rows, converter: str, source: str) -> list[dict]:
    """Convert every row; a row that does not fit names the source, row index and the fix."""
    fn = CONVERTERS[converter]
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(fn(dict(row)))
        except (KeyError, ValueError, TypeError, IndexError) as e:
            raise RoCoFTError(
                f"{source}: row {i} does not fit the {converter!r} converter ({type(e).__name__}: {e}); "
                f"fields present: {sorted(dict(row))}. Check the source file or --dataset id."
            ) from None
    return out
