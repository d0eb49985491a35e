"""The "equation recomputed" diagnostic for math answers: the value of the response's LAST written
equation's left-hand side, computed exactly (a calculator check).

A small model often sets up the right computation and then gets the arithmetic wrong ("20817 +
97741 = 126998", gold 118558). The LLM-Adapters protocol (last number) scores that as wrong, and it
is wrong; this diagnostic says whether the model chose the right operations on the right numbers,
which is task skill no label prior can fake. It is reported beside the protocol, never instead of
it, and only for numeric answers.

An equation is ``<expression> = <anything>`` where the expression is numbers joined by ``+ - * /``
(also ``x``, ``×``, ``÷``), with parentheses and ``$``; words before it are not part of it ("there
are 3 + 4 = 7" -> ``3 + 4``). Evaluation walks the parsed expression and allows only numbers, the
four operations and unary minus (no ``eval``).
"""

from __future__ import annotations

import ast
import operator
import re

from .scoring import Score, number_matches

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_EXPRESSION_CHARS = re.compile(r"[\d\.\s\+\-\*/x×÷\(\)\$]*$")
_BINARY = re.compile(r"\d\s*\)?\s*[\+\-\*/]\s*\(?\s*-?\d")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand)
    raise ValueError("not arithmetic")


def _evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression with at least one binary operation, else None."""
    text = expression.replace("$", "").replace("×", "*").replace("÷", "/").replace("x", "*").strip()
    if not _BINARY.search(text):
        return None
    try:
        return _value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def equation_values(response: str) -> list[float]:
    """The left-hand-side value of every equation in ``response``, in order."""
    text = _THOUSANDS.sub("", response)
    values = []
    for eq in re.finditer("=", text):
        before = text[: eq.start()]
        run = _EXPRESSION_CHARS.search(before[-200:]).group(0)  # the operator/number run before "="
        for start in range(
            len(run)
        ):  # drop leading junk (a word's trailing "x", a stray ")") until it parses
            value = _evaluate(run[start:])
            if value is not None:
                values.append(value)
                break
    return values


def equation_recomputed(response: str, answer: str) -> Score:
    """Correct when the last equation's left-hand side equals the gold answer (protocol tolerance)."""
    values = equation_values(response)
    if not values:
        return Score("", False)
    return Score(f"{values[-1]:g}", number_matches(values[-1], answer))
