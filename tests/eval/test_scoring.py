"""Scorer rules on edge cases, for every task family; the protocol scorer matches LLM-Adapters."""

import pytest

from rocoft_llm.eval.scoring import COMMONSENSE_PATTERNS, extract_response, score


def both(kind, response, answer, task="boolq"):
    s = score(kind, response, answer, COMMONSENSE_PATTERNS.get(task))
    return s["protocol"].correct, s["strict"].correct


@pytest.mark.parametrize(
    "response,answer,expected",
    [
        ("the correct answer is true", "true", (True, True)),
        (
            "true or false? the correct answer is false",
            "false",
            (False, True),
        ),  # protocol takes the FIRST match
        ("The correct answer is True", "true", (False, True)),  # protocol is case-sensitive
        ("I am not sure", "true", (False, False)),  # no match = wrong
        ("falsely, the correct answer is true", "true", (False, True)),  # 'false' inside 'falsely'
    ],
)
def test_boolq(response, answer, expected):
    assert both("option", response, answer) == expected


@pytest.mark.parametrize(
    "task,response,answer,expected",
    [
        ("piqa", "the correct answer is solution2", "solution2", (True, True)),
        ("siqa", "answer1 and answer3 are close; the correct answer is answer3", "answer3", (False, True)),
        ("arc_challenge", "the correct answer is answer5", "answer5", (True, True)),
        ("hellaswag", "ending4", "ending4", (True, True)),
        ("winogrande", "Option2", "option2", (False, True)),
        ("openbookqa", "answer2 answer4", "answer2", (True, False)),  # strict: two options named, none stated
    ],
)
def test_commonsense_families(task, response, answer, expected):
    assert both("option", response, answer, task) == expected


@pytest.mark.parametrize(
    "response,answer,expected",
    [
        ("He has 1,005 apples. The answer is 1,005.", "1005", (True, True)),  # commas removed
        ("It drops to -3 degrees. The answer is -3", "-3.0", (True, True)),  # negative
        ("3.5 + 2 = 5.5", "5.5", (True, False)),  # decimals; strict needs "answer is"
        ("The answer is 5. Check: 5 + 1 = 6", "5", (False, True)),  # protocol takes the LAST number
        ("half of it: 1/2", "0.5", (False, False)),  # fractions are not parsed
        ("no idea", "7", (False, False)),  # no number
        ("The answer is 576.0004", "576.0", (True, True)),  # |diff| <= 0.001
        ("The answer is 576.002", "576.0", (False, False)),
        ("answer: 12.", "12", (True, False)),  # '12.' parses as 12
    ],
)
def test_math(response, answer, expected):
    assert both("number", response, answer) == expected


@pytest.mark.parametrize(
    "response,answer,expected",
    [
        ("The answer is (C).", "C", (True, True)),  # 'T', 'h', 'e' are not A-E: the first capital A-E is 'C'
        ("A train leaves at 5. The answer is (D)", "D", (False, True)),  # protocol grabs the 'A' of 'A train'
        ("(B)", "B", (True, True)),
        ("Both (A) and (C) look right", "A", (False, False)),  # protocol takes the 'B' of 'Both'
        ("the answer is e", "E", (False, True)),  # strict is case-insensitive
    ],
)
def test_aqua(response, answer, expected):
    assert both("letter", response, answer) == expected


def test_extract_response():
    gen = "Below is ... ### Instruction:\nQ\n\n### Response:\n  the correct answer is true\n### Instruction:\nnext"
    assert extract_response(gen) == "the correct answer is true"
    assert extract_response("no marker here ") == "no marker here"
