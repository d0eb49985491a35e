"""The "equation recomputed" math diagnostic: the response's last equation computed exactly, compared
with the gold answer; hand-computed values, and its place in the summaries and tables."""

import pytest

from rocoft_llm.eval.equations import equation_recomputed, equation_values
from rocoft_llm.eval.summaries import score_rows
from rocoft_llm.eval.tables import before_after_table, markdown_table
from rocoft_llm.eval.tasks import EvalTask


@pytest.mark.parametrize(
    "response, values",
    [
        ("So now there are 20817 + 97741 = 126998 houses.", [118558.0]),  # words before it are not part
        ("they will plant 9 * 6 = 54 trees. The answer is 54.", [54.0]),
        ("She has $5 x 3 = $15, six = 6", [15.0]),  # x as times, $ dropped; "six = 6" is no equation
        ("(3 + 4) × 2 = 15, then 9 ÷ 3 = 2", [14.0, 3.0]),
        ("1,200 - 200 = 1000", [1000.0]),  # thousands separators
        ("3.5 + 1.5=5 apples and -2 * 4 = 8", [5.0, -8.0]),
        ("14 / 0 = 1", []),  # division by zero is no value
        ("20% of 50 = 10; box x 3 = 9; 7 = 7; x = 5", []),  # no binary operation between numbers
        ("__import__('os') + 1 = 2", []),  # only arithmetic is evaluated
    ],
)
def test_equation_values(response, values):
    assert equation_values(response) == pytest.approx(values)


def test_recomputed_uses_the_last_equation_with_the_protocol_tolerance():
    assert equation_recomputed("3 + 9 = 13. The answer is 13.", "12").correct  # right setup, wrong sum
    assert not equation_recomputed("3 + 9 = 12, 12 * 2 = 24. The answer is 24.", "12").correct
    assert equation_recomputed("10 / 3 = 3.33", "3.3333").correct  # |10/3 - 3.3333| <= 0.001
    assert equation_recomputed("The answer is 12.", "12") == equation_recomputed("", "12")  # no equation
    assert equation_recomputed("", "12").pred == "" and not equation_recomputed("", "12").correct


def test_math_summary_and_tables_carry_the_diagnostic_beside_the_protocol():
    task = EvalTask("addsub", "math", "number", None, [], "test", 256)
    rows = [
        {"response": "A: 3 + 9 = 13. The answer is 13.", "answer": "12"},  # protocol wrong, setup right
        {"response": "A: 2 + 2 = 4. The answer is 4.", "answer": "4"},  # both right
        {"response": "The answer is 7.", "answer": "5"},  # both wrong
        {"response": "A: 6 - 1 = 5", "answer": "7"},
    ]
    summary = score_rows(task, rows)
    assert summary["protocol"]["correct"] == 1 and summary["equation_recomputed"]["correct"] == 2
    assert [r["equation_correct"] for r in rows] == [True, True, False, False]
    assert rows[0]["equation_value"] == "12" and rows[2]["equation_value"] == ""
    assert "equation recomputed 50.0% (15.0-85.0)" in markdown_table([summary], "t")
    table = before_after_table([summary], [summary])
    assert (
        "| addsub | equation recomputed (diagnostic) | 4 | 50.0% (15.0-85.0) | 50.0% (15.0-85.0) |" in table
    )
