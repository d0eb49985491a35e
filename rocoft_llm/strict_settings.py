"""Typed settings shared by the recipe and the Python API: a strict pydantic base and the error wording.

Every settings class (``RoCoFTConfig``, the recipe sections, ``PrepareOptions``) derives from
:class:`StrictModel`: unknown keys are errors, types are not coerced (``16.5`` is not an integer,
``"yes"`` is not a boolean), floats must be finite, and each field's docstring is its documentation
(shown by ``rocoft-llm validate --explain KEY``). pydantic collects every error with its location;
:func:`describe_errors` turns them into rocoft-llm's messages (key, bad value, what is allowed, a
"did you mean" hint).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from .errors import preview

PRIMITIVE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


def _yaml_float(value: Any) -> Any:
    """PyYAML reads ``1e-3`` (no dot) as a string: accept number strings where a float is expected."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: a float field that also takes YAML's ``1e-3`` strings; NaN and infinity are refused by the base config
Float = Annotated[float, BeforeValidator(_yaml_float)]


class StrictModel(BaseModel):
    """Strict, documented settings: extra keys forbidden, no coercion, finite floats, docstrings as docs."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, use_attribute_docstrings=True)


def did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def unwrap(tp):
    """The type inside ``Annotated[...]``."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def describe_type(tp) -> str:
    """A type as a user reads it: ``one of 'row', 'column'``, ``a list of strings (or null)``."""
    tp = unwrap(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(describe_type(a) for a in args) + (
            " (or null)" if type(None) in typing.get_args(tp) else ""
        )
    if origin is list:
        inner = unwrap(typing.get_args(tp)[0])
        return f"a list of {PLURALS.get(inner, describe_type(inner))}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping of keys"
    return PRIMITIVE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def is_section(tp) -> bool:
    tp = unwrap(tp)
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def field_at(model: type[BaseModel], path: list[str]):
    """(FieldInfo, owning class) of a dotted key, or (None, the deepest class reached)."""
    cls, info = model, None
    for i, part in enumerate(path):
        info = cls.model_fields.get(part)
        if info is None:
            return None, cls
        if i < len(path) - 1:
            if not is_section(info.annotation):
                return None, cls
            cls = unwrap(info.annotation)
    return info, cls


def _raw_at(raw: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(raw, dict):
            return None
        raw = raw.get(part)
    return raw


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _bound_message(err: dict, optional: bool) -> str:
    ctx = err.get("ctx", {})
    for kind, op in _BOUNDS.items():
        if err["type"] == kind:
            key = {
                "greater_than": "gt",
                "greater_than_equal": "ge",
                "less_than": "lt",
                "less_than_equal": "le",
            }[kind]
            return f"must be {op} {ctx.get(key)}" + (" (or null)" if optional else "")
    if err["type"] in ("too_short", "too_long"):
        return (
            f"must have at least {ctx.get('min_length')} item(s)"
            if err["type"] == "too_short"
            else err["msg"]
        )
    return err["msg"]


def error_path(model: type[BaseModel], err: dict) -> list[str]:
    """The recipe key of one pydantic error: list positions dropped (the whole list is the value), and the
    validator names pydantic appends to some locations ("function-after[...]") cut off at the last real key."""
    loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
    if err["type"] == "extra_forbidden":
        return loc
    path = []
    for part in loc:
        if field_at(model, path + [part])[0] is None:
            break
        path.append(part)
    return path


def describe_errors(model: type[BaseModel], error: ValidationError, raw: Any, prefix: str = "") -> list[str]:
    """One message per bad key: unknown keys with the valid ones, missing keys, wrong types or values."""
    problems, seen = [], set()
    for err in error.errors():
        path = error_path(model, err)
        key = ".".join(path)
        where = (prefix + "." if prefix and key else prefix) + key
        if key in seen:
            continue
        seen.add(key)
        info, owner = field_at(model, path)
        if err["type"] == "extra_forbidden":
            names = list(owner.model_fields)
            section = ".".join(path[:-1])
            problems.append(
                f"{where}: unknown key; {did_you_mean(path[-1], names)}valid keys"
                f"{' of ' + section if section else ''}: {', '.join(names)}"
            )
            continue
        if info is None:  # the whole mapping is wrong
            value = _raw_at(raw, path)
            problems.append(
                f"{where or 'the recipe'}: expected a mapping of keys, got {type(value).__name__} {preview(value)}"
            )
            continue
        tp, value = info.annotation, _raw_at(raw, path)
        if err["type"] == "missing":
            problems.append(
                f"{where}: required section is missing; add `{path[-1]}:` with its keys"
                if is_section(tp)
                else f"{where}: required key is missing; set it to {describe_type(tp)}"
            )
        elif err["type"] == "literal_error" and isinstance(value, str):
            choices = [str(a) for a in typing.get_args(unwrap(tp))]
            hint = did_you_mean(value, choices).strip()
            problems.append(
                f"{where}: {preview(value)} is not {describe_type(tp)}" + (f"; {hint}" if hint else "")
            )
        elif err["type"] == "finite_number":
            problems.append(
                f"{where}: {preview(value)} is not a finite number; use {describe_type(tp)} such as "
                f"{info.default if isinstance(info.default, float) else 1.0}"
            )
        elif err["type"] in _BOUNDS or err["type"] in ("too_short", "too_long"):
            optional = type(None) in typing.get_args(unwrap(tp))
            problems.append(f"{where}: {preview(value)} {_bound_message(err, optional)}")
        elif err["type"] in (
            "value_error",
            "assertion_error",
        ):  # a field validator's own message names the value
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"{where}: {preview(value)} is not {describe_type(tp)}")
    return problems


def validated(model: type[BaseModel], values: Any, source: str):
    """``values`` as ``model``, or a RecipeError listing every problem (named after ``source``)."""
    from .errors import RecipeError

    result, problems = validate_model(model, values)
    if problems:
        raise RecipeError(source, problems)
    return result


def validate_model(model: type[BaseModel], raw: Any, prefix: str = ""):
    """(instance or None, problems): every problem of ``raw`` at once, never raising."""
    try:
        return model.model_validate(raw), []
    except ValidationError as e:
        return None, describe_errors(model, e, raw, prefix)
