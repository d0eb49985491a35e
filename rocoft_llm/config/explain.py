"""``rocoft-llm validate --explain KEY``: a recipe key's documentation, type, default and constraints,
read from its one declaration in :mod:`.schema` (the field's docstring)."""

from __future__ import annotations

import typing

from pydantic_core import PydanticUndefined

from ..errors import RecipeError
from ..strict_settings import describe_type, did_you_mean, field_at, is_section, unwrap
from .schema import Recipe


def _default(info) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is PydanticUndefined or is_section(info.annotation):
        return "see its keys"
    return "null" if value is None else repr(value)


def _is_text(info) -> bool:
    """A string field (also ``str | None``): its length is characters, not items."""
    tp = unwrap(info.annotation)
    return tp is str or str in typing.get_args(tp)


def _constraints(info) -> str:
    parts = []
    for meta in info.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "at least")):
            value = getattr(meta, attr, None)
            if value is None:
                continue
            if attr != "min_length":
                parts.append(f"{op} {value}")
            elif _is_text(info):
                parts.append("not empty" if value == 1 else f"at least {value} characters")
            else:
                parts.append(f"at least {value} item(s)")
    return ", ".join(parts)


def _line(key: str, info) -> str:
    doc = " ".join((info.description or "").split())
    return f"{key}  ({describe_type(info.annotation)}; default {_default(info)})\n    {doc}"


def explain(key: str = "") -> str:
    """The documentation of ``key`` (a section lists each of its keys; "" lists the sections)."""
    path = [p for p in key.split(".") if p]
    info, owner = field_at(Recipe, path) if path else (None, Recipe)
    if path and info is None:
        names = list(owner.model_fields)
        raise RecipeError(
            "--explain",
            [
                f"{key}: unknown key; {did_you_mean(path[-1], names)}valid keys"
                f"{' of ' + '.'.join(path[:-1]) if len(path) > 1 else ''}: {', '.join(names)}"
            ],
        )
    if info is not None and not is_section(info.annotation):
        extra = _constraints(info)
        return _line(key, info) + (f"\n    constraint: {extra}" if extra else "") + "\n"
    section = unwrap(info.annotation) if info is not None else Recipe
    head = f"{key}: {' '.join((info.description or '').split())}\n" if info is not None else ""
    prefix = f"{key}." if key else ""
    return head + "\n".join(_line(prefix + name, f) for name, f in section.model_fields.items()) + "\n"
